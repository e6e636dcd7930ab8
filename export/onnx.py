"""ONNX backend: tf2onnx conversion, ONNX Runtime int8 quantization, and the file's metadata.

Variants: ``fp32`` (tf2onnx); ``dynamic`` (ONNX Runtime ``quantize_dynamic``: int8
weights, activation ranges computed per batch at run time); ``int8`` (ONNX Runtime static
QDQ quantization calibrated on training images, laid out per hardware by a preset);
``int8-tflite`` (tf2onnx ``from_tflite`` of the full-integer TFLite file, so the TFLite
route and the ONNX route to an int8 ONNX file can be compared).

Metadata: ``metadata_props`` ``edgesmith.schema``, ``edgesmith.layout``,
``edgesmith.value_range``, ``edgesmith.input`` (the JSON input spec of
:func:`.metadata.describe`) and ``edgesmith.labels``, written by :func:`stamp_metadata`,
the one writer every converter here calls before saving.
"""
from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgesmith.core.deprecation import renamed
from edgesmith.core.fsutil import atomic_path
from edgesmith.core.quiet import quiet_native_output
from edgesmith.runtime.modelmeta import SCHEMA

from .metadata import describe
from .variants import Job, Variant, fixed

OPSET = 17
_ONNX_DTYPES = {1: "float32", 2: "uint8", 3: "int8", 10: "float16"}  # onnx.TensorProto enum


def _dim(d) -> int | None:
    value = int(d.dim_value) if d.HasField("dim_value") else 0
    return value if value > 0 else None


def stamp_metadata(proto, labels: list[str] | None = None, resize: str | None = None) -> dict:
    """Set the ``edgesmith.*`` ``metadata_props`` of an ONNX ``ModelProto`` from its graph, in memory.

    Reads the input shape (``(N, H, W, C)``, or NCHW when ``edgesmith.layout`` says so),
    its element type and the output width from the graph; other metadata keys are kept.

    Args:
        proto: the model, changed in place (call this after the graph's last change).
        labels: class names, index = class id; ``None`` keeps the labels already stamped.
        resize: the resize policy (see :func:`.metadata.describe`); ``None`` keeps the one
            already stamped (default ``squash``).

    Returns:
        The document (:func:`.metadata.describe`).
    """
    props = {p.key: p.value for p in proto.metadata_props}
    layout = props.get("edgesmith.layout", "NHWC")
    t = proto.graph.input[0].type.tensor_type
    dims = [_dim(d) for d in t.shape.dim]
    h = w = ch = None
    if len(dims) == 4:
        h, w, ch = (dims[2], dims[3], dims[1]) if layout == "NCHW" else dims[1:]
    out_dims = proto.graph.output[0].type.tensor_type.shape.dim
    if labels is None and "edgesmith.labels" in props:
        labels = json.loads(props["edgesmith.labels"])
    if resize is None:
        resize = json.loads(props.get("edgesmith.input", "{}")).get("resize", "squash")
    doc = describe(height=h, width=w, channels=ch, tensor_dtype=_ONNX_DTYPES.get(t.elem_type, "unknown"),
                   layout=layout, num_classes=_dim(out_dims[-1]) if out_dims else None, labels=labels,
                   resize=resize)
    new = {"edgesmith.schema": SCHEMA, "edgesmith.layout": layout, "edgesmith.value_range": "[0, 255]",
           "edgesmith.input": json.dumps(doc["input"])}
    if labels:
        new["edgesmith.labels"] = json.dumps(doc["labels"])
    keep = [(p.key, p.value) for p in proto.metadata_props if p.key not in new]
    del proto.metadata_props[:]
    for k, v in keep + list(new.items()):
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, v
    return doc


def embed_onnx(path: str | Path, *, labels: list[str] | None = None, resize: str | None = None) -> dict:
    """Add (or replace) the ``edgesmith.*`` ``metadata_props`` of an ``.onnx`` file, in place (atomically).

    Returns:
        The document embedded.
    """
    import onnx

    proto = onnx.load(str(path))
    doc = stamp_metadata(proto, labels, resize)
    with atomic_path(path) as tmp:
        onnx.save(proto, str(tmp))
    return doc


