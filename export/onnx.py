"""ONNX conversion (tf2onnx) and int8 quantization (ONNX Runtime static quantization)."""
from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgesmith.core.fsutil import atomic_path
from edgesmith.train._keras import keras, tf

OPSET = 17


def _stamp_metadata(model_proto, labels: list[str] | None, layout: str = "NHWC") -> None:
    """Embed class names and input layout in ``metadata_props``, so the file describes itself."""
    props = {"edgesmith.layout": layout, "edgesmith.value_range": "[0, 255]"}
    if labels:
        props["edgesmith.labels"] = json.dumps(list(labels))
    keep = [p for p in model_proto.metadata_props if p.key not in props]
    del model_proto.metadata_props[:]
    model_proto.metadata_props.extend(keep)
    for k, v in props.items():
        entry = model_proto.metadata_props.add()
        entry.key, entry.value = k, v


def to_onnx(model: keras.Model, path: str | Path, *, labels: list[str] | None = None,
            opset: int = OPSET) -> Path:
    """Convert a float Keras model to float32 ONNX with tf2onnx.

    The graph takes ``images``: ``(N, H, W, C)`` float32 pixels 0-255, and returns
    ``(N, num_classes)`` float32 probabilities. Class names go in ``metadata_props``.

    Raises:
        tf2onnx / TensorFlow errors for graphs it cannot convert (a bug, not bad input).
    """
    import onnx
    import tf2onnx

    spec = (tf.TensorSpec((None, *model.input_shape[1:]), tf.float32, name="images"),)
    fn = tf.function(lambda images: model(images, training=False))
    model_proto, _ = tf2onnx.convert.from_function(fn, input_signature=spec, opset=opset)
    _stamp_metadata(model_proto, labels)
    with atomic_path(path) as tmp:
        onnx.save(model_proto, str(tmp))
    return Path(path)


class _Calibration:
    """ONNX Runtime CalibrationDataReader over ``(M, H, W, C) uint8`` images, batches of 16."""

    def __init__(self, input_name: str, images: np.ndarray, batch: int = 16):
        self._batches = iter([{input_name: images[i:i + batch].astype(np.float32)}
                              for i in range(0, len(images), batch)])

    def get_next(self):
        return next(self._batches, None)


CALIBRATION_METHODS = ("minmax", "entropy", "percentile")


@dataclass(frozen=True)
class OnnxQuantPreset:
    """How an int8 ONNX file is laid out, per hardware target.

    Attributes:
        activations: ``"uint8"`` (U8S8) or ``"int8"`` (S8S8) activations; weights are int8.
        uint8_input: feed raw uint8 pixels straight into the graph, dropping the input
            QuantizeLinear (only when calibration gives scale 1, zero point 0).
        symmetric_activations: int8 activations with zero point 0 (what TensorRT needs).
    """

    name: str
    activations: str
    uint8_input: bool
    symmetric_activations: bool = False

    def __post_init__(self):
        if self.activations not in ("uint8", "int8"):
            raise ValueError(f"activations must be uint8 or int8, got {self.activations!r}")
        if self.uint8_input and self.activations != "uint8":
            raise ValueError("a uint8 graph input needs uint8 activations")


# Measured on an AVX-512 VNNI Xeon, ResNet-8, 1 thread, batch 1 (benchmarks/int8_speed.py):
# ONNX Runtime's x86 int8 kernels want U8S8; S8S8 QDQ ran ~1.6x slower than float.
# CPUs without VNNI can saturate U8S8 products; see the README before using "x86" there.
PRESETS = {
    "x86": OnnxQuantPreset("x86", activations="uint8", uint8_input=True),
    "s8s8": OnnxQuantPreset("s8s8", activations="int8", uint8_input=False),
    "tensorrt": OnnxQuantPreset("tensorrt", activations="int8", uint8_input=False, symmetric_activations=True),
}


