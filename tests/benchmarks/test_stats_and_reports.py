import csv
import json

import numpy as np
import pytest

from edgesmith.benchmarks import BenchConfig, bench_run, comparisons, latency_summary, write_reports
from edgesmith.core.errors import ConfigError, RunDirError


def test_percentiles_on_known_samples():
    s = latency_summary(np.arange(1, 101))  # 1..100 ms
    assert s["p50"] == pytest.approx(50.5)
    assert s["p90"] == pytest.approx(90.1)
    assert s["p99"] == pytest.approx(99.01)
    assert s["mean"] == pytest.approx(50.5) and s["n"] == 100
    assert s["std"] == pytest.approx(np.arange(1, 101).std())
    with pytest.raises(ValueError):
        latency_summary([])


def _result(name, parent, p50, top1, size, threads=1):
    return {"artifact": name, "float_parent": parent, "target": "litert-cpu", "threads": threads,
            "precision": "int8" if parent else "fp32", "top1": top1, "bytes": size,
            "latency_ms": {"p50": p50}}


def test_comparisons_pair_each_int8_with_its_float_parent():
    results = [_result("f", None, 0.30, 0.80, 400), _result("q", "f", 0.10, 0.79, 100),
               _result("f", None, 0.20, 0.80, 400, threads=2)]
    (c,) = comparisons(results)
    assert c["speedup"] == pytest.approx(3.0)
    assert c["accuracy_delta_pts"] == pytest.approx(-1.0)
    assert c["size_ratio"] == pytest.approx(0.25)
    assert c["verdict"].startswith("int8 is 3.00x faster at -1.0 pt")
    slow = comparisons([_result("f", None, 0.2, 0.8, 400), _result("q", "f", 0.5, 0.8, 100)])
    assert "2.50x slower" in slow[0]["verdict"]


def test_bench_writes_json_csv_and_markdown(trained_run, tmp_path):
    report = bench_run(trained_run, BenchConfig(threads=(1,), runs=20, warmup=2, limit_test=200))
    paths = write_reports(report, tmp_path)
    data = json.loads(paths["json"].read_text())
    assert data["schema_version"] == 1 and data["environment"]["cores"] >= 1
    assert {r["artifact"] for r in data["results"]} == {"tflite_fp32", "tflite_int8", "onnx_fp32", "onnx_int8"}
    for r in data["results"]:
        assert r["n_test"] == 200 and r["top1"] > 0.5
        lat = r["latency_ms"]
        assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"] and lat["n"] == 20
        assert r["gzip_bytes"] < r["bytes"]
    assert len(data["comparisons"]) == 2
    with open(paths["csv"]) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4 and float(rows[0]["p50_ms"]) > 0
    md = paths["md"].read_text()
    assert "| tflite_int8 | litert-cpu | 1 |" in md and "tflite_int8 vs tflite_fp32" in md


def test_bench_needs_artifacts_and_sane_options(tmp_path):
    with pytest.raises(RunDirError):
        bench_run(tmp_path)
    with pytest.raises(ConfigError, match="--runs"):
        BenchConfig(runs=3)
    with pytest.raises(ConfigError, match="--threads"):
        BenchConfig(threads=(0,))
