"""A real, throwaway PostgreSQL server on 127.0.0.1 for the tests of shared tune studies.

``initdb`` makes a cluster in a temporary folder (password authentication, scram-sha-256, for
the user ``postgres``), ``pg_ctl`` starts it on a free loopback port with its socket in that
folder, and the fixture stops it (``-m immediate``) and deletes the folder. PostgreSQL refuses
to run as root: as root, the cluster belongs to ``nobody`` and the server binaries run through
``runuser``. The binaries come from Debian's ``postgresql`` package (``.ci/run`` installs it);
without them the tests skip, saying why.

Usage::

    from pg_server import pg_server  # noqa: F401  (the module-scoped fixture)

    def test_x(pg_server):
        url = pg_server.url  # postgresql+psycopg://postgres:<password>@127.0.0.1:<port>/postgres
"""
from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

PASSWORD = "edgesmith-test"


def find_bin() -> Path | None:
    """The folder of ``initdb`` and ``pg_ctl`` (Debian keeps them out of PATH), or None."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl", path=str(Path(found).resolve().parent)):
        return Path(found).resolve().parent
    for folder in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if (Path(folder) / "initdb").exists() and (Path(folder) / "pg_ctl").exists():
            return Path(folder)
    return None


def skip_reason() -> str | None:
    """Why no server can be started here, or None."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "needs psycopg (pip install 'psycopg[binary]>=3.1', part of edgesmith[train])"
    if find_bin() is None:
        return "needs the PostgreSQL server binaries initdb/pg_ctl (apt-get install -y postgresql)"
    if os.geteuid() == 0 and not shutil.which("runuser"):
        return "PostgreSQL refuses to run as root and runuser (to run it as nobody) is missing"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PgServer:
    """A running PostgreSQL cluster in ``root`` on 127.0.0.1:``port``."""

    def __init__(self):
        self.bin = find_bin()
        self.root = Path(tempfile.mkdtemp(prefix="edgesmith-pg-"))
        self.data, self.port = self.root / "data", _free_port()
        self.as_user = ["runuser", "-u", "nobody", "--"] if os.geteuid() == 0 else []
        pwfile = self.root / "pw"
        pwfile.write_text(PASSWORD + "\n")
        if self.as_user:
            os.chown(self.root, 65534, 65534)
            os.chown(pwfile, 65534, 65534)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "scram-sha-256", f"--pwfile={pwfile}",
                  "--no-sync", "-E", "UTF8")
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"), "-w", "-t", "30", "-o",
                  f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root} -c fsync=off", "start")

    def _run(self, tool: str, *args: str) -> None:
        r = subprocess.run([*self.as_user, str(self.bin / tool), *args], capture_output=True, text=True,
                           cwd=self.root)
        if r.returncode:
            log = self.root / "server.log"
            raise RuntimeError(f"{tool} failed: {r.stderr.strip() or r.stdout.strip()}"
                               + (f"\n{log.read_text()}" if log.exists() else ""))

    def url(self, password: str = PASSWORD, port: int | None = None) -> str:
        """The SQLAlchemy URL of the ``postgres`` database (``password``/``port`` to spoil it)."""
        return f"postgresql+psycopg://postgres:{password}@127.0.0.1:{port or self.port}/postgres"

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="module")
def pg_server():
    """A throwaway PostgreSQL server (:class:`PgServer`) for one test module; skips where none can start."""
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    server = PgServer()
    yield server
    server.stop()
