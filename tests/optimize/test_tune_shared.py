"""edgesmith tune --storage: one study in a real PostgreSQL server, shared by worker processes.

The server is a throwaway cluster (tests/pg_server.py). Trials are tiny (a cnn on 200 synthetic
images, 1 epoch); heartbeats every second, a trial silent for 2 s is failed and retried.
"""
import json
import os
import signal
import subprocess
import sys
import time

import optuna
import pytest
from pg_server import pg_server  # noqa: F401  (the module-scoped fixture)
from typer.testing import CliRunner

from edgesmith.cli import app
from edgesmith.optimize import tune_report
from edgesmith.optimize import tune_storage as ts

runner = CliRunner()
STUDY = ["--data", "synthetic", "--limit-train", "200", "--limit-test", "60", "--model", "cnn", "--epochs", "1",
         "--val-split", "0.2", "--search", "lr,batch_size", "--pruner", "none", "--budget", "5m"]


def _one_line_error(result, match: str):
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and match in lines[0], result.output


def _worker(url, study, out, artifacts, trials):
    """``edgesmith tune`` in its own process (its pid is the worker's, as the trials table shows it)."""
    argv = [sys.executable, "-c", "from edgesmith.cli import main; main()", "tune", *STUDY, "--storage", url,
            "--study", study, "--artifacts", str(artifacts), "--out", str(out), "--trials", str(trials),
            "--heartbeat", "1", "--grace", "2"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1"}
    return subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _running(study, proc):
    """The trial ``proc`` is running now, or None (it exits: AssertionError with its output)."""
    if proc.poll() is not None:
        raise AssertionError(f"worker exited early ({proc.returncode}):\n{proc.stdout.read()}")
    mine = f"{ts.worker_name().split(':')[0]}:{proc.pid}"
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        if t.user_attrs.get("worker") == mine:
            return t
    return None


def _wait_running(study, proc, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        trial = _running(study, proc)
        if trial is not None:
            return trial
        time.sleep(0.1)
    raise AssertionError("worker never started a trial")


def test_two_workers_share_a_study_and_a_killed_workers_trial_is_failed_and_retried(pg_server, tmp_path):
    url, artifacts = pg_server.url(), tmp_path / "artifacts"
    a = _worker(url, "shared", tmp_path / "a", artifacts, trials=100)  # runs until it is killed
    b = None
    try:
        study = optuna.load_study(study_name="shared", storage=_wait_storage(url, a))
        _wait_running(study, a)
        # B asks for 5 more trials after the kill: the last ones come well after the 2 s grace period
        b = _worker(url, "shared", tmp_path / "b", artifacts, trials=6)
        _wait_running(study, b)
        killed = _wait_running(study, a)  # both run a trial now; kill A in the middle of its own
        a.send_signal(signal.SIGKILL)
        a.wait()
        out, _ = b.communicate(timeout=180)
    finally:
        for p in (a, b):
            if p is not None and p.poll() is None:
                p.kill()
    assert b.returncode == 0, out
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    assert trials[killed.number].state == optuna.trial.TrialState.FAIL  # never left RUNNING
    retries = [t for t in trials.values() if t.system_attrs.get("failed_trial") == killed.number]
    assert len(retries) == 1 and retries[0].params == killed.params
    assert retries[0].state == optuna.trial.TrialState.COMPLETE and retries[0].user_attrs["note"] == "retry"
    assert retries[0].user_attrs["worker"].endswith(f":{b.pid}")
    assert not [t for t in trials.values() if t.state == optuna.trial.TrialState.RUNNING]
    assert {t.user_attrs["worker"].rsplit(":", 1)[1] for t in trials.values()} == {str(a.pid), str(b.pid)}
    # B's reports read the shared study: A's trials are in its table, the baseline was queued once
    rows = tune_report.trial_rows(study)
    assert [r["note"] for r in rows].count("baseline") == 1
    md = (tmp_path / "b" / "trials.md").read_text()
    assert md.count("\n") == 2 + len(rows) and f":{a.pid}" in md and "| worker |" in md
    best = json.loads((tmp_path / "b" / "best.json").read_text())
    assert best["trial"] == study.best_trial.number and best["value"] == study.best_value
    assert {"model.keras", "manifest.json"} <= set(best["artifacts"])
    # the best run reaches any machine through the artifact store: a fresh --out downloads it
    fresh = tmp_path / "elsewhere"
    fresh.mkdir()
    ts.sync_best(study, fresh, ts.artifact_store(str(artifacts)))
    manifest = json.loads((fresh / "best-run" / "manifest.json").read_text())
    import hashlib

    assert hashlib.sha256((fresh / "best-run" / "model.keras").read_bytes()).hexdigest() == manifest["model"]["sha256"]
    assert ts.best_run_trial(fresh) == study.best_trial.number


def _wait_storage(url, proc, timeout=120):
    """The storage, once ``proc`` has created the study in it."""
    storage = optuna.storages.RDBStorage(url)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(s.study_name == "shared" for s in optuna.get_all_study_summaries(storage)):
            return storage
        if proc.poll() is not None:
            raise AssertionError(f"worker exited early ({proc.returncode}):\n{proc.stdout.read()}")
        time.sleep(0.2)
    raise AssertionError("the study was never created")


def test_joining_needs_only_the_storage_and_refuses_other_options(pg_server, tmp_path):
    url = pg_server.url()
    r = runner.invoke(app, ["tune", "--storage", url, "--study", "nobody-made-it", "--out", str(tmp_path / "j")])
    _one_line_error(r, "no study 'nobody-made-it'")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    from edgesmith.optimize import tune as tn

    config = tn.TuneConfig(tn.TrainConfig.from_dict(_base_dict()), ("lr",), 60)
    tn._open_study(optuna, config, tmp_path / "x", None, ts.StudyStorage(url, "other"))
    joined = tn.load_shared_config(ts.StudyStorage(url, "other"), budget_s=30)
    assert joined.study_dict() == config.study_dict() and joined.budget_s == 30
    r = runner.invoke(app, ["tune", *STUDY, "--storage", url, "--study", "other", "--out", str(tmp_path / "o")])
    _one_line_error(r, "searches with other options")


@pytest.mark.parametrize("locked", [True, False])
def test_two_workers_opening_a_new_study_at_once_queue_one_baseline(pg_server, tmp_path, monkeypatch, locked):
    """Both openers count the trials, then create the study, then queue the baseline; a 1 s pause after
    the count makes them overlap every time. With the advisory lock the second waits and finds the first's
    baseline; without it (the control) both queue one."""
    import contextlib
    import threading

    from edgesmith.optimize import tune as tn

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url, name = pg_server.url(), f"race-{locked}"
    config = tn.TuneConfig(tn.TrainConfig.from_dict(_base_dict()), ("lr",), 60)
    real = optuna.create_study

    def slow_create(*a, **kw):
        time.sleep(1.0)
        return real(*a, **kw)

    monkeypatch.setattr(optuna, "create_study", slow_create)
    if not locked:
        monkeypatch.setattr(ts, "creation_lock", lambda storage, backend: contextlib.nullcontext())
    errors = []

    def open_it(i):
        try:
            tn._open_study(optuna, config, tmp_path / f"w{i}", None, ts.StudyStorage(url, name), worker=i)
        except Exception as e:  # noqa: BLE001 (reported below)
            errors.append(e)

    threads = [threading.Thread(target=open_it, args=(i,)) for i in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    trials = optuna.load_study(study_name=name, storage=url).get_trials(deepcopy=False)
    baselines = [t for t in trials if t.user_attrs.get("note") == "baseline"]
    assert len(baselines) == (1 if locked else 2)


def _base_dict():
    from edgesmith.core.data import DataSpec
    from edgesmith.train.config import TrainConfig

    return TrainConfig(DataSpec("synthetic", limit_train=300), model="cnn", epochs=1, val_split=0.2).to_dict()


def test_wrong_credentials_are_a_one_line_error_without_the_password(pg_server, tmp_path):
    r = runner.invoke(app, ["tune", *STUDY, "--storage", pg_server.url("not-the-password"), "--out",
                            str(tmp_path / "t")])
    _one_line_error(r, "password authentication failed")
    assert "not-the-password" not in r.output and "***" in r.output


def test_an_unreachable_database_is_a_one_line_error(pg_server, tmp_path):
    from pg_server import _free_port

    r = runner.invoke(app, ["tune", *STUDY, "--storage", pg_server.url(port=_free_port()), "--out",
                            str(tmp_path / "t")])
    _one_line_error(r, "cannot open the study storage")


@pytest.mark.parametrize("argv, match", [
    (["--storage", "postgres-without-scheme"], "database URL"),
    (["--study", "s"], "need --storage"),
    (["--storage", "sqlite:///x.db", "--artifacts", "s3://bucket/tune"], "not supported yet"),
    (["--storage", "sqlite:///x.db", "--heartbeat", "10", "--grace", "5"], "shorter than the grace"),
    (["--workers", "0"], "--workers"),
])
def test_bad_shared_study_options_are_one_line_errors(argv, match, tmp_path):
    _one_line_error(runner.invoke(app, ["tune", *STUDY, *argv, "--out", str(tmp_path / "t")]), match)


def test_workers_run_as_processes_on_one_journal_study(tmp_path):
    from edgesmith.core.data import DataSpec
    from edgesmith.optimize import tune as tn
    from edgesmith.train.config import TrainConfig

    base = TrainConfig(DataSpec("synthetic", limit_train=200, limit_test=60), model="cnn", epochs=1, val_split=0.2)
    out = tmp_path / "w"
    result = tn.tune(tn.TuneConfig(base, ("lr",), 600, pruner="none", max_trials=3), out, workers=2,
                     log=lambda line: None)
    assert result.ran == 3 and result.stopped == "trials"  # --trials is split 2 + 1
    assert [r["state"] for r in result.rows] == ["complete"] * 3 and result.rows[0]["note"] == "baseline"
    pids = {r["worker"].rsplit(":", 1)[1] for r in result.rows}
    assert len(pids) == 2 and str(os.getpid()) not in pids  # two processes, neither of them this one
    record = json.loads((out / "tune.json").read_text())
    assert [(s["workers"], s["trials"]) for s in record["sessions"]] == [(2, 3)]
    assert ts.best_run_trial(out) == result.best["trial"] and (out / "best-run" / "manifest.json").is_file()
    assert result.best["run"] == "best-run" and not (out / "trials").exists()
