"""Export options from the command line: bad input gives one line and exit 1, nothing written."""
import shutil

import pytest
from typer.testing import CliRunner

from edgesmith.cli import app
from edgesmith.core.errors import ConfigError
from edgesmith.core.rundir import load_manifest, save_manifest, RunDir
from edgesmith.export import ExportConfig

runner = CliRunner()


def _error_line(result) -> str:
    assert result.exit_code == 1, result.output
    lines = [l for l in result.output.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    return lines[0]


@pytest.fixture
def run_copy(trained_run, tmp_path):
    shutil.copytree(trained_run.root, tmp_path / "run", ignore=shutil.ignore_patterns("artifacts", "bench"))
    return RunDir(tmp_path / "run")


@pytest.mark.parametrize("args, message", [
    (["--variants", "fp32,int4"], "unknown variant(s) ['int4']"),
    (["--formats", "tflite,coreml"], "unknown format(s) ['coreml']"),
    (["--variants", "int8-tflite", "--formats", "tflite"], "exists only for onnx"),
    (["--prune", "1.0"], "--prune (sparsity) must be in (0, 1), got 1.0"),
    (["--prune", "-0.1"], "--prune (sparsity) must be in (0, 1), got -0.1"),
    (["--max-accuracy-drop", "-1"], "--max-accuracy-drop must be >= 0"),
])
def test_bad_options_fail_in_one_line_without_touching_the_run(run_copy, args, message):
    assert message in _error_line(runner.invoke(app, ["export", str(run_copy.root), *args]))
    assert not run_copy.artifacts.exists()


def test_a_calibration_set_smaller_than_asked_is_refused(run_copy, tmp_path):
    from conftest import write_image_folders

    data = write_image_folders(tmp_path / "imgs", per_class=(4, 2))  # 12 training images
    manifest = load_manifest(run_copy)
    manifest["dataset"]["source"] = str(data)
    save_manifest(run_copy, manifest)
    line = _error_line(runner.invoke(app, ["export", str(run_copy.root), "--calibration-size", "50"]))
    assert "--calibration-size 50" in line and "(12)" in line
    assert not run_copy.artifacts.exists()


def test_a_run_without_model_fails_cleanly(tmp_path):
    assert "not an edgesmith run" in _error_line(runner.invoke(app, ["export", str(tmp_path), "--prune", "0.5"]))
    assert list(tmp_path.iterdir()) == []


def test_default_plan_is_the_four_classic_artifacts():
    assert [p.name for p in ExportConfig().plan()] == ["tflite_fp32", "tflite_int8", "onnx_fp32", "onnx_int8"]
    plan = ExportConfig(formats=("tflite",), variants=("fp16",), prune=0.5, qat=True).plan()
    assert [(p.name, p.float_parent) for p in plan] == [
        ("tflite_fp32", None), ("tflite_fp16", "tflite_fp32"), ("pruned_tflite_fp32", "tflite_fp32"),
        ("pruned_tflite_fp16", "tflite_fp32"), ("qat_tflite_int8", "tflite_fp32"),
        ("pruned_qat_tflite_int8", "tflite_fp32")]
    with pytest.raises(ConfigError, match=r"^structured_2_4 sparsity is 0.5; it cannot reach prune=0.75"):
        ExportConfig(prune=0.75, structured_2_4=True)


def test_cli_options_build_the_export_config_the_library_defaults_to(tiny_run, monkeypatch):
    """Defaults come from ExportConfig (no hand-kept copy in the CLI), and every option reaches its field."""
    import dataclasses
    import importlib

    cmd = importlib.import_module("edgesmith.cli.export_cmd")  # the package attribute is the command function

    seen = []
    monkeypatch.setattr(cmd, "run_export", lambda run_dir, config, **kw: seen.append(config))
    r = runner.invoke(app, ["export", str(tiny_run.root)])
    assert r.exit_code == 0, r.output
    assert seen[-1] == ExportConfig()
    args = {"--variants": ("fp32,fp16", "variants", ("fp32", "fp16")), "--formats": ("tflite", "formats", ("tflite",)),
            "--calibration": ("entropy", "calibration", "entropy"), "--onnx-preset": ("s8s8", "onnx_preset", "s8s8"),
            "--target": ("x86-avx2,arm64", "targets", ("x86-avx2", "arm64")),
            "--calibration-size": ("64", "calibration_size", 64), "--io-dtype": ("int8", "io_dtype", "int8"),
            "--verify-size": ("100", "verify_size", 100), "--max-accuracy-drop": ("0.5", "max_accuracy_drop", 0.5),
            "--prune": ("0.5", "prune", 0.5), "--cluster": ("16", "cluster", 16),
            "--float-layers": ("conv2d,logits", "float_layers", ("conv2d", "logits")),
            "--validation-size": ("500", "validation_size", 500)}
    for option, (value, field, expected) in args.items():
        extra = ["--formats", "tflite"] if option == "--variants" else []
        r = runner.invoke(app, ["export", str(tiny_run.root), option, value, *extra])
        assert r.exit_code == 0, (option, r.output)
        assert getattr(seen[-1], field) == expected, option
    for flag, field in (("--qat", "qat"), ("--structured-2-4", "structured_2_4"), ("--diagnose", "diagnose")):
        assert runner.invoke(app, ["export", str(tiny_run.root), flag]).exit_code == 0
        assert getattr(seen[-1], field) is True, flag
    runner.invoke(app, ["export", str(tiny_run.root), "--fine-tune-epochs", "2", "--qat-epochs", "3",
                        "--fine-tune-limit", "500"])
    c = seen[-1]
    assert (c.prune_tune.epochs, c.cluster_tune.epochs, c.qat_tune.epochs) == (2, 2, 3)
    assert {c.prune_tune.limit, c.cluster_tune.limit, c.qat_tune.limit} == {500}
    assert c.prune_tune.learning_rate == ExportConfig().prune_tune.learning_rate
    assert runner.invoke(app, ["export", str(tiny_run.root), "--max-accuracy-drop", "0.3", "--fallback", "auto"]
                         ).exit_code == 0
    assert seen[-1].fallback == "auto"
    covered = {f for _, f, _ in args.values()} | {"qat", "structured_2_4", "diagnose", "prune_tune", "cluster_tune",
                                                 "qat_tune", "fallback"}
    internal = {"artifacts", "min_agreement_fp32", "min_agreement_int8"}  # Python API only
    assert {f.name for f in dataclasses.fields(ExportConfig)} - internal == covered
