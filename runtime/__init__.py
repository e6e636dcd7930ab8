"""Lightweight inference: one Runner API over LiteRT and ONNX Runtime. No TensorFlow.

Example::

    from edgesmith.runtime import load, load_images
    runner = load("model_int8.tflite", device="auto", threads=2)
    print(runner.backend, runner.device_kind, runner.input_spec, runner.labels)
    images = load_images(["cat.jpg", "dog.png"], runner.input_spec)  # (2, 32, 32, 3) uint8
    probs = runner.predict(images)        # (N, 32, 32, 3) uint8 -> (N, 10) float32
    print(runner.labels[probs[0].argmax()])

A model file is self-describing: edgesmith's export embeds the class labels and the
input spec in it (:mod:`.modelmeta`), so the file alone is enough. For older files
the labels come from the run manifest next to them (``RUN/manifest.json``).

Thread safety: one Runner may be shared by any number of threads; results equal those
of sequential calls. LiteRT Runners serialise ``predict`` with a lock (load one Runner
per thread for parallel throughput); ONNX Runtime Runners run calls concurrently.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Sequence

from edgesmith.core.deprecation import deprecated
from edgesmith.core.errors import ConfigError, EdgesmithError

from .base import DEVICE_KINDS, InputSpec, Runner, default_threads
from .images import IMAGE_SUFFIXES, load_image, load_images
from .predict import predict_files, top_k

__all__ = ["load", "Runner", "InputSpec", "DEVICE_KINDS", "default_threads", "load_image", "load_images",
           "IMAGE_SUFFIXES", "predict_files", "top_k"]

log = logging.getLogger("edgesmith.runtime")

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


def load(path: str | Path, *, device: str = "auto", threads: int | None = None,
         providers: Sequence[str] | None = None, target: str | None = None) -> Runner:
    """Load a model file with the backend its suffix calls for.

    Args:
        path: a ``.tflite`` (LiteRT) or ``.onnx`` (ONNX Runtime) file.
        device: ``"auto"`` (GPU if the backend has one, else CPU), ``"cpu"`` or ``"gpu"``.
            The Runner's ``device_kind`` attribute says what was chosen,
            ``device_reason`` says why (also logged at INFO on ``edgesmith.runtime``).
        threads: intra-op threads; ``None`` uses every core available to the process.
        providers: ``.onnx`` only: ONNX Runtime execution providers to use, in order (e.g.
            ``["CUDAExecutionProvider"]``), instead of the ones ``device`` picks;
            ``CPUExecutionProvider`` is appended as the fallback. Check ``runner.providers``
            for what the session actually got.
        target: deprecated spelling of ``device`` (one ``note:`` line on stderr); when given it
            replaces ``device``.

    Returns:
        A :class:`Runner` (``backend``, ``device_kind``, ``input_spec``, ``labels``,
        ``num_classes``); ``predict`` takes ``(N, H, W, C) uint8`` for any N (chunked,
        with the input tensor resized, or looped for fixed-batch models), and returns
        ``(N, num_classes) float32`` probabilities, quantization applied by the Runner.
        ``labels`` come from the file's embedded metadata, else from the run manifest
        beside it, else ``None``.

    Raises:
        ConfigError: unknown suffix, device, a non-positive thread count, or ``providers``
            for a ``.tflite`` file.
        BackendUnavailable: the backend, the requested GPU or a requested execution
            provider is missing.
        EdgesmithError: the file does not exist, is not a valid model, or its input is
            not an image tensor.
    """
    path = Path(path)
    if target is not None:  # the old spelling, for one release
        deprecated("load(target=...) is deprecated, use load(device=...)")
        device = target
    if device not in DEVICE_KINDS:
        raise ConfigError(f"unknown device {device!r}; expected one of {', '.join(DEVICE_KINDS)}")
    if threads is not None and threads < 1:
        raise ConfigError(f"threads must be >= 1, got {threads}")
    backend = _BACKENDS.get(path.suffix.lower())
    if backend is None:
        raise ConfigError(f"{path}: unknown model format {path.suffix!r}; expected .tflite or .onnx")
    if not path.is_file():
        raise EdgesmithError(f"model file {path} does not exist")
    if providers is not None and backend != "onnxruntime":
        raise ConfigError(f"{path}: execution providers apply to .onnx files only")
    labels = _labels_from_manifest(path)
    if backend == "litert":
        from .litert import LiteRTRunner
        runner = LiteRTRunner(path, device=device, threads=threads, labels=labels)
    else:
        from .onnxrt import OrtRunner
        runner = OrtRunner(path, device=device, threads=threads, labels=labels,
                           providers=None if providers is None else list(providers))
    log.info("%s: %s on %s (%s), %d threads", path.name, runner.backend, runner.device_kind,
             runner.device_reason, runner.threads)
    return runner
