"""Renamed options and values: the new spellings reach the config; the old ones still do, with one
``note:`` line on stderr (for one release). TF-free: the CLI checks stop before any stage runs,
except one real bench with the old option."""
import importlib
import json

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from edgesmith.cli import app
from edgesmith.core import deprecation
from edgesmith.core.errors import ConfigError
from edgesmith.export import ExportConfig
from edgesmith.export.onnx import PRESETS

runner = CliRunner()


@pytest.fixture(autouse=True)
def _fresh_notes(monkeypatch):
    """Each test sees the first use of an old spelling (the note is said once per process)."""
    monkeypatch.setattr(deprecation, "_said", set())


@pytest.mark.parametrize("old, new", [("x86", "u8s8"), ("x86-avx2", "u8s8-7bit")])
def test_old_onnx_preset_names_are_translated_with_a_note(old, new, capsys):
    config = ExportConfig(onnx_preset=old)
    assert config.onnx_preset == new and new in PRESETS and old not in PRESETS
    assert capsys.readouterr().err == f"note: ONNX preset '{old}' is now '{new}'\n"
    ExportConfig(onnx_preset=old)  # said once per process
    assert ExportConfig(onnx_preset=new).onnx_preset == new
    assert capsys.readouterr().err == ""
    with pytest.raises(ConfigError, match="unknown ONNX int8 preset 'x87'"):
        ExportConfig(onnx_preset="x87")


def test_export_cli_old_preset_reaches_the_config_as_the_new_name(tiny_run, monkeypatch):
    cmd = importlib.import_module("edgesmith.cli.export_cmd")
    seen = []
    monkeypatch.setattr(cmd, "run_export", lambda run_dir, config, **kw: seen.append(config))
    r = runner.invoke(app, ["export", str(tiny_run.root), "--onnx-preset", "x86-avx2"])
    assert r.exit_code == 0, r.output
    assert seen[-1].onnx_preset == "u8s8-7bit"
    assert "note: ONNX preset 'x86-avx2' is now 'u8s8-7bit'" in r.stderr
    r = runner.invoke(app, ["export", str(tiny_run.root), "--onnx-preset", "u8s8-7bit"])
    assert r.exit_code == 0 and seen[-1].onnx_preset == "u8s8-7bit" and "note:" not in r.stderr


class _Stop(ConfigError):
    pass


@pytest.fixture
def bench_configs(monkeypatch):
    """The BenchConfig each ``bench`` invocation builds; the bench itself is not run."""
    import edgesmith.benchmarks as benchmarks

    seen = []

    def fake_bench(run_dir, config, **kw):
        seen.append(config)
        raise _Stop("stopped before measuring")

    monkeypatch.setattr(benchmarks, "bench", fake_bench)
    return seen


@pytest.mark.parametrize("args, runtimes, note", [
    (["--runtime", "ort-cpu,litert-cpu"], ("litert-cpu", "ort-cpu"), None),
    (["--device-kind", "gpu"], ("ort-cuda", "ort-tensorrt"), None),
    (["--targets", "ort-cpu"], ("ort-cpu",), "note: --targets is deprecated, use --runtime"),
    (["--target", "cpu"], ("litert-cpu", "ort-cpu"), "note: --target is deprecated here, use --device-kind"),
])
def test_bench_runtime_options_reach_the_config(tiny_run, bench_configs, args, runtimes, note):
    r = runner.invoke(app, ["bench", str(tiny_run.root), *args])
    assert r.exit_code == 1 and "stopped before measuring" in r.stderr, r.output
    assert bench_configs[-1].runtimes == runtimes
    assert (note in r.stderr) if note else "note:" not in r.stderr


def test_pipeline_runtime_options_reach_the_bench_config(monkeypatch):
    cmd = importlib.import_module("edgesmith.cli.pipeline_cmd")
    seen = []
    monkeypatch.setattr(cmd, "_run", lambda config, model_file: seen.append(config))
    for args, runtimes in ((["--runtime", "ort-cpu"], ("ort-cpu",)), (["--device-kind", "cpu"], ("litert-cpu", "ort-cpu")),
                          (["--target", "gpu"], ("ort-cuda", "ort-tensorrt"))):
        r = runner.invoke(app, ["pipeline", "--data", "synthetic", *args])
        assert r.exit_code == 0, r.output
        assert seen[-1].bench.runtimes == runtimes, args
    assert "note: --target is deprecated here, use --device-kind" in r.stderr


def test_old_bench_option_still_measures(tiny_run):
    r = runner.invoke(app, ["bench", str(tiny_run.root), "--targets", "litert-cpu", "--threads", "1", "--batch", "1",
                            "--runs", "10", "--warmup", "1", "--limit-test", "20", "--seconds", "0.2", "--rounds", "1",
                            "--json"])
    assert r.exit_code == 0, r.output
    assert "note: --targets is deprecated, use --runtime" in r.stderr
    assert {row["runtime"] for row in json.loads(r.stdout)["results"]} == {"litert-cpu"}


def test_predict_device_and_its_old_name(tiny_run, tmp_path):
    Image.fromarray(np.full((32, 32, 3), 128, np.uint8)).save(tmp_path / "a.png")
    model = str(tiny_run.artifacts / "model_int8.tflite")
    for option, note in (("--device", False), ("--target", True)):
        r = runner.invoke(app, ["predict", model, str(tmp_path / "a.png"), option, "cpu", "--threads", "1", "--json"])
        assert r.exit_code == 0, r.output
        assert json.loads(r.stdout)["device"] == "cpu"
        assert ("note: --target is deprecated, use --device" in r.stderr) is note


def test_runtime_load_target_keyword_and_runner_target_still_work(tiny_run, capsys):
    from edgesmith.runtime import load

    path = tiny_run.artifacts / "model_int8.tflite"
    new = load(path, device="cpu", threads=1)
    assert new.device_kind == "cpu" and capsys.readouterr().err == ""
    old = load(path, target="cpu", threads=1)
    assert old.device_kind == "cpu" and old.device_reason == "cpu requested"
    assert old.target == "cpu"
    assert capsys.readouterr().err == ("note: load(target=...) is deprecated, use load(device=...)\n"
                                       "note: Runner.target is deprecated, use Runner.device_kind\n")
    with pytest.raises(ConfigError, match="unknown device 'tpu'"):
        load(path, target="tpu")
