"""A device farm: SSH devices benched at the same time, ``local`` alone, a lost device never stops the others.

The real test runs three OpenSSH servers on 127.0.0.1 (tests/ssh_server.py), each a "device"
with its own bench cache, and kills one device's SSH sessions once its timing has begun.
"""
from __future__ import annotations

import os
import signal
import threading
import time

import pytest
from ssh_server import Sshd, assert_nothing_left, needs_sshd

from edgesmith.benchmarks import BenchConfig, bench
from edgesmith.benchmarks.devices import DeviceError, LOCAL, bench_devices, parse_devices, schedule
from edgesmith.core.errors import ConfigError

QUICK = dict(runtimes=("litert-cpu",), threads=(1,), batches=(1,), warmup=2, runs=10, batch_runs=3,
             seconds=0.6, rounds=3)


# ------------------------------------------------------------------------------------------ scheduling
class FakeDevice:
    def __init__(self, name: str, kind: str = "ssh"):
        self.name, self.kind = name, kind


def _recorder(fail: str | None = None):
    """A bench_one that records which devices run at the same time (each takes 0.2 s)."""
    lock, state = threading.Lock(), {"now": set(), "overlaps": [], "order": []}

    def bench_one(device):
        with lock:
            state["now"].add(device.name)
            state["order"].append(device.name)
            state["overlaps"].append(set(state["now"]))
        time.sleep(0.2)
        with lock:
            state["now"].discard(device.name)
        if device.name == fail:
            raise RuntimeError(f"{device.name} broke")
        return device.name, None

    return bench_one, state


def test_local_is_benched_alone_first_and_ssh_devices_at_once():
    devices = [FakeDevice("a"), FakeDevice(LOCAL, LOCAL), FakeDevice("b"), FakeDevice("c")]
    bench_one, state = _recorder()
    assert [r[0] for r in schedule(devices, bench_one)] == ["a", LOCAL, "b", "c"]  # the devices' order
    assert state["order"][0] == LOCAL and state["overlaps"][0] == {LOCAL}
    assert max(len(o) for o in state["overlaps"]) == 3 and not any(LOCAL in o for o in state["overlaps"][1:])


@pytest.mark.parametrize("parallel, most", [(1, 1), (2, 2)])
def test_device_parallel_caps_the_devices_at_once(parallel, most):
    bench_one, state = _recorder()
    schedule([FakeDevice(n) for n in "abc"], bench_one, parallel)
    assert max(len(o) for o in state["overlaps"]) == most


def test_a_broken_device_is_raised_only_after_the_others_finished():
    bench_one, state = _recorder(fail="a")
    with pytest.raises(RuntimeError, match="a broke"):
        schedule([FakeDevice(n) for n in "abc"], bench_one)
    assert sorted(state["order"]) == ["a", "b", "c"] and not state["now"]


def test_device_parallel_below_one_is_refused(tiny_run):
    with pytest.raises(ConfigError, match="parallel must be >= 1"):
        bench_devices(tiny_run.root, BenchConfig(**QUICK), [FakeDevice("a")], parallel=0)


# ------------------------------------------------------------------------------------------ over SSH
@pytest.fixture(scope="module")
def farm(tmp_path_factory):
    """Three sshd "devices" and one client config that logs into each."""
    servers = [Sshd(tmp_path_factory.mktemp(f"sshd{i}")) for i in range(3)]
    root = tmp_path_factory.mktemp("farm")
    (root / "ssh_config").write_text(
        "Host 127.0.0.1\n" + "".join(f"  IdentityFile {s.root}/id_ed25519\n" for s in servers)
        + "  IdentitiesOnly yes\n  UserKnownHostsFile " + " ".join(f"{s.root}/known_hosts" for s in servers)
        + "\n  StrictHostKeyChecking yes\n  LogLevel ERROR\n")
    yield servers, f"-F {root}/ssh_config"
    for s in servers:
        s.proc.terminate()
        s.proc.wait(timeout=10)


@needs_sshd
def test_three_devices_bench_at_once_and_a_killed_one_keeps_the_others(tiny_run, farm, tmp_path, monkeypatch):
    servers, options = farm
    monkeypatch.setenv("EDGESMITH_SSH_OPTIONS", options)
    caches = [tmp_path / f"cache{i}" for i in range(3)]
    urls = [s.url(cache=c, name=f"board{i}") for i, (s, c) in enumerate(zip(servers, caches))]
    lines, killed = [], []

    def progress(line: str) -> None:  # kill board1's SSH sessions once its timing has begun
        lines.append(line)
        if line.startswith("[board1] ") and "timing: round 1/" in line and not killed:
            killed.extend(servers[1].children())
            for pid in killed:
                os.kill(pid, signal.SIGKILL)

    report, paths = bench(tiny_run.root, BenchConfig(**QUICK), progress, devices=parse_devices(urls))
    assert killed, "board1's timing never started"
    by_name = {d["name"]: d for d in report["devices"]}
    assert [d["name"] for d in report["devices"]] == ["board0", "board1", "board2"]
    assert by_name["board1"]["state"] == "failed" and "the connection was lost" in by_name["board1"]["reason"]
    for name in ("board0", "board2"):  # the others' results are kept, complete
        assert by_name[name]["ok"] and by_name[name]["state"] == "ok"
        rows = [r for r in report["results"] if r["device"] == name]
        assert {r["artifact"] for r in rows} == {"tflite_fp32", "tflite_int8"} and all(r["top1"] > 0.5 for r in rows)
    assert {r["device"] for r in report["results"]} == {"board0", "board2"}
    # measured at once: every device started before any other finished
    windows = [(d["started_s"], d["started_s"] + d["wall_s"]) for d in report["devices"]]
    assert max(start for start, _ in windows) < min(end for _, end in windows)
    # the progress display: each device's lines under its name, and its state
    assert any(line.startswith("[board0]") and "timing: round" in line for line in lines)
    assert "== device board1: failed: " in "\n".join(lines) and any(
        line.startswith("== device board2: ok, 2 rows") for line in lines)
    assert lines[-1].startswith("== devices: board0 ok") and "board1 failed" in lines[-1]
    md = paths["md"].read_text()
    assert "| board1 | **failed** |" in md and "at the same time" in md
    for cache in caches:
        assert_nothing_left(cache)
