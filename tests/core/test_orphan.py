"""A pool worker ends when the process that started it is SIGKILLed (edgesmith tune --workers)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX parent pids")

PARENT = textwrap.dedent("""
    import multiprocessing, sys, time
    from pathlib import Path

    def child(path, watch, parent):
        if watch:
            from edgesmith.core.orphan import exit_with_parent
            exit_with_parent(parent, poll_s=0.1)
        import os
        Path(path).write_text(str(os.getpid()))
        time.sleep(60)

    if __name__ == "__main__":
        ctx = multiprocessing.get_context("spawn")
        import os
        p = ctx.Process(target=child, args=(sys.argv[1], sys.argv[2] == "watch", os.getpid()))
        p.start()
        time.sleep(60)
""")


def _alive(pid: int) -> bool:
    """Running or sleeping; a zombie waiting for its new parent to reap it counts as gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def _orphan(tmp_path: Path, mode: str) -> int:
    """Start a parent with one spawned child, SIGKILL the parent; return the child's pid."""
    script, pid_file = tmp_path / "parent.py", tmp_path / f"child-{mode}.pid"
    script.write_text(PARENT)
    parent = subprocess.Popen([sys.executable, str(script), str(pid_file), mode])
    for _ in range(300):
        if pid_file.is_file() and pid_file.read_text():
            break
        time.sleep(0.05)
    child = int(pid_file.read_text())
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    return child


def test_the_worker_exits_when_its_parent_is_killed(tmp_path):
    child = _orphan(tmp_path, "watch")
    deadline = time.monotonic() + 10
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child)


def test_without_the_watch_the_orphan_lives_on(tmp_path):
    """The control: what the watch prevents does happen without it."""
    child = _orphan(tmp_path, "plain")
    try:
        time.sleep(1.0)
        assert _alive(child)
    finally:
        os.kill(child, signal.SIGKILL)
