import csv
import json

import numpy as np
import pytest
from conftest import HAS_MATPLOTLIB, HAS_ORT, python_without, tiny_models

from edgesmith.benchmarks import (BENCH_PRESETS, BenchConfig, bench, bench_config, bench_run, comparisons,
                                  format_threads, latency_summary, parse_threads, write_reports)
from edgesmith.benchmarks.pareto import pareto_front
from edgesmith.core.rundir import load_manifest
from edgesmith.runtime import default_threads
from edgesmith.benchmarks.stats import median_standard_error, p50_noise_ms
from edgesmith.core.errors import ConfigError, RunDirError


def test_percentiles_on_known_samples():
    s = latency_summary(np.arange(1, 101))  # 1..100 ms
    assert s["p50"] == pytest.approx(50.5)
    assert s["p25"] == pytest.approx(25.75) and s["p75"] == pytest.approx(75.25)
    assert s["p90"] == pytest.approx(90.1)
    assert s["p99"] == pytest.approx(99.01)
    assert s["mean"] == pytest.approx(50.5) and s["n"] == 100
    assert s["std"] == pytest.approx(np.arange(1, 101).std())
    assert s["min"] == 1 and s["max"] == 100
    with pytest.raises(ValueError):
        latency_summary([])


def test_noise_band_is_the_larger_of_drift_and_sampling_error():
    rng = np.random.default_rng(0)
    tight = latency_summary(rng.normal(1.0, 0.01, 500))
    # SE of a median of normal samples ~ 1.2533 sigma / sqrt(n)
    assert median_standard_error(tight) == pytest.approx(1.2533 * 0.01 / np.sqrt(500), rel=0.15)
    assert p50_noise_ms(tight, tight) == pytest.approx(0.1 * tight["p50"])  # drift dominates
    wide = latency_summary(rng.normal(1.0, 1.0, 10))
    assert p50_noise_ms(wide, wide) > 0.5  # few noisy samples: sampling error dominates


def test_pareto_front_on_known_points():
    # (latency ms, accuracy): b is dominated by a (slower, less accurate), d ties c on speed but is worse
    pts = [(1.0, 0.80), (2.0, 0.70), (3.0, 0.90), (3.0, 0.85), (0.5, 0.60)]
    assert pareto_front(pts) == [4, 0, 2]


def _result(name, parent, p50, top1, size, threads=1, batch=1, ips=None):
    return {"artifact": name, "float_parent": parent, "runtime": "litert-cpu", "threads": threads, "batch": batch,
            "precision": "int8" if parent else "fp32", "top1": top1, "bytes": size,
            "latency_ms": {"p50": p50}, "throughput_ips": ips}


def test_comparisons_pair_each_int8_with_its_float_parent():
    results = [_result("f", None, 0.30, 0.80, 400), _result("q", "f", 0.10, 0.79, 100),
               _result("f", None, 20.0, 0.80, 400, batch=64, ips=3200), _result("q", "f", 8.0, 0.79, 100, batch=64, ips=8000),
               _result("f", None, 0.20, 0.80, 400, threads=2)]
    (c,) = comparisons(results)
    assert c["speedup"] == pytest.approx(3.0)
    assert c["throughput_speedup"] == pytest.approx(2.5) and c["throughput_batch"] == 64
    assert c["accuracy_delta_pts"] == pytest.approx(-1.0)
    assert c["size_ratio"] == pytest.approx(0.25)
    assert c["verdict"].startswith("int8 is 3.00x faster (batch 64: 2.50x faster) at -1.00 pt")
    assert c["verdict"].endswith("ship it")
    slow = comparisons([_result("f", None, 0.2, 0.8, 400), _result("q", "f", 0.5, 0.8, 100)])
    assert "2.50x slower" in slow[0]["verdict"] and "keep the float model" in slow[0]["verdict"]
    lossy = comparisons([_result("f", None, 0.3, 0.8, 400), _result("q", "f", 0.1, 0.7, 100)])
    assert lossy[0]["verdict"].endswith("too much accuracy lost")


SMALL = dict(threads=(1,), batches=(1,), runs=10, warmup=1, limit_test=40, seconds=0.3, rounds=2)


