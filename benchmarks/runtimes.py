"""Bench runtimes (a runtime with its execution provider or delegate): which exist, which this
machine can run, and why not.

=============  ==========  ==================================================================
runtime        artifacts   runs with
=============  ==========  ==================================================================
litert-cpu     .tflite     LiteRT interpreter (XNNPACK delegate) on the CPU
ort-cpu        .onnx       ONNX Runtime, CPUExecutionProvider
ort-cuda       .onnx       ONNX Runtime, CUDAExecutionProvider (onnxruntime-gpu + NVIDIA GPU)
ort-tensorrt   .onnx       ONNX Runtime, TensorrtExecutionProvider (+ TensorRT libraries)
keras-cpu      model.keras the trained tf_keras model (reference), TensorFlow on the CPU
keras-gpu      model.keras the same on a GPU TensorFlow can see
tflm           .tflite     TFLite Micro on this host (``[mcu]``), the Cortex-M file only: accuracy
                           only, its x86 time is not a device time and is not reported
=============  ==========  ==================================================================

``tflm`` too is measured only when asked for by name (or with ``all``): one pass over the test
split at a few ms per image. Keras runtimes are the training framework, not a deployment target: they are measured only
when asked for by name (or with ``all``), always in a child process, so the benchmark
process itself never imports TensorFlow. Detection here never imports TensorFlow either
(``importlib.util.find_spec`` only); a GPU runtime that passes detection can still fall back
to the CPU when its libraries fail to load, which the worker reports as a skip.
"""
from __future__ import annotations

import importlib.metadata
import importlib.util
from dataclasses import dataclass

from edgesmith.core.errors import ConfigError

RUNTIMES = ("litert-cpu", "ort-cpu", "ort-cuda", "ort-tensorrt", "keras-cpu", "keras-gpu", "tflm")
RUNTIME_FORMAT = {"litert-cpu": "tflite", "ort-cpu": "onnx", "ort-cuda": "onnx", "ort-tensorrt": "onnx",
                 "keras-cpu": "keras", "keras-gpu": "keras", "tflm": "tflite"}
# Runtimes that measure accuracy only: their time on this machine is not the time of the device they stand for.
ACCURACY_ONLY = frozenset({"tflm"})
GPU_RUNTIMES = frozenset({"ort-cuda", "ort-tensorrt", "keras-gpu"})
ORT_PROVIDER = {"ort-cpu": "CPUExecutionProvider", "ort-cuda": "CUDAExecutionProvider",
                "ort-tensorrt": "TensorrtExecutionProvider"}
# Named groups: the CLI's --device-kind, and names inside --runtime.
GROUPS = {"cpu": ("litert-cpu", "ort-cpu"), "gpu": ("ort-cuda", "ort-tensorrt"),
          "auto": ("litert-cpu", "ort-cpu", "ort-cuda", "ort-tensorrt"), "all": RUNTIMES}


@dataclass(frozen=True)
class RuntimeStatus:
    """Whether a runtime can run here.

    Attributes:
        name: one of :data:`RUNTIMES`.
        usable: True when its runtime and device were found.
        detail: what it will use (usable) or why it cannot run and how to fix it (not usable).
    """

    name: str
    usable: bool
    detail: str


def resolve_runtimes(text: str) -> tuple[str, ...]:
    """Parse ``--runtime``: comma-separated names and groups (``cpu``, ``gpu``, ``auto``, ``all``).

    Returns:
        Runtime names in :data:`RUNTIMES` order, without duplicates.

    Raises:
        ConfigError: an unknown name, or nothing at all.
    """
    wanted: set[str] = set()
    for token in (t.strip().lower() for t in text.split(",")):
        if not token:
            continue
        if token in GROUPS:
            wanted.update(GROUPS[token])
        elif token in RUNTIMES:
            wanted.add(token)
        else:
            raise ConfigError(f"unknown runtime {token!r}; expected names from {', '.join(RUNTIMES)} "
                              f"or groups {', '.join(GROUPS)}")
    if not wanted:
        raise ConfigError("runtimes is empty", field="BenchConfig.runtimes")
    return tuple(t for t in RUNTIMES if t in wanted)


