"""Distribution on CPU stand-ins, and kill-and-resume, each in fresh subprocesses.

Logical CPU devices and multi-worker collectives must be configured before TensorFlow
starts, so these runs cannot share the pytest process.
"""
import json
import os
import socket
import subprocess
import sys
import textwrap

import pytest

from edgesmith.core.rundir import RunDir, load_manifest

PY = sys.executable
TRAIN = """
from edgesmith.core.data import DataSpec
from edgesmith.train import TrainConfig, train
config = TrainConfig(DataSpec("synthetic", limit_train=640, limit_test=200), model="cnn", epochs={epochs},
                     batch_size=32, val_split=0, quiet=True, tensorboard=False, strategy={strategy!r})
"""
# A hard crash (SIGKILL) after step 4 of epoch 3; in a multi-worker run every worker dies there.
# Workers first meet at a file barrier in ``barrier``: a worker can return from a step while
# its peer still pulls that step's all-reduce buffer from it, and killing it then fails the
# peer with "Socket closed" (exit 1) instead of the crash under test.
CRASH = """
import json, os, pathlib, signal, time
from edgesmith.tfshim import keras

class Crash(keras.callbacks.Callback):
    def __init__(self, barrier=None):
        super().__init__()
        self.barrier = barrier and pathlib.Path(barrier)
    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch
    def on_train_batch_end(self, batch, logs=None):
        if self.epoch == 2 and batch == 3:
            if self.barrier:
                cluster = json.loads(os.environ["TF_CONFIG"])
                (self.barrier / str(cluster["task"]["index"])).touch()
                deadline = time.monotonic() + 60
                while (len(list(self.barrier.iterdir())) < len(cluster["cluster"]["worker"])
                       and time.monotonic() < deadline):
                    time.sleep(0.05)
            os.kill(os.getpid(), signal.SIGKILL)
"""


def _env(**extra):
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    env.update(TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="", **extra)
    return env


def _run(code: str, timeout: float = 120, **env):
    return subprocess.run([PY, "-c", code], env=_env(**env), capture_output=True, text=True,
                          timeout=timeout)


def test_mirrored_strategy_over_two_logical_cpus(tmp_path):
    """A ResNet-8 with progressive resizing (1 epoch at 16 px, then 32 px) and 4 steps per
    tf.function call under MirroredStrategy."""
    out = tmp_path / "run"
    code = textwrap.dedent("""
    import dataclasses
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    """) + TRAIN.format(epochs=3, strategy="mirrored") + textwrap.dedent(f"""
    config = dataclasses.replace(config, model="resnet8", low_res_epochs=1, low_res=16, steps_per_execution=4)
    train(config, {str(out)!r})
    """)
    p = _run(code)
    assert p.returncode == 0, p.stderr[-3000:]
    m = json.loads((out / "metrics.json").read_text())
    assert (m["strategy"], m["replicas"], m["global_batch"], m["epochs"]) == ("mirrored", 2, 64, 3)
    assert m["peak_lr"] == pytest.approx(2 * 3e-3)  # linear scaling rule
    assert m["top1"] > 0.3  # 10 classes: chance is 0.1
    config = load_manifest(RunDir(out))["stages"]["train"]["config"]
    assert (config["model"], config["low_res_epochs"], config["low_res"], config["steps_per_execution"]) == \
        ("resnet8", 1, 16, 4)


