"""Where the bench runs: this machine (``local``) or a device over SSH (``ssh://[user@]host[:port]``).

A device gives the suite (:func:`.suite.bench_run`) four things: the status of every target
on it, a worker per cell (:class:`.worker.WorkerProcess` here, :class:`.remote.RemoteWorker`
over ``ssh`` there, speaking the same JSON-lines protocol), its load average before the bench
and its fingerprint after it. :func:`bench_devices` measures a run on several devices one
after the other (so two devices that share a machine never time each other's load) and merges
their reports (:mod:`.device_report`). A device that cannot be reached, lacks a compatible
edgesmith or every requested runtime, or drops mid-run gets a one-line reason; the other
devices' results are kept.
"""
from __future__ import annotations

import os
import shlex
import time
from pathlib import Path
from typing import Callable, Protocol, Sequence
from urllib.parse import parse_qs, unquote, urlsplit

from edgesmith.core.errors import ConfigError, EdgesmithError

from ._probe import sys_readings

LOCAL = "local"
SSH_OPTIONS_ENV = "EDGESMITH_SSH_OPTIONS"  # extra ssh/scp options for every device, e.g. "-F ~/bench_ssh_config"
DEFAULT_REMOTE_PYTHON = "python3"
DEFAULT_REMOTE_CACHE = "~/.cache/edgesmith/bench"
_QUERY_KEYS = ("python", "cache", "name")


class DeviceError(EdgesmithError):
    """A device could not be used or was lost mid-run (one line: which device and why)."""


class Device(Protocol):
    """What :func:`.suite.bench_run` needs from the machine it measures on."""

    name: str
    kind: str

    def __enter__(self) -> "Device": ...

    def __exit__(self, *exc) -> None: ...

    def detect_targets(self) -> dict: ...

    def worker(self, job: dict, workdir: Path, tag: str): ...

    def load_avg(self) -> float | None: ...

    def environment(self) -> dict: ...


def edgesmith_version() -> str:
    """This machine's edgesmith version (package metadata, else ``edgesmith.__version__``)."""
    import importlib.metadata

    try:
        return importlib.metadata.version("edgesmith")
    except importlib.metadata.PackageNotFoundError:
        import edgesmith

        return edgesmith.__version__


def compatible(local: str, remote: str) -> bool:
    """Whether a device's edgesmith can run this machine's bench jobs: the same major.minor."""
    return local.split(".")[:2] == remote.split(".")[:2]


def install_hint(python: str, version: str) -> str:
    """The command that gives a device a compatible runtime-only edgesmith."""
    return f"`{python} -m pip install 'edgesmith~={version}'` (add [onnx] for .onnx files)"


class LocalDevice:
    """This machine: workers are local processes, as ``edgesmith bench`` has always run them."""

    name = LOCAL
    kind = "local"

    def __enter__(self) -> "LocalDevice":
        return self

    def __exit__(self, *exc) -> None:
        return None

    def detect_targets(self) -> dict:
        """Target name -> :class:`.targets.TargetStatus` on this machine."""
        from .targets import TARGETS, detect_targets

        return detect_targets(TARGETS)

    def worker(self, job: dict, workdir: Path, tag: str):
        """Start one cell's worker process here (see :class:`.worker.WorkerProcess`)."""
        from .worker import WorkerProcess

        return WorkerProcess(job, workdir, tag)

    def load_avg(self) -> float | None:
        """1-minute load average, None where unknown."""
        try:
            return round(os.getloadavg()[0], 2)
        except (AttributeError, OSError):
            return None

    def environment(self) -> dict:
        """:func:`.env.environment` plus ``device``, CPU ``governor``, ``cpu0_mhz`` and ``temperatures_c``."""
        from .env import environment

        return {"device": self.name, **environment(), **sys_readings()}


