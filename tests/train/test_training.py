import csv
import json
import os

import pytest

from edgesmith.core.data import DataSpec
from edgesmith.core.errors import ConfigError, DataError
from edgesmith.core.rundir import load_manifest, verify_file
from edgesmith.train import TrainConfig, build_model, train
from edgesmith.train.precision import resolve_policy


def test_run_directory_is_complete_and_the_model_learned(trained_run):
    for path in (trained_run.model, trained_run.config, trained_run.history, trained_run.curves,
                 trained_run.metrics, trained_run.manifest):
        assert path.is_file(), path
    metrics = json.loads(trained_run.metrics.read_text())
    assert metrics["top1"] > 0.6  # 10 classes: chance is 0.1
    # img/s and minutes are only comparable on the same hardware: the run says what trained it
    from edgesmith.core.cpuinfo import cpu_info
    assert metrics["machine"] == {"cpu": cpu_info().model, "cpu_count": os.cpu_count(), "gpus": []}
    with open(trained_run.history) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4 and {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(rows[0])
    assert float(rows[-1]["loss"]) < float(rows[0]["loss"])
    assert trained_run.curves.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    manifest = load_manifest(trained_run)
    verify_file(trained_run, manifest["model"])
    assert manifest["dataset"]["class_names"] == [f"class{i}" for i in range(10)]
    assert manifest["stages"]["train"]["config"]["model"] == "cnn"


@pytest.mark.parametrize("name", ["resnet8", "cnn"])
def test_models_take_raw_pixels_and_return_probabilities(name):
    import numpy as np

    model = build_model(name, (32, 32, 3), 10)
    assert model.layers[1].name == "rescale"  # preprocessing lives in the model
    probs = model.predict(np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3)).astype("float32"), verbose=0)
    assert probs.shape == (2, 10)
    np.testing.assert_allclose(probs.sum(1), 1, rtol=1e-5)


def test_resnet8_matches_the_mlperf_tiny_size():
    assert build_model("resnet8", (32, 32, 3), 10).count_params() == pytest.approx(78_000, rel=0.02)


def test_bad_configs_fail_before_any_work(tmp_path):
    with pytest.raises(ConfigError, match="unknown model 'vgg'"):
        TrainConfig(DataSpec("synthetic"), model="vgg")
    with pytest.raises(ConfigError, match="^epochs must be >= 1"):
        TrainConfig(DataSpec("synthetic"), epochs=0)
    with pytest.raises(ConfigError, match="^steps_per_execution must"):
        TrainConfig(DataSpec("synthetic"), steps_per_execution=0)
    (tmp_path / "taken").mkdir()
    with pytest.raises(ConfigError, match="already exists"):
        train(TrainConfig(DataSpec("synthetic")), tmp_path / "taken")


def test_failed_training_leaves_no_run_directory(tmp_path):
    with pytest.raises(DataError):
        train(TrainConfig(DataSpec(str(tmp_path / "missing"))), tmp_path / "run")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("precision, gpus, flags, policy", [
    ("auto", 1, set(), "mixed_float16"),
    ("auto", 0, {"amx_bf16"}, "mixed_bfloat16"),
    ("auto", 0, {"avx512_bf16"}, "mixed_bfloat16"),
    ("auto", 0, {"avx2"}, "float32"),
    ("fp32", 1, {"amx_bf16"}, "float32"),
    ("bf16", 0, set(), "mixed_bfloat16"),
])
def test_precision_policy(precision, gpus, flags, policy):
    assert resolve_policy(precision, gpus=gpus, flags=flags) == policy
