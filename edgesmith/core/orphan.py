"""End a worker process when the process that started it dies.

A worker of a process pool (``edgesmith tune --workers N``) outlives a parent killed with SIGKILL
or by the OOM killer: nothing tells it, and it goes on training trials nobody will read. A daemon
thread here watches the parent's pid; when the worker is re-parented (``os.getppid()`` changes),
the parent is gone and the worker exits at once. Work it leaves unfinished must be recoverable by
other means (a tune trial's heartbeat stops, so the next session fails and retries it).

POSIX only; on Windows :func:`exit_with_parent` does nothing.
"""
from __future__ import annotations

import os
import sys
import threading
import time

EXIT_CODE = 70  # the worker's exit status when its parent died (EX_SOFTWARE)


def exit_with_parent(poll_s: float = 1.0, *, exit_code: int = EXIT_CODE) -> threading.Thread | None:
    """Start a daemon thread that ends this process when its parent dies.

    Args:
        poll_s: how often the parent's pid is checked, s.
        exit_code: this process's exit status then.

    Returns:
        The watching thread, or ``None`` where it cannot watch (Windows, or the parent already gone).
    """
    if sys.platform == "win32":
        return None
    parent = os.getppid()
    if parent <= 1:
        return None

    def watch() -> None:
        while True:
            time.sleep(poll_s)
            if os.getppid() != parent:
                sys.stderr.write(f"edgesmith: parent process {parent} is gone; this worker ({os.getpid()}) stops\n")
                sys.stderr.flush()
                os._exit(exit_code)

    thread = threading.Thread(target=watch, name="exit-with-parent", daemon=True)
    thread.start()
    return thread