def to_onnx(model, path: str | Path, *, labels: list[str] | None = None,
            opset: int = OPSET) -> Path:
    """Convert a float Keras model to float32 ONNX with tf2onnx.

    The graph takes ``images``: ``(N, H, W, C)`` float32 pixels 0-255, and returns
    ``(N, num_classes)`` float32 probabilities. Class names and the input spec go in
    ``metadata_props`` (:func:`stamp_metadata`).

    Example::

        to_onnx(model, "model_fp32.onnx", labels=["airplane", ...])

    Raises:
        tf2onnx / TensorFlow errors for graphs it cannot convert (a bug, not bad input).
    """
    import onnx
    import tf2onnx

    from edgesmith.tfshim import tf

    spec = (tf.TensorSpec((None, *model.input_shape[1:]), tf.float32, name="images"),)
    fn = tf.function(lambda images: model(images, training=False))
    with quiet_native_output():  # TensorFlow's graph optimizers log natively
        model_proto, _ = tf2onnx.convert.from_function(fn, input_signature=spec, opset=opset)
    stamp_metadata(model_proto, labels)
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
        activations: ``"uint8"`` (U8S8) or ``"int8"`` (S8S8) activations.
        weights: ``"int8"`` (U8S8, S8S8) or ``"uint8"`` (U8U8: ONNX Runtime's x86 kernels widen
            u8 x u8 products to int16 operands of ``vpmaddwd``, so nothing saturates without VNNI).
        uint8_input: feed raw uint8 pixels straight into the graph, dropping the input
            QuantizeLinear (only when calibration gives scale 1, zero point 0).
        symmetric_activations: int8 activations with zero point 0 (what TensorRT needs).
        reduce_range: 7-bit weights (ONNX Runtime's ``reduce_range``), so a u8 x s8 pair sum
            fits the int16 of the AVX2 / AVX-512 kernels of CPUs without VNNI.
        form: the layout in words, for the artifact's method line.
    """

    name: str
    activations: str
    uint8_input: bool
    symmetric_activations: bool = False
    reduce_range: bool = False
    form: str = ""
    weights: str = "int8"

    def __post_init__(self):
        if self.activations not in ("uint8", "int8"):
            raise ValueError(f"activations must be uint8 or int8, got {self.activations!r}")
        if self.weights not in ("uint8", "int8"):
            raise ValueError(f"weights must be uint8 or int8, got {self.weights!r}")
        if self.uint8_input and self.activations != "uint8":
            raise ValueError("a uint8 graph input needs uint8 activations")


# Which target gets which form, and the measurements behind it: export/targets.py and
# docs/int8.md. Each preset is named by the file it makes: activations x weights. No target picks
# "u8s8-7bit" (7-bit weights lost 0.6-1 pt on the demo ResNet-8); it stays for users who trade
# that for U8S8 speed on AVX2.
PRESETS = {
    "u8s8": OnnxQuantPreset("u8s8", activations="uint8", uint8_input=True, form="U8S8, uint8 input"),
    "u8s8-7bit": OnnxQuantPreset("u8s8-7bit", activations="uint8", uint8_input=True, reduce_range=True,
                                 form="U8S8 with 7-bit weights (reduce_range), uint8 input"),
    "u8u8": OnnxQuantPreset("u8u8", activations="uint8", uint8_input=True, weights="uint8",
                            form="U8U8, uint8 input"),
    "s8s8": OnnxQuantPreset("s8s8", activations="int8", uint8_input=False, form="S8S8"),
    "tensorrt": OnnxQuantPreset("tensorrt", activations="int8", uint8_input=False, symmetric_activations=True,
                                form="S8S8 symmetric"),
}
# The old names (until the next release): "x86-avx2" was the 7-bit U8S8 form, while the
# *target* x86-avx2 makes U8U8; one name meant two files.
OLD_PRESETS = {"x86": "u8s8", "x86-avx2": "u8s8-7bit"}


def preset_name(name: str) -> str:
    """The current name of an ONNX int8 preset: an old one (:data:`OLD_PRESETS`) is translated,
    with a one-time ``note:`` on stderr; any other name is returned as given (checked by the caller).

    Example::

        preset_name("x86")  # 'u8s8'
    """
    return renamed(name, OLD_PRESETS, "ONNX preset")


def quantize_onnx(float_path: str | Path, path: str | Path, *, calibration: np.ndarray,
                  labels: list[str] | None = None, per_channel: bool = True,
                  method: str = "minmax", preset: str = "u8s8", nodes_to_exclude: tuple[str, ...] = ()) -> Path:
    """Static int8 quantization (QDQ format) of a float ONNX file.

    Runs ONNX Runtime's pre-processing (shape inference and graph optimisation), then
    ``quantize_static`` calibrated on ``calibration`` (``(M, H, W, C) uint8`` training
    images, the calibration reader's data) with ``method``: ``minmax``, ``entropy`` or
    ``percentile`` (ONNX Runtime's CalibrationMethod). ``preset`` picks the layout for the
    hardware (:data:`PRESETS`; :mod:`.targets` picks one per target): ``u8s8`` (default:
    U8S8 and a uint8 graph input, the fast form for ONNX Runtime's CPU kernels with VNNI),
    ``u8u8`` (U8U8 and a uint8 graph input: exact without VNNI, e.g. AVX2), ``u8s8-7bit`` (U8S8 with
    7-bit weights: no saturation on AVX2, but coarser weights), ``s8s8`` (ARM, generic),
    ``tensorrt`` (S8S8 with symmetric activations). ``nodes_to_exclude`` (node
    names of the float file) stay float with float32 weights, fed through DequantizeLinear.

    Returns:
        ``path``, written atomically.

    Raises:
        ValueError: unknown calibration method or preset.
    """
    if method not in CALIBRATION_METHODS:
        raise ValueError(f"unknown calibration method {method!r}; choose {', '.join(CALIBRATION_METHODS)}")
    preset = preset_name(preset)
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
                        weight_type=QuantType.QUInt8 if p.weights == "uint8" else QuantType.QInt8,
                        reduce_range=p.reduce_range,
                        calibrate_method={"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
                                          "percentile": CalibrationMethod.Percentile}[method],
                        nodes_to_exclude=list(nodes_to_exclude),
                        extra_options={"ActivationSymmetric": p.symmetric_activations})
        proto = onnx.load(str(tmp))
        if p.uint8_input:
            _feed_uint8(proto)
        stamp_metadata(proto, labels)
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
        stamp_metadata(proto, labels)
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
    import onnx
    import tf2onnx
    from onnx import TensorProto, helper, numpy_helper

    tflite_path = Path(tflite_path)
    inp, out = _io_quantization(tflite_path)
    with quiet_native_output():
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
    stamp_metadata(proto, labels)
    onnx.checker.check_model(proto)
    with atomic_path(path) as tmp:
        onnx.save(proto, str(tmp))
    return Path(path)


def _convert_fp32(job: Job) -> None:
    to_onnx(job.model, job.path, labels=job.labels)


def _convert_dynamic(job: Job) -> None:
    quantize_onnx_dynamic(job.sibling("onnx", "fp32"), job.path, labels=job.labels)


def _convert_int8(job: Job) -> None:
    quantize_onnx(job.sibling("onnx", "fp32"), job.path, calibration=job.calibration, labels=job.labels,
                  method=job.calibration_method, preset=job.onnx_preset)


def _describe_int8(job: Job) -> str:
    form = PRESETS[preset_name(job.onnx_preset)].form
    return (f"ONNX Runtime static quantization, QDQ {form} ({job.onnx_preset} preset), per-channel, "
            f"{job.calibration_method} calibration on {len(job.calibration)} training images")


def _convert_from_tflite(job: Job) -> None:
    """The same source's int8 TFLite file (made in scratch, uint8 I/O, if the plan has none) via tf2onnx."""
    from .tflite import to_tflite

    tfl = job.sibling("tflite", "int8")
    if not tfl.exists():
        tfl = job.scratch / f"{job.source}_int8.tflite"
        to_tflite(job.model, tfl, precision="int8", representative=job.calibration, io_dtype="uint8")
    tflite_to_onnx(tfl, job.path, labels=job.labels)


VARIANTS = (
    Variant("onnx", "fp32", "fp32", "fp32", _convert_fp32, fixed("tf2onnx float32 conversion")),
    Variant("onnx", "dynamic", "dynamic", "dynamic", _convert_dynamic,
            fixed("ONNX Runtime dynamic quantization: per-channel int8 weights, uint8 activations at run time"),
            needs_float_parent=True),
    Variant("onnx", "int8", "int8", "int8", _convert_int8, _describe_int8, needs_float_parent=True),
    Variant("onnx", "int8-tflite", "int8", "int8_from_tflite", _convert_from_tflite,
            lambda job: f"tf2onnx from_tflite of the full-integer int8 TFLite ({'QAT' if job.qat else 'PTQ'})",
            needs_float_parent=True),
)
