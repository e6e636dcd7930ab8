"""Every export variant (PTQ, pruned, QAT) on a tiny cnn and learnable synthetic data."""
import importlib
import shutil

import numpy as np
import pytest

from edgesmith.core.data import DataSpec, load_split
from edgesmith.core.errors import ParityError
from edgesmith.core.rundir import RunDir, load_manifest, verify_file
from edgesmith.export import ExportConfig, export
from edgesmith.export.fidelity import gzip_bytes, weight_stats
from edgesmith.export.finetune import FineTune
from edgesmith.runtime import load

ALL = ("fp32", "fp16", "dynamic", "int8", "int8-tflite")
QUICK = FineTune(epochs=1, batch_size=64, limit=512)


def copy_run(trained_run, dest) -> RunDir:
    """A private copy of the fixture's run (other tests read the fixture's artifacts)."""
    shutil.copytree(trained_run.root, dest, ignore=shutil.ignore_patterns("artifacts", "bench"))
    return RunDir(dest)


@pytest.fixture(scope="module")
def full_export(trained_run, tmp_path_factory):
    run = copy_run(trained_run, tmp_path_factory.mktemp("variants") / "run")
    records = export(run, ExportConfig(variants=ALL, prune=0.5, qat=True, prune_tune=QUICK,
                                       qat_tune=FineTune(epochs=1, batch_size=64, learning_rate=2e-5, limit=256),
                                       calibration_size=64, verify_size=200, max_accuracy_drop=8.0,
                                       diagnose=True))
    return run, {r["name"]: r for r in records}


def test_every_variant_is_written_and_recorded(full_export):
    run, arts = full_export
    base = ["tflite_fp32", "tflite_fp16", "tflite_dynamic", "tflite_int8",
            "onnx_fp32", "onnx_dynamic", "onnx_int8", "onnx_int8_from_tflite"]
    expected = base + ["pruned_" + n for n in base] + [
        "qat_tflite_int8", "qat_onnx_int8_from_tflite", "pruned_qat_tflite_int8", "pruned_qat_onnx_int8_from_tflite"]
    assert list(arts) == expected
    assert [a["name"] for a in load_manifest(run)["artifacts"]] == expected
    for a in arts.values():
        verify_file(run, a)
        assert a["gzip_bytes"] == gzip_bytes(run.root / a["file"])
    # the fine-tunes train with the run's own loss (its label smoothing), not hard labels
    manifest = load_manifest(run)
    smoothing = manifest["stages"]["train"]["config"]["label_smoothing"]
    assert smoothing > 0
    for tune in ("prune_tune", "qat_tune"):
        assert manifest["stages"]["export"]["config"][tune]["label_smoothing"] == smoothing


def test_fine_tune_label_smoothing_is_checked():
    from edgesmith.core.errors import ConfigError

    with pytest.raises(ConfigError, match="label smoothing"):
        FineTune(label_smoothing=1.0)


def test_each_file_loads_agrees_and_has_the_dtypes_it_claims(full_export):
    run, arts = full_export
    test = load_split(DataSpec("synthetic", limit_test=300), "test")
    for name, a in arts.items():
        path = run.root / a["file"]
        runner = load(path, device="cpu")
        probs = runner.predict(test.images[:100])
        assert probs.shape == (100, 10) and probs.dtype == np.float32
        assert a["fidelity"]["top1_agreement"] >= 0.9, name
        assert a["fidelity"]["accuracy_drop_pts"] <= 8.0, name
        stats = weight_stats(path)
        assert stats["weight_dtypes"] == a["weight_dtypes"], name
        assert a["float_parent"] == (None if name in ("tflite_fp32", "onnx_fp32") else f"{a['format']}_fp32")
    assert arts["tflite_fp32"]["weight_dtypes"] == ["float32"]
    assert "float16" in arts["tflite_fp16"]["weight_dtypes"]
    for name in ("tflite_dynamic", "tflite_int8", "onnx_dynamic", "onnx_int8", "qat_tflite_int8"):
        assert "int8" in arts[name]["weight_dtypes"], name
    assert arts["tflite_int8"]["input"]["dtype"] == "uint8"
    assert arts["qat_tflite_int8"]["input"]["dtype"] == "uint8"


