"""Per-class quality from training, class weights, and a model at another image size carried through
export (int8 calibrated at that size) and bench."""
import json

import numpy as np
import pytest

from edgesmith.core.data import DataSpec, Split
from edgesmith.core.perclass import class_weights
from edgesmith.train import TrainConfig, train
from edgesmith.train.datasets import Source
from edgesmith.train.loop import _evaluate
from conftest import write_image_folders


class _Fixed:
    """A model stand-in whose probabilities are fixed; no regularisation losses."""

    losses = []

    def __init__(self, probs):
        self.probs = np.asarray(probs, np.float32)

    def predict(self, ds, verbose=0):
        assert sum(int(x.shape[0]) for x, _ in ds) == len(self.probs)
        return self.probs


def test_top1_loss_and_confusion_come_from_one_prediction_pass():
    labels = np.array([0, 0, 1, 2])
    probs = [[0.5, 0.25, 0.25], [0.25, 0.5, 0.25], [0.25, 0.5, 0.25], [1.0, 0.0, 0.0]]
    test = Source.of(Split(np.zeros((4, 2, 2, 3), np.uint8), labels, ("a", "b", "c")))
    top1, loss, cm = _evaluate(_Fixed(probs), test)
    assert top1 == 0.5
    assert loss == pytest.approx(-(np.log(0.5) * 2 + np.log(0.25) + np.log(1e-7)) / 4, rel=1e-5)
    assert cm.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 0]]


@pytest.fixture(scope="module")
def run48(tmp_path_factory):
    """resnet8 on an imbalanced 3-class folder of 20x14 images, trained at 48x48 with class weights."""
    root = write_image_folders(tmp_path_factory.mktemp("d") / "imgs", per_class=(12, 4), size=(20, 14))
    for f in sorted((root / "train" / "frog").iterdir())[4:]:
        f.unlink()  # 12 cats, 12 dogs, 4 frogs
    config = TrainConfig(DataSpec(str(root), image_size=(48, 48)), model="resnet8", epochs=1, batch_size=8,
                         class_weight="auto", val_split=0.0, tensorboard=False, quiet=True)
    return train(config, tmp_path_factory.mktemp("r") / "run48")


def test_metrics_hold_per_class_figures_and_the_class_weights(run48):
    m = json.loads(run48.metrics.read_text())
    cm = np.array(m["confusion"])
    assert cm.shape == (3, 3) and cm.sum() == m["n_test"] == 12 and cm.sum(1).tolist() == [4, 4, 4]
    assert m["top1"] == pytest.approx(np.trace(cm) / cm.sum())
    rows = {r["class"]: r for r in m["per_class"]}
    for i, name in enumerate(("cat", "dog", "frog")):
        assert rows[name]["support"] == 4 and rows[name]["recall"] == pytest.approx(cm[i, i] / 4)
    assert m["balanced_accuracy"] == pytest.approx(np.mean([cm[i, i] / 4 for i in range(3)]))
    expected = class_weights(np.array([0] * 12 + [1] * 12 + [2] * 4), 3)
    assert m["class_weight"] == "auto"
    assert list(m["class_weights"].values()) == pytest.approx(expected, abs=1e-4)  # frog: 28 / (3 * 4)
    md = (run48.root / "per_class.md").read_text()
    assert "| true \\ predicted | cat | dog | frog |" in md and "| frog | 4 |" in md


def test_a_48px_model_exports_int8_calibrated_at_48px_and_benches(run48):
    from edgesmith.benchmarks import BenchConfig, bench
    from edgesmith.export import ExportConfig, export
    from edgesmith.runtime import load

    manifest = json.loads(run48.manifest.read_text())
    assert manifest["dataset"]["image_shape"] == [48, 48, 3] and manifest["model"]["input"]["shape"][1:3] == [48, 48]
    records = export(run48.root, ExportConfig(formats=("tflite",), calibration_size=16, verify_size=12))
    assert {r["name"] for r in records} == {"tflite_fp32", "tflite_int8"}
    for r in records:
        runner = load(run48.root / r["file"])
        assert tuple(runner.input_spec.shape) == (48, 48, 3)
    report, paths = bench(run48.root, BenchConfig(runtimes=("litert-cpu",), threads=(1,), batches=(1,), runs=10,
                                                  warmup=1, seconds=0.2, rounds=1))
    assert {(r["artifact"], r["n_test"]) for r in report["results"]} == {("tflite_fp32", 12), ("tflite_int8", 12)}
    for a in report["accuracy"]:
        assert np.array(a["confusion"]).sum() == 12
    assert "### Confusion matrix: tflite_int8" in paths["md"].read_text()


def test_train_and_pipeline_pass_class_weight_and_stream_to_the_config(monkeypatch, tmp_path):
    import importlib

    from typer.testing import CliRunner

    from edgesmith.cli import app

    train_cmd, pipeline_cmd = (importlib.import_module(f"edgesmith.cli.{m}") for m in ("train_cmd", "pipeline_cmd"))
    seen, real = [], train_cmd.build_config

    def capture(*a, **kw):  # the config the command built, and stop there
        seen.append(real(*a, **kw))
        raise SystemExit(0)

    monkeypatch.setattr(train_cmd, "build_config", capture)
    monkeypatch.setattr(pipeline_cmd, "build_config", capture)
    CliRunner().invoke(app, ["train", "-d", "synthetic", "--class-weight", "auto", "--no-stream"])
    CliRunner().invoke(app, ["pipeline", "-d", str(write_image_folders(tmp_path / "d")), "--class-weight", "auto",
                             "--stream"])
    CliRunner().invoke(app, ["train", "-d", "synthetic"])
    assert [(c.class_weight, c.stream) for c in seen] == [("auto", False), ("auto", True), ("none", None)]
