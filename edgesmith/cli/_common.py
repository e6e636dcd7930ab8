"""What every command shares: consoles, the error boundary, option parsing helpers."""
from __future__ import annotations

import contextlib
import functools
import sys
import traceback
from enum import Enum
from pathlib import Path
from typing import Callable, Iterator, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from edgesmith.core.crashlog import is_debug, summary, write_crash_log
from edgesmith.core.errors import ConfigError, EdgesmithError
from edgesmith.runtime.base import DEVICE_KINDS

from ._flags import cli_message

# A pipe or CI log gets a wide console so tables are not truncated to 80 columns.
out = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True)


def choice_enum(name: str, values) -> type[Enum]:
    """A str Enum for Typer whose values are the library's own choices (``rotate-shift`` -> member
    ``rotate_shift``), so the CLI's choices are the library's and cannot drift from them."""
    return Enum(name, {str(v).replace("-", "_"): str(v) for v in values}, type=str)


Device = choice_enum("Device", DEVICE_KINDS)


F = TypeVar("F", bound=Callable)
# Where the running command's crash log goes (reset by `guarded`, set by `note_run`).
_running: dict = {"run": None}
# Typer's own signals (exit codes, usage errors) pass every boundary untouched, and so does a closed
# pipe (`edgesmith predict ... | head`), which Typer ends quietly.
_PASS = (typer.Exit, typer.Abort, typer.TyperException, BrokenPipeError)
# Parameters naming the run directory a command works on, most specific first.
_RUN_PARAMS = ("run_dir", "out_dir", "resume")


def error_line(message: str) -> None:
    """Print ``error: message`` on stderr, one line (the only way the CLI reports a failure)."""
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)


def note_run(path) -> None:
    """Name the run directory the running command works on, once it is known (e.g. after an
    import made it), so that a crash log goes to ``RUN/logs/``."""
    _running["run"] = path


@contextlib.contextmanager
def errors() -> Iterator[None]:
    """Turn edgesmith's own errors into ``error: ...`` on stderr and exit code 1, the names of
    config fields in the message shown as the flags that set them (:mod:`._flags`).

    Anything else is a bug: inside a :func:`guarded` command it goes to the command's crash
    log (one ``error: internal error in ...`` line); elsewhere it keeps its traceback.
    """
    try:
        yield
    except EdgesmithError as e:
        error_line(cli_message(str(e), getattr(e, "field", None)))  # the library's names -> our flags
        raise typer.Exit(1) from None


def guarded(command: str) -> Callable[[F], F]:
    """Decorate a command function so that nothing it raises reaches the user as a traceback.

    :class:`EdgesmithError` -> ``error: <message>``, exit 1; Ctrl-C -> ``error: interrupted``,
    exit 130; any other exception -> ``error: internal error in <command>: <Type>: <message>;
    details in <log>``, exit 1, with the traceback in the log (``RUN/logs/<command>-<time>.log``
    when the command names an existing run directory, else ``~/.cache/edgesmith/logs/``, see
    :mod:`edgesmith.core.crashlog`); ``--debug`` / ``EDGESMITH_DEBUG=1`` also prints it.
    """
    def wrap(fn: F) -> F:
        @functools.wraps(fn)
        def run(*args, **kwargs):
            _running["run"] = None
            try:
                with errors():
                    return fn(*args, **kwargs)
            except _PASS:
                raise
            except KeyboardInterrupt:
                error_line("interrupted")
                raise typer.Exit(130) from None
            except Exception as e:  # the one place a bug is caught: logged, and said in one line
                run_dir = _running["run"] or next((kwargs[k] for k in _RUN_PARAMS
                                                   if isinstance(kwargs.get(k), (str, Path)) and Path(kwargs[k]).is_dir()),
                                                  None)
                log = write_crash_log(command, e, run_dir)
                if is_debug():
                    traceback.print_exception(type(e), e, e.__traceback__, file=sys.stderr)
                where = f"details in {log}" if log else "run with --debug for the details"
                error_line(f"internal error in {command}: {summary(e)}; {where}")
                raise typer.Exit(1) from None
        run._guarded = True
        return run  # type: ignore[return-value]
    return wrap


def csv_list(text: str) -> tuple[str, ...]:
    """``"a, b,,c"`` -> ``("a", "b", "c")``."""
    return tuple(t.strip() for t in text.split(",") if t.strip())


def repeated_csv(values: list[str] | None, default: tuple[str, ...]) -> tuple[str, ...]:
    """A repeatable comma-list option: ``--target a,b --target c`` -> ``("a", "b", "c")``; none given: ``default``."""
    return tuple(t for v in values or () for t in csv_list(v)) or default


def int_list(text: str, option: str) -> tuple[int, ...]:
    """Parse ``"1,2,4"``; raises ConfigError naming ``option`` on anything else."""
    try:
        return tuple(int(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise ConfigError(f"{option} takes comma-separated integers, got {text!r}") from None
