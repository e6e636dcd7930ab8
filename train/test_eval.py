"""Score a finished run on its test split afterwards: for runs trained with ``evaluate_test=False``.

``edgesmith tune`` trains every trial without reading the test split (a search that looks at test
scores, even without selecting on them, invites choosing by them). Once the search is over, the one
run it keeps (``TUNE/best-run``) is scored here, exactly as :func:`.loop.train` would have scored it:
the same split (the run's ``config.json`` rebuilds the data spec, seed and resize policy; only the
test images are decoded, at the size the model was trained at), the same prediction pass, the same ``metrics.json`` entries, ``per_class.md`` and ``confusion.png``, and the
train record and dataset size in ``manifest.json``.
"""
from __future__ import annotations

import json
from pathlib import Path

from edgesmith.core.fsutil import write_json
from edgesmith.core.rundir import RunDir, load_manifest, save_manifest
from edgesmith.core.runlock import run_lock
from edgesmith.tfshim import keras

from .config import TrainConfig
from .datasets import test_source
from .loop import per_class_report, test_metrics


def evaluate_test(run_dir: str | Path) -> dict:
    """Score the run's Keras model on its test split, once; a run already scored is left as it is.

    Args:
        run_dir: a run directory written by :func:`.loop.train`.

    Returns:
        The run's ``metrics.json`` content after scoring: ``top1`` (fraction), ``loss``, ``n_test``,
        ``balanced_accuracy``, ``per_class``, ``confusion``, ``most_confused`` among the training entries.

    Raises:
        RunDirError: not a run directory. DataError: the dataset cannot be loaded.
        RunLockedError: another command held the run for longer than the lock's wait.
    """
    run = RunDir(run_dir)
    manifest = load_manifest(run)  # not a run: its own error first
    metrics = json.loads(run.metrics.read_text())
    if metrics.get("top1") is not None:
        return metrics
    config = TrainConfig.from_dict(json.loads(run.config.read_text()), quiet=True)
    split = test_source(config.data, manifest["dataset"]["image_shape"][:2])
    model = keras.models.load_model(run.model, compile=False)
    test, summary = test_metrics(model, split, split.class_names)
    with run_lock(run.root, what="tune"):
        metrics = {**{k: v for k, v in metrics.items() if k != "test"}, **test}
        write_json(run.metrics, metrics)
        per_class_report(summary, run, config)
        manifest = load_manifest(run)  # inside the lock: what the last writer left
        manifest["dataset"]["n_test"] = test["n_test"]
        record = manifest["stages"].get("train")
        if record is not None:
            record["metrics"] = {**{k: v for k, v in (record.get("metrics") or {}).items() if k != "test"}, **test}
        save_manifest(run, manifest)
    return metrics