def _free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _workers(code: str, n: int = 2, timeout: float = 150, cwds=None) -> list[tuple[subprocess.Popen, str, str]]:
    """Run ``code`` as ``n`` MultiWorkerMirroredStrategy workers on loopback, worker ``i`` in
    ``cwds[i]`` if given; (process, stdout, stderr) each."""
    workers = [f"127.0.0.1:{p}" for p in _free_ports(n)]
    procs = []
    for i in range(n):
        tf_config = json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": i}})
        procs.append(subprocess.Popen([PY, "-c", code], env=_env(TF_CONFIG=tf_config), cwd=cwds and cwds[i],
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    try:
        return [(p, *p.communicate(timeout=timeout)) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()


def test_two_workers_on_loopback_train_one_model(tmp_path):
    out = tmp_path / "run"
    code = TRAIN.format(epochs=2, strategy="auto") + f"""
run = train(config, {str(out)!r})
print("RESULT", None if run is None else str(run.root))
"""
    results = _workers(code)
    for p, _, stderr in results:
        assert p.returncode == 0, stderr[-3000:]
    assert f"RESULT {out}" in results[0][1] and "RESULT None" in results[1][1]  # only the chief writes
    m = json.loads((out / "metrics.json").read_text())
    assert (m["strategy"], m["workers"], m["replicas"], m["global_batch"]) == ("multiworker", 2, 2, 64)
    assert m["epochs"] == 2 and m["top1"] > 0.2
    assert not (tmp_path / "run.partial-worker1").exists() and not (tmp_path / "run.partial").exists()


def test_a_killed_run_resumes_to_the_full_epoch_count(tmp_path):
    from typer.testing import CliRunner

    from edgesmith.cli import app
    from edgesmith.train.checkpoint import read_state, work_dir

    out = tmp_path / "run"
    code = TRAIN.format(epochs=4, strategy="none") + CRASH + f"train(config, {str(out)!r}, callbacks=[Crash()])\n"
    p = _run(code)
    assert p.returncode == -9, p.stderr[-3000:]
    assert not out.exists()
    state = read_state(work_dir(out))
    assert state["epoch"] == 2

    result = CliRunner().invoke(app, ["train", "--resume", str(out)])
    assert result.exit_code == 0, result.output
    assert "4 epochs" in result.output
    m = json.loads((out / "metrics.json").read_text())
    assert m["epochs"] == 4 and m["top1"] > 0.5
    rows = (out / "history.csv").read_text().splitlines()
    assert len(rows) == 5 and rows[1].startswith("1,")  # header + epochs 1-4, the first two from before the crash
    assert float(rows[1].split(",")[1]) == pytest.approx(state["history"]["loss"][0], rel=1e-4)
    load_manifest(RunDir(out))
    assert not work_dir(out).exists()
    again = CliRunner().invoke(app, ["train", "--resume", str(out)])
    assert again.exit_code == 1 and "already complete" in again.output


def test_a_killed_two_worker_run_resumes_on_both_workers(tmp_path):
    """Both workers die mid-epoch 3 of 4; `edgesmith train --resume run` on both finishes the run.
    Each worker runs in a directory of its own, as on two machines without a shared filesystem."""
    from edgesmith.train.checkpoint import read_state, work_dir

    machines = [tmp_path / "machine0", tmp_path / "machine1"]
    for d in machines:
        d.mkdir()
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    crash = TRAIN.format(epochs=4, strategy="auto") + CRASH + f"train(config, 'run', callbacks=[Crash({str(barrier)!r})])\n"
    for p, _, stderr in _workers(crash, cwds=machines):
        assert p.returncode == -9, stderr[-3000:]
    assert sorted(p.name for p in tmp_path.glob("machine*/*")) == ["run.partial", "run.partial-worker1"]
    assert [read_state(work_dir(d / "run", i))["epoch"] for i, d in enumerate(machines)] == [2, 2]

    resume = "from edgesmith.cli import app\napp(['train', '--resume', 'run'])\n"  # exits with the CLI's code
    for p, _, stderr in _workers(resume, cwds=machines):
        assert p.returncode == 0, stderr[-3000:]
    out = machines[0] / "run"
    m = json.loads((out / "metrics.json").read_text())
    assert (m["strategy"], m["workers"], m["epochs"]) == ("multiworker", 2, 4) and m["top1"] > 0.2
    assert len((out / "history.csv").read_text().splitlines()) == 5  # header + epochs 1-4
    assert sorted(p.name for p in tmp_path.glob("machine*/*")) == ["run"]  # work directories removed
