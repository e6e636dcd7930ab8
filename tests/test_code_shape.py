"""Functions a newcomer can read: none in the library over 60 lines of code (docstring excluded)
or with more than 6 positional parameters (the rest keyword-only, or a small dataclass).

Read with ``ast`` only (nothing is imported). The allow-list below can only shrink: an entry
that no longer breaks the rule fails the test too, so it is taken out when its function is fixed.
"""
from __future__ import annotations

import ast
import functools
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("edgesmith", "train", "importer", "export", "runtime", "benchmarks", "optimize")
MAX_LINES = 60
MAX_POSITIONAL = 6

# "path:function" -> why it is still allowed (one line each). Fix the function, then drop its entry.
ALLOWED: dict[str, str] = {}


def _is_typer_command(path: Path, fn: ast.FunctionDef) -> bool:
    """A Typer command takes each of its options as a parameter: that is the framework, not a smell."""
    return path.parts[:2] == ("edgesmith", "cli") and fn.name.endswith("_cmd")


def _code_lines(fn: ast.FunctionDef) -> int:
    body = fn.body
    if isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
        body = body[1:]  # the docstring
    return body[-1].end_lineno - body[0].lineno + 1 if body else 0


def _positional(fn: ast.FunctionDef) -> int:
    names = [a.arg for a in (*fn.args.posonlyargs, *fn.args.args)]
    return len([n for n in names if n not in ("self", "cls")])


@functools.cache  # one parse of the tree for both tests
def _offences() -> dict[str, str]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = path.relative_to(ROOT)
            for node in ast.walk(ast.parse(path.read_text(), str(rel))):
                if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    continue
                lines, positional = _code_lines(node), _positional(node)
                why = [f"{lines} lines"] * (lines > MAX_LINES) + [
                    f"{positional} positional parameters"] * (positional > MAX_POSITIONAL and not _is_typer_command(rel, node))
                if why:
                    found[f"{rel.as_posix()}:{node.name}"] = f"line {node.lineno}: " + ", ".join(why)
    return found


def test_no_function_is_too_long_or_takes_too_many_positional_parameters():
    offences = _offences()
    new = {k: v for k, v in offences.items() if k not in ALLOWED}
    assert not new, ("split these functions, or make their trailing parameters keyword-only (*, ...):\n"
                     + "\n".join(f"  {k} ({v})" for k, v in sorted(new.items())))


def test_the_allow_list_only_shrinks():
    fixed = sorted(set(ALLOWED) - set(_offences()))
    assert not fixed, f"these now keep the rule: take them out of ALLOWED: {fixed}"


def test_the_rule_sees_a_long_function_and_a_wide_one(tmp_path):
    source = "def wide(a, b, c, d, e, f, g, *, h=1):\n    return a\n\n\ndef long():\n    '''doc'''\n" + \
             "    x = 1\n" * 61 + "\n\ndef fine(self, a, b, c, d, e, f):\n    '''x'''\n    return 1\n"
    fns = {n.name: n for n in ast.walk(ast.parse(source)) if isinstance(n, ast.FunctionDef)}
    assert _positional(fns["wide"]) == 7 and _code_lines(fns["wide"]) == 1
    assert _code_lines(fns["long"]) == 61 and _positional(fns["fine"]) == 6
