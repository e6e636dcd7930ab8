"""A real OpenSSH server on 127.0.0.1 for the tests that bench over SSH ("devices").

The server (Debian's ``openssh-server``; ``.ci/run`` installs it) runs from a throw-away
folder: its own host key, sshd_config (no PAM, no passwords, StrictModes off), an
authorized key, and a client ssh_config (``-F``, via ``EDGESMITH_SSH_OPTIONS``) that checks
the host key against a known_hosts file. The fixtures ``sshd`` and ``ssh_env`` that start it are
in ``conftest.py``.
"""
from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from edgesmith.benchmarks.remote import WORKER_MARK

SSHD = Path("/usr/sbin/sshd")
needs_sshd = pytest.mark.skipif(
    not SSHD.exists() or not shutil.which("ssh") or not shutil.which("scp"),
    reason="needs OpenSSH: /usr/sbin/sshd, ssh and scp (apt-get install -y openssh-server openssh-client)")
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _keygen(path: Path) -> str:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return path.with_suffix(".pub").read_text().strip()


class Sshd:
    """A running sshd on 127.0.0.1:``port`` and the client options that log into it."""

    def __init__(self, root: Path):
        self.root, self.port, self.user = root, free_port(), getpass.getuser()
        host_pub = _keygen(root / "host_key")
        (root / "authorized_keys").write_text(_keygen(root / "id_ed25519") + "\n")
        (root / "sshd_config").write_text(
            f"Port {self.port}\nListenAddress 127.0.0.1\nHostKey {root}/host_key\nPidFile {root}/sshd.pid\n"
            f"AuthorizedKeysFile {root}/authorized_keys\nUsePAM no\nStrictModes no\nPasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\nSubsystem sftp internal-sftp\n"
            "LogLevel ERROR\n")
        (root / "known_hosts").write_text(f"[127.0.0.1]:{self.port} {' '.join(host_pub.split()[:2])}\n")
        (root / "ssh_config").write_text(
            f"Host 127.0.0.1\n  IdentityFile {root}/id_ed25519\n  IdentitiesOnly yes\n"
            f"  UserKnownHostsFile {root}/known_hosts\n  StrictHostKeyChecking yes\n  LogLevel ERROR\n")
        if os.geteuid() == 0:
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege-separation folder
        self.proc = subprocess.Popen([str(SSHD), "-D", "-e", "-f", str(root / "sshd_config")],
                                     stderr=open(root / "sshd.log", "w"))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"sshd did not start: {(root / 'sshd.log').read_text()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        self.options = f"-F {root}/ssh_config"

    def url(self, python: str = sys.executable, cache: Path | None = None, **extra) -> str:
        query = {"python": python, **({"cache": str(cache)} if cache else {}), **extra}
        return f"ssh://{self.user}@127.0.0.1:{self.port}?" + "&".join(f"{k}={v}" for k, v in query.items())

    def children(self) -> list[int]:
        """The per-connection sshd processes (one per open SSH session)."""
        kids = []
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                stat = Path(f"/proc/{pid}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == self.proc.pid:
                kids.append(int(pid))
        return kids


def workers_running(marker: str) -> list[str]:
    """Command lines of live bench workers whose job lies under ``marker`` (a device's cache folder)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if WORKER_MARK in cmd and marker in cmd:
            found.append(cmd)
    return found


def assert_nothing_left(cache: Path) -> None:
    deadline = time.monotonic() + 10
    while workers_running(str(cache)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert workers_running(str(cache)) == []
    assert list((cache / "jobs").iterdir()) == []  # the job folder (job and pid files) is gone