def parse_device(spec: str, *, remote_python: str | None = None, ssh_options: Sequence[str] | None = None) -> Device:
    """A device from its ``--device`` text.

    Examples: ``local``; ``ssh://pi@raspberrypi``; ``ssh://bench@10.0.0.7:2222``;
    ``ssh://jetson?python=/opt/venv/bin/python&name=jetson-nano`` (``python``: the device's
    interpreter, default ``python3``; ``cache``: its bench cache, default
    ``~/.cache/edgesmith/bench``; ``name``: the device's name in reports, default the spec
    without its query). The host may be a ``Host`` alias of the user's SSH config.

    Args:
        spec: ``local`` or an ``ssh://`` URL as above.
        remote_python: the device's interpreter when the URL names none (``--remote-python``).
        ssh_options: extra ``ssh``/``scp`` options (default: ``$EDGESMITH_SSH_OPTIONS``, split
            like a shell would).

    Raises:
        ConfigError: neither ``local`` nor a valid ``ssh://`` URL.
    """
    if spec.strip().lower() == LOCAL:
        return LocalDevice()
    url = urlsplit(spec.strip())
    if url.scheme != "ssh" or not url.hostname or url.path not in ("", "/") or url.fragment:
        raise ConfigError(f"--device takes 'local' or ssh://[user@]host[:port][?python=PATH], got {spec!r}")
    query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
    unknown = sorted(set(query) - set(_QUERY_KEYS))
    if unknown:
        raise ConfigError(f"--device {spec!r}: unknown setting(s) {', '.join(unknown)}; "
                          f"expected {', '.join(_QUERY_KEYS)}")
    try:
        port = url.port
    except ValueError:
        raise ConfigError(f"--device {spec!r}: the port must be a number from 1 to 65535") from None
    if url.hostname.startswith("-"):
        raise ConfigError(f"--device {spec!r}: a host name cannot start with '-'")
    if ssh_options is None:
        ssh_options = shlex.split(os.environ.get(SSH_OPTIONS_ENV, ""))
    from .remote import SshDevice

    default_name = f"ssh://{url.netloc}"
    return SshDevice(host=url.hostname, user=unquote(url.username) if url.username else None, port=port,
                     python=query.get("python") or remote_python or DEFAULT_REMOTE_PYTHON,
                     cache=query.get("cache") or DEFAULT_REMOTE_CACHE, name=query.get("name") or default_name,
                     ssh_options=tuple(ssh_options))


def parse_devices(specs: Sequence[str] | None, *, remote_python: str | None = None) -> list[Device]:
    """Devices from repeated ``--device`` options (none: this machine only).

    Raises:
        ConfigError: a bad spec, or two devices with the same name.
    """
    devices = [parse_device(s, remote_python=remote_python) for s in (specs or [LOCAL])]
    names = [d.name for d in devices]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"--device {dupes[0]} is given twice (add ?name=... to tell two apart)")
    return devices


def _no_target_reason(part: dict) -> str:
    reasons = [f"{s['target']}: {s['reason']}" for s in part.get("skipped", [])
               if s.get("reason") != "not requested"]
    return "nothing could be measured (" + ("; ".join(reasons) or "no requested target") + ")"


def bench_devices(run_dir: str | Path, config, devices: Sequence[Device],
                  progress: Callable[[str], None] | None = None, *, recommend_budget: float | None = None) -> dict:
    """Measure a run on each device in turn and merge the reports into one.

    Side effects: on an SSH device, copies the artifacts and the decoded test split into its
    bench cache (once per file content) and starts the workers there; nothing is left
    running on it afterwards, also when this process is interrupted.

    Args:
        run_dir: a run directory with exported artifacts.
        config: a :class:`.suite.BenchConfig`, the same for every device.
        devices: from :func:`parse_devices`; measured in this order.
        progress: called with one progress line at a time (each device's lines follow a
            ``== device NAME`` line).
        recommend_budget: as for :func:`.suite.bench`, per device.

    Returns:
        The merged report (:func:`.device_report.merge_reports`): every row, accuracy,
        comparison and skipped entry carries its ``device``; ``devices`` lists each device
        with ``ok``, ``reason`` (one line, when it failed) and its fingerprint.

    Raises:
        RunDirError: no manifest, no artifacts, or an artifact changed since export.
        ConfigError: a bad config.
    """
    from .device_report import merge_reports, tag_device_report
    from .suite import bench_run

    say = progress or (lambda line: None)
    started = time.perf_counter()
    parts, entries = [], []
    for device in devices:
        say(f"== device {device.name}")
        t0 = time.perf_counter()
        try:
            with device:
                part = bench_run(run_dir, config, say, device=device)
        except DeviceError as e:
            say(f"== device {device.name}: {e}")
            entries.append({"name": device.name, "kind": device.kind, "ok": False, "reason": str(e),
                            "environment": getattr(device, "fingerprint", None),
                            "wall_s": round(time.perf_counter() - t0, 1)})
            continue
        tag_device_report(part, device.name, recommend_budget)
        ok = bool(part["results"])
        entries.append({"name": device.name, "kind": device.kind, "ok": ok,
                        "reason": None if ok else _no_target_reason(part), "environment": part["environment"],
                        "wall_s": part["wall_s"]})
        parts.append(part)
    return merge_reports(run_dir, config, parts, entries, wall_s=time.perf_counter() - started)
