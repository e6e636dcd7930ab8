"""No traceback ever reaches the user: a bug in any command is one ``error: internal error in ...``
line naming a log that holds the traceback; ``--debug`` prints it; Ctrl-C exits 130; usage errors
start with ``error:`` too. TF-free: the library function each command calls is replaced by one
that raises, before TensorFlow would be imported."""
from __future__ import annotations

import importlib
import re
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edgesmith import cli
from edgesmith.cli import app
from edgesmith.core import crashlog

from conftest import FIXTURE_MODELS

runner = CliRunner()
BUG = "injected bug 7f3a"


def _boom(*args, **kwargs):
    raise RuntimeError(f"{BUG}\nsecond line of the message")


def _interrupt(*args, **kwargs):
    raise KeyboardInterrupt


# command -> (the library function it calls, its arguments; RUN = a run directory, TMP = a temp dir,
# whether the crash log belongs in RUN/logs)
COMMANDS = {
    "train": ("edgesmith.train.train", ["train", "--data", "synthetic", "--model", "cnn", "--out", "TMP/run"], False),
    "tune": ("edgesmith.optimize.tune.tune", ["tune", "--data", "synthetic", "--budget", "1m", "--out", "TMP/t"],
             False),
    "export": ("edgesmith.export.export", ["export", "RUN"], True),
    "optimize": ("edgesmith.optimize.optimize", ["optimize", "RUN", "--budget", "1m", "--out", "TMP/o"], True),
    "bench": ("edgesmith.benchmarks.bench", ["bench", "RUN"], True),
    "pipeline": ("edgesmith.optimize.pipeline.run_pipeline",
                 ["pipeline", "--data", "synthetic", "--model", "cnn", "--out", "TMP/p"], False),
    "doctor": ("edgesmith.benchmarks.environment", ["doctor"], False),
    "predict": ("edgesmith.runtime.load", ["predict", str(FIXTURE_MODELS / "model_fp32.tflite"), "TMP"], False),
    "data preview": ("edgesmith.core.data.load_split", ["data", "preview", "synthetic", "--out", "TMP/grid.png"],
                     False),
    "data inspect": ("edgesmith.core.datareport.inspect_folder", ["data", "inspect", "TMP"], False),
}


def test_every_command_has_a_case_here():
    names = {c.name for c in app.registered_commands} | {
        f"{g.name} {c.name}" for g in app.registered_groups for c in g.typer_instance.registered_commands}
    assert names == set(COMMANDS), "add the new command's library call to COMMANDS"


def _invoke(command: str, raiser, monkeypatch, tiny_run, tmp_path, *flags: str):
    target, argv, _ = COMMANDS[command]
    module, name = target.rsplit(".", 1)
    # into the module's namespace: getattr on edgesmith.train would import TensorFlow (lazy attributes)
    monkeypatch.setitem(vars(importlib.import_module(module)), name, raiser)
    argv = [a.replace("RUN", str(tiny_run.root)).replace("TMP", str(tmp_path)) for a in argv]
    return runner.invoke(app, [*flags, *argv])


def _log_of(line: str) -> Path:
    m = re.search(r"; details in (.+\.log)$", line)
    assert m, line
    return Path(m[1])


@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_bug_in_any_command_is_one_line_and_a_log(command, monkeypatch, tiny_run, tmp_path):
    monkeypatch.delenv(crashlog.DEBUG_ENV, raising=False)
    r = _invoke(command, _boom, monkeypatch, tiny_run, tmp_path)
    assert r.exit_code == 1, r.output
    assert "Traceback" not in r.output
    lines = [line for line in r.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, r.output
    assert lines[0].startswith(f"error: internal error in {command}: RuntimeError: {BUG}; details in "), r.output
    log = _log_of(lines[0])
    expected_dir = tiny_run.root / "logs" if COMMANDS[command][2] else crashlog.default_log_dir()
    assert log.parent == expected_dir
    assert re.fullmatch(rf"{command.replace(' ', '-')}-\d{{8}}-\d{{6}}(-\d+)?\.log", log.name)
    text = log.read_text()
    assert "Traceback (most recent call last)" in text and f"RuntimeError: {BUG}" in text
    assert "second line of the message" in text and "_boom" in text


def test_debug_prints_the_traceback_too(monkeypatch, tiny_run, tmp_path):
    r = _invoke("bench", _boom, monkeypatch, tiny_run, tmp_path, "--debug")
    assert r.exit_code == 1
    assert "Traceback (most recent call last)" in r.output and "_boom" in r.output
    assert r.output.strip().splitlines()[-1].startswith("error: internal error in bench: RuntimeError: ")


def test_the_debug_environment_variable_prints_it(monkeypatch, tiny_run, tmp_path):
    monkeypatch.setenv(crashlog.DEBUG_ENV, "1")
    r = _invoke("export", _boom, monkeypatch, tiny_run, tmp_path)
    assert r.exit_code == 1 and "Traceback (most recent call last)" in r.output


def test_ctrl_c_is_one_line_and_exit_130(monkeypatch, tiny_run, tmp_path):
    r = _invoke("bench", _interrupt, monkeypatch, tiny_run, tmp_path)
    assert r.exit_code == 130
    assert r.output.strip() == "error: interrupted"


def test_the_log_of_an_export_goes_to_the_run_an_import_made(monkeypatch, tiny_run, tmp_path):
    model = tmp_path / "theirs.keras"
    model.write_bytes(b"not read: the import is replaced")
    # the import (TensorFlow) is replaced by the run it would have made
    monkeypatch.setattr(sys.modules["edgesmith.cli.export_cmd"], "run_import", lambda *a, **k: tiny_run.root)
    monkeypatch.setitem(vars(importlib.import_module("edgesmith.export")), "export", _boom)
    r = runner.invoke(app, ["export", str(model), "--data", "synthetic"])
    assert r.exit_code == 1, r.output
    assert _log_of(r.output.strip()).parent == tiny_run.root / "logs"


def test_a_run_directory_is_never_created_for_a_log(monkeypatch, tiny_run, tmp_path):
    r = _invoke("train", _boom, monkeypatch, tiny_run, tmp_path)
    assert r.exit_code == 1 and not (tmp_path / "run").exists()


def test_edgesmith_errors_stay_one_plain_line(tmp_path):
    r = runner.invoke(app, ["bench", str(tmp_path / "nope")])
    assert r.exit_code == 1
    assert r.output.strip() == f"error: run directory {tmp_path / 'nope'} does not exist"


def test_a_usage_error_starts_with_error(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["edgesmith", "bench", "--no-such-option"])
    assert cli._main() == 2
    err = capsys.readouterr().err
    assert err.startswith("error: No such option: --no-such-option")
    assert "Try 'edgesmith bench --help' for help." in err and "Error" not in err
