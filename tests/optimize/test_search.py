"""`edgesmith optimize` on a small trained run: candidates exported, benched together, a file recommended,
the time budget respected, and the printed export command remakes the recommended file."""
import json
import shutil

import numpy as np
import pytest
from ssh_server import assert_nothing_left, needs_sshd
from typer.testing import CliRunner

from edgesmith.benchmarks.pareto import pareto_front
from edgesmith.cli import app
from edgesmith.core.data import DataSpec, load_split
from edgesmith.core.rundir import RunDir, load_manifest, verify_file
from edgesmith.optimize import OptimizeConfig, optimize
from edgesmith.optimize.report import summary_lines
from edgesmith.runtime import load

BUDGET_S = 150.0  # the bench then times for 150 x 0.25 / 2 = 19 s


@pytest.fixture(scope="module")
def searched(trained_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("opt") / "opt"
    result = optimize(trained_run.root, out, OptimizeConfig(budget_s=BUDGET_S, accuracy_budget=1.0, verify_size=300,
                                                            validation_size=200), limit_test=300, plot=False)
    return out, result


def test_every_candidate_is_exported_benched_and_reported(searched, trained_run):
    out, result = searched
    assert result["wall_s"] <= BUDGET_S
    done = {c["label"]: c for c in result["candidates"]}
    assert all(c["status"] == "done" for c in done.values()), done
    manifest = load_manifest(RunDir(out))
    names = [a["name"] for a in manifest["artifacts"]]
    for name in ("tflite_fp32", "tflite_fp16", "tflite_int8", "onnx_fp32", "onnx_int8", "onnx_int8_entropy",
                 "onnx_int8_percentile"):
        assert name in names
    assert len(names) == len(set(names)) and names.count("onnx_fp32") == 1  # one float parent per format
    for a in manifest["artifacts"]:
        verify_file(RunDir(out), a)  # every file is where the manifest says, unchanged
        assert a["export_command"].startswith(f"edgesmith export {trained_run.root} --formats {a['format']}")
    report = json.loads((out / "bench" / "results.json").read_text())
    assert {r["artifact"] for r in report["results"]} == set(names)
    # the GPU runtimes are asked for too: measured where present, else skipped with the reason
    assert {"ort-cuda", "ort-tensorrt"} <= set(report["runtimes"])
    assert all(report["runtimes"][r["runtime"]]["usable"] for r in report["results"])
    assert (out / "optimize.md").read_text().count("|") > 20 and load_manifest(trained_run)["artifacts"]  # run intact


def test_the_recommendation_follows_the_rule_and_the_pareto_set_is_undominated(searched):
    _, result = searched
    rec, front = result["recommendation"], result["pareto"]
    report = json.loads((searched[0] / "bench" / "results.json").read_text())
    rows = [r for r in report["results"] if r["batch"] == 1 and r["threads"] == 1]
    within = [r for r in rows if (rec["float_top1"] - r["top1"]) * 100 <= 1.0 + 1e-9]
    if within:  # the fastest file within the accuracy budget, or one that ties with it within noise
        fastest = min(r["latency_ms"]["p50"] for r in within)
        assert rec["p50_ms"] == fastest or fastest in [t["p50_ms"] for t in rec["ties"]]
    assert {p["artifact"] for p in front} <= {r["artifact"] for r in rows}
    idx = pareto_front([(r["latency_ms"]["p50"], r["top1"]) for r in rows])
    assert sorted(p["artifact"] + p["runtime"] for p in front) == sorted(rows[i]["artifact"] + rows[i]["runtime"]
                                                                       for i in idx)
    assert rec["export_command"]


def test_the_export_command_remakes_the_recommended_file(searched, trained_run, tmp_path):
    out, result = searched
    rec = result["recommendation"]
    record = next(a for a in load_manifest(RunDir(out))["artifacts"] if a["name"] == rec["artifact"])
    copy = tmp_path / "copy"
    shutil.copytree(trained_run.root, copy)
    args = record["export_command"].split()[2:]
    args[0] = str(copy)
    res = CliRunner().invoke(app, ["export", *args, "--verify-size", "300"])
    assert res.exit_code == 0, res.output
    remade = next(a for a in load_manifest(RunDir(copy))["artifacts"]
                  if a["format"] == record["format"] and a["variant"] == record["variant"])
    images = load_split(DataSpec.from_dict(load_manifest(trained_run)["dataset"]), "test").images[:200]
    a = load(out / record["file"]).predict(images)
    b = load(copy / remade["file"]).predict(images)
    assert (a.argmax(1) == b.argmax(1)).mean() >= 0.99 and np.abs(a - b).max() < 0.05


def test_a_short_budget_skips_candidates_and_says_so(trained_run, tmp_path):
    result = optimize(trained_run.root, tmp_path / "opt", OptimizeConfig(budget_s=1.0, verify_size=100),
                      limit_test=100, plot=False)
    status = {c["label"]: c["status"] for c in result["candidates"]}
    assert status.pop("(first)") == "done"  # the first is always made: the float parents
    assert set(status.values()) == {"skipped"}
    assert "not tried (time budget)" in "\n".join(summary_lines(result))
    assert result["recommendation"]["artifact"]


def test_an_existing_out_dir_is_refused(trained_run, tmp_path):
    res = CliRunner().invoke(app, ["optimize", str(trained_run.root), "--out", str(tmp_path)])
    assert res.exit_code == 1 and "exists" in res.output


@needs_sshd
def test_candidates_are_measured_on_an_ssh_device(trained_run, ssh_env, tmp_path):
    """--device: every candidate is timed on the device (here an sshd on 127.0.0.1) and the choice is its."""
    from edgesmith.benchmarks.devices import parse_devices

    device = parse_devices([ssh_env.url(cache=tmp_path / "cache", name="board")])
    config = OptimizeConfig(budget_s=90, variants=("fp32", "int8"), calibrations=("minmax", "entropy"), forms=False,
                            fallback=False, verify_size=100)
    result = optimize(trained_run.root, tmp_path / "opt", config, devices=device, limit_test=100, plot=False)
    report = json.loads((tmp_path / "opt" / "bench" / "results.json").read_text())
    assert {r["device"] for r in report["results"]} == {"board"}
    assert {r["artifact"] for r in report["results"]} == {"tflite_fp32", "tflite_int8", "onnx_fp32", "onnx_int8",
                                                            "onnx_int8_entropy"}
    assert result["recommendation"]["device"] == "board" and {f["device"] for f in result["files"]} == {"board"}
    assert_nothing_left(tmp_path / "cache")
