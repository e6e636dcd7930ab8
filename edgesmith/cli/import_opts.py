"""Options and the import step of "bring your own model" (:mod:`edgesmith.export.byom`).

Shared by ``edgesmith export MODEL_FILE`` and ``edgesmith pipeline --model-file``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ._common import out

# Bring your own model (export/byom.py): options for a model file in place of a run directory.
DataImportOpt = Annotated[Optional[str], typer.Option("--data", "-d", help="Model files only: the dataset "
                          "('synthetic', 'cifar10' or a train/ test/ class-folder directory) to measure and "
                          "calibrate on.")]
LabelsOpt = Annotated[Optional[Path], typer.Option(help="Model files only: class names, one per line, in the "
                      "model's output order [default: the dataset's class folders].")]
PreprocessOpt = Annotated[str, typer.Option(help="Model files only: what the model expects - none (0-255), "
                          "scale01 (x/255), minus1to1 (x/127.5-1), imagenet (torch mean/std); added to the model "
                          "so artifacts take raw uint8 pixels.")]
OutputsOpt = Annotated[str, typer.Option(help="Model files only: auto, logits (a softmax is appended) or "
                       "probabilities.")]
TrustOpt = Annotated[bool, typer.Option("--trust-model-code", help="Model files only: accept Lambda layers and "
                     "custom objects, i.e. run code from the file. Only for files from people you trust.")]
ImportOutOpt = Annotated[Optional[Path], typer.Option("--out", "-o", help="Model files only: run directory to "
                         "create [default: `runs/import-<name>-<timestamp>`].")]


def run_import(path: Path, data: str | None, labels: Path | None, preprocess: str, outputs: str,
               trust_model_code: bool, out_dir: Path | None, overwrite: bool, *, limit_train: int | None = None,
               limit_test: int | None = None, seed: int = 0) -> Path:
    """``path`` itself if it is a run directory; else import the model file into a new run (printed)."""
    import datetime as _dt
    import json

    from edgesmith.core.errors import ConfigError

    path = Path(path)
    if (path / "manifest.json").is_file():
        if data or labels or out_dir:
            raise ConfigError(f"{path} is already a run directory; --data/--labels/--out are for model files")
        return path
    if not data:
        if path.is_file() or (path / "saved_model.pb").is_file():
            raise ConfigError(f"{path} is a model file, not a run directory: give --data to import it")
        return path  # not a run either: export reports it
    from edgesmith.core.data import DataSpec
    from edgesmith.export.byom import import_model

    out_dir = out_dir or Path("runs") / f"import-{path.stem}-{_dt.datetime.now():%Y%m%d-%H%M%S}"
    run = import_model(path, data=DataSpec(data, limit_train, limit_test, seed), out=out_dir, labels_file=labels,
                       preprocess=preprocess, outputs=outputs, trust_model_code=trust_model_code,
                       overwrite=overwrite)
    m = json.loads(run.metrics.read_text())
    out.print(f"imported {path} -> {run.root}: test top-1 {m['top1']:.2%} on {m['n_test']} images")
    return run.root
