"""One writer per run directory: :func:`run_lock`, held by every operation that writes a run.

``export``, ``bench``, ``train --resume`` / ``--overwrite``, ``import --overwrite`` and every
:func:`~edgesmith.core.stages.record_stage` take the run's lock before they write, so two
commands on one run never interleave their writes and one's manifest record never undoes the
other's. A second writer says who holds the lock and waits; after ``wait_s`` it gives up with a
one-line :class:`RunLockedError`. Readers (``predict``, ``doctor``, reading a report) take no
lock: every write is an atomic rename, so they never see a half-written file.

The lock is an ``fcntl.flock`` on ``RUN/.edgesmith.lock`` (:class:`filelock.FileLock`): the
operating system releases it when its process ends, however it ends, so a killed command never
wedges the run. ``RUN/.edgesmith.lock.json`` names the holder (pid, command, since when) for the
waiting message only; a holder that was killed leaves it behind, and the next writer overwrites it.

The lock is re-entrant within a thread: ``pipeline`` or a Python caller may hold it around
several stages (``with run_lock(run): export(run); bench(run)``) and the stages' own locks
then pass through, with the caller's ``wait_s``.

Example::

    with run_lock("runs/resnet8", what="export", wait_s=60):
        ...  # write into runs/resnet8
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import functools
import inspect
import json
import math
import os
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Iterator

from .errors import RunDirError, RunLockedError
from .rundir import RunDir, load_manifest

LOCK_NAME = ".edgesmith.lock"
INFO_NAME = ".edgesmith.lock.json"
DEFAULT_WAIT_S = 900.0  # an export with fine-tuning or a full bench can hold a run for minutes
WAIT_ENV = "EDGESMITH_LOCK_TIMEOUT"  # seconds a writer waits; 0: refuse at once; "inf" or < 0: forever

# (resolved run path, thread id) -> [the held lock, depth]: re-entry within a thread
_HELD: dict[tuple[str, int], list] = {}

__all__ = ["run_lock", "locks_run", "holder", "default_wait_s", "RunLockedError", "LOCK_NAME", "INFO_NAME", "DEFAULT_WAIT_S"]


def default_wait_s() -> float:
    """Seconds a writer waits for a run's lock: ``$EDGESMITH_LOCK_TIMEOUT``, else :data:`DEFAULT_WAIT_S`.

    Raises:
        RunDirError: ``$EDGESMITH_LOCK_TIMEOUT`` is not a number.
    """
    text = os.environ.get(WAIT_ENV, "").strip()
    if not text:
        return DEFAULT_WAIT_S
    try:
        value = float(text)
    except ValueError:
        raise RunDirError(f"{WAIT_ENV}={text!r} is not a number of seconds (0: do not wait; inf: wait forever)") from None
    return math.inf if value < 0 else value


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _command() -> str:
    """What this process is, for another writer's message: ``edgesmith export`` or ``python script.py``."""
    argv = sys.argv or [""]
    path = Path(argv[0])
    if path.name == "edgesmith" or (path.name == "__main__.py" and path.parent.name == "edgesmith"):
        sub = next((a for a in argv[1:] if not a.startswith("-")), "")
        return f"edgesmith {sub}".strip()
    return f"python {path.name}" if path.name not in ("", "-c") else "python"


