"""Runtime detection and skipping, --compare and gate exit codes (schema-2 files too), doctor, bad input."""
import copy
import json
from pathlib import Path

import pytest
from conftest import HAS_MATPLOTLIB, HAS_ORT
from typer.testing import CliRunner

from edgesmith.benchmarks import RESULTS_SCHEMA, BenchConfig, bench_run, compare_reports, gate_failures, load_results
from edgesmith.benchmarks import runtimes as rt
from edgesmith.benchmarks.stats import latency_summary
from edgesmith.benchmarks.worker import measure
from edgesmith.cli import app
from edgesmith.core.errors import ConfigError

cli = CliRunner()


def _one_line_error(result):
    assert result.exit_code == 1, result.output
    lines = [l for l in result.output.strip().splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    return lines[0]


def test_resolve_targets_groups_and_unknown_names():
    assert rt.resolve_runtimes("auto") == ("litert-cpu", "ort-cpu", "ort-cuda", "ort-tensorrt")
    assert rt.resolve_runtimes("ort-cpu,cpu") == ("litert-cpu", "ort-cpu")
    assert rt.resolve_runtimes("all") == rt.RUNTIMES
    with pytest.raises(ConfigError, match="unknown runtime 'tpu'"):
        rt.resolve_runtimes("ort-cpu,tpu")
    with pytest.raises(ConfigError):
        rt.resolve_runtimes(" , ")


def test_detection_reasons(monkeypatch):
    monkeypatch.setattr(rt, "_ort_providers", lambda: ["CPUExecutionProvider"])
    s = rt.detect("ort-cuda", gpus=[{"name": "NVIDIA H100", "driver": "1", "memory_mib": 80000}])
    assert not s.usable and "no CUDAExecutionProvider" in s.detail and "onnxruntime-gpu" in s.detail
    s = rt.detect("ort-cuda", gpus=[])  # no GPU: no install advice for hardware that is absent
    assert not s.usable and "no NVIDIA GPU" in s.detail and "pip install" not in s.detail
    monkeypatch.setattr(rt, "_ort_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert "no NVIDIA GPU" in rt.detect("ort-cuda", gpus=[]).detail
    ok = rt.detect("ort-cuda", gpus=[{"name": "NVIDIA H100", "driver": "1", "memory_mib": 80000}])
    assert ok.usable and "H100" in ok.detail
    assert not rt.detect("ort-tensorrt", gpus=[{"name": "x"}]).usable
    monkeypatch.setattr(rt, "_ort_providers", lambda: None)
    assert "onnxruntime is not installed" in rt.detect("ort-cpu").detail
    monkeypatch.setattr(rt, "_installed", lambda m: False)
    assert "pip install 'edgesmith[train]'" in rt.detect("keras-cpu").detail
    assert "ai-edge-litert is not installed" in rt.detect("litert-cpu").detail
    with pytest.raises(ConfigError):
        rt.detect("tpu")


@pytest.mark.onnx
def test_a_target_that_fails_at_load_is_a_skip_not_a_crash(tiny_run, tmp_path):
    import numpy as np

    np.save(tmp_path / "images.npy", np.zeros((4, 32, 32, 3), np.uint8))
    np.save(tmp_path / "labels.npy", np.zeros(4, np.int64))
    job = {"path": str(tiny_run.artifacts / "model_fp32.onnx"), "runtime": "ort-cuda", "threads": 1,
           "batches": [1], "warmup": 1, "runs": 10, "batch_runs": 3, "accuracy": True, "data": str(tmp_path),
           "num_classes": 10}
    import onnxruntime
    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this machine has CUDA")
    r = measure(job)
    assert r["ok"] is False and "CUDAExecutionProvider" in r["reason"]


def test_unavailable_targets_are_listed_as_skipped(tiny_run):
    rep = bench_run(tiny_run, BenchConfig(runtimes=("ort-tensorrt",), threads=(1,), runs=10, warmup=0, limit_test=20,
                                          seconds=0.5, rounds=2))
    reasons = {s["runtime"]: s["reason"] for s in rep["skipped"] if "artifact" not in s}
    assert set(reasons) >= {"litert-cpu", "ort-cpu", "keras-gpu"}
    assert reasons["litert-cpu"] == "not requested"
    assert rep["runtimes"]["ort-tensorrt"]["requested"] is True
    if not rep["runtimes"]["ort-tensorrt"]["usable"]:  # detection said no: nothing measured, and why
        assert rep["results"] == [] and rep["accuracy"] == []
        if HAS_ORT:
            assert "TensorrtExecutionProvider" in reasons["ort-tensorrt"] or "GPU" in reasons["ort-tensorrt"]
        else:  # a base install: the reason is the extra that brings ONNX Runtime
            assert "pip install 'edgesmith[onnx]'" in reasons["ort-tensorrt"]
        with pytest.raises(ConfigError, match="no batch-1 row"):
            gate_failures(rep, max_latency_ms=1.0)
    else:  # detected: every ONNX artifact was measured on it, or failed to load there and says why
        measured = {r["artifact"] for r in rep["results"]}
        assert {r["runtime"] for r in rep["results"]} <= {"ort-tensorrt"}
        failed = {s["artifact"] for s in rep["skipped"] if s.get("artifact")}
        assert measured | failed == {"onnx_fp32", "onnx_int8"} and not measured & failed


def _report(p50=1.0, top1=0.8, schema=RESULTS_SCHEMA, n=500, ips=900.0):
    lat = latency_summary([p50 * f for f in (0.98, 0.99, 1.0, 1.01, 1.02)] * (n // 5))
    rows = [{"artifact": "tflite_int8", "runtime": "litert-cpu", "threads": 1, "batch": 1, "top1": top1,
             "n_test": 10000, "latency_ms": lat, "throughput_ips": 1000 / lat["mean"], "bytes": 1000,
             "rss_model_mib": 20.0},
            {"artifact": "tflite_int8", "runtime": "litert-cpu", "threads": 1, "batch": 64, "top1": top1,
             "n_test": 10000, "latency_ms": latency_summary([64000 / ips] * 30), "throughput_ips": ips,
             "bytes": 1000, "rss_model_mib": 20.0}]
    return {"schema_version": schema, "run": "r", "config": {"n_test": 10000}, "environment": {"cpu": "x"},
            "results": rows}


def _write(tmp_path, name, rep):
    p = tmp_path / name
    p.write_text(json.dumps(rep))
    return str(p)


def test_compare_reports_changes_beyond_noise_only():
    base = _report()
    same = compare_reports(base, _report(p50=1.05, top1=0.8005, ips=950))  # 5 % slower, +0.05 pt: noise
    assert same["changes"] == [] and same["compared"] == 2
    worse = compare_reports(base, _report(p50=1.3, top1=0.79, ips=600))
    got = {(c.metric, c.better) for c in worse["changes"]}
    assert got == {("p50_ms", False), ("top1_pct", False), ("throughput_ips", False)}
    extra = copy.deepcopy(base)
    extra["results"][0]["artifact"] = "onnx_int8"
    assert compare_reports(base, extra)["only_old"] == ["tflite_int8 litert-cpu t1 b1"]
    busy = _report()
    busy["environment"].update(load_avg_start=9.5, load_avg=11.0)
    base["environment"].update(load_avg_start=0.5, load_avg=1.0)
    assert any("machine load differed" in n for n in compare_reports(base, busy)["notes"])
    busy["environment"]["cpu_probe_ms"], base["environment"]["cpu_probe_ms"] = 0.6, 0.4
    assert any("CPU probe" in n and "50% longer" in n for n in compare_reports(base, busy)["notes"])


def test_compare_cli_exit_codes(tmp_path):
    old = _write(tmp_path, "old.json", _report())
    r = cli.invoke(app, ["bench", "--compare", old, _write(tmp_path, "same.json", _report(p50=1.02))])
    assert r.exit_code == 0, r.output
    assert "0 worse, 0 better" in r.output
    r = cli.invoke(app, ["bench", "--compare", old, _write(tmp_path, "faster.json", _report(p50=0.5))])
    assert r.exit_code == 0 and "better" in r.output and "0 worse, 1 better" in r.output
    r = cli.invoke(app, ["bench", "--compare", old, _write(tmp_path, "slower.json", _report(p50=1.5))])
    assert r.exit_code == 4 and "worse" in r.output and "p50_ms" in r.output
    # gates apply to NEW
    r = cli.invoke(app, ["bench", "--compare", old, old, "--fail-under-accuracy", "85"])
    assert r.exit_code == 3 and "top-1 80.00% < 85%" in r.output
    r = cli.invoke(app, ["bench", "--compare", old, old, "--fail-over-latency", "0.5"])
    assert r.exit_code == 3 and "p50 1.000 ms > 0.5 ms" in r.output
    r = cli.invoke(app, ["bench", "--compare", old, old, "--fail-under-accuracy", "70", "--fail-over-latency", "2"])
    assert r.exit_code == 0 and "gates passed" in r.output


def _as_schema2(rep: dict) -> dict:
    """``rep`` as edgesmith 0.1 wrote it: schema 2, a bench runtime under ``target`` / ``targets``."""
    old = copy.deepcopy(rep)
    old["schema_version"] = 2
    old["config"]["targets"] = ["litert-cpu"]
    old["targets"] = {"litert-cpu": {"usable": True, "detail": "x", "requested": True}}
    old["skipped"] = [{"target": "ort-cuda", "reason": "no GPU"}]
    old["accuracy"] = [{"artifact": "tflite_int8", "target": "litert-cpu", "top1": 0.8, "n_test": 10000}]
    for row in old["results"]:
        row["target"] = row.pop("runtime")
    return old


def test_a_schema2_results_file_is_read_as_schema3_and_compares(tmp_path):
    old = _write(tmp_path, "old.json", _as_schema2(_report()))
    assert '"target": "litert-cpu"' in Path(old).read_text() and '"runtime"' not in Path(old).read_text()
    rep = load_results(old)
    assert rep["schema_version"] == RESULTS_SCHEMA and rep["upgraded_from"] == 2
    assert [r["runtime"] for r in rep["results"]] == ["litert-cpu", "litert-cpu"]
    assert all("target" not in r for r in rep["results"])
    assert rep["config"]["runtimes"] == ["litert-cpu"] and rep["runtimes"]["litert-cpu"]["usable"]
    assert rep["skipped"] == [{"runtime": "ort-cuda", "reason": "no GPU"}]
    assert rep["accuracy"][0]["runtime"] == "litert-cpu"
    result = compare_reports(rep, load_results(_write(tmp_path, "new.json", _report(p50=1.5))))
    assert result["compared"] == 2 and result["only_old"] == [] and result["only_new"] == []
    assert {(c.metric, c.better) for c in result["changes"]} == {("p50_ms", False)}
    r = cli.invoke(app, ["bench", "--compare", old, _write(tmp_path, "same.json", _report(p50=1.02))])
    assert r.exit_code == 0 and "0 worse, 0 better" in r.output, r.output
    r = cli.invoke(app, ["bench", "--compare", old, str(tmp_path / "new.json")])
    assert r.exit_code == 4 and "p50_ms" in r.output, r.output


def test_bad_results_files_and_targets_are_one_line_errors(tmp_path, tiny_run):
    old = _write(tmp_path, "old.json", _report(schema=1))
    new = _write(tmp_path, "new.json", _report())
    assert "schema 1" in _one_line_error(cli.invoke(app, ["bench", "--compare", old, new]))
    with pytest.raises(ConfigError, match="schema"):
        load_results(old)
    assert "does not exist" in _one_line_error(cli.invoke(app, ["bench", "--compare", str(tmp_path / "x.json"), new]))
    (tmp_path / "junk.json").write_text("{not json")
    assert "cannot read" in _one_line_error(cli.invoke(app, ["bench", "--compare", str(tmp_path / "junk.json"), new]))
    r = cli.invoke(app, ["bench", str(tiny_run.root), "--runtime", "ort-cpu,tpu"])
    assert "unknown runtime 'tpu'" in _one_line_error(r)
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "manifest.json").write_text(json.dumps(
        {"schema_version": 1, "run": "run", "dataset": {"source": "synthetic"}, "artifacts": [], "stages": {}}))
    assert "no exported artifacts" in _one_line_error(cli.invoke(app, ["bench", str(tmp_path / "run")]))
    assert "give a run directory" in _one_line_error(cli.invoke(app, ["bench"]))


def test_bench_cli_gate_on_a_fresh_run(tiny_run):
    r = cli.invoke(app, ["bench", str(tiny_run.root), "--runtime", "litert-cpu", "--threads", "1",
                         "--batch", "1", "--runs", "10", "--warmup", "1", "--limit-test", "50", "--seconds", "0.3", "--rounds", "2",
                         "--fail-under-accuracy", "100.1"])
    assert r.exit_code == 3, r.output
    assert "gate failed" in r.output
    if HAS_ORT:
        assert "skipped ort-cpu: not requested" in r.output
    else:  # not requested and not installed: the skip says which extra brings it
        assert "skipped ort-cpu: onnxruntime is not installed (pip install 'edgesmith[onnx]'" in r.output
    assert (tiny_run.bench / "pareto.png").is_file() == HAS_MATPLOTLIB
    reports = json.loads(tiny_run.manifest.read_text())["stages"]["bench"]["reports"]
    assert reports[:3] == ["bench/results.json", "bench/results.csv", "bench/report.md"]


def test_doctor_lists_every_target_with_a_reason():
    r = cli.invoke(app, ["doctor"])
    assert r.exit_code == 0, r.output
    for t in rt.RUNTIMES:
        assert t in r.output
    r = cli.invoke(app, ["doctor", "--json"])
    data = json.loads(r.output)
    assert set(data["runtimes"]) == set(rt.RUNTIMES) and data["environment"]["cores"] >= 1
    assert all(v["detail"] for v in data["runtimes"].values())


@pytest.mark.tf
def test_keras_reference_target_runs_in_a_child_process(tiny_run):
    rep = bench_run(tiny_run, BenchConfig(runtimes=("keras-cpu", "litert-cpu"), threads=(1,), batches=(1,),
                                             runs=10, warmup=2, limit_test=60, seconds=0.5, rounds=2))
    rows = {r["artifact"]: r for r in rep["results"]}
    assert rows["keras_fp32"]["runtime"] == "keras-cpu" and rows["keras_fp32"]["backend"] == "keras"
    # the float32 TFLite artifact is the same model: same answers on the same images
    assert rows["keras_fp32"]["top1"] == pytest.approx(rows["tflite_fp32"]["top1"], abs=0.02)
