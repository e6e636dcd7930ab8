import json

import pytest

from edgesmith.benchmarks.profile import profile_litert, write_profiles


def test_litert_profile_lists_the_converted_ops_and_the_call_phases(tiny_run):
    litert = profile_litert(tiny_run.artifacts / "model_int8.tflite", runs=20)
    assert litert["backend"] == "litert" and litert["runs"] == 20
    assert litert["delegated"] and {o["op"] for o in litert["ops"]} >= {"CONV_2D"}
    assert litert["phases_us"]["invoke"] > 0 and litert["predict_p50_us"] > 0


@pytest.mark.onnx
def test_profiles_show_operators_per_artifact(tiny_run):
    run = tiny_run.root
    paths = write_profiles(run, runs=20)
    names = {p.name for p in paths}
    assert {"tflite_int8.json", "onnx_int8.json", "profiles.md"} <= names
    onnx_int8 = json.loads((run / "bench" / "profiles" / "onnx_int8.json").read_text())
    ops = {o["op"]: o for o in onnx_int8["ops"]}
    assert "QLinearConv" in ops and ops["QLinearConv"]["us"] > 0  # the x86 form fuses into int8 kernels
    assert abs(sum(o["share"] for o in onnx_int8["ops"]) - 1) < 0.01
    litert = json.loads((run / "bench" / "profiles" / "tflite_int8.json").read_text())
    assert litert["delegated"] and {o["op"] for o in litert["ops"]} >= {"CONV_2D"}
    assert litert["phases_us"]["invoke"] > 0
    assert "| QLinearConv |" in (run / "bench" / "profiles" / "profiles.md").read_text()


@pytest.mark.onnx
def test_bench_profile_option_writes_the_profiles(tiny_run):
    from typer.testing import CliRunner

    from edgesmith.cli import app

    run = tiny_run.root
    r = CliRunner().invoke(app, ["bench", str(run), "--runtime", "litert-cpu", "--threads", "1", "--batch", "1",
                                 "--runs", "20", "--warmup", "2", "--seconds", "0.3", "--rounds", "2", "--limit-test", "50", "--profile"])
    assert r.exit_code == 0, r.output
    assert (run / "bench" / "profiles" / "profiles.md").is_file()
    assert (run / "bench" / "profiles" / "onnx_int8.json").is_file()
