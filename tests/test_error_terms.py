"""Library errors speak the library's terms; the CLI shows its own flags.

An exception raised by the library (everything outside ``edgesmith/cli/``) names the config field
or parameter at fault and its value (``learning_rate must be in (0, 10), got 20.0``), never a
command-line flag: a Python user of ``TrainConfig`` never typed ``--lr``. ``EdgesmithError.field``
says which value it is (``"TrainConfig.learning_rate"``), and the CLI's error boundary rewrites the
names of that owner into flags with the one table in :mod:`edgesmith.cli._flags`, which is checked
here against the real Typer options and the library's own fields and parameters.

What counts as an exception message: the string literal (str constants and the constant parts of an
f-string) passed to a call of an exception class (a name ending in ``Error``, ``Exception``,
``Unavailable`` or ``Diverged``), raised or not. Help texts, docstrings and log lines are not
exception messages. One exception, decided here once: a hint naming an edgesmith COMMAND for the
user to run, in backticks (``run `edgesmith export RUN --target cortex-m` first``), may carry its
flags: it is a command line to copy, not a name for a value the caller passed.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import typer.main
from typer.testing import CliRunner

from edgesmith.cli import app
from edgesmith.cli._flags import FIELD_FLAGS, OWNERS, cli_message

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = ("train", "importer", "export", "runtime", "benchmarks", "optimize", "edgesmith/core")
FLAG = re.compile(r"--[a-z]")
COMMAND_HINT = re.compile(r"`edgesmith [^`]*`")
_EXC_SUFFIXES = ("Error", "Exception", "Unavailable", "Diverged")


def _sources():
    for top in LIBRARY:
        for path in sorted((ROOT / top).rglob("*.py")):
            yield path, ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


_TREES = list(_sources())


def _callee(node: ast.Call) -> str:
    f = node.func
    return f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""


def _text(node) -> str | None:
    """A message's literal text; an f-string's values read as ``x``."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else "x" for v in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _text(node.left), _text(node.right)
        return None if left is None and right is None else (left or "x") + (right or "x")
    return None


def test_no_library_exception_message_names_a_flag():
    found = []
    for path, tree in _TREES:
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and _callee(node).endswith(_EXC_SUFFIXES):
                for arg in node.args:
                    text = _text(arg)
                    if text is not None and FLAG.search(COMMAND_HINT.sub("", text)):
                        found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {text[:100]!r}")
    assert not found, "library errors naming CLI flags (name the field instead):\n" + "\n".join(found)


def test_the_scan_sees_flags_in_messages():
    """The checker itself: f-string parts, concatenations, and the command-hint exemption."""
    def flagged(src):
        call = ast.parse(src).body[0].value
        return bool(FLAG.search(COMMAND_HINT.sub("", _text(call.args[0]))))
    assert flagged('ConfigError(f"--{name} must be positive")') and flagged('ValueError("a " + "--lr")')
    assert not flagged('ConfigError(f"lr must be positive, got {x}")')
    assert not flagged('RunDirError(f"no file: run `edgesmith export {r} --target cortex-m` first")')


def test_an_error_with_a_field_names_it_and_the_table_knows_it():
    """``field="TrainConfig.learning_rate"`` on a message that says ``learning_rate``: else the CLI,
    which rewrites the names in the message, would show no flag."""
    wrong = []
    for path, tree in _TREES:
        for node in ast.walk(tree):
            field = next((k.value for k in getattr(node, "keywords", ()) if k.arg == "field"), None)
            if not (isinstance(node, ast.Call) and isinstance(field, ast.Constant) and node.args):
                continue
            owner, name = field.value.split(".", 1)
            text = _text(node.args[0]) or ""
            if field.value not in FIELD_FLAGS or not re.search(rf"(?<![\w-])(?:{owner}\.)?{name}(?![\w-])", text):
                wrong.append(f"{path.relative_to(ROOT)}:{node.lineno}: {field.value}: {text[:80]!r}")
    assert not wrong, "\n".join(wrong)


def _owners() -> dict[str, tuple[str, set[str]]]:
    """Library classes and functions by name -> (kind, field or parameter names)."""
    found: dict[str, tuple[str, set[str]]] = {}
    for _, tree in _TREES:
        for node in tree.body:
            if isinstance(node, ast.ClassDef):
                names = {s.target.id for s in node.body if isinstance(s, ast.AnnAssign)
                         and isinstance(s.target, ast.Name)}
                found.setdefault(node.name, ("class", names))
            elif isinstance(node, ast.FunctionDef):
                a = node.args
                found.setdefault(node.name, ("def", {x.arg for x in a.posonlyargs + a.args + a.kwonlyargs}))
    return found