def test_pruning_zeroes_half_the_weights_and_only_shrinks_the_gzip_size(full_export):
    run, arts = full_export
    sources = load_manifest(run)["stages"]["export"]["sources"]
    per_layer = sources["pruned"]["layer_sparsity"]
    assert per_layer and all(0.45 <= s <= 0.55 for s in per_layer.values())
    for fmt_variant in ("tflite_fp32", "tflite_int8", "onnx_int8", "onnx_fp32"):
        base, pruned = arts[fmt_variant], arts["pruned_" + fmt_variant]
        assert base["weight_sparsity"] < 0.1
        assert 0.45 <= pruned["weight_sparsity"] <= 0.55, fmt_variant
        assert abs(pruned["bytes"] - base["bytes"]) < 0.02 * base["bytes"]  # raw size unchanged
        assert pruned["gzip_bytes"] < 0.85 * base["gzip_bytes"], fmt_variant
    # prune-preserving QAT keeps the zeros; plain QAT of the unpruned model has none
    assert arts["pruned_qat_tflite_int8"]["weight_sparsity"] >= 0.45
    assert arts["qat_tflite_int8"]["weight_sparsity"] < 0.1


def test_int8_artifacts_carry_a_per_layer_diagnosis(full_export):
    _, arts = full_export
    for name in ("tflite_int8", "onnx_int8", "pruned_tflite_int8"):
        diag = arts[name]["diagnosis"]
        assert diag["layers"] >= 4, name
        worst = diag["worst"]
        assert worst == sorted(worst, key=lambda r: r["snr_db"])
        assert all(r["snr_db"] > 10 and 0.9 < r["cosine"] <= 1.0 + 1e-6 for r in worst), name


def test_int8_io_tflite_takes_int8_and_still_agrees(trained_run, tmp_path):
    run = copy_run(trained_run, tmp_path / "run")
    recs = export(run, ExportConfig(artifacts=("tflite_fp32", "tflite_int8"), io_dtype="int8",
                                    calibration_size=64, verify_size=200))
    int8 = recs[1]
    assert int8["input"]["dtype"] == "int8" and int8["input"]["quantization"]["zero_point"] == -128
    assert int8["fidelity"]["top1_agreement"] >= 0.9


def test_accuracy_budget_fails_naming_the_artifact_and_leaves_nothing(trained_run, tmp_path, monkeypatch):
    prune_module = importlib.import_module("edgesmith.export.prune")  # the package re-exports the function
    real_prune = prune_module.prune

    def prune_then_relabel(*args, **kwargs):
        """The real pruning, then the classifier's outputs shifted by one class: a pruned model
        whose top-1 is certain to collapse while its int8 file still agrees with it."""
        pruned = real_prune(*args, **kwargs)
        head = [layer for layer in pruned.layers if layer.get_weights() and layer.get_weights()[0].ndim == 2][-1]
        kernel, bias = head.get_weights()
        head.set_weights([np.roll(kernel, 1, axis=1), np.roll(bias, 1)])
        return pruned

    monkeypatch.setattr(prune_module, "prune", prune_then_relabel)
    run = copy_run(trained_run, tmp_path / "run")
    config = ExportConfig(formats=("tflite",), variants=("int8",), prune=0.5,
                          prune_tune=FineTune(epochs=1, batch_size=32, limit=128),
                          calibration_size=64, verify_size=200, max_accuracy_drop=1.0)
    with pytest.raises(ParityError, match=r"pruned_tflite_fp32 loses \d+\.\d+ pt of top-1") as e:
        export(run, config)
    assert "pruned_tflite_int8 loses" in str(e.value) and "tflite_int8 loses" not in str(e.value).replace(
        "pruned_tflite_int8 loses", "")
    assert "pruned_tflite_int8" in e.value.diagnosis
    assert e.value.diagnosis["pruned_tflite_int8"]["worst"]
    assert not run.artifacts.exists()
    assert load_manifest(run)["artifacts"] == load_manifest(trained_run)["artifacts"]  # untouched


def test_structured_2_4_pruning_keeps_two_of_every_four_input_channel_weights():
    from edgesmith.export.prune import layer_sparsity, prune
    from edgesmith.train import build_model

    data = load_split(DataSpec("synthetic", limit_train=256), "train")
    model = build_model("cnn", (32, 32, 3), 10)
    pruned = prune(model, data.images, data.labels, sparsity=0.5, structured_2_4=True,
                   tune=FineTune(epochs=1, batch_size=64))
    sparsity = layer_sparsity(pruned)
    for layer in pruned.layers:
        if layer.name not in sparsity:
            continue
        kernel = layer.get_weights()[0]
        if kernel.shape[-2] % 4:  # the RGB stem cannot hold the pattern: left dense
            assert sparsity[layer.name] == 0.0
            continue
        groups = np.moveaxis(kernel, -2, -1).reshape(-1, 4)  # 4 consecutive input channels
        assert ((groups == 0).sum(axis=1) >= 2).all(), layer.name