def test_bench_writes_json_csv_markdown_and_plot(tiny_run, tmp_path):
    """Every artifact the installed runtimes can run is measured; without ONNX Runtime (a base
    install) the .onnx files are not, and its runtimes are skipped naming the [onnx] extra."""
    artifacts = ("tflite_fp32", "tflite_int8") + (("onnx_fp32", "onnx_int8") if HAS_ORT else ())
    report = bench_run(tiny_run, BenchConfig(runtimes=("litert-cpu", "ort-cpu", "ort-cuda"), threads=(1,),
                                                batches=(1, 16), runs=20, warmup=2, batch_runs=4, limit_test=200,
                                                seconds=1.0, rounds=2))
    paths = write_reports(report, tmp_path)
    if HAS_MATPLOTLIB:  # pareto.png, and a confusion matrix per artifact
        assert set(paths) == {"json", "csv", "md", "png", *(f"confusion-{a}" for a in artifacts)}
        assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    else:  # a base install: no plot, and the report says how to get one
        assert set(paths) == {"json", "csv", "md"} and not (tmp_path / "pareto.png").exists()
        assert "pip install 'edgesmith[plots]'" in paths["md"].read_text()
    data = json.loads(paths["json"].read_text())
    keras = tiny_models()["train"]["metrics"]
    assert data["reference"] == {"name": "keras_fp32", "top1": keras["top1"], "n_test": keras["n_test"]}
    assert data["schema_version"] == 3 and data["environment"]["cores"] >= 1
    assert data["environment"]["cpu"] and "versions" in data["environment"]
    # the environment's probe is the median of the one each measuring worker timed (one per cell)
    cells = {(r["artifact"], r["runtime"], r["threads"]): r["cpu_probe_ms"] for r in data["results"]}
    assert all(p > 0 for p in cells.values())
    assert data["environment"]["cpu_probe_ms"] == round(float(np.median(list(cells.values()))), 4)
    assert {(r["artifact"], r["batch"]) for r in data["results"]} == {(a, b) for a in artifacts for b in (1, 16)}
    for r in data["results"]:
        assert r["n_test"] == 200 and r["top1"] > 0.5
        lat = r["latency_ms"]
        assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"]
        # batch 1: 2 slices of 1 s / (2 rounds x 4 cells), and at least --runs calls; batch 16: 2 per round
        assert lat["n"] >= 20 if r["batch"] == 1 else lat["n"] == 4
        assert r["throughput_ips"] > 0 and r["load_ms"] > 0
        assert r["rss_peak_mib"] > 10 and r["rss_model_mib"] is not None and r["rss_model_mib"] >= 0
        assert r["gzip_bytes"] < r["bytes"]
    for a in data["accuracy"]:  # per-class accuracies average back to top-1 (balanced split)
        assert np.mean(list(a["per_class"].values())) == pytest.approx(a["top1"], abs=0.01)
    skipped = {s["runtime"]: s["reason"] for s in data["skipped"]}
    assert skipped["keras-cpu"] == "not requested" or "TensorFlow" in skipped["keras-cpu"]
    assert "ort-tensorrt" in skipped
    if not HAS_ORT:
        assert all("pip install 'edgesmith[onnx]'" in skipped[t] for t in ("ort-cpu", "ort-cuda", "ort-tensorrt"))
    elif not data["runtimes"]["ort-cuda"]["usable"]:
        assert "CUDAExecutionProvider" in skipped["ort-cuda"] or "GPU" in skipped["ort-cuda"]
    assert len(data["comparisons"]) == len(artifacts) // 2
    with open(paths["csv"]) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 * len(artifacts) and float(rows[0]["p50_ms"]) > 0 and float(rows[0]["throughput_ips"]) > 0
    md = paths["md"].read_text()
    assert "| tflite_int8 | litert-cpu | 1 | 1 |" in md and "tflite_int8 vs tflite_fp32" in md
    assert "## Per-class top-1" in md and "## Skipped" in md and "- ort-tensorrt:" in md
    assert md.count("- tflite_int8: int8 is") == 1


def test_bench_needs_artifacts_and_sane_options(tmp_path):
    with pytest.raises(RunDirError):
        bench_run(tmp_path)
    with pytest.raises(ConfigError, match="^runs must be >= 10"):
        BenchConfig(runs=3)
    with pytest.raises(ConfigError, match="^threads must be positive"):
        BenchConfig(threads=(0,))
    with pytest.raises(ConfigError, match="^batches must be positive"):
        BenchConfig(batches=(0,))
    with pytest.raises(ConfigError, match="unknown runtime 'tpu'"):
        BenchConfig(runtimes=("tpu",))
    assert BenchConfig(threads=(2, 1, 2)).threads == (1, 2)
    with pytest.raises(ConfigError, match="^rounds must"):
        BenchConfig(rounds=0)
    with pytest.raises(ConfigError, match="^seconds must"):
        BenchConfig(seconds=0)


