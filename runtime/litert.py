"""LiteRT backend (``ai_edge_litert``, XNNPACK on CPU) for ``.tflite`` files."""
from __future__ import annotations

import contextlib
import threading
from pathlib import Path

import numpy as np

from edgesmith.core.errors import BackendUnavailable, EdgesmithError
from edgesmith.core.quiet import quiet_native_output

from .base import (MAX_CHUNK, DeviceKindAlias, InputSpec, check_image_model, check_images, check_labels, default_threads,
                   dequantize, to_model_input)
from .modelmeta import labels_of, read_tflite_metadata, resize_of, value_range_of

_allocated = False


def _first_allocation():
    """LiteRT prints "INFO: Created TensorFlow Lite XNNPACK delegate for CPU." once per process, at
    the first allocation: only that one goes through the native-output filter."""
    global _allocated
    if _allocated:
        return contextlib.nullcontext()
    _allocated = True
    return quiet_native_output()


class LiteRTRunner(DeviceKindAlias):
    """Runs a ``.tflite`` model with the LiteRT interpreter.

    Thread safety: one interpreter cannot run two invocations at once, so ``predict``
    holds a lock; a Runner shared by many threads is correct but serialised. For
    parallel throughput, load one Runner per thread.

    Labels and the value range come from the file's embedded ``edgesmith`` metadata;
    ``labels`` (e.g. from a run manifest) is used only when the file has none.
    """

    backend = "litert"

    def __init__(self, path: Path, *, device: str = "auto", threads: int | None = None,
                 labels: tuple[str, ...] | None = None):
        if device == "gpu":
            raise BackendUnavailable(
                "LiteRT's GPU delegate is not available in the ai-edge-litert desktop wheel; "
                "run the ONNX artifact with onnxruntime-gpu for a GPU")
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError:
            raise BackendUnavailable("ai-edge-litert is not installed: pip install ai-edge-litert") from None
        self.path = Path(path)
        self.device_kind = "cpu"
        self.device_reason = ("cpu requested" if device == "cpu" else
                              "auto: LiteRT runs on CPU (XNNPACK); its desktop wheel has no GPU delegate")
        self.threads = threads or default_threads()
        try:
            self._interp = Interpreter(model_path=str(self.path), num_threads=self.threads)
        except (ValueError, RuntimeError) as e:
            raise EdgesmithError(f"{self.path} is not a valid TFLite model: {str(e).strip()}") from None
        ins, outs = self._interp.get_input_details(), self._interp.get_output_details()
        if len(ins) != 1 or len(outs) != 1:
            raise EdgesmithError(f"{self.path}: expected one image input and one output, "
                                 f"got {len(ins)} inputs and {len(outs)} outputs")
        inp, out = ins[0], outs[0]
        shape = check_image_model(self.path, list(inp["shape"]), list(out["shape"]))
        meta = read_tflite_metadata(self.path)
        self.metadata = meta or {}
        self._in_index, self._out_index = inp["index"], out["index"]
        in_scale, in_zp = inp["quantization"]
        self._out_scale, self._out_zp = out["quantization"]
        self.input_spec = InputSpec(
            shape=shape, dtype=np.dtype(inp["dtype"]).name,
            scale=float(in_scale) if in_scale else None, zero_point=int(in_zp) if in_scale else None,
            value_range=value_range_of(meta), resize=resize_of(meta))
        self.num_classes = int(out["shape"][-1])
        self.labels = check_labels(self.path, labels_of(meta) or labels, self.num_classes)
        self._batch = int(inp["shape"][0])
        self._lock = threading.Lock()
        try:
            with _first_allocation():
                self._interp.allocate_tensors()
        except RuntimeError as e:
            raise EdgesmithError(f"{self.path}: LiteRT cannot prepare this model: {str(e).strip()}") from None

    def _run(self, x: np.ndarray) -> np.ndarray:
        n = len(x)
        if n != self._batch:
            self._interp.resize_tensor_input(self._in_index, [n, *x.shape[1:]], strict=False)
            self._interp.allocate_tensors()
            self._batch = n
        self._interp.set_tensor(self._in_index, x)
        self._interp.invoke()
        return self._interp.get_tensor(self._out_index).copy()

    def predict(self, images: np.ndarray) -> np.ndarray:
        """Class probabilities.

        Args:
            images: ``(N, H, W, C) uint8`` raw pixels (or one ``(H, W, C)`` image).

        Returns:
            ``(N, num_classes) float32`` probabilities (dequantized for int8 models).

        Raises:
            DataError: images of the wrong dtype or shape.
        """
        images = check_images(images, self.input_spec)
        x = to_model_input(images, self.input_spec)
        outs = []
        with self._lock:
            for i in range(0, len(x), MAX_CHUNK):
                outs.append(self._run(x[i:i + MAX_CHUNK]))
        y = np.concatenate(outs) if outs else np.zeros((0, self.num_classes), np.float32)
        return dequantize(y, self._out_scale, self._out_zp)
