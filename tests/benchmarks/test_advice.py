"""Int8 or float here: doctor's advice per ISA, the slower-int8 cause, the export-vs-here accuracy flag,
and --recommend. ISA flags are injected, so nothing depends on the CPU the tests run on."""
import json

import pytest

from edgesmith.benchmarks import BenchConfig, bench, comparisons, markdown
from edgesmith.benchmarks.advice import divergences, int8_expectations, recommend, slower_cause
from edgesmith.core.rundir import load_manifest, save_manifest

AVX2 = ["sse4_2", "avx", "avx2", "fma", "f16c"]


def _by_runtime(isa, arch="x86_64"):
    return {e["runtime"].split()[0]: e for e in int8_expectations(isa, arch)}


def test_doctor_advice_follows_the_isa():
    avx2 = _by_runtime(AVX2)
    assert avx2["LiteRT"]["expect"] == "about the same or slower" and "no VNNI" in avx2["LiteRT"]["why"]
    assert "x86-avx2" in avx2["ONNX"]["why"] and "saturat" in avx2["ONNX"]["why"] and "U8U8" in avx2["ONNX"]["why"]
    vnni = _by_runtime(AVX2 + ["avx512f", "avx512_vnni"])
    assert {e["expect"] for e in vnni.values()} == {"faster"} and "AVX512-VNNI" in vnni["LiteRT"]["why"]
    assert "AVX-VNNI" in _by_runtime(AVX2 + ["avx_vnni"])["ONNX"]["why"]
    assert "AMX" in _by_runtime(AVX2 + ["avx512_vnni", "amx_tile", "amx_int8"])["ONNX"]["why"]
    dot = _by_runtime(["asimd", "asimddp", "i8mm"], "aarch64")
    assert dot["LiteRT"]["expect"] == "faster" and "i8mm" in dot["LiteRT"]["why"] and "dotprod" in dot["ONNX"]["why"]
    plain = _by_runtime(["asimd"], "aarch64")
    assert {e["expect"] for e in plain.values()} == {"modestly faster"} and "no dotprod" in plain["LiteRT"]["why"]


def _row(name, parent, p50, top1, size, precision, threads=1, runtime="litert-cpu"):
    return {"artifact": name, "float_parent": parent, "runtime": runtime, "threads": threads, "batch": 1, "top1": top1,
            "latency_ms": {"p50": p50}, "throughput_ips": None, "bytes": size, "precision": precision}


def test_slower_int8_verdict_names_the_isa_cause_and_the_profile():
    rows = [_row("f", None, 0.29, 0.65, 400, "fp32"), _row("q", "f", 0.40, 0.65, 100, "int8")]
    (c,) = comparisons(rows, {"isa": AVX2, "arch": "x86_64"})
    assert "1.38x slower" in c["verdict"] and "no VNNI: XNNPACK's exact int8 kernels" in c["verdict"]
    assert "--profile" in c["verdict"]
    (plain,) = comparisons(rows)  # no environment: the verdict as before
    assert "VNNI" not in plain["verdict"]
    assert "look for unfused ops" in slower_cause(AVX2 + ["avx512_vnni"], "x86_64", "ort-cpu")
    assert "fuse only U8S8" in slower_cause(AVX2 + ["avx512_vnni"], "x86_64", "ort-cpu", "onnx_int8_s8s8")


REPORT = {"config": {"n_test": 1000}, "reference": {"top1": 0.80, "n_test": 1000},
          "results": [_row("tflite_fp32", None, 0.30, 0.800, 300_000, "fp32"),
                      _row("tflite_int8", "tflite_fp32", 0.10, 0.797, 90_000, "int8"),
                      _row("onnx_int8", "onnx_fp32", 0.08, 0.780, 100_000, "int8", runtime="ort-cpu"),
                      _row("tflite_int8", "tflite_fp32", 0.06, 0.797, 90_000, "int8", threads=2)]}