def test_presets_hold_what_bench_and_pipeline_measure():
    assert bench_config() == bench_config("default") == BenchConfig()
    assert BenchConfig().threads == tuple(sorted({1, default_threads()}))
    quick = bench_config("quick")
    assert (quick.runtimes, quick.threads, quick.batches, quick.seconds) == (("litert-cpu", "ort-cpu"), (1,), (1, 64), 10.0)
    speed = bench_config("int8-speed")
    assert speed.threads == (1,) and speed.batches == (1, 64) and speed.rounds == speed.runs == 2000
    assert -(-speed.runs // speed.rounds) == 1  # one timed call per round at least: the old harness's interleave
    for name, values in BENCH_PRESETS.items():  # every field named, so the CLI can show each default
        assert set(values) | {"limit_test", "data", "latency_only"} == set(BenchConfig.__dataclass_fields__), name
    assert format_threads(BENCH_PRESETS["default"]["threads"]) == "1,all"


def test_bench_config_overrides_text_and_errors():
    c = bench_config("quick", threads="1,all", runtimes="ort-cpu", batches="64,1", limit_test=50, seconds=None)
    assert c.threads == tuple(sorted({1, default_threads()})) and c.runtimes == ("ort-cpu",)
    assert c.batches == (1, 64) and c.limit_test == 50 and c.seconds == 10.0
    assert parse_threads("2, all") == (2, default_threads())
    with pytest.raises(ConfigError, match="unknown bench preset 'fastest'; choose one of default, quick, int8-speed"):
        bench_config("fastest")
    with pytest.raises(ConfigError, match="unknown bench setting.*thread\\b"):
        bench_config(thread=(1,))
    with pytest.raises(ConfigError, match="^threads takes comma-separated"):
        bench_config(threads="1,many")
    with pytest.raises(ConfigError, match="^batches takes comma-separated"):
        bench_config(batches="1,x")
    with pytest.raises(ConfigError, match="^runs must be >= 10"):
        bench_config("int8-speed", runs=5)


def test_bench_writes_the_reports_and_records_the_stage(tiny_run):
    report, paths = bench(tiny_run, BenchConfig(runtimes=("litert-cpu",), **SMALL))
    assert {p.parent for p in paths.values()} == {tiny_run.bench}
    assert {(r["artifact"], r["runtime"]) for r in report["results"]} == {
        ("tflite_fp32", "litert-cpu"), ("tflite_int8", "litert-cpu")}
    assert json.loads(paths["json"].read_text())["results"] == report["results"]
    manifest = load_manifest(tiny_run)
    record = manifest["stages"]["bench"]
    assert record["reports"] == [p.relative_to(tiny_run.root).as_posix() for p in paths.values()]
    assert record["reports"][:3] == ["bench/results.json", "bench/results.csv", "bench/report.md"]
    assert record["finished"] and set(manifest["stages"]) == {"train", "export", "bench"}


def test_without_matplotlib_the_reports_skip_the_plot_and_say_how_to_get_it(tiny_run):
    r = python_without(("matplotlib",), f"""
        import json
        from edgesmith.benchmarks import BenchConfig, bench
        report, paths = bench({str(tiny_run.root)!r}, BenchConfig(runtimes=("litert-cpu",), **{SMALL!r}))
        print(json.dumps(sorted(paths)), "matplotlib" in sys.modules)
    """)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ['["csv",', '"json",', '"md"]', "False"]
    assert not (tiny_run.bench / "pareto.png").exists()
    md = (tiny_run.bench / "report.md").read_text()
    assert "## Notes" in md and "No pareto.png: matplotlib is not installed here (`pip install 'edgesmith[plots]'`)" in md
    assert load_manifest(tiny_run)["stages"]["bench"]["reports"] == [
        "bench/results.json", "bench/results.csv", "bench/report.md"]


@pytest.mark.plots
def test_with_matplotlib_the_plot_is_drawn_and_no_note_is_added(tiny_run):
    _, paths = bench(tiny_run, BenchConfig(runtimes=("litert-cpu",), **SMALL))
    assert paths["png"] == tiny_run.bench / "pareto.png" and paths["png"].read_bytes()[:4] == b"\x89PNG"
    assert "## Notes" not in paths["md"].read_text()
    assert "bench/pareto.png" in load_manifest(tiny_run)["stages"]["bench"]["reports"]
