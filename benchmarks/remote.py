"""A device reached over the system ``ssh``: file staging with ``scp``, workers over an SSH pipe.

Everything goes through the user's own ``ssh``/``scp``, so keys, agents, ``~/.ssh/config``
aliases, jump hosts and host-key checking work as for any other login; edgesmith adds only
``BatchMode=yes`` (a bench opens one connection per cell and cannot stop for a password: use
a key, e.g. ``ssh-copy-id``), a connect timeout and keep-alives that notice a dropped link.

On the device, the bench cache (default ``~/.cache/edgesmith/bench``) holds ``files/`` (the
artifacts, named by content hash, copied once), ``data/`` (the decoded test split, likewise)
and ``jobs/ID/`` (this bench's job and pid files, deleted at the end). Each cell runs as
``PYTHON -m edgesmith.benchmarks.worker JOB`` with its stdin/stdout piped through ``ssh``:
the JSON-lines protocol of :mod:`.worker`, unchanged. The worker is the process-group leader
of its SSH session (sshd starts each session with ``setsid``), writes its pid to
``jobs/ID/TAG.pid``, and exits when its stdin closes (the link dropped, ``ssh`` was killed);
on any abnormal end the parent also kills its process group over a fresh connection, and at
the end of the device's bench every worker still alive from this job is killed and the job
folder removed.
"""
from __future__ import annotations

import hashlib
import json
import shlex
import subprocess
import uuid
from pathlib import Path

from edgesmith.core.fsutil import sha256_file
from edgesmith.core.quiet import filter_text

from ._probe import MARKER
from .device_base import DeviceError, compatible, edgesmith_version, install_hint
from .worker import WorkerProcess

SSH_DEFAULTS = ("-o", "BatchMode=yes", "-o", "ConnectTimeout=15", "-o", "ServerAliveInterval=5",
                "-o", "ServerAliveCountMax=3")
CALL_TIMEOUT_S = 120  # one control command (probe, kill, clean-up)
COPY_TIMEOUT_S = 900  # one scp (a 10,000-image test split is 30 MB)
WORKER_MARK = "edgesmith.benchmarks.worker"
# kill this job's live workers (pid file -> process group), checking the pid is still a worker
_KILL = ('for f in {files}; do [ -f "$f" ] || continue; p=$(cat "$f"); [ -n "$p" ] || continue; '
         f'if ps -o args= -p "$p" 2>/dev/null | grep -q {WORKER_MARK}; then '
         'kill -KILL -- "-$p" 2>/dev/null || kill -KILL "$p" 2>/dev/null; fi; done')


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("Warning: Permanently")]
    return lines[-1] if lines else "no message"


def _shell_path(path: str) -> str:
    """``path`` quoted for the device's shell, keeping a leading ``~/`` as the home folder."""
    if path.startswith("~/"):
        return '"$HOME"/' + shlex.quote(path[2:])
    return shlex.quote(path)


def _probe_script() -> str:
    """The text of :mod:`._probe`, run on the device as ``python -``."""
    return Path(__file__).with_name("_probe.py").read_text(encoding="utf-8")


