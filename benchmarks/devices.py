"""Where the bench runs: this machine (``local``) or a device over SSH (``ssh://[user@]host[:port]``).

A device gives the suite (:func:`.suite.bench_run`) four things: the status of every runtime
on it, a worker per cell (:class:`.worker.WorkerProcess` here, :class:`.remote.RemoteWorker`
over ``ssh`` there, speaking the same JSON-lines protocol), its load average before the bench
and its fingerprint after it. :func:`bench_devices` measures a run on several devices and merges
their reports (:mod:`.device_report`): ``local`` alone first (this machine's timings must not
share its CPU with anything), then the SSH devices at the same time, one thread each (each
device times only its own CPU; this machine only relays their JSON lines), at most
``parallel`` at once. A device that cannot be reached, lacks a compatible edgesmith or every
requested runtime, or drops mid-run gets a one-line reason; the other devices' results are
kept. Give two ``ssh://`` names of one machine ``parallel=1``: they would time each other's load.
"""
from __future__ import annotations

import os
import shlex
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Protocol, Sequence
from urllib.parse import parse_qs, unquote, urlsplit

from edgesmith.core.errors import ConfigError, EdgesmithError

from .device_base import LOCAL, Device, DeviceError, LocalDevice, compatible, edgesmith_version, install_hint

SSH_OPTIONS_ENV = "EDGESMITH_SSH_OPTIONS"  # extra ssh/scp options for every device, e.g. "-F ~/bench_ssh_config"
DEFAULT_REMOTE_PYTHON = "python3"
DEFAULT_REMOTE_CACHE = "~/.cache/edgesmith/bench"
_QUERY_KEYS = ("python", "cache", "name")


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
        raise ConfigError(f"spec takes 'local' or ssh://[user@]host[:port][?python=PATH], got {spec!r}",
                          field="parse_device.spec")
    query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
    unknown = sorted(set(query) - set(_QUERY_KEYS))
    if unknown:
        raise ConfigError(f"spec {spec!r}: unknown setting(s) {', '.join(unknown)}; "
                          f"expected {', '.join(_QUERY_KEYS)}", field="parse_device.spec")
    try:
        port = url.port
    except ValueError:
        raise ConfigError(f"spec {spec!r}: the port must be a number from 1 to 65535",
                          field="parse_device.spec") from None
    if url.hostname.startswith("-"):
        raise ConfigError(f"spec {spec!r}: a host name cannot start with '-'", field="parse_device.spec")
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
        raise ConfigError(f"specs: {dupes[0]} is given twice (add ?name=... to tell two apart)",
                          field="parse_devices.specs")
    return devices


def _no_runtime_reason(part: dict) -> str:
    reasons = [f"{s['runtime']}: {s['reason']}" for s in part.get("skipped", [])
               if s.get("reason") != "not requested"]
    return "nothing could be measured (" + ("; ".join(reasons) or "no requested runtime") + ")"