def _installed(module: str) -> bool:
    """Whether ``module`` can be imported, without importing it."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a blocked or broken package
        return False


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "?"


def _ort_providers() -> list[str] | None:
    if not _installed("onnxruntime"):
        return None
    import onnxruntime as ort

    return list(ort.get_available_providers())


def detect(name: str, *, gpus: list[dict] | None = None) -> RuntimeStatus:
    """Check one runtime without loading a model (and without importing TensorFlow).

    Args:
        name: a runtime from :data:`RUNTIMES`.
        gpus: NVIDIA GPUs found (from :func:`.env.gpu_info`); looked up when None.

    Raises:
        ConfigError: unknown runtime name.
    """
    if name not in RUNTIMES:
        raise ConfigError(f"unknown runtime {name!r}; expected one of {', '.join(RUNTIMES)}")
    if name in GPU_RUNTIMES and gpus is None:
        from .env import gpu_info

        gpus = gpu_info()
    no_gpu = "no NVIDIA GPU found (nvidia-smi is missing or lists none)"
    if name == "litert-cpu":
        if not _installed("ai_edge_litert"):
            return RuntimeStatus(name, False, "ai-edge-litert is not installed (pip install ai-edge-litert)")
        return RuntimeStatus(name, True, f"ai-edge-litert {_version('ai-edge-litert')}, XNNPACK")
    if name.startswith("ort-"):
        providers = _ort_providers()
        if providers is None:
            return RuntimeStatus(name, False, "onnxruntime is not installed (pip install 'edgesmith[onnx]', or [gpu] for CUDA)")
        provider = ORT_PROVIDER[name]
        version = _version("onnxruntime-gpu") if "CUDAExecutionProvider" in providers else _version("onnxruntime")
        if name in GPU_RUNTIMES and not gpus:
            return RuntimeStatus(name, False, no_gpu)  # no install advice for hardware that is absent
        if provider not in providers:
            fix = "pip install 'edgesmith[gpu]' (onnxruntime-gpu)" + (" with TensorRT" if name == "ort-tensorrt" else "")
            return RuntimeStatus(name, False, f"onnxruntime {version} has no {provider} "
                                f"(offers {', '.join(providers)}); {fix}")
        if name in GPU_RUNTIMES and not gpus:
            return RuntimeStatus(name, False, no_gpu)
        where = f" on {gpus[0]['name']}" if name in GPU_RUNTIMES else ""
        return RuntimeStatus(name, True, f"onnxruntime {version}, {provider}{where}")
    if name == "tflm":
        if not _installed("tflite_micro"):
            return RuntimeStatus(name, False, "tflite-micro is not installed (pip install 'edgesmith[mcu]')")
        return RuntimeStatus(name, True, f"tflite-micro {_version('tflite-micro')} on this host "
                            "(accuracy of the Cortex-M file; host time is not a device time)")
    # keras-cpu / keras-gpu
    if not (_installed("tensorflow") and _installed("tf_keras")):
        return RuntimeStatus(name, False, "TensorFlow/tf_keras not installed (pip install 'edgesmith[train]')")
    if name == "keras-gpu" and not gpus:
        return RuntimeStatus(name, False, no_gpu)
    return RuntimeStatus(name, True, f"tensorflow {_version('tensorflow')}, tf_keras {_version('tf_keras')} "
                        "(reference; imported in a child process only)")


def detect_runtimes(names: tuple[str, ...] = RUNTIMES) -> dict[str, RuntimeStatus]:
    """:func:`detect` for each of ``names`` (GPUs queried once)."""
    from .env import gpu_info

    gpus = gpu_info() if any(n in GPU_RUNTIMES for n in names) else []
    return {n: detect(n, gpus=gpus) for n in names}
