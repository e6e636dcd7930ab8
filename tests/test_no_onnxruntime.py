"""A device installs edgesmith without the [onnx] extra: the .tflite files run and are benchmarked,
and whatever needs ONNX Runtime says, in one line, which extra brings it. ONNX Runtime is
blocked in a child process, so these run whether or not this venv has it."""
import json

from conftest import python_without
from PIL import Image

EXTRA = "pip install 'edgesmith[onnx]'"
ORT_TARGETS = ("ort-cpu", "ort-cuda", "ort-tensorrt")


def _edgesmith(*args: str):
    """``edgesmith ARGS`` (the console entry point) with onnxruntime not importable."""
    return python_without(("onnxruntime",), f"""
        sys.argv = ["edgesmith", *{list(args)!r}]
        from edgesmith.cli import main
        main()
    """)


def test_doctor_names_the_onnx_extra_for_every_ort_target():
    r = _edgesmith("doctor", "--json")
    assert r.returncode == 0, r.stderr
    runtimes = json.loads(r.stdout)["runtimes"]
    assert runtimes["litert-cpu"]["usable"], runtimes["litert-cpu"]
    for t in ORT_TARGETS:
        assert not runtimes[t]["usable"] and EXTRA in runtimes[t]["detail"], (t, runtimes[t])


def test_bench_measures_the_tflite_files_and_skips_the_ort_targets_naming_the_extra(tiny_run):
    r = _edgesmith("bench", str(tiny_run.root), "--runtime", "auto", "--threads", "1", "--batch", "1",
                   "--runs", "10", "--warmup", "1", "--limit-test", "40", "--seconds", "0.3", "--rounds", "2")
    assert r.returncode == 0, r.stdout + r.stderr
    report = json.loads((tiny_run.bench / "results.json").read_text())
    assert {(x["artifact"], x["runtime"]) for x in report["results"]} == {
        ("tflite_fp32", "litert-cpu"), ("tflite_int8", "litert-cpu")}
    skipped = {s["runtime"]: s["reason"] for s in report["skipped"] if "artifact" not in s}
    for t in ORT_TARGETS:
        assert EXTRA in skipped[t], (t, skipped[t])
        assert f"skipped {t}: onnxruntime is not installed ({EXTRA}" in r.stdout, r.stdout


def test_predict_on_an_onnx_file_is_one_line_naming_the_extra(tiny_run, tmp_path):
    Image.new("RGB", (32, 32), (200, 30, 30)).save(tmp_path / "red.png")
    r = _edgesmith("predict", str(tiny_run.artifacts / "model_int8.onnx"), str(tmp_path / "red.png"))
    assert r.returncode == 1
    lines = [line for line in (r.stdout + r.stderr).splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and EXTRA in lines[0], r.stdout + r.stderr


def test_bench_profile_profiles_the_tflite_files_and_lists_the_onnx_ones_as_not_profiled(tiny_run):
    r = _edgesmith("bench", str(tiny_run.root), "--runtime", "cpu", "--threads", "1", "--batch", "1",
                   "--runs", "10", "--warmup", "1", "--limit-test", "40", "--seconds", "0.3", "--rounds", "2",
                   "--profile")
    assert r.returncode == 0, r.stdout + r.stderr
    profiles = tiny_run.bench / "profiles"
    assert sorted(p.name for p in profiles.glob("*.json")) == ["tflite_fp32.json", "tflite_int8.json"]
    md = (profiles / "profiles.md").read_text()
    assert md.count("Not profiled: onnxruntime is not installed") == 2 and EXTRA in md
    assert json.loads((profiles / "tflite_int8.json").read_text())["backend"] == "litert"
