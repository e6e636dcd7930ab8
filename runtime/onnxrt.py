"""ONNX Runtime backend for ``.onnx`` files, with execution-provider selection.

Provider order by device kind: ``gpu`` -> TensorRT, CUDA (error if neither is available);
``auto`` -> the GPU providers that are available, then CPU; ``cpu`` -> CPU only.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from edgesmith.core.errors import BackendUnavailable, EdgesmithError

from .base import (MAX_CHUNK, DeviceKindAlias, InputSpec, check_image_model, check_images, check_labels,
                   default_threads, to_model_input)
from .modelmeta import from_onnx_props, labels_of, resize_of, value_range_of

GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")
_ORT_TYPES = {"tensor(float)": "float32", "tensor(uint8)": "uint8", "tensor(int8)": "int8",
              "tensor(float16)": "float16"}


def select_providers(device: str, available: list[str], requested: list[str] | None = None) -> list[str]:
    """Execution providers to request for ``device`` (``auto``, ``cpu`` or ``gpu``) given the ``available`` ones.

    ``requested`` (e.g. ``["CUDAExecutionProvider"]``) overrides that device's order: those
    providers in that order, then ``CPUExecutionProvider`` as the fallback ONNX Runtime
    uses for any operator they do not take.

    Raises:
        BackendUnavailable: a requested provider, or for ``device="gpu"`` any GPU provider,
            is not available.
    """
    if requested is not None:
        missing = [p for p in requested if p not in available]
        if missing:
            raise BackendUnavailable(f"execution provider {', '.join(missing)} is not available; this onnxruntime "
                                     f"offers {', '.join(available)}")
        return list(dict.fromkeys([*requested, "CPUExecutionProvider"]))
    gpu = [p for p in GPU_PROVIDERS if p in available]
    if device == "gpu":
        if not gpu:
            raise BackendUnavailable(
                f"device 'gpu' needs onnxruntime-gpu with CUDA or TensorRT; this onnxruntime "
                f"offers {', '.join(available)} (pip install edgesmith[gpu])")
        return gpu
    if device == "auto":
        return gpu + ["CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


class OrtRunner(DeviceKindAlias):
    """Runs an ``.onnx`` model with ONNX Runtime.

    Thread safety: ``InferenceSession.run`` may be called from many threads at once,
    so a shared Runner runs concurrently without a lock.

    Labels, layout and value range come from the file's ``edgesmith.*`` ``metadata_props``;
    ``labels`` (e.g. from a run manifest) is used only when the file has none. A model
    with a fixed batch dimension is fed that many images per call (the last call padded).
    """

    backend = "onnxruntime"

    def __init__(self, path: Path, *, device: str = "auto", threads: int | None = None,
                 labels: tuple[str, ...] | None = None, providers: list[str] | None = None):
        try:
            import onnxruntime as ort
        except ImportError:
            raise BackendUnavailable("onnxruntime is not installed: pip install 'edgesmith[onnx]' (or [gpu] for CUDA)") from None
        self.path = Path(path)
        self.threads = threads or default_threads()
        requested = providers
        providers = select_providers(device, ort.get_available_providers(), requested)
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
        self.device_kind = "gpu" if self.providers[0] in GPU_PROVIDERS else "cpu"
        if requested is not None:
            self.device_reason = f"providers {', '.join(requested)} requested: {self.providers[0]}"
        elif device == "auto":
            self.device_reason = (f"auto: {self.providers[0]} available" if self.device_kind == "gpu" else
                                  "auto: no CUDA/TensorRT execution provider, using CPUExecutionProvider")
        else:
            self.device_reason = f"{device} requested: {self.providers[0]}"
        ins, outs = self._sess.get_inputs(), self._sess.get_outputs()
        if len(ins) != 1 or len(outs) != 1:
            raise EdgesmithError(f"{self.path}: expected one image input and one output, "
                                 f"got {len(ins)} inputs and {len(outs)} outputs")
        inp, out = ins[0], outs[0]
        self._in_name, self._out_name = inp.name, out.name
        meta = from_onnx_props(self._sess.get_modelmeta().custom_metadata_map)
        self.metadata = meta or {}
        layout = (self.metadata.get("input") or {}).get("layout", "NHWC")
        if inp.type not in _ORT_TYPES:
            raise EdgesmithError(f"{self.path}: input is not an image tensor: type {inp.type}")
        shape = check_image_model(self.path, list(inp.shape), list(out.shape), layout)
        self.input_spec = InputSpec(shape=shape, dtype=_ORT_TYPES[inp.type], layout=layout,
                                    value_range=value_range_of(meta), resize=resize_of(meta))
        self.num_classes = int(out.shape[-1])
        self.labels = check_labels(self.path, labels_of(meta) or labels, self.num_classes)
        batch = inp.shape[0]
        self._fixed_batch = int(batch) if isinstance(batch, int) and batch > 0 else None

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
        step = self._fixed_batch or MAX_CHUNK
        outs = []
        for i in range(0, len(x), step):
            chunk = x[i:i + step]
            if self._fixed_batch and len(chunk) < step:  # pad a fixed-batch model's last call
                pad = np.zeros((step - len(chunk), *chunk.shape[1:]), chunk.dtype)
                outs.append(self._sess.run([self._out_name], {self._in_name: np.concatenate([chunk, pad])})[0][:len(chunk)])
            else:
                outs.append(self._sess.run([self._out_name], {self._in_name: chunk})[0])
        if not outs:
            return np.zeros((0, self.num_classes), np.float32)
        return np.concatenate(outs).astype(np.float32, copy=False)
