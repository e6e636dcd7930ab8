"""ONNX Runtime backend for ``.onnx`` files, with execution-provider selection.

Provider order by target: ``gpu`` -> TensorRT, CUDA (error if neither is available);
``auto`` -> the GPU providers that are available, then CPU; ``cpu`` -> CPU only.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from edgesmith.core.errors import BackendUnavailable, EdgesmithError

from .base import MAX_CHUNK, InputSpec, check_images, default_threads, to_model_input

GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")
_ORT_TYPES = {"tensor(float)": "float32", "tensor(uint8)": "uint8", "tensor(int8)": "int8",
              "tensor(float16)": "float16"}


def select_providers(target: str, available: list[str]) -> list[str]:
    """Execution providers to request for ``target`` given the ``available`` ones.

    Raises:
        BackendUnavailable: ``target="gpu"`` and no GPU provider is available.
    """
    gpu = [p for p in GPU_PROVIDERS if p in available]
    if target == "gpu":
        if not gpu:
            raise BackendUnavailable(
                f"target 'gpu' needs onnxruntime-gpu with CUDA or TensorRT; this onnxruntime "
                f"offers {', '.join(available)} (pip install edgesmith[gpu])")
        return gpu
    if target == "auto":
        return gpu + ["CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


class OrtRunner:
    """Runs an ``.onnx`` model with ONNX Runtime.

    Thread safety: ``InferenceSession.run`` may be called from many threads at once,
    so a shared Runner runs concurrently without a lock.
    """

    backend = "onnxruntime"

    def __init__(self, path: Path, *, target: str = "auto", threads: int | None = None,
                 labels: tuple[str, ...] | None = None):
        try:
            import onnxruntime as ort
        except ImportError:
            raise BackendUnavailable("onnxruntime is not installed: pip install onnxruntime") from None
        self.path = Path(path)
        self.threads = threads or default_threads()
        providers = select_providers(target, ort.get_available_providers())
        so = ort.SessionOptions()
        so.intra_op_num_threads = self.threads
        so.inter_op_num_threads = 1
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.log_severity_level = 3
        try:
            self._sess = ort.InferenceSession(str(self.path), so, providers=providers)
        except Exception as e:  # ORT raises its own untyped Fail/InvalidGraph errors
            if type(e).__module__.startswith("onnxruntime"):
                raise EdgesmithError(f"{self.path} is not a loadable ONNX model: {e}") from None
            raise
        self.providers = tuple(self._sess.get_providers())
        self.target = "gpu" if self.providers[0] in GPU_PROVIDERS else "cpu"
        inp, out = self._sess.get_inputs()[0], self._sess.get_outputs()[0]
        self._in_name, self._out_name = inp.name, out.name
        meta = self._sess.get_modelmeta().custom_metadata_map
        layout = meta.get("edgesmith.layout", "NHWC")
        dims = [int(d) if isinstance(d, int) else -1 for d in inp.shape[1:]]
        shape = (dims[1], dims[2], dims[0]) if layout == "NCHW" else tuple(dims)
        self.input_spec = InputSpec(shape=shape, dtype=_ORT_TYPES.get(inp.type, "float32"), layout=layout)
        self.num_classes = int(out.shape[-1])
        self.labels = labels or (tuple(json.loads(meta["edgesmith.labels"])) if "edgesmith.labels" in meta else None)

    def predict(self, images: np.ndarray) -> np.ndarray:
        """Class probabilities.

        Args:
            images: ``(N, H, W, C) uint8`` raw pixels (or one ``(H, W, C)`` image).

        Returns:
            ``(N, num_classes) float32`` probabilities.

        Raises:
            DataError: images of the wrong dtype or shape.
        """
        images = check_images(images, self.input_spec)
        x = to_model_input(images, self.input_spec)
        outs = [self._sess.run([self._out_name], {self._in_name: x[i:i + MAX_CHUNK]})[0]
                for i in range(0, len(x), MAX_CHUNK)]
        if not outs:
            return np.zeros((0, self.num_classes), np.float32)
        return np.concatenate(outs).astype(np.float32, copy=False)
