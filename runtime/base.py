"""The Runner contract shared by every backend, and the input checks they all apply."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from edgesmith.core.errors import DataError, EdgesmithError

DEVICE_KINDS = ("auto", "cpu", "gpu")  # what load(device=...) takes
MAX_CHUNK = 256  # images per backend call: bounds memory for any N


class DeviceKindAlias:
    """``runner.target``: the old name of ``runner.device_kind``, read-only, for one release."""

    @property
    def target(self) -> str:
        """Deprecated: ``device_kind`` (one ``note:`` line on stderr)."""
        from edgesmith.core.deprecation import deprecated
        deprecated("Runner.target is deprecated, use Runner.device_kind")
        return self.device_kind


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
        resize: how an image file reaches ``(H, W)``: ``squash``, ``crop`` or ``pad``
            (recorded in the model file, see :mod:`.modelmeta`; applied by :func:`.load_image`).
    """

    shape: tuple[int, int, int]
    dtype: str
    layout: str = "NHWC"
    scale: float | None = None
    zero_point: int | None = None
    value_range: tuple[float, float] = (0.0, 255.0)
    resize: str = "squash"

    @property
    def height(self) -> int:
        return self.shape[0]

    @property
    def width(self) -> int:
        return self.shape[1]

    @property
    def channels(self) -> int:
        """1 (grayscale), 3 (RGB) or 4 (RGBA)."""
        return self.shape[2]


@runtime_checkable
class Runner(Protocol):
    """One loaded model. ``predict`` maps ``(N, H, W, C) uint8`` to ``(N, K) float32`` probabilities.

    Thread safety: every Runner may be shared by many threads and gives the same results
    as sequential calls. LiteRT serialises calls on one Runner with a lock; ONNX Runtime
    runs them concurrently.
    """

    path: Path
    backend: str          # "litert" or "onnxruntime"
    device_kind: str      # "cpu" or "gpu": what actually runs the model
    device_reason: str    # why that device, e.g. "auto: no CUDA/TensorRT provider, using CPU"
    threads: int          # intra-op threads
    input_spec: InputSpec
    labels: tuple[str, ...] | None   # class names from the model file (or its run manifest)
    num_classes: int
    metadata: dict        # the document embedded in the file ({} for files without one)

    def predict(self, images: np.ndarray) -> np.ndarray: ...


def default_threads() -> int:
    """All cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def check_image_model(path: Path, in_shape: list, out_shape: list, layout: str = "NHWC") -> tuple[int, int, int]:
    """Check a model takes one image batch and returns one score vector per image.

    Args:
        in_shape: the input tensor's dims (``-1``/``None`` for dynamic ones).
        out_shape: the output tensor's dims.
        layout: ``"NHWC"`` or ``"NCHW"`` for the input tensor.

    Returns:
        ``(H, W, C)`` of one image.

    Raises:
        EdgesmithError: the input is not a 4-D image tensor with fixed size and 1, 3 or
            4 channels, or the output is not ``(N, num_classes)``.
    """
    dims = [int(d) if isinstance(d, (int, np.integer)) and int(d) > 0 else -1 for d in in_shape]
    if len(dims) != 4:
        raise EdgesmithError(f"{path}: input is not an image tensor: shape {_fmt(in_shape)}, "
                             f"expected (N, H, W, C) with 1, 3 or 4 channels")
    h, w, c = (dims[2], dims[3], dims[1]) if layout == "NCHW" else tuple(dims[1:])
    if min(h, w) < 1 or c not in (1, 3, 4):
        raise EdgesmithError(f"{path}: input is not a fixed-size image tensor: shape {_fmt(in_shape)} "
                             f"({layout}), expected a fixed H, W and 1, 3 or 4 channels")
    if len(out_shape) != 2 or not isinstance(out_shape[-1], (int, np.integer)) or int(out_shape[-1]) < 1:
        raise EdgesmithError(f"{path}: output is not (N, num_classes) scores: shape {_fmt(out_shape)}")
    return h, w, c


def _fmt(shape) -> str:
    return "(" + ", ".join("?" if not isinstance(d, (int, np.integer)) or int(d) < 1 else str(int(d))
                           for d in shape) + ")"


def check_labels(path: Path, labels: tuple[str, ...] | None, num_classes: int) -> tuple[str, ...] | None:
    """The labels, if their count matches the model's outputs.

    Raises:
        EdgesmithError: a label list of the wrong length (a model and labels that do not belong together).
    """
    if labels is not None and len(labels) != num_classes:
        raise EdgesmithError(f"{path}: {len(labels)} class labels for a model with {num_classes} outputs")
    return labels


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
