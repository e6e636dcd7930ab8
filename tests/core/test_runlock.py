"""One writer per run directory: a second writer waits (saying for whom) or gives up, a killed
holder does not wedge the run, readers never wait, and two writers' records both land."""
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from edgesmith.core.errors import RunLockedError
from edgesmith.core.rundir import load_manifest, verify_file
from edgesmith.core.runlock import INFO_NAME, LOCK_NAME, holder, run_lock
from edgesmith.core.stages import BenchStage, record_stage

ROOT = Path(__file__).resolve().parents[2]

# argv: run, what, ready file, seconds, then what to do while holding: "sleep", "export" (re-write
# artifacts/model_fp32.tflite with its own bytes and record an export of it) or "replace" (move
# the run aside and put a copy in its place, as train/import --overwrite do)
HOLDER = textwrap.dedent("""
    import shutil, sys, time
    from pathlib import Path
    from edgesmith.core.fsutil import atomic_path
    from edgesmith.core.rundir import RunDir, file_record, load_manifest
    from edgesmith.core.runlock import run_lock
    from edgesmith.core.stages import ExportStage, record_stage

    run, what, ready, seconds, action = sys.argv[1:6]
    with run_lock(run, what=what):
        Path(ready).write_text("held")
        time.sleep(float(seconds))
        if action == "export":
            r = RunDir(run)
            f = r.artifacts / "model_fp32.tflite"
            with atomic_path(f) as tmp:
                tmp.write_bytes(f.read_bytes())
            old = next(a for a in load_manifest(r)["artifacts"] if a["file"] == "artifacts/model_fp32.tflite")
            fields = {k: v for k, v in old.items() if k not in ("file", "sha256", "bytes")}
            record_stage(r, ExportStage(config={"by": "holder"}, sources={}),
                         artifacts=[file_record(f, "artifacts/model_fp32.tflite", **fields)])
        elif action == "replace":
            shutil.copytree(run, run + ".new", ignore=shutil.ignore_patterns(".edgesmith.lock*"))
            Path(run).rename(run + ".old")
            Path(run + ".new").rename(run)
""")


def _hold(tmp_path, run, *, what="export", seconds=30.0, action="sleep") -> subprocess.Popen:
    """Start a process that takes ``run``'s lock, then does ``action``; returns once it holds it."""
    script = tmp_path / "holder.py"
    script.write_text(HOLDER)
    ready = tmp_path / f"ready-{time.monotonic_ns()}"
    proc = subprocess.Popen([sys.executable, str(script), str(run), what, str(ready), str(seconds), action],
                            cwd=ROOT, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not ready.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"the holder did not take the lock: {proc.communicate()[1]}")
        time.sleep(0.02)
    return proc


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=30)


@pytest.fixture
def run(tmp_path):
    r = tmp_path / "run"
    r.mkdir()
    return r


def test_a_second_writer_says_who_holds_the_run_and_waits_for_it(tmp_path, run):
    proc = _hold(tmp_path, run, seconds=1.0)
    said = []
    with run_lock(run, what="bench", wait_s=60, on_wait=said.append):
        assert proc.wait(timeout=30) == 0
        info = json.loads((run / INFO_NAME).read_text())
        assert info["pid"] == os.getpid() and info["what"] == "bench"
    assert len(said) == 1
    assert re.fullmatch(rf"waiting for the lock on {re.escape(str(run.resolve()))} \(held by pid {proc.pid}, "
                        r"python\S* holder\.py \(export\), since \d\d:\d\d:\d\d\)\.\.\.", said[0]), said[0]
    assert not (run / INFO_NAME).exists() and (run / LOCK_NAME).exists()


def test_a_writer_that_waited_too_long_gets_one_line_naming_the_holder(tmp_path, tiny_run, monkeypatch):
    run = tiny_run.root
    proc = _hold(tmp_path, run)
    try:
        monkeypatch.setenv("EDGESMITH_LOCK_TIMEOUT", "0.3")  # the default wait, as a user would set it
        with pytest.raises(RunLockedError) as e:
            with run_lock(run, on_wait=lambda m: None):
                pass
        msg = str(e.value)
        assert "\n" not in msg and f"held by pid {proc.pid}" in msg and "gave up after 0.3 s" in msg
        monkeypatch.setenv("EDGESMITH_LOCK_TIMEOUT", "0")
        with pytest.raises(RunLockedError, match="gave up at once"):
            record_stage(tiny_run, BenchStage())  # the library's own writers lock too
    finally:
        _stop(proc)


