"""Shared fixtures: isolated caches, small image folders, runs to test on, and the test tiers.

Tiers follow the install extras. A test that needs an optional package carries its marker and
is skipped, with the ``pip install`` that fixes it, when the package is missing:

* ``tf`` (``[train]``: TensorFlow): set for everything under ``tests/train`` and
  ``tests/export``, every test using ``trained_run`` or marked ``realdata``, and tests marked
  ``@pytest.mark.tf``. ``pytest -m "not tf"`` is what a device install can run (``make test-notf``).
* ``onnx`` (``[onnx]``: ONNX Runtime): set for parametrized cases on a ``.onnx`` file and tests
  marked ``@pytest.mark.onnx``.
* ``plots`` (``[plots]``: matplotlib): tests marked ``@pytest.mark.plots``.

Runtime and benchmark tests use ``tiny_run``, built from the checked-in model files in
``tests/fixtures/models`` (made by ``tools/make_test_models.py``), so they need no TensorFlow.
"""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

TESTS = Path(__file__).resolve().parent
SHARED_DATA = TESTS.parents[1] / "shared" / "data" / "cifar10-jpeg"
FIXTURE_MODELS = TESTS / "fixtures" / "models"
TF_DIRS = (TESTS / "train", TESTS / "export", TESTS / "optimize" / "test_search.py",
           TESTS / "optimize" / "test_tune.py", TESTS / "optimize" / "test_tune_shared.py")
NO_TF_REASON = "needs TensorFlow (pip install 'edgesmith[train]'); the TF-free tier is `pytest -m 'not tf'`"
# marker -> (the package it needs, the skip reason when that package is missing)
EXTRAS = {
    "tf": ("tensorflow", NO_TF_REASON),
    "onnx": ("onnxruntime", "needs ONNX Runtime (pip install 'edgesmith[onnx]')"),
    "plots": ("matplotlib", "needs matplotlib (pip install 'edgesmith[plots]')"),
}
HAS = {marker: importlib.util.find_spec(module) is not None for marker, (module, _) in EXTRAS.items()}
HAS_TF, HAS_ORT, HAS_MATPLOTLIB = HAS["tf"], HAS["onnx"], HAS["plots"]


def _in_tf_dir(path: Path) -> bool:
    return any(d == path or d in path.parents for d in TF_DIRS)


class _NeedsTensorFlow(pytest.Module):
    """A test module of a TF tier, reported as skipped without importing it (it imports TensorFlow)."""

    def collect(self):
        pytest.skip(NO_TF_REASON, allow_module_level=True)


def pytest_pycollect_makemodule(module_path, parent):
    if not HAS_TF and _in_tf_dir(Path(module_path)):
        return _NeedsTensorFlow.from_parent(parent, path=module_path)
    return None


def _runs_an_onnx_file(item) -> bool:
    """A parametrized case whose parameters name a ``.onnx`` file."""
    params = getattr(getattr(item, "callspec", None), "params", {})
    return any(isinstance(v, str) and v.endswith(".onnx") for v in params.values())


def pytest_collection_modifyitems(config, items):
    for item in items:
        # realdata runs the whole pipeline, training included
        if (_in_tf_dir(Path(item.path)) or "trained_run" in getattr(item, "fixturenames", ())
                or item.get_closest_marker("realdata")):
            item.add_marker(pytest.mark.tf)
        if _runs_an_onnx_file(item):
            item.add_marker(pytest.mark.onnx)
        for marker, (_, reason) in EXTRAS.items():
            if not HAS[marker] and item.get_closest_marker(marker):
                item.add_marker(pytest.mark.skip(reason=reason))
                break


