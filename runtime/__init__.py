"""Lightweight inference: one Runner API over LiteRT and ONNX Runtime. No TensorFlow.

Example::

    from edgesmith.runtime import load
    runner = load("runs/demo/artifacts/model_int8.tflite", threads=1)
    probs = runner.predict(images)        # (N, 32, 32, 3) uint8 -> (N, 10) float32
    print(runner.labels[probs[0].argmax()])
"""
from __future__ import annotations

import json
from pathlib import Path

from edgesmith.core.errors import ConfigError, EdgesmithError

from .base import TARGETS, InputSpec, Runner, default_threads

__all__ = ["load", "Runner", "InputSpec", "TARGETS", "default_threads"]

_BACKENDS = {".tflite": "litert", ".onnx": "onnxruntime"}


def _labels_from_manifest(path: Path) -> tuple[str, ...] | None:
    """Class names from the run manifest an artifact sits in (``RUN/artifacts/x``), if any."""
    for manifest in (path.parent / "manifest.json", path.parent.parent / "manifest.json"):
        if manifest.is_file():
            try:
                names = json.loads(manifest.read_text())["dataset"]["class_names"]
                return tuple(names)
            except (OSError, ValueError, KeyError, TypeError):
                return None
    return None


def load(path: str | Path, *, target: str = "auto", threads: int | None = None) -> Runner:
    """Load a model file with the backend its suffix calls for.

    Args:
        path: a ``.tflite`` (LiteRT) or ``.onnx`` (ONNX Runtime) file.
        target: ``"auto"`` (GPU if the backend has one, else CPU), ``"cpu"`` or ``"gpu"``.
            The Runner's ``target`` attribute says what was chosen.
        threads: intra-op threads; ``None`` uses every core available to the process.

    Returns:
        A :class:`Runner`; ``predict`` takes ``(N, H, W, C) uint8``, returns
        ``(N, num_classes) float32`` probabilities.

    Raises:
        ConfigError: unknown suffix, target or a non-positive thread count.
        BackendUnavailable: the backend or the requested GPU target is missing.
        EdgesmithError: the file does not exist or is not a valid model.
    """
    path = Path(path)
    if target not in TARGETS:
        raise ConfigError(f"unknown target {target!r}; expected one of {', '.join(TARGETS)}")
    if threads is not None and threads < 1:
        raise ConfigError(f"threads must be >= 1, got {threads}")
    backend = _BACKENDS.get(path.suffix.lower())
    if backend is None:
        raise ConfigError(f"{path}: unknown model format {path.suffix!r}; expected .tflite or .onnx")
    if not path.is_file():
        raise EdgesmithError(f"model file {path} does not exist")
    labels = _labels_from_manifest(path)
    if backend == "litert":
        from .litert import LiteRTRunner
        return LiteRTRunner(path, target=target, threads=threads, labels=labels)
    from .onnxrt import OrtRunner
    return OrtRunner(path, target=target, threads=threads, labels=labels)
