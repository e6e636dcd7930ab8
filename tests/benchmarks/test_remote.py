"""Benchmarking over SSH, for real: an OpenSSH server on 127.0.0.1 is the "device".

The server (Debian's ``openssh-server``; ``.ci/run`` installs it) runs from a throw-away
folder: its own host key, sshd_config (no PAM, no passwords, StrictModes off), an
authorized key, and a client ssh_config (``-F``, via ``EDGESMITH_SSH_OPTIONS``) that checks
the host key against a known_hosts file. The device's Python is this test's own venv, named
explicitly (``?python=``); its bench cache is a temp folder (``?cache=``).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
from ssh_server import assert_nothing_left, free_port, needs_sshd, workers_running
from typer.testing import CliRunner

from edgesmith.benchmarks import BenchConfig, bench, compare_reports
from edgesmith.benchmarks.device_report import select_device
from edgesmith.benchmarks.devices import LocalDevice, bench_devices, compatible, parse_device, parse_devices
from edgesmith.cli import app
from edgesmith.core.errors import ConfigError

QUICK = dict(runtimes=("litert-cpu",), threads=(1,), batches=(1, 8), warmup=2, runs=10, batch_runs=3,
             seconds=0.3, rounds=3)
QUICK_CLI = ["--runtime", "litert-cpu", "--threads", "1", "--batch", "1,8", "--warmup", "2", "--runs", "10",
             "--batch-runs", "3", "--seconds", "0.3", "--rounds", "3"]
cli = CliRunner()


# ---------------------------------------------------------------------------------------------- no server
def test_device_specs_parse_and_bad_ones_are_one_line_errors(monkeypatch):
    monkeypatch.setenv("EDGESMITH_SSH_OPTIONS", "-F '/x y/cfg'")
    d = parse_device("ssh://pi@raspberrypi:2222?python=/opt/venv/bin/python&name=pi4")
    assert (d.host, d.user, d.port, d.python, d.name, d.ssh_options) == (
        "raspberrypi", "pi", 2222, "/opt/venv/bin/python", "pi4", ("-F", "/x y/cfg"))
    assert d.ssh_argv("true")[-5:] == ["-p", "2222", "-l", "pi", "raspberrypi", "true"][-5:]
    d = parse_device("ssh://jetson", remote_python="/usr/bin/python3.11")
    assert (d.name, d.python, d.port, d.user) == ("ssh://jetson", "/usr/bin/python3.11", None, None)
    assert isinstance(parse_device("local"), LocalDevice)
    for bad, msg in [("pi", "takes 'local' or ssh://"), ("ssh://h?pyton=x", "unknown setting"),
                     ("ssh://h:99999", "port"), ("http://h", "takes 'local'")]:
        with pytest.raises(ConfigError, match=msg):
            parse_device(bad)
    with pytest.raises(ConfigError, match="given twice"):
        parse_devices(["ssh://h", "ssh://h"])
    assert compatible("0.1.0", "0.1.7") and not compatible("0.2.0", "0.1.9")
    # 0.2 renamed the worker protocol's "target" to "runtime": a 0.1 device is refused, with the install hint
    import edgesmith

    assert edgesmith.__version__.startswith("0.2.") and not compatible(edgesmith.__version__, "0.1.0")


# ---------------------------------------------------------------------------------------------- over SSH
@needs_sshd
def test_full_remote_bench_measures_on_the_device_and_leaves_nothing(tiny_run, ssh_env, tmp_path):
    cache = tmp_path / "device-cache"
    url = ssh_env.url(cache=cache)
    report, paths = bench(tiny_run.root, BenchConfig(**QUICK), devices=parse_devices([url]))
    (dev,) = report["devices"]
    assert dev["ok"] and dev["reason"] is None and dev["kind"] == "ssh"
    rows = report["results"]
    assert {(r["artifact"], r["batch"]) for r in rows} == {(a, b) for a in ("tflite_fp32", "tflite_int8")
                                                            for b in (1, 8)}
    assert {r["device"] for r in rows} == {dev["name"]}
    assert all(r["top1"] > 0.5 and r["latency_ms"]["p50"] > 0 for r in rows)
    env = dev["environment"]
    for key in ("cpu", "isa", "cores", "os", "python", "versions", "governor", "temperatures_c"):
        assert key in env, key
    assert env["python_executable"] == sys.executable and env["versions"]["edgesmith"]
    # the artifacts and the test split were copied once, under content-hash names
    staged = sorted(p.name for p in (cache / "files").iterdir())
    assert len(staged) == 2 and all(n.endswith(".tflite") for n in staged)
    assert len(list((cache / "data").iterdir())) == 1
    assert_nothing_left(cache)
    md = paths["md"].read_text()
    assert "## Devices" in md and dev["name"] in md and "## On " in md


@needs_sshd
def test_two_devices_one_report_and_compare_across_them(tiny_run, ssh_env, tmp_path):
    cache = tmp_path / "device-cache"
    url = ssh_env.url(cache=cache, name="loopback")
    result = cli.invoke(app, ["bench", str(tiny_run.root), "--device", "local", "--device", url, *QUICK_CLI],
                        env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    data = json.loads((tiny_run.bench / "results.json").read_text())
    assert [d["name"] for d in data["devices"]] == ["local", "loopback"] and all(d["ok"] for d in data["devices"])
    keys = {dev: {(r["artifact"], r["threads"], r["batch"]) for r in data["results"] if r["device"] == dev}
            for dev in ("local", "loopback")}
    assert keys["local"] == keys["loopback"] and len(keys["local"]) == 4
    for d in data["devices"]:
        assert d["environment"]["device"] == d["name"] and d["environment"]["cores"] >= 1
    assert {c["device"] for c in data["comparisons"]} == {"local", "loopback"}
    md = (tiny_run.bench / "report.md").read_text()
    assert "## Side by side" in md and "| local | loopback |" in md.replace(" top-1 |", "")
    header = (tiny_run.bench / "results.csv").read_text().splitlines()[0]
    assert header.startswith("device,")
    # --compare one device of the file against the other
    res = tiny_run.bench / "results.json"
    result = cli.invoke(app, ["bench", "--compare", f"{res}#local", f"{res}#loopback"], env={"COLUMNS": "200"})
    # which rows are slower beyond noise is a timing fact of this machine; the exit code must say what
    # compare_reports found on the same two devices: 4 when something got worse, else 0
    found = compare_reports(select_device(data, "local"), select_device(data, "loopback"))
    assert result.exit_code == (4 if any(not c.better for c in found["changes"]) else 0), result.output
    assert found["compared"] == 4 and "4 rows compared" in result.output
    assert select_device(data, "loopback")["environment"]["device"] == "loopback"
    assert_nothing_left(cache)


@needs_sshd
def test_unreachable_device_is_a_reason_and_strict_makes_it_an_error(tiny_run, ssh_env):
    closed = f"ssh://127.0.0.1:{free_port()}"
    result = cli.invoke(app, ["bench", str(tiny_run.root), "--device", "local", "--device", closed, *QUICK_CLI],
                        env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    data = json.loads((tiny_run.bench / "results.json").read_text())
    local, remote = data["devices"]
    assert local["ok"] and {r["device"] for r in data["results"]} == {"local"}
    assert not remote["ok"] and "\n" not in remote["reason"]
    assert remote["reason"].startswith(f"{closed}: cannot reach it over ssh") and "refused" in remote["reason"]
    assert remote["reason"] in (tiny_run.bench / "report.md").read_text()
    result = cli.invoke(app, ["bench", str(tiny_run.root), "--device", closed, "--strict", *QUICK_CLI])
    assert result.exit_code == 5, result.output
    assert "cannot reach it over ssh" in result.output


@needs_sshd
def test_device_without_edgesmith_says_what_to_install(tiny_run, ssh_env, tmp_path):
    bare = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True)
    report = bench_devices(tiny_run.root, BenchConfig(**QUICK),
                           parse_devices([ssh_env.url(python=f"{bare}/bin/python", cache=tmp_path / "c")]))
    (dev,) = report["devices"]
    assert not dev["ok"] and report["results"] == []
    assert f"edgesmith is not installed for {bare}/bin/python there" in dev["reason"]
    assert f"`{bare}/bin/python -m pip install 'edgesmith~=" in dev["reason"] and "\n" not in dev["reason"]
    missing = bench_devices(tiny_run.root, BenchConfig(**QUICK),
                            parse_devices([ssh_env.url(python="/nonexistent/python3", cache=tmp_path / "c")]))
    assert "cannot run /nonexistent/python3 there" in missing["devices"][0]["reason"]


@needs_sshd
def test_connection_killed_mid_run_keeps_local_results_and_leaves_no_worker(tiny_run, ssh_env, tmp_path):
    cache = tmp_path / "device-cache"
    state = {"remote": False, "killed": []}

    def progress(line: str) -> None:  # kill every SSH session of the device once its timing has begun
        if line.startswith("== device ssh://"):
            state["remote"] = True
        elif state["remote"] and "timing: round 1/" in line and not state["killed"]:
            state["killed"] = ssh_env.children()
            for pid in state["killed"]:
                os.kill(pid, signal.SIGKILL)

    report = bench_devices(tiny_run.root, BenchConfig(**QUICK),
                           parse_devices(["local", ssh_env.url(cache=cache)]), progress)
    assert state["killed"], "the remote timing never started"
    local, remote = report["devices"]
    assert local["ok"] and {r["device"] for r in report["results"]} == {"local"} and len(report["results"]) == 4
    assert not remote["ok"] and "the connection was lost" in remote["reason"] and "\n" not in remote["reason"]
    assert_nothing_left(cache)


@needs_sshd
def test_ctrl_c_leaves_nothing_running_on_the_device(tiny_run, ssh_env, tmp_path):
    cache = tmp_path / "device-cache"
    cmd = [sys.executable, "-c", "from edgesmith.cli import main; main()", "bench", str(tiny_run.root),
           "--device", ssh_env.url(cache=cache), *QUICK_CLI[:-4], "--seconds", "20", "--rounds", "20"]
    # A shell without job control starts background jobs with SIGINT ignored, and children inherit that
    # (a CI launched with `&` or nohup): give the CLI a terminal's default SIGINT, which is what is tested.
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True, cwd=tmp_path, env={**os.environ, "COLUMNS": "200"},
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if "timing: round" in line:
            break
    assert workers_running(str(cache)), "".join(seen)
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: the whole foreground group
    rest, _ = proc.communicate(timeout=60)
    assert proc.returncode != 0, "".join(seen) + rest
    assert_nothing_left(cache)
