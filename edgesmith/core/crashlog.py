"""Where an unexpected exception's traceback goes: a log file the one-line CLI message names.

A bug (anything that is not an :class:`~edgesmith.core.errors.EdgesmithError`) must not print
a 40-line traceback at a user, nor lose it. :func:`write_crash_log` writes it, with the
command line and versions, to ``RUN/logs/<command>-<time>.log`` when the command names an
existing run directory, else to ``~/.cache/edgesmith/logs/`` (``$EDGESMITH_CACHE/logs``),
else to the system's temporary directory. The log directory is never what makes a run
directory exist. ``EDGESMITH_DEBUG=1`` (or the CLI's ``--debug``, :func:`set_debug`) also
prints the traceback.
"""
from __future__ import annotations

import datetime as _dt
import os
import platform
import sys
import tempfile
import traceback
from pathlib import Path

from .rundir import RunDir

DEBUG_ENV = "EDGESMITH_DEBUG"

_debug: bool | None = None  # the CLI's --debug; None = from the environment


def set_debug(on: bool | None) -> None:
    """``True``: print tracebacks of unexpected errors; ``None``: follow ``EDGESMITH_DEBUG``."""
    global _debug
    _debug = on


def is_debug() -> bool:
    """Whether an unexpected error prints its traceback (``--debug`` or ``EDGESMITH_DEBUG=1``)."""
    if _debug is not None:
        return _debug
    return os.environ.get(DEBUG_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def default_log_dir() -> Path:
    """``$EDGESMITH_CACHE/logs`` (default ``~/.cache/edgesmith/logs``): logs of commands with no run directory."""
    return Path(os.environ.get("EDGESMITH_CACHE", Path.home() / ".cache" / "edgesmith")) / "logs"


def summary(exc: BaseException, limit: int = 300) -> str:
    """``"ValueError: first line of the message"``, at most ``limit`` characters, one line."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
    return text if len(text) <= limit else text[:limit - 3] + "..."


def write_crash_log(command: str, exc: BaseException, run_dir: str | os.PathLike | None = None,
                    argv: list[str] | None = None) -> Path | None:
    """Write ``exc``'s full traceback, the command line and versions to a new log file.

    Args:
        command: the command's name, e.g. ``"export"`` or ``"data preview"`` (in the file name).
        exc: the exception, with its traceback.
        run_dir: the run directory the command worked on; used only if it exists already.
        argv: the command line (default ``sys.argv``).

    Returns:
        The log's path: ``RUN/logs/<command>-<YYYYmmdd-HHMMSS>.log``, or the same name in
        :func:`default_log_dir` or the temporary directory when the run's cannot be written;
        None when no directory could be written (never raises).
    """
    text = "".join((
        f"edgesmith {_version()} {command} failed at {_dt.datetime.now().astimezone().isoformat(timespec='seconds')}\n",
        f"command line: {' '.join(argv if argv is not None else sys.argv)}\n",
        f"python {platform.python_version()} on {platform.platform()}, cwd {os.getcwd()}\n\n",
        *traceback.format_exception(type(exc), exc, exc.__traceback__),
    ))
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    name = command.replace(" ", "-")
    places = [RunDir(run_dir).logs] if run_dir is not None and Path(run_dir).is_dir() else []
    for directory in (*places, default_log_dir(), Path(tempfile.gettempdir()) / "edgesmith-logs"):
        try:
            directory.mkdir(parents=True, exist_ok=True)
            for n in range(1, 100):  # a new file, never another crash's
                path = directory / (f"{name}-{stamp}.log" if n == 1 else f"{name}-{stamp}-{n}.log")
                try:
                    with open(path, "x", encoding="utf-8") as f:
                        f.write(text)
                    return path
                except FileExistsError:
                    continue
        except OSError:
            continue
    return None


def _version() -> str:
    try:
        from edgesmith import __version__
        return __version__
    except ImportError:  # pragma: no cover
        return "?"