def bench_devices(run_dir: str | Path, config, devices: Sequence[Device],
                  progress: Callable[[str], None] | None = None, *, recommend_budget: float | None = None,
                  parallel: int | None = None) -> dict:
    """Measure a run on each device and merge the reports into one.

    ``local`` is measured alone, before the SSH devices; the SSH devices are measured at the same
    time, each in its own thread with its own connections, at most ``parallel`` at once.

    Side effects: on an SSH device, copies the artifacts and the decoded test split into its
    bench cache (once per file content) and starts the workers there; nothing is left
    running on it afterwards, also when this process is interrupted.

    Args:
        run_dir: a run directory with exported artifacts.
        config: a :class:`.suite.BenchConfig`, the same for every device.
        devices: from :func:`parse_devices`; the report lists them in this order.
        progress: called with one progress line at a time, from the devices' threads: a device's
            state as ``== device NAME: STATE`` (measuring, ok ..., failed: reason), its other lines
            prefixed ``[NAME]`` while several devices run at once.
        recommend_budget: as for :func:`.session.bench`, per device.
        parallel: SSH devices measured at once (None: all of them; 1: one after the other).

    Returns:
        The merged report (:func:`.device_report.merge_reports`): every row, accuracy,
        comparison and skipped entry carries its ``device``; ``devices`` lists each device
        with ``ok``, ``state`` (``ok``, ``failed``, ``nothing measured``), ``reason`` (one line,
        when it failed), ``started_s`` / ``wall_s`` (s from the bench's start, s) and its fingerprint.

    Raises:
        RunDirError: no manifest, no artifacts, or an artifact changed since export.
        ConfigError: a bad config, or ``parallel`` < 1.
    """
    from .device_report import merge_reports

    if parallel is not None and parallel < 1:
        raise ConfigError(f"parallel must be >= 1, got {parallel}", field="bench_devices.parallel")
    lock = threading.Lock()
    emit = progress or (lambda line: None)

    def say(line: str) -> None:
        with lock:
            emit(line)

    started = time.perf_counter()
    remote = [d for d in devices if d.kind != LOCAL]
    prefix = len(remote) > 1 and parallel != 1
    measured = schedule(devices, lambda d: _bench_one(run_dir, config, d, say=say, started=started,
                                                      recommend_budget=recommend_budget,
                                                      prefix=prefix and d.kind != LOCAL), parallel)
    parts = [part for part, _ in measured if part is not None]
    entries = [entry for _, entry in measured]
    if len(devices) > 1:
        say("== devices: " + "; ".join(f"{e['name']} {e['state']} ({e['wall_s']} s)" for e in entries))
    return merge_reports(run_dir, config, parts, entries, wall_s=time.perf_counter() - started)


def schedule(devices: Sequence[Device], bench_one: Callable[[Device], tuple], parallel: int | None = None) -> list:
    """``bench_one(device)`` for every device: each ``local`` one alone, first; then the others in
    threads, at most ``parallel`` at once (None: all). Returns the results in the order of ``devices``.

    A device's exception is raised after every other device has finished (nothing is left half-measured).
    """
    results: dict[int, tuple] = {}
    for i, d in enumerate(devices):
        if d.kind == LOCAL:
            results[i] = bench_one(d)
    others = [(i, d) for i, d in enumerate(devices) if d.kind != LOCAL]
    if others:
        with ThreadPoolExecutor(max_workers=min(parallel or len(others), len(others)),
                                thread_name_prefix="edgesmith-device") as pool:
            futures = {i: pool.submit(bench_one, d) for i, d in others}
            errors = []
            for i, f in futures.items():
                try:
                    results[i] = f.result()
                except Exception as e:  # re-raised below, once the other devices are done (Ctrl-C is not held)
                    errors.append(e)
            if errors:
                raise errors[0]
    return [results[i] for i in range(len(devices))]


def _bench_one(run_dir, config, device: Device, *, say, started: float, recommend_budget, prefix: bool) -> tuple:
    """Measure on one device: ``(its tagged report or None, its entry in ``devices``)``."""
    from .device_report import tag_device_report
    from .suite import bench_run

    t0 = time.perf_counter()
    own = (lambda line: say(f"[{device.name}] {line}")) if prefix else say
    say(f"== device {device.name}")
    entry = {"name": device.name, "kind": device.kind, "started_s": round(t0 - started, 1)}
    try:
        with device:
            part = bench_run(run_dir, config, own, device=device)
    except DeviceError as e:
        entry.update(ok=False, state="failed", reason=str(e), environment=getattr(device, "fingerprint", None),
                     wall_s=round(time.perf_counter() - t0, 1))
        say(f"== device {device.name}: failed: {e}")
        return None, entry
    tag_device_report(part, device.name, recommend_budget)
    ok = bool(part["results"])
    entry.update(ok=ok, state="ok" if ok else "nothing measured", reason=None if ok else _no_runtime_reason(part),
                 environment=part["environment"], wall_s=part["wall_s"])
    say(f"== device {device.name}: " + (f"ok, {len(part['results'])} rows in {part['wall_s']} s" if ok
                                       else entry["reason"]))
    return part, entry
