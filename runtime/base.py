"""The Runner contract shared by every backend, and the input checks they all apply."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from edgesmith.core.errors import DataError

TARGETS = ("auto", "cpu", "gpu")
MAX_CHUNK = 256  # images per backend call: bounds memory for any N


@dataclass(frozen=True)
class InputSpec:
    """What a model file takes.

    Attributes:
        shape: ``(H, W, C)`` of one image.
        dtype: dtype of the model's input tensor (``float32``, ``uint8`` or ``int8``);
            callers always pass ``uint8`` pixels, the Runner converts.
        layout: ``"NHWC"`` or ``"NCHW"`` for the tensor itself.
        scale / zero_point: affine quantization of an integer input
            (real = scale * (q - zero_point)); ``None`` for float inputs.
        value_range: the range of the real (dequantized) pixel values, 0-255.
    """

    shape: tuple[int, int, int]
    dtype: str
    layout: str = "NHWC"
    scale: float | None = None
    zero_point: int | None = None
    value_range: tuple[float, float] = (0.0, 255.0)


@runtime_checkable
class Runner(Protocol):
    """One loaded model. ``predict`` maps ``(N, H, W, C) uint8`` to ``(N, K) float32`` probabilities."""

    path: Path
    backend: str          # "litert" or "onnxruntime"
    target: str           # "cpu" or "gpu": what actually runs the model
    input_spec: InputSpec
    labels: tuple[str, ...] | None

    def predict(self, images: np.ndarray) -> np.ndarray: ...


def default_threads() -> int:
    """All cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def check_images(images: np.ndarray, spec: InputSpec) -> np.ndarray:
    """Validate a batch: ``(N, H, W, C)`` (or one ``(H, W, C)`` image) of uint8 pixels.

    Raises:
        DataError: wrong dtype, rank or image shape (the message names both shapes).
    """
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[None]
    if images.dtype != np.uint8:
        raise DataError(f"images must be uint8 pixels 0-255, got {images.dtype}")
    if images.ndim != 4 or tuple(images.shape[1:]) != tuple(spec.shape):
        raise DataError(f"images must be (N, {', '.join(map(str, spec.shape))}), got {images.shape}")
    return images


def to_model_input(images: np.ndarray, spec: InputSpec) -> np.ndarray:
    """Convert uint8 pixels to the tensor the model takes (dtype, quantization, layout)."""
    if spec.dtype in ("uint8", "int8"):
        scale, zp = spec.scale or 1.0, spec.zero_point or 0
        if spec.dtype == "uint8" and scale == 1.0 and zp == 0:
            x = images
        else:
            info = np.iinfo(spec.dtype)
            q = np.rint(images.astype(np.float32) / scale) + zp
            x = np.clip(q, info.min, info.max).astype(spec.dtype)
    else:
        x = images.astype(spec.dtype)
    if spec.layout == "NCHW":
        x = x.transpose(0, 3, 1, 2)
    return np.ascontiguousarray(x)


def dequantize(y: np.ndarray, scale: float | None, zero_point: int | None) -> np.ndarray:
    """Real values of an output tensor as float32 (identity for float outputs)."""
    if scale:
        return ((y.astype(np.float32) - (zero_point or 0)) * np.float32(scale)).astype(np.float32)
    return y.astype(np.float32, copy=False)