def python_without(blocked: tuple[str, ...], code: str, *, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter in which importing any of the ``blocked`` top-level
    packages fails as if they were not installed (a meta-path finder raising ImportError), so
    a test can check what a smaller install does whatever this venv has."""
    blocker = textwrap.dedent(f"""
        import importlib.abc, sys
        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in {tuple(blocked)!r}:
                    raise ImportError(f"{{name}} is not installed (blocked by test)")
        sys.meta_path.insert(0, Block())
    """)
    return subprocess.run([sys.executable, "-c", blocker + textwrap.dedent(code)], capture_output=True, check=False,
                          text=True, timeout=timeout, env={**os.environ, "COLUMNS": "200"},
                          cwd=TESTS)  # not the repository root, whose edgesmith/ would shadow an installed one


@pytest.fixture(autouse=True, scope="session")
def _isolated_caches(tmp_path_factory):
    """Decoded-dataset and Keras caches live in a temp dir, never the user's home."""
    cache = tmp_path_factory.mktemp("cache")
    old = {k: os.environ.get(k) for k in ("EDGESMITH_CACHE", "KERAS_HOME")}
    os.environ["EDGESMITH_CACHE"] = str(cache / "edgesmith")
    os.environ["KERAS_HOME"] = str(cache / "keras")
    yield
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def write_image_folders(root: Path, *, classes=("cat", "dog", "frog"), per_class=(6, 3),
                        size=(32, 32), fmt="png") -> Path:
    """Make ``root/{train,test}/<class>/NNNN.<fmt>`` with distinct solid-ish colours per class."""
    rng = np.random.default_rng(0)
    for split, n in zip(("train", "test"), per_class):
        for c, name in enumerate(classes):
            d = root / split / name
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                base = np.full((*size[::-1], 3), 40 + 80 * c, dtype=np.int16)
                img = np.clip(base + rng.integers(-20, 20, base.shape), 0, 255).astype(np.uint8)
                Image.fromarray(img).save(d / f"{i:04d}.{fmt}")
    return root


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
    """A cnn trained 4 epochs on synthetic data, then exported (shared by many tests)."""
    from edgesmith.core.data import DataSpec
    from edgesmith.export import export
    from edgesmith.train import TrainConfig, train

    out = tmp_path_factory.mktemp("runs") / "synthetic-cnn"
    config = TrainConfig(DataSpec("synthetic", limit_train=1500, limit_test=300), model="cnn",
                         epochs=4, batch_size=64, quiet=True)
    run = train(config, out)
    export(run.root)
    return run


def tiny_models() -> dict:
    """``tests/fixtures/models/models.json``: dataset, Keras model and export records of the fixture files."""
    return json.loads((FIXTURE_MODELS / "models.json").read_text())


@pytest.fixture
def tiny_run(tmp_path_factory):
    """A trained + exported run built from the checked-in fixture models, without TensorFlow.

    A tiny CNN (``tools/make_test_models.py``) on ``DataSpec("synthetic", limit_train=1500,
    limit_test=300)``: ``model.keras``, the four standard artifacts in ``artifacts/`` and a
    real manifest (dataset, model, train and export stages, sha256 of every file). A fresh
    copy per test, so a test may write into it.
    """
    from edgesmith.core.fsutil import sha256_file
    from edgesmith.core.rundir import RunDir, file_record
    from edgesmith.core.stages import ExportStage, TrainStage, create_run_manifest, record_stage

    info = tiny_models()
    run = RunDir(tmp_path_factory.mktemp("tiny") / info["run"])
    run.artifacts.mkdir(parents=True)
    shutil.copy(FIXTURE_MODELS / info["model"]["file"], run.model)
    model = {**info["model"], **file_record(run.model, info["model"]["file"])}
    train = info["train"]
    create_run_manifest(run, info["run"], dataset=info["dataset"], model=model,
                        record=TrainStage(config=train["config"], precision_policy=train["precision_policy"],
                                          metrics=train["metrics"]))
    artifacts = []
    for rec in info["artifacts"]:
        path = Path(shutil.copy(FIXTURE_MODELS / rec["file"], run.artifacts / rec["file"]))
        if sha256_file(path) != rec["sha256"]:
            raise RuntimeError(f"{FIXTURE_MODELS / rec['file']} differs from models.json: rerun tools/make_test_models.py")
        fields = {k: v for k, v in rec.items() if k not in ("file", "sha256", "bytes")}
        artifacts.append(file_record(path, f"{run.artifacts.name}/{rec['file']}", **fields))
    export = info["export"]
    record_stage(run, ExportStage(config=export["config"], sources=export["sources"]), artifacts=artifacts)
    return run


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    """A real OpenSSH server on 127.0.0.1 (:class:`ssh_server.Sshd`), for the tests that bench over SSH."""
    from ssh_server import SSHD, Sshd

    if not SSHD.exists():
        pytest.skip("needs /usr/sbin/sshd (apt-get install -y openssh-server)")
    server = Sshd(tmp_path_factory.mktemp("sshd"))
    yield server
    server.proc.terminate()
    server.proc.wait(timeout=10)


@pytest.fixture
def ssh_env(sshd, monkeypatch):
    """:func:`sshd`, with ``EDGESMITH_SSH_OPTIONS`` pointing ssh at its client config."""
    monkeypatch.setenv("EDGESMITH_SSH_OPTIONS", sshd.options)
    return sshd


# The int8 probe the CPU-view tools (tools/as_avx2.sh, tools/as_arm64.sh) are tested with.
INT8_PROBE_K = 64  # K, products per output: K / 2 pair sums for AVX2's vpmaddubsw

# argv: the model file. Computes the MatMulInteger result y, then runs the print line; re-runs itself once
# through sys.executable (as the bench starts its workers), so a child Python prints it too.
_INT8_PROBE = """
import platform, subprocess, sys
import numpy as np, onnxruntime as ort
from edgesmith.core.cpuinfo import cpu_info
from edgesmith.export.targets import detect_target

s = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
k = s.get_inputs()[0].shape[1]
y = int(s.run(None, {"A": np.full((1, k), 255, np.uint8)})[0][0, 0])
"""
_INT8_PROBE_CHILD = """
if len(sys.argv) == 2:
    sys.exit(subprocess.run([sys.executable, *sys.orig_argv[1:], "child"]).returncode)
"""


class Int8Probe:
    """``probe(print_line) -> [probe.py, model.onnx]``: a probe script (given the line that prints
    what it saw, with ``y``, ``platform``, ``cpu_info`` and ``detect_target`` in scope) and the
    ``(1, K) uint8 x (K, 1) int8 -> int32`` MatMulInteger it runs, every weight 127.

    ``exact`` is what exact int8 kernels (VNNI, AMX, Arm) return; ``saturated`` what AVX2's U8S8
    kernel returns: each of the K / 2 pair sums, 2 x 255 x 127 = 64,770, clipped to int16.
    """

    exact = 255 * 127 * INT8_PROBE_K
    saturated = (INT8_PROBE_K // 2) * 32767

    def __init__(self, model: Path):
        self.model = model

    def __call__(self, print_line: str) -> list[str]:
        probe = self.model.with_name("probe.py")
        probe.write_text(_INT8_PROBE + print_line + "\n" + _INT8_PROBE_CHILD)
        return [str(probe), str(self.model)]


@pytest.fixture
def int8_probe(tmp_path) -> Int8Probe:
    """An :class:`Int8Probe` writing into ``tmp_path``."""
    pytest.importorskip("onnxruntime", reason="needs ONNX Runtime (pip install 'edgesmith[onnx]')")
    pytest.importorskip("onnx", reason="the probe model is built with onnx (pip install 'edgesmith[train]')")
    from onnx import TensorProto, helper, numpy_helper, save

    model = tmp_path / "matmul.onnx"
    b = numpy_helper.from_array(np.full((INT8_PROBE_K, 1), 127, np.int8), "B")
    g = helper.make_graph([helper.make_node("MatMulInteger", ["A", "B"], ["Y"])], "g",
                          [helper.make_tensor_value_info("A", TensorProto.UINT8, [1, INT8_PROBE_K])],
                          [helper.make_tensor_value_info("Y", TensorProto.INT32, [1, 1])], [b])
    save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), str(model))
    return Int8Probe(model)
