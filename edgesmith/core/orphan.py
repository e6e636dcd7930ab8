"""End a worker process when the process that started it dies.

A worker of a process pool (``edgesmith tune --workers N``) outlives a parent killed with SIGKILL
or by the OOM killer: nothing tells it, and it goes on training trials nobody will read. A daemon
thread here watches the parent (by pid, and on Linux by that pid's start time, so a reused pid is
not mistaken for it); when the parent is gone, or a zombie, the worker exits at once. Work it leaves
unfinished must be recoverable by other means (a tune trial's heartbeat stops, so the next session
fails and retries it).

POSIX only; on Windows :func:`exit_with_parent` does nothing.
"""
from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

EXIT_CODE = 70  # the worker's exit status when its parent died (EX_SOFTWARE)


def _stat(pid: int) -> tuple[str, str] | None:
    """``(state, start time)`` of ``pid`` from ``/proc/PID/stat``; ``None`` when it does not exist."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None
    return fields[0], fields[19]  # state; starttime (field 22 of proc(5))


def _alive(pid: int, started: str | None) -> bool:
    if started is None:  # no /proc: signal 0 says whether the pid exists
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    stat = _stat(pid)
    return stat is not None and stat[0] != "Z" and stat[1] == started


def exit_with_parent(parent: int | None = None, *, poll_s: float = 1.0,
                     exit_code: int = EXIT_CODE) -> threading.Thread | None:
    """Start a daemon thread that ends this process when ``parent`` dies.

    Args:
        parent: the pid to watch; default this process's parent (``os.getppid()``). A pool's
            parent passes its own pid, since a wrapper (a debugger, an emulator) may sit between.
        poll_s: how often it is checked, s.
        exit_code: this process's exit status then.

    Returns:
        The watching thread, or ``None`` where it cannot watch (Windows, or no parent left).
    """
    if sys.platform == "win32":
        return None
    parent = os.getppid() if parent is None else parent
    if parent <= 1:
        return None
    stat = _stat(parent) if Path("/proc/self/stat").exists() else None
    started = stat[1] if stat else None
    if stat is not None and not _alive(parent, started):
        started = None

    def watch() -> None:
        while True:
            time.sleep(poll_s)
            if not _alive(parent, started):
                sys.stderr.write(f"edgesmith: parent process {parent} is gone; this worker ({os.getpid()}) stops\n")
                sys.stderr.flush()
                os._exit(exit_code)

    thread = threading.Thread(target=watch, name="exit-with-parent", daemon=True)
    thread.start()
    return thread
