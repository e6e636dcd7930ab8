"""The CLI's voice for newcomers and scripts: --version, help that fits 80 columns, doctor --json, and a printed
"remake it" line that can be run as printed without losing anything else in the run (issue 29)."""
import json
import shlex
import shutil

import pytest
from typer.testing import CliRunner

from edgesmith.cli import app
from edgesmith.core.rundir import RunDir, load_manifest

cli = CliRunner()


def test_version():
    r = cli.invoke(app, ["--version"])
    assert r.exit_code == 0 and r.output.startswith("edgesmith ") and r.output.split()[1][0].isdigit()


@pytest.mark.parametrize("command", ["train", "export", "bench"])
def test_help_fits_80_columns_without_cut_words(command):
    r = cli.invoke(app, [command, "--help"], env={"COLUMNS": "80"})
    assert r.exit_code == 0, r.output
    assert "…" not in r.output and max(len(line) for line in r.output.splitlines()) <= 80
    assert "--help" in r.output
    wide = cli.invoke(app, [command, "--help"], env={"COLUMNS": "200"}).output
    assert "<bool>" not in wide  # flags shown as flags, at any width


def test_doctor_json_parses_and_leads_with_a_plain_sentence(tmp_path):
    r = cli.invoke(app, ["doctor", "--json"], env={"EDGESMITH_CACHE": str(tmp_path)})
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["verdict"].startswith("int8 ") and "expected, not measured" in doc["verdict"]
    assert doc["measured"] is None and doc["runtimes"]
    first = cli.invoke(app, ["doctor"], env={"EDGESMITH_CACHE": str(tmp_path)}).stdout.splitlines()[0]
    assert first.startswith("Int8 ") and "vpdpbusd" not in first and "QLinearConv" not in first


@pytest.mark.tf
def test_optimizes_remake_line_run_as_printed_loses_nothing_else(tiny_run, tmp_path):
    """The line optimize prints for an entropy-calibrated int8 ONNX file, run on a copy of the run: it
    replaces that one file and keeps every other file, its manifest entry and the bench results."""
    from edgesmith.optimize import OptimizeConfig, candidates, export_command

    copy = RunDir(tmp_path / "run copy")
    shutil.copytree(tiny_run.root, copy.root)
    copy.bench.mkdir()
    (copy.bench / "results.json").write_text('{"kept": true}')
    before = {a["name"]: a for a in load_manifest(copy)["artifacts"]}
    entropy = next(c for c in candidates(OptimizeConfig()) if c.label == "entropy")
    line = export_command(str(copy.root), before["onnx_int8"], entropy)
    args = shlex.split(line)
    assert args[:3] == ["edgesmith", "export", str(copy.root)] and "--calibration" in args
    r = cli.invoke(app, args[1:])
    assert r.exit_code == 0, r.output
    after = {a["name"]: a for a in load_manifest(copy)["artifacts"]}
    assert set(after) == set(before)
    for name, rec in before.items():
        assert (copy.root / rec["file"]).is_file(), name
        if rec["format"] != "onnx":  # (the ONNX float parent is remade with its int8 child)
            assert after[name]["sha256"] == rec["sha256"], name  # untouched
    assert json.loads((copy.bench / "results.json").read_text()) == {"kept": True}
    assert (copy.root / "model.keras").is_file()


def test_tunes_best_is_reported_with_its_margin_over_the_default_and_the_noise(tmp_path):
    from types import SimpleNamespace

    from edgesmith.cli.tune_cmd import _margin

    (tmp_path / "best-run").mkdir()
    (tmp_path / "best-run" / "manifest.json").write_text(json.dumps({"dataset": {"n_val": 200}}))
    rows = [{"trial": 0, "note": "baseline", "state": "complete", "objective": 0.60},
            {"trial": 3, "note": "", "state": "complete", "objective": 0.61}]
    close = SimpleNamespace(rows=rows, best={"trial": 3, "value": 0.61}, out=tmp_path)
    assert _margin(close) == " (+1.00 pt over the default, trial 0, within noise: ±9.6 pt on 200 validation images)"
    far = SimpleNamespace(rows=rows, best={"trial": 3, "value": 0.75}, out=tmp_path)
    assert "beyond noise" in _margin(far)
    assert _margin(SimpleNamespace(rows=rows[:1], best={"trial": 0, "value": 0.60}, out=tmp_path)) == \
        " (the default recipe itself)"
