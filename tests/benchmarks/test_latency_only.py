"""``bench --latency-only`` / ``--data`` / ``--out`` and ``--json``: a run directory copied without its
dataset is still benchmarked, on generated inputs, in the TF-free install."""
import json
import shutil

from conftest import python_without
from typer.testing import CliRunner

from edgesmith.cli import app
from edgesmith.core.rundir import RunDir, load_manifest, save_manifest

QUICK = ["--runtime", "litert-cpu", "--threads", "1", "--batch", "1", "--runs", "10", "--warmup", "1",
         "--seconds", "0.2", "--rounds", "2"]


def _without_dataset(run, tmp_path):
    """A copy of ``run`` whose manifest names a dataset folder that does not exist (as on a device)."""
    copy = tmp_path / "copied-run"
    shutil.copytree(run.root, copy)
    m = load_manifest(RunDir(copy))
    m["dataset"] = {**m["dataset"], "source": str(tmp_path / "home" / "pi" / "data" / "cifar10-jpeg")}
    save_manifest(RunDir(copy), m)
    return copy


def test_latency_only_benches_a_run_whose_dataset_is_gone(tiny_run, tmp_path):
    run = _without_dataset(tiny_run, tmp_path)
    before = sorted(p.relative_to(run).as_posix() for p in run.rglob("*") if p.is_file())
    cli = CliRunner()
    missing = cli.invoke(app, ["bench", str(run), *QUICK])
    assert missing.exit_code == 1 and "does not exist" in missing.output  # the recorded path is gone

    out = tmp_path / "elsewhere"
    args = ["bench", str(run), *QUICK, "--latency-only", "--out", str(out), "--recommend", "--json"]
    r = python_without(("tensorflow", "tf_keras", "keras"), f"""
        import sys
        sys.argv = ["edgesmith", *{args!r}]
        from edgesmith.cli import main
        main()
    """)  # the TF-free install a device has
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)  # the summary alone on stdout; progress went to stderr
    assert report["config"]["latency_only"] is True and report["config"]["n_test"] is None
    rows = report["results"]
    assert {x["artifact"] for x in rows} == {"tflite_fp32", "tflite_int8"}
    assert all(x["top1"] is None and x["latency_ms"]["p50"] > 0 for x in rows)
    assert report["accuracy"] == [] and report["verify_accuracy"] == []
    rec = report["recommendation"]
    assert rec["rule"] == "fastest (latency only)" and rec["file"].startswith(str(run))
    md = (out / "report.md").read_text()
    assert "latency only: generated inputs, no accuracy measured" in md
    assert "Per-class" not in md
    # doctor quotes this measurement (the last bench on this machine) in its first, plain line
    doc = cli.invoke(app, ["doctor"])
    first = doc.stdout.splitlines()[0]
    assert first.startswith("Int8 runs about ") and f"ship {run}/artifacts/" in first, first
    assert "not measured" not in first
    # --out: the run is left as it was (no RUN/bench, manifest unchanged apart from nothing)
    after = sorted(p.relative_to(run).as_posix() for p in run.rglob("*") if p.is_file() and ".lock" not in p.name)
    assert after == [b for b in before if ".lock" not in b] and "bench" not in load_manifest(RunDir(run))["stages"]


def test_data_overrides_the_recorded_dataset(tiny_run, tmp_path):
    run = _without_dataset(tiny_run, tmp_path)
    r = CliRunner().invoke(app, ["bench", str(run), *QUICK, "--data", "synthetic", "--limit-test", "40",
                                 "--out", str(tmp_path / "b")])
    assert r.exit_code == 0, r.output
    results = json.loads((tmp_path / "b" / "results.json").read_text())
    assert results["config"]["data"] == "synthetic" and results["config"]["n_test"] == 40
    assert all(0 <= x["top1"] <= 1 for x in results["results"])
