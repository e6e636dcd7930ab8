"""ONNX conversion (tf2onnx) and int8 quantization (ONNX Runtime static quantization)."""
from __future__ import annotations

import json
import tempfile
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


def quantize_onnx(float_path: str | Path, path: str | Path, *, calibration: np.ndarray,
                  labels: list[str] | None = None, per_channel: bool = True,
                  method: str = "minmax") -> Path:
    """Static int8 quantization (QDQ format, int8 activations and weights) of a float ONNX file.

    Runs ONNX Runtime's pre-processing (shape inference and graph optimisation), then
    ``quantize_static`` calibrated on ``calibration`` (``(M, H, W, C) uint8`` training
    images, the calibration reader's data) with ``method``: ``minmax``, ``entropy`` or
    ``percentile`` (ONNX Runtime's CalibrationMethod).

    Returns:
        ``path``, written atomically.

    Raises:
        ValueError: unknown calibration method.
    """
    if method not in CALIBRATION_METHODS:
        raise ValueError(f"unknown calibration method {method!r}; choose {', '.join(CALIBRATION_METHODS)}")
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
                        activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                        calibrate_method={"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
                                          "percentile": CalibrationMethod.Percentile}[method])
        proto = onnx.load(str(tmp))
        _stamp_metadata(proto, labels)
        onnx.save(proto, str(tmp))
    return Path(path)
