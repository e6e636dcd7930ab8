"""The CLI: exit codes, one-line errors, nothing half-written, and one full synthetic pipeline."""
import json

import pytest
from typer.testing import CliRunner

from edgesmith.cli import app

runner = CliRunner()


def _one_line_error(result):
    assert result.exit_code == 1, result.output
    lines = [l for l in result.output.strip().splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    assert "Traceback" not in result.output
    return lines[0]


@pytest.mark.tf
def test_missing_data_directory(tmp_path):
    r = runner.invoke(app, ["train", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "run")])
    assert "does not exist" in _one_line_error(r)
    assert not (tmp_path / "run").exists()


@pytest.mark.tf
def test_empty_data_directory(tmp_path):
    (tmp_path / "data" / "train").mkdir(parents=True)
    r = runner.invoke(app, ["train", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "run")])
    assert "no images" in _one_line_error(r)
    assert not (tmp_path / "run").exists()


def test_unknown_model(tmp_path):
    r = runner.invoke(app, ["train", "--data", "synthetic", "--model", "vgg99", "--out", str(tmp_path / "run")])
    assert "unknown model 'vgg99'" in _one_line_error(r)


@pytest.mark.tf
def test_export_of_a_directory_without_model(tmp_path):
    assert "not an edgesmith run" in _one_line_error(runner.invoke(app, ["export", str(tmp_path)]))
    assert list(tmp_path.iterdir()) == []


def test_bench_of_a_directory_without_model(tmp_path):
    assert "not an edgesmith run" in _one_line_error(runner.invoke(app, ["bench", str(tmp_path)]))
    assert list(tmp_path.iterdir()) == []


def test_bad_threads_option(trained_run):
    r = runner.invoke(app, ["bench", str(trained_run.root), "--threads", "one"])
    assert "comma-separated integers" in _one_line_error(r)


@pytest.mark.tf
def test_pipeline_end_to_end_on_synthetic_data(tmp_path):
    out = tmp_path / "run"
    r = runner.invoke(app, ["pipeline", "--data", "synthetic", "--model", "cnn", "--epochs", "2",
                            "--limit-train", "600", "--limit-test", "200", "--out", str(out),
                            "--runs", "20", "--warmup", "2", "--calibration-size", "64",
                            "--bench-seconds", "1"])
    assert r.exit_code == 0, r.output
    report = json.loads((out / "bench" / "results.json").read_text())
    # the printed verdict is the one the measurements give, faster or slower
    (c,) = [c for c in report["comparisons"] if c["quantized"] == "tflite_int8" and c["threads"] == 1]
    pace = c["verdict"].split(" at ")[0].split(" (")[0]  # "int8 is 2.47x faster"
    assert pace.endswith("faster" if c["speedup"] >= 1 else "slower"), c
    assert "tflite_int8" in r.output and c["verdict"] in " ".join(r.output.split()), r.output
    batch1 = [r for r in report["results"] if r["batch"] == 1]
    assert len(batch1) == 4 and {r["batch"] for r in report["results"]} == {1, 64}
    manifest = json.loads((out / "manifest.json").read_text())
    assert set(manifest["stages"]) == {"train", "export", "bench"}
    assert manifest["stages"]["export"]["config"]["calibration_size"] == 64


@pytest.mark.tf
def test_train_with_sgd_records_the_resolved_recipe(tmp_path):
    out = tmp_path / "run"
    r = runner.invoke(app, ["train", "--data", "synthetic", "--model", "cnn", "--epochs", "1", "--limit-train", "300",
                            "--limit-test", "100", "--optimizer", "sgd", "--weight-decay", "5e-3",
                            "--batch-size", "64", "--steps-per-execution", "16", "--no-tensorboard",
                            "--out", str(out)])
    assert r.exit_code == 0, r.output
    config = json.loads((out / "manifest.json").read_text())["stages"]["train"]["config"]
    assert config["optimizer"] == "sgd" and config["weight_decay"] == 5e-3
    assert config["steps_per_execution"] == 16  # more than the 5 steps an epoch: Keras clips the last call
    assert abs(config["learning_rate"] - 0.05) < 1e-9  # SGD's default: 0.1 per 128 images of batch


@pytest.mark.tf
def test_fast_preset_fills_defaults_and_explicit_flags_win(tmp_path):
    out = tmp_path / "run"
    # --batch-size 128 is also the option's default: given on the command line, it still wins
    r = runner.invoke(app, ["train", "--data", "synthetic", "--preset", "fast", "--epochs", "1", "--limit-train", "256",
                            "--limit-test", "100", "--batch-size", "128", "--no-tensorboard", "--out", str(out)])
    assert r.exit_code == 0, r.output
    config = json.loads((out / "manifest.json").read_text())["stages"]["train"]["config"]
    assert (config["epochs"], config["batch_size"]) == (1, 128)  # given explicitly
    assert (config["model"], config["optimizer"], config["weight_decay"], config["precision"]) == \
        ("resnet8", "sgd", 5e-3, "fp32")
    assert config["val_split"] == 0.0 and abs(config["learning_rate"] - 0.3) < 1e-9  # 0.3 per 128 images
    assert config["low_res_epochs"] == 0 and config["low_res"] == 16  # 12 of 20 low-res epochs: none of 1