def test_a_killed_holder_does_not_wedge_the_run(tmp_path, run):
    proc = _hold(tmp_path, run)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert json.loads((run / INFO_NAME).read_text())["pid"] == proc.pid  # left behind by the kill
    assert holder(run) is None  # ... and recognised as stale
    said = []
    with run_lock(run, wait_s=0, on_wait=said.append):  # at once: the OS released the flock
        assert json.loads((run / INFO_NAME).read_text())["pid"] == os.getpid()
    assert said == []


def test_the_lock_is_reentrant_and_follows_a_run_replaced_while_waiting(tmp_path, run):
    with run_lock(run, wait_s=0) as root:
        with run_lock(run, wait_s=0):  # e.g. record_stage inside export
            assert root == run.resolve()
        assert (run / INFO_NAME).exists()
    (run / "manifest.json").write_text("{}")
    proc = _hold(tmp_path, run, seconds=0.5, action="replace")
    with run_lock(run, wait_s=60, on_wait=lambda m: None):
        assert proc.wait(timeout=30) == 0
        # the lock taken is the new directory's, not the one moved aside
        assert (run / LOCK_NAME).exists() and json.loads((run / INFO_NAME).read_text())["pid"] == os.getpid()


def test_readers_do_not_wait_for_a_writer(tmp_path, tiny_run, monkeypatch):
    from edgesmith.runtime import load

    monkeypatch.setenv("EDGESMITH_LOCK_TIMEOUT", "0")  # a reader that took the lock would fail, not hang
    proc = _hold(tmp_path, tiny_run.root)
    try:
        manifest = load_manifest(tiny_run)
        for a in manifest["artifacts"]:
            verify_file(tiny_run, a)
        tflite = next(a for a in manifest["artifacts"] if a["file"].endswith("model_fp32.tflite"))
        probs = load(tiny_run.root / tflite["file"]).predict(np.zeros((2, 32, 32, 3), np.uint8))
        assert probs.shape == (2, len(manifest["dataset"]["class_names"]))
        assert holder(tiny_run.root)["pid"] == proc.pid
    finally:
        _stop(proc)


# argv: run, stage (export or bench), count. Each export adds one artifact; each bench one report.
WRITER = textwrap.dedent("""
    import sys
    from edgesmith.core.rundir import RunDir, file_record
    from edgesmith.core.stages import BenchStage, ExportStage, record_stage

    run, stage, n = RunDir(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    for i in range(n):
        if stage == "export":
            f = run.artifacts / f"extra_{i}.onnx"
            f.write_bytes(b"%d" % i)
            record_stage(run, ExportStage(config={"i": i}, sources={}),
                         artifacts=[file_record(f, f"artifacts/{f.name}", name=f"extra_{i}", source="base")])
        else:
            record_stage(run, BenchStage(reports=[f"bench/results_{i}.json"]))
""")


def test_two_writers_racing_on_one_run_both_land_in_the_manifest(tmp_path, tiny_run):
    """Each record_stage re-reads the manifest under the lock: no record undoes the other's."""
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    before = {a["name"] for a in load_manifest(tiny_run)["artifacts"]}
    n = 12
    procs = [subprocess.Popen([sys.executable, str(script), str(tiny_run.root), stage, str(n)], cwd=ROOT)
             for stage in ("export", "bench")]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    manifest = load_manifest(tiny_run)
    assert {a["name"] for a in manifest["artifacts"]} == before | {f"extra_{i}" for i in range(n)}
    assert {"export", "bench"} <= set(manifest["stages"])
    for a in manifest["artifacts"]:
        verify_file(tiny_run, a)


def test_an_export_and_a_bench_started_together_leave_both_stages(tmp_path, tiny_run, capfd):
    """A real bench started while an export holds the run waits, says so, then measures the new files."""
    from edgesmith.benchmarks import bench
    from edgesmith.benchmarks.suite import BenchConfig

    proc = _hold(tmp_path, tiny_run.root, seconds=0.5, action="export")
    config = BenchConfig(runtimes=("litert-cpu",), threads=(1,), batches=(1,), runs=10, warmup=1, seconds=0.2,
                         rounds=2)
    report, paths = bench(tiny_run, config, plot=False)
    assert proc.wait(timeout=60) == 0
    assert f"waiting for the lock on {tiny_run.root.resolve()} (held by pid {proc.pid}" in capfd.readouterr().err
    manifest = load_manifest(tiny_run)
    assert manifest["stages"]["export"]["config"] == {"by": "holder"}  # the export's record ...
    assert manifest["stages"]["bench"]["reports"] and "stale" not in manifest["stages"]["bench"]  # ... and the bench's
    assert {r["artifact"] for r in report["results"]} == {a["name"] for a in manifest["artifacts"]
                                                         if a["file"].endswith(".tflite")}
    for a in manifest["artifacts"]:
        verify_file(tiny_run, a)