def test_recommend_picks_the_fastest_within_budget_else_the_smallest():
    rec = recommend(REPORT, 0.5)
    assert (rec["artifact"], rec["runtime"], rec["threads"], rec["rule"]) == (
        "tflite_int8", "litert-cpu", 1, "fastest within budget")  # onnx_int8 is faster but 2 pt down
    assert recommend(REPORT, 2.5)["artifact"] == "onnx_int8"
    strict = {**REPORT, "reference": {"top1": 0.90, "n_test": 1000}}  # every artifact > 9 pt below float
    rec = recommend(strict, 0.5)
    assert (rec["artifact"], rec["rule"]) == ("tflite_int8", "smallest (none within budget)")
    # a reference measured on other images is not used: the best fp32 row here is the float figure
    assert recommend({**strict, "config": {"n_test": 500}}, 0.5)["float_top1"] == 0.80
    with pytest.raises(ValueError, match="^budget_pts must be >= 0 points"):
        recommend(REPORT, -1)


def test_divergence_is_flagged_with_its_likely_cause():
    arts = [{"name": "onnx_int8", "precision": "int8", "onnx_preset": "x86", "fidelity": {"top1": 0.80, "n": 500},
             "verified_on": {"isa": ["avx2", "avx512_vnni"]}},
            {"name": "tflite_int8", "precision": "int8", "fidelity": {"top1": 0.80, "n": 500}}]
    report = {"environment": {"isa": AVX2, "arch": "x86_64"},
              "verify_accuracy": [{"artifact": "onnx_int8", "runtime": "ort-cpu", "top1": 0.785, "n": 500},
                                  {"artifact": "tflite_int8", "runtime": "litert-cpu", "top1": 0.802, "n": 500}]}
    (d,) = divergences(report, arts)
    assert (d["artifact"], d["delta_pts"]) == ("onnx_int8", -1.5)
    assert d["cause"] == "U8S8 without VNNI: pair sums saturate in int16; use --target x86-avx2 (U8U8)"
    other_images = {**report, "verify_accuracy": [{**report["verify_accuracy"][0], "n": 300}]}
    assert divergences(other_images, arts) == []  # not the images export verified on: not compared


@pytest.mark.onnx  # measures onnx_int8 on ort-cpu
def test_bench_compares_with_export_and_records_the_recommendation(tiny_run):
    """The export-time top-1 of onnx_int8 is edited in the manifest: the bench flags it (and only what differs)."""
    manifest = load_manifest(tiny_run)
    for a in manifest["artifacts"]:
        if a["name"] == "onnx_int8":
            a["fidelity"]["top1"] -= 0.05
        if a["name"] == "tflite_int8":
            a["fidelity"]["n"] = 100  # scored on the first 100 test images by its own worker
    save_manifest(tiny_run, manifest)
    config = BenchConfig(runtimes=("litert-cpu", "ort-cpu"), threads=(1,), batches=(1,), runs=10, warmup=1,
                         seconds=0.3, rounds=2)
    report, paths = bench(tiny_run, config, recommend_budget=0.5)
    verify = {v["artifact"]: v for v in report["verify_accuracy"]}
    assert verify["tflite_int8"]["n"] == 100 and verify["onnx_int8"]["n"] == 300
    from edgesmith.core.data import DataSpec, load_split
    from edgesmith.runtime import load

    test = load_split(DataSpec.from_dict(manifest["dataset"]), "test")
    pred = load(tiny_run.root / "artifacts" / "model_int8.tflite").predict(test.images[:100]).argmax(1)
    assert verify["tflite_int8"]["top1"] == pytest.approx(float((pred == test.labels[:100]).mean()))
    recorded = {a["name"]: a["fidelity"]["top1"] for a in manifest["artifacts"]}
    expected = {n for n, v in verify.items() if abs(v["top1"] - recorded[n]) * 100 > 0.3}
    assert "onnx_int8" in expected and {d["artifact"] for d in report["divergences"]} == expected
    saved = json.loads(paths["json"].read_text())
    assert saved["recommendation"]["artifact"] in recorded and saved["divergences"] == report["divergences"]
    md = paths["md"].read_text()
    assert "## Accuracy here vs at export" in md and "| onnx_int8 | ort-cpu |" in md
    assert saved['recommendation']['file'] in md and md.count("ship ") == 1  # the path, not the key
    assert "Recommended" not in markdown({**report, "recommendation": None})