class SshDevice:
    """A device reached with ``ssh [user@]host [-p port]`` (see :func:`.devices.parse_device`).

    Use as a context manager: entering probes the device (one connection: Python, edgesmith
    version, CPU fingerprint, runtimes) and prepares its job folder; leaving kills any worker
    of this job still alive and removes the folder.

    Raises (on entering, and from :meth:`worker`):
        DeviceError: unreachable, no such Python, no compatible edgesmith, or a copy failed.
    """

    kind = "ssh"

    def __init__(self, host: str, *, user: str | None = None, port: int | None = None, python: str = "python3",
                 cache: str = "~/.cache/edgesmith/bench", name: str | None = None, ssh_options: tuple = ()):
        self.host, self.user, self.port, self.python, self.cache = host, user, port, python, cache
        self.name = name or f"ssh://{(user + '@') if user else ''}{host}{f':{port}' if port else ''}"
        self.ssh_options = tuple(ssh_options)
        self.job_id = uuid.uuid4().hex[:12]
        self.fingerprint: dict | None = None
        self._probe: dict = {}
        self._staged: dict[str, str] = {}  # cache-relative name -> path on the device
        self._names: dict[Path, str] = {}  # local file or data folder -> its cache-relative name (hashed once)
        self._pending: list[str] = []  # shell commands run before the next worker starts (moving uploads in)

    # -- transport -------------------------------------------------------------------------
    def ssh_argv(self, command: str) -> list[str]:
        """``ssh`` argv running ``command`` (one shell string) on the device."""
        where = [*(["-p", str(self.port)] if self.port else []), *(["-l", self.user] if self.user else [])]
        return ["ssh", *SSH_DEFAULTS, *self.ssh_options, *where, self.host, command]

    def _scp_argv(self, sources: list[Path], dest: str) -> list[str]:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return ["scp", "-q", *SSH_DEFAULTS, *self.ssh_options, *(["-P", str(self.port)] if self.port else []),
                *map(str, sources), f"{(self.user + '@') if self.user else ''}{host}:{dest}"]

    def _call(self, command: str, *, stdin: str | None = None, timeout: float = CALL_TIMEOUT_S,
              what: str = "ssh") -> subprocess.CompletedProcess:
        try:
            done = subprocess.run(self.ssh_argv(command), input=stdin, capture_output=True, text=True,
                                  timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            raise DeviceError(f"{self.name}: no answer to {what} within {timeout:g} s") from None
        except FileNotFoundError:
            raise DeviceError("the ssh client is not installed on this machine (apt install openssh-client)") from None
        if done.returncode == 255:
            raise DeviceError(f"{self.name}: cannot reach it over ssh: {_last_line(done.stderr)}")
        return done

    # -- the device's lifecycle ------------------------------------------------------------
    def _run_probe(self, args: str = "") -> tuple[subprocess.CompletedProcess, dict | None]:
        """Run :mod:`._probe` with the device's Python; ``(the call, its JSON line or None)``."""
        done = self._call(f"exec {_shell_path(self.python)} -{args}", stdin=_probe_script(), what="the device probe")
        lines = [ln[len(MARKER):] for ln in done.stdout.splitlines() if ln.startswith(MARKER)]
        return done, json.loads(lines[-1]) if lines else None

    def __enter__(self) -> "SshDevice":
        done, probe = self._run_probe(f" {shlex.quote(self.cache)} {self.job_id}")
        if done.returncode == 127 or (done.returncode != 0 and probe is None):
            raise DeviceError(f"{self.name}: cannot run {self.python} there ({_last_line(done.stderr)}): install "
                              f"Python 3.10+ and {install_hint('python3', edgesmith_version())}, or name the "
                              "interpreter with ?python=PATH / remote_python", field="parse_device.remote_python")
        self._probe = probe
        self._check_edgesmith(self._probe)
        self.fingerprint = self._env(self._probe)
        self._staged = {name: f"{self._probe['cache']}/{name}" for name in self._probe.get("cached", [])}
        return self

    def _check_edgesmith(self, probe: dict) -> None:
        mine, theirs = edgesmith_version(), probe.get("edgesmith")
        if theirs is None:
            raise DeviceError(f"{self.name}: edgesmith is not installed for {self.python} there: run "
                              f"{install_hint(self.python, mine)} on the device")
        if not compatible(mine, theirs):
            raise DeviceError(f"{self.name} has edgesmith {theirs}, this machine {mine}: run "
                              f"{install_hint(self.python, mine)} on the device")
        if "import_error" in probe:
            raise DeviceError(f"{self.name}: edgesmith {theirs} is installed but does not import "
                              f"({probe['import_error']}): reinstall it with {install_hint(self.python, mine)}")

    def _env(self, probe: dict) -> dict:
        return {"device": self.name, **probe["environment"], **probe["sys"], "python_executable": probe["executable"]}

    def __exit__(self, *exc) -> None:
        if not self._probe:
            return
        jobs = shlex.quote(f"{self._probe['cache']}/jobs/{self.job_id}")
        try:  # best effort: an unreachable device has already lost its workers' sessions
            self._call(_KILL.format(files=f"{jobs}/*.pid") + f"; rm -rf {jobs}", what="the clean-up", timeout=30)
        except DeviceError:
            pass

    # -- what the suite asks ---------------------------------------------------------------
    def detect_runtimes(self) -> dict:
        """Runtime name -> :class:`.runtimes.RuntimeStatus` on the device (from the probe)."""
        from .runtimes import RuntimeStatus

        return {t: RuntimeStatus(t, s["usable"], s["detail"]) for t, s in self._probe["runtimes"].items()}

    def load_avg(self) -> float | None:
        """The device's 1-minute load average when it was probed."""
        return (self.fingerprint or {}).get("load_avg")

    def environment(self) -> dict:
        """The device's fingerprint now (a second probe: load and temperatures after the bench),
        with ``temperatures_c_start`` from the first."""
        start = self.fingerprint or {}
        done, probe = self._run_probe()
        if probe is None:
            raise DeviceError(f"{self.name}: the closing probe failed: {_last_line(done.stderr)}")
        return {**self._env(probe), "temperatures_c_start": start.get("temperatures_c")}

    def worker(self, job: dict, workdir: Path, tag: str) -> "RemoteWorker":
        """Copy what ``job`` needs to the device (unless cached) and start its worker there."""
        job = {**job, "path": self._stage_file(Path(job["path"])), "data": self._stage_data(Path(job["data"]))}
        return RemoteWorker(self, job, workdir, tag)

    # -- staging -----------------------------------------------------------------------------
    def _upload(self, local: Path, name: str) -> str:
        up = f"{self._probe['cache']}/jobs/{self.job_id}/up/{name.replace('/', '-')}"
        try:
            done = subprocess.run(self._scp_argv([local], up), capture_output=True, text=True,
                                  timeout=COPY_TIMEOUT_S, check=False)
        except subprocess.TimeoutExpired:
            raise DeviceError(f"{self.name}: copying {local.name} took over {COPY_TIMEOUT_S} s") from None
        if done.returncode != 0:
            raise DeviceError(f"{self.name}: cannot copy {local.name} there: {_last_line(done.stderr)}")
        return up

    def _stage_file(self, local: Path) -> str:
        if local not in self._names:  # every cell of an artifact stages the same file: hash it once
            self._names[local] = f"files/{sha256_file(local)[:16]}-{local.name}"
        name = self._names[local]
        if name not in self._staged:
            up, final = self._upload(local, name), f"{self._probe['cache']}/{name}"
            self._pending.append(f"mv -f {shlex.quote(up)} {shlex.quote(final)}")
            self._staged[name] = final
        return self._staged[name]

    def _stage_data(self, local: Path) -> str:
        if local not in self._names:  # the test split (30 MB for 10,000 images) is the same for every cell
            h = hashlib.sha256()
            for f in ("images.npy", "labels.npy"):
                h.update(sha256_file(local / f).encode())
            self._names[local] = f"data/{h.hexdigest()[:16]}"
        name = self._names[local]
        if name not in self._staged:
            final = f"{self._probe['cache']}/{name}"
            tmp = shlex.quote(f"{final}.{self.job_id}")
            moves = [f"mv -f {shlex.quote(self._upload(local / f, f'{name}-{f}'))} {tmp}/{f}"
                     for f in ("images.npy", "labels.npy")]
            self._pending.append(f"mkdir -p {tmp} && " + " && ".join(moves) + f" && {{ [ -e {shlex.quote(final)} ] "
                                 f"&& rm -rf {tmp} || mv {tmp} {shlex.quote(final)}; }}")
            self._staged[name] = final
        return self._staged[name]

    def take_pending(self) -> str:
        """Shell commands that move this device's finished uploads into the cache (then forgotten)."""
        cmds, self._pending = self._pending, []
        return "".join(f"{c} && " for c in cmds)

    def kill_worker(self, tag: str) -> None:
        """Kill the worker ``tag`` of this job and its process group, if it still runs (best effort)."""
        pid = shlex.quote(f"{self._probe['cache']}/jobs/{self.job_id}/{tag}.pid")
        try:
            self._call(_KILL.format(files=pid), what="the worker kill", timeout=30)
        except DeviceError:
            pass


class RemoteWorker(WorkerProcess):
    """One cell's worker on an SSH device: :class:`.worker.WorkerProcess`'s interface over ``ssh``.

    Raises (from :meth:`read` / :meth:`ask`):
        DeviceError: the connection dropped, or the worker died or failed on the device.
    """

    def __init__(self, device: SshDevice, job: dict, workdir: Path, tag: str):  # noqa: super() starts a local process
        self.tag, self.device = tag, device
        self.err_path = workdir / f"{tag}.stderr.txt"
        self._err = open(self.err_path, "w")
        jobs = f"{device._probe['cache']}/jobs/{device.job_id}"
        job_file, pid_file = f"{jobs}/{tag}.job.json", f"{jobs}/{tag}.pid"
        command = (f"{device.take_pending()}printf '%s' {shlex.quote(json.dumps(job))} > {shlex.quote(job_file)} && "
                   f"cd {shlex.quote(jobs)} && exec sh -c 'echo $$ > \"$0\"; exec env TF_CPP_MIN_LOG_LEVEL=3 \"$1\" "
                   f"-m {WORKER_MARK} \"$2\"' {shlex.quote(pid_file)} {_shell_path(device.python)} "
                   f"{shlex.quote(job_file)}")
        self.proc = subprocess.Popen(device.ssh_argv(command), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self._err, text=True)

    def _lost(self, what: str) -> DeviceError:
        try:
            rc = self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self._err.flush()
        tail = _last_line(filter_text(self.err_path.read_text(errors="replace")))  # not LiteRT's INFO line
        cause = "the connection was lost" if rc in (255, -9, -15, -2) else f"the worker exited with code {rc}"
        return DeviceError(f"{self.device.name}: {cause} {what} {self.tag} ({tail})")

    def read(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            raise self._lost("while running")
        try:
            msg = json.loads(line)
        except json.JSONDecodeError:
            raise DeviceError(f"{self.device.name}: {self.tag} answered {line[:80]!r}, not the worker protocol "
                              "(does the login shell print text?)") from None
        if "bug" in msg:
            self._err.write(msg["bug"])
            self.close()
            raise DeviceError(f"{self.device.name}: the worker for {self.tag} failed: {_last_line(msg['bug'])} "
                              f"(traceback in {self.err_path})")
        return msg

    def ask(self, cmd: dict) -> dict:
        try:
            self.proc.stdin.write(json.dumps(cmd) + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            raise self._lost("while sending to") from None
        return self.read()

    def close(self) -> None:
        """End the worker: close its stdin (it exits on EOF), and kill it on the device if it does not."""
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.returncode != 0:
            self.device.kill_worker(self.tag)
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                stream.close()
            except OSError:
                pass
        if not self._err.closed:
            self._err.close()