def _commands() -> dict[str, dict[str, set[str]]]:
    """Command name -> {parameter name -> its option strings}, from the real Typer app."""
    group = typer.main.get_command(app)
    return {name: {p.name: set(p.opts) for p in cmd.params if p.param_type_name == "option"}
            for name, cmd in group.commands.items() if hasattr(cmd, "params")}


def test_every_flag_in_the_table_is_an_option_of_its_owners_commands_and_names_a_real_field():
    commands, owners = _commands(), _owners()
    wrong = []
    for key, flag in FIELD_FLAGS.items():
        owner, name = key.split(".", 1)
        if owner not in OWNERS:
            wrong.append(f"{key}: owner {owner} not in OWNERS")
            continue
        if owner not in owners or name not in owners[owner][1]:
            wrong.append(f"{key}: {owner} has no field or parameter {name!r}")
        if not any(flag in opts for command in OWNERS[owner] for opts in commands[command].values()):
            wrong.append(f"{key}: none of {', '.join(OWNERS[owner])} has {flag}")
    assert not wrong, "\n".join(wrong)


def test_every_config_field_that_has_a_flag_is_in_the_table():
    """A field is taken to have a flag when one of its commands has an option of its name or spelling."""
    commands, owners = _commands(), _owners()
    missing = []
    for owner, cmds in OWNERS.items():
        kind, names = owners[owner]
        if kind != "class":
            continue
        for name in names:
            spelled = "--" + name.replace("_", "-")
            if any(name in commands[c] or any(spelled in o for o in commands[c].values()) for c in cmds) \
                    and f"{owner}.{name}" not in FIELD_FLAGS:
                missing.append(f"{owner}.{name}")
    assert not missing, f"fields with a flag missing from cli/_flags.py FIELD_FLAGS: {missing}"


def test_cli_message_turns_the_owners_names_into_flags_and_leaves_the_rest():
    assert cli_message("learning_rate must be in (0, 10), got 20.0", "TrainConfig.learning_rate") == \
        "--lr must be in (0, 10), got 20.0"
    assert cli_message("low_res_epochs must be in [0, epochs), got 3", "TrainConfig.low_res_epochs") == \
        "--low-res-epochs must be in [0, --epochs), got 3"
    assert cli_message("ExportConfig.prune (sparsity) must be in (0, 1), got 1.0", "ExportConfig.prune") == \
        "--prune (sparsity) must be in (0, 1), got 1.0"
    assert cli_message("run directory /x/out already exists (choose another out or pass overwrite=True)",
                       "train.out") == "run directory /x/out already exists (choose another --out or pass --overwrite)"
    assert cli_message("epochs must be >= 1, got 0", None) == "epochs must be >= 1, got 0"
    assert cli_message("runs must be >= 10", "BenchConfig.runs") == "--runs must be >= 10"


def test_library_errors_carry_the_field_and_the_cli_prints_the_flag():
    from edgesmith.core.data import DataSpec
    from edgesmith.core.errors import ConfigError
    from edgesmith.export.config import ExportConfig
    from edgesmith.train.config import TrainConfig

    with pytest.raises(ConfigError, match=r"^learning_rate must be in \(0, 10\), got 20.0$") as e:
        TrainConfig(DataSpec("synthetic"), learning_rate=20.0)
    assert e.value.field == "TrainConfig.learning_rate"
    with pytest.raises(ConfigError, match=r"^ExportConfig.prune \(sparsity\) must be in \(0, 1\), got 1.0$") as e:
        ExportConfig(prune=1.0)
    assert e.value.field == "ExportConfig.prune"

    runner = CliRunner()
    for args, line in [(["train", "--data", "synthetic", "--lr", "20"], "error: --lr must be in (0, 10), got 20.0"),
                       (["export", "/nonexistent", "--prune", "1.0"],
                        "error: --prune (sparsity) must be in (0, 1), got 1.0"),
                       (["bench", "/nonexistent", "--runs", "5"],
                        "error: --runs must be >= 10 for percentiles to mean anything, got 5")]:
        r = runner.invoke(app, args)
        assert r.exit_code == 1 and r.output.strip().splitlines() == [line], r.output
