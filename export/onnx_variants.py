"""ONNX variants beyond static QDQ: dynamic quantization, and int8 ONNX from int8 TFLite.

* ``dynamic``: ONNX Runtime ``quantize_dynamic`` (int8 weights, activation ranges
  computed per batch at run time; no calibration data).
* ``from TFLite``: tf2onnx ``from_tflite`` of the full-integer TFLite file, so the
  TFLite route (TFLite calibration) and the ONNX route (ORT calibration) to an int8 ONNX
  file can be compared. Integer I/O is wrapped so the file follows the project's
  contract: uint8 pixels in (scale 1, zero point 0) or float pixels, float probabilities out.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

from edgesmith.core.fsutil import atomic_path

from .onnx import OPSET, _stamp_metadata


def quantize_onnx_dynamic(float_path: str | Path, path: str | Path, *, labels: list[str] | None = None,
                          per_channel: bool = True) -> Path:
    """Dynamic-range quantization of a float ONNX file (ONNX Runtime ``quantize_dynamic``).

    Weights become int8 (per output channel when ``per_channel``); activations are
    quantized to uint8 with ranges measured on each batch at run time. Input stays
    ``(N, H, W, C) float32`` pixels 0-255. Returns ``path``, written atomically.
    """
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory() as scratch, atomic_path(path) as tmp:
        pre = Path(scratch) / "pre.onnx"
        quant_pre_process(str(float_path), str(pre), skip_symbolic_shape=True)
        quantize_dynamic(str(pre), str(tmp), per_channel=per_channel, weight_type=QuantType.QInt8)
        proto = onnx.load(str(tmp))
        _stamp_metadata(proto, labels)
        onnx.save(proto, str(tmp))
    return Path(path)


def _io_quantization(tflite_path: Path) -> tuple[dict, dict]:
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(tflite_path))
    return interp.get_input_details()[0], interp.get_output_details()[0]


def tflite_to_onnx(tflite_path: str | Path, path: str | Path, *, labels: list[str] | None = None,
                   opset: int = OPSET) -> Path:
    """Convert a (quantized) ``.tflite`` file to ONNX with tf2onnx ``from_tflite``.

    Quantized TFLite ops become QuantizeLinear/DequantizeLinear (QDQ) around float ops.
    An int8 input (or a uint8 one with a scale other than 1) is replaced by a float32
    input feeding a QuantizeLinear; an integer output gets a DequantizeLinear, so the
    file returns ``(N, K) float32`` probabilities.

    Returns:
        ``path``, written atomically.
    """
    import numpy as np
    import onnx
    import tf2onnx
    from onnx import TensorProto, helper, numpy_helper

    tflite_path = Path(tflite_path)
    inp, out = _io_quantization(tflite_path)
    proto, _ = tf2onnx.convert.from_tflite(str(tflite_path), opset=opset)
    g = proto.graph
    in_scale, in_zp = inp["quantization"]
    in_dtype = np.dtype(inp["dtype"])
    if in_dtype.kind in "iu" and (in_dtype == np.int8 or in_scale != 1.0 or in_zp != 0):
        old = g.input[0]
        inner = old.name + "_q"
        for node in g.node:
            node.input[:] = [inner if n == old.name else n for n in node.input]
        g.initializer.extend([numpy_helper.from_array(np.array(in_scale, np.float32), "images_scale"),
                              numpy_helper.from_array(np.array(in_zp, in_dtype), "images_zero_point")])
        g.node.insert(0, helper.make_node("QuantizeLinear", [old.name, "images_scale", "images_zero_point"],
                                          [inner], name="images_quantize"))
        old.type.tensor_type.elem_type = TensorProto.FLOAT
    out_scale, out_zp = out["quantization"]
    if np.dtype(out["dtype"]).kind in "iu" and out_scale:
        old = g.output[0]
        raw = old.name + "_q"
        for node in g.node:
            node.output[:] = [raw if n == old.name else n for n in node.output]
        g.initializer.extend([numpy_helper.from_array(np.array(out_scale, np.float32), "probs_scale"),
                              numpy_helper.from_array(np.array(out_zp, np.dtype(out["dtype"])), "probs_zero_point")])
        g.node.append(helper.make_node("DequantizeLinear", [raw, "probs_scale", "probs_zero_point"],
                                       [old.name], name="probs_dequantize"))
        old.type.tensor_type.elem_type = TensorProto.FLOAT
    _stamp_metadata(proto, labels)
    onnx.checker.check_model(proto)
    with atomic_path(path) as tmp:
        onnx.save(proto, str(tmp))
    return Path(path)