def quantize_onnx(float_path: str | Path, path: str | Path, *, calibration: np.ndarray,
                  labels: list[str] | None = None, per_channel: bool = True,
                  method: str = "minmax", preset: str = "x86") -> Path:
    """Static int8 quantization (QDQ format) of a float ONNX file.

    Runs ONNX Runtime's pre-processing (shape inference and graph optimisation), then
    ``quantize_static`` calibrated on ``calibration`` (``(M, H, W, C) uint8`` training
    images, the calibration reader's data) with ``method``: ``minmax``, ``entropy`` or
    ``percentile`` (ONNX Runtime's CalibrationMethod). ``preset`` picks the layout for the
    hardware (:data:`PRESETS`): ``x86`` (default: U8S8 and a uint8 graph input, the
    fast form for ONNX Runtime's CPU kernels), ``s8s8`` (ARM, generic), ``tensorrt``
    (S8S8 with symmetric activations).

    Returns:
        ``path``, written atomically.

    Raises:
        ValueError: unknown calibration method or preset.
    """
    if method not in CALIBRATION_METHODS:
        raise ValueError(f"unknown calibration method {method!r}; choose {', '.join(CALIBRATION_METHODS)}")
    if preset not in PRESETS:
        raise ValueError(f"unknown ONNX int8 preset {preset!r}; choose {', '.join(PRESETS)}")
    p = PRESETS[preset]
    import onnx
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat,
                                          QuantType, quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    reader_cls = type("CalibrationReader", (_Calibration, CalibrationDataReader), {})
    input_name = onnx.load(str(float_path), load_external_data=False).graph.input[0].name
    with tempfile.TemporaryDirectory() as scratch, atomic_path(path) as tmp:
        pre = Path(scratch) / "pre.onnx"
        quant_pre_process(str(float_path), str(pre), skip_symbolic_shape=True)
        quantize_static(str(pre), str(tmp), reader_cls(input_name, calibration),
                        quant_format=QuantFormat.QDQ, per_channel=per_channel,
                        activation_type=QuantType.QUInt8 if p.activations == "uint8" else QuantType.QInt8,
                        weight_type=QuantType.QInt8,
                        calibrate_method={"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
                                          "percentile": CalibrationMethod.Percentile}[method],
                        extra_options={"ActivationSymmetric": p.symmetric_activations})
        proto = onnx.load(str(tmp))
        if p.uint8_input:
            _feed_uint8(proto)
        _stamp_metadata(proto, labels)
        onnx.save(proto, str(tmp))
    return Path(path)


def _feed_uint8(proto) -> bool:
    """Make the graph take uint8 pixels directly when its input quantization is the identity.

    A QDQ graph quantizes its float input (after any layout Transpose) with a
    QuantizeLinear; with uint8 activations calibrated on 0-255 pixels that is scale 1,
    zero point 0, i.e. a no-op cast. Removing it saves a float conversion and an op per
    call and lets callers pass raw pixels. Returns whether the graph was changed.
    """
    from onnx import TensorProto, numpy_helper

    g = proto.graph
    inp, src, path = g.input[0], g.input[0].name, []
    while True:
        consumers = [n for n in g.node if src in n.input]
        if len(consumers) != 1:
            return False
        node = consumers[0]
        if node.op_type == "Transpose":
            path.append(node.output[0])
            src = node.output[0]
            continue
        if node.op_type != "QuantizeLinear":
            return False
        break
    inits = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    scale, zero = inits.get(node.input[1]), inits.get(node.input[2]) if len(node.input) > 2 else None
    if scale is None or zero is None or zero.dtype != np.uint8 or float(scale) != 1.0 or int(zero) != 0:
        return False
    for n in g.node:
        n.input[:] = [src if name == node.output[0] else name for name in n.input]
    g.node.remove(node)
    inp.type.tensor_type.elem_type = TensorProto.UINT8
    for vi in g.value_info:
        if vi.name in path:
            vi.type.tensor_type.elem_type = TensorProto.UINT8
    return True