def holder(run_dir: str | os.PathLike) -> dict | None:
    """The recorded holder of a run's lock (``pid``, ``host``, ``command``, ``what``, ``since``),
    or None when none is recorded or the recorded process is gone (a killed holder's leftover).

    A record is advisory: the lock itself is the ``flock``, which this function does not test.
    """
    try:
        info = json.loads((Path(run_dir) / INFO_NAME).read_text(encoding="utf-8"))
        pid = int(info["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if info.get("host") == socket.gethostname():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass  # alive, another user's
    return info


def _describe(root: Path) -> str:
    info = holder(root)
    if info is None:
        return "held by another process"
    what = f" ({info['what']})" if info.get("what") and info["what"] not in str(info.get("command")) else ""
    since = ""
    try:
        t = _dt.datetime.fromisoformat(info["since"]).astimezone()
        since = f", since {t:%H:%M:%S}" if t.date() == _dt.datetime.now().astimezone().date() else f", since {t:%Y-%m-%d %H:%M:%S}"
    except (KeyError, TypeError, ValueError):
        pass
    return f"held by pid {info['pid']}, {info.get('command') or 'another process'}{what}{since}"


def _write_info(root: Path, what: str) -> None:
    info = {"pid": os.getpid(), "host": socket.gethostname(), "command": _command(), "what": what,
            "since": _dt.datetime.now().astimezone().replace(microsecond=0).isoformat()}
    tmp = root / f"{INFO_NAME}.{os.getpid()}.tmp"
    try:
        tmp.write_text(json.dumps(info) + "\n", encoding="utf-8")
        os.replace(tmp, root / INFO_NAME)
    except OSError:  # the message is a courtesy; the lock is what counts
        with contextlib.suppress(OSError):
            tmp.unlink()


def _remove_info(root: Path) -> None:
    """Remove our holder record (not another's: a run replaced meanwhile has its own)."""
    try:
        if json.loads((root / INFO_NAME).read_text(encoding="utf-8")).get("pid") == os.getpid():
            (root / INFO_NAME).unlink()
    except (OSError, ValueError, AttributeError):
        pass


def _acquire(root: Path, what: str, wait_s: float, on_wait: Callable[[str], None]):
    from filelock import FileLock, Timeout

    deadline = time.monotonic() + wait_s
    announced = False
    while True:
        try:
            identity = os.stat(root).st_ino
        except FileNotFoundError:
            raise RunDirError(f"run directory {root} does not exist") from None
        lock = FileLock(str(root / LOCK_NAME))
        try:
            lock.acquire(timeout=0)
        except Timeout:
            if not announced:
                on_wait(f"waiting for the lock on {root} ({_describe(root)})...")
                announced = True
            try:
                # finite slices: a waiter re-checks the deadline and never blocks forever in one call
                lock.acquire(timeout=max(0.0, min(deadline - time.monotonic(), 60.0)), poll_interval=0.1)
            except Timeout:
                if time.monotonic() < deadline:
                    continue
                limit = "at once" if wait_s == 0 else f"after {wait_s:g} s"
                raise RunLockedError(f"{root} is in use ({_describe(root)}); gave up {limit} "
                                     f"(wait longer with {WAIT_ENV}=SECONDS, or run again when it is done)") from None
        except OSError as e:  # a read-only run: no writer could write it anyway
            raise RunDirError(f"cannot lock {root} for writing: {e.strerror or e}") from None
        # train / import --overwrite replace the whole directory: a lock on the old one guards nothing
        try:
            same = os.stat(root).st_ino == identity and os.path.exists(root / LOCK_NAME)
        except FileNotFoundError:
            same = False
        if same:
            return lock
        lock.release()


@contextlib.contextmanager
def run_lock(run_dir: str | os.PathLike, *, what: str = "write", wait_s: float | None = None,
             on_wait: Callable[[str], None] | None = None, missing_ok: bool = False) -> Iterator[Path]:
    """Hold the run's writer lock for the body; re-entrant within a thread.

    Side effects: creates ``RUN/.edgesmith.lock`` (kept: waiters share its inode) and writes
    ``RUN/.edgesmith.lock.json`` (who holds it, removed on release).

    Example::

        with run_lock(run.root, what="bench", on_wait=console.print):
            write_reports(...)

    Args:
        run_dir: an existing run directory (a symlink locks its target).
        what: the operation, for another writer's message (``export``, ``bench``, ...).
        wait_s: seconds to wait for another holder; 0: refuse at once; ``math.inf``: forever;
            None: :func:`default_wait_s`. Ignored on re-entry.
        on_wait: called once with the one-line waiting message (default: print to stderr).
        missing_ok: when ``run_dir`` does not exist, run the body without a lock (``train``
            and ``import`` lock a run they are about to replace, if there is one).

    Yields:
        The resolved run directory.

    Raises:
        RunDirError: ``run_dir`` does not exist.
        RunLockedError: another process held the lock for the whole ``wait_s``.
    """
    root = Path(run_dir).resolve()
    key = (str(root), threading.get_ident())
    if key in _HELD:
        _HELD[key][1] += 1
        try:
            yield root
        finally:
            _HELD[key][1] -= 1
        return
    if not root.is_dir():
        if missing_ok and not root.exists():
            yield root
            return
        raise RunDirError(f"run directory {run_dir} " + ("is not a directory" if root.exists() else "does not exist"))
    lock = _acquire(root, what, default_wait_s() if wait_s is None else wait_s, on_wait or _say)
    _HELD[key] = [lock, 1]
    try:
        _write_info(root, what)
        yield root
    finally:
        del _HELD[key]
        _remove_info(root)
        lock.release()


def locks_run(what: str) -> Callable[[Callable], Callable]:
    """Decorator: the function, whose first argument is a run directory, runs under its :func:`run_lock`.

    A folder that is not a run (no readable ``manifest.json``) raises :class:`RunDirError` first.

    Example::

        @locks_run("export")
        def export(run_dir, config): ...
    """
    def decorate(fn: Callable) -> Callable:
        first = next(iter(inspect.signature(fn).parameters))

        @functools.wraps(fn)
        def locked(*args, **kwargs):
            run_dir = args[0] if args else kwargs[first]
            load_manifest(RunDir(run_dir))  # not a run: its own error, and no lock file left in the folder
            with run_lock(run_dir, what=what):
                return fn(*args, **kwargs)
        return locked
    return decorate
