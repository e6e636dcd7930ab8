"""The install extras: each installs one ONNX Runtime wheel, [train-gpu] is [train] for CUDA, the README lists them."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = Path(__file__).resolve().parents[1]
EXTRAS = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]


def _name(requirement: str) -> str:
    return re.split(r"[\[<>=~!; ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def test_no_extra_installs_both_onnx_runtime_wheels():
    for extra, reqs in EXTRAS.items():
        names = {_name(r) for r in reqs}
        assert not {"onnxruntime", "onnxruntime-gpu"} <= names, extra


def _pins(reqs: list[str]) -> dict[str, str]:
    """name -> version specifier, without the requirement's own extras."""
    return {_name(r): re.sub(r"^[A-Za-z0-9_.-]+(\[[^\]]*\])?", "", r) for r in reqs}


def test_train_gpu_is_train_with_the_cuda_wheels():
    train, gpu = _pins(EXTRAS["train"]), _pins(EXTRAS["train-gpu"])
    assert gpu.pop("onnxruntime-gpu") == train.pop("onnxruntime")
    assert gpu == train  # the same packages, the same pins
    assert any(r.startswith("tensorflow[and-cuda]") for r in EXTRAS["train-gpu"])


def test_the_readme_lists_every_extra():
    readme = (ROOT / "README.md").read_text()
    for extra in EXTRAS:
        assert re.search(rf"[\[,]{re.escape(extra)}[\],]", readme), extra
