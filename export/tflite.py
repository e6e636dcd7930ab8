"""TFLite backend: float32 and the post-training quantization (PTQ) variants, with their metadata.

Variants (TFLite post-training quantization guide, ai.google.dev/edge/litert/models/post_training_quantization):
``fp32``; ``fp16`` (float16 weights, float compute); ``dynamic`` (dynamic-range: int8
weights, activations quantized on the fly); ``int8`` (full-integer: per-channel int8
weights, int8 activations calibrated on a representative dataset, uint8 or int8 I/O).
A QAT model (:mod:`.qat`) converts with ``int8`` and carries its own ranges.

Metadata: an entry named ``edgesmith`` in the flatbuffer's ``metadata`` list pointing at a
buffer of UTF-8 JSON (:func:`.metadata.describe`), written with the TFLite schema's object
API (``ai_edge_litert.tools.flatbuffer_utils``). The interpreter ignores metadata it does
not know, so the model runs unchanged.
"""
from __future__ import annotations

import contextlib
import json
import warnings
from pathlib import Path
from typing import Iterator

import numpy as np

from edgesmith.core.fsutil import atomic_path
from edgesmith.core.quiet import quiet_native_output
from edgesmith.runtime.modelmeta import TFLITE_METADATA_NAME

from .metadata import describe
from .variants import Job, Variant, fixed

PRECISIONS = ("fp32", "fp16", "dynamic", "int8")


def _representative(images: np.ndarray) -> "callable":
    def gen() -> Iterator[list[np.ndarray]]:
        for img in images:
            yield [img[None].astype(np.float32)]
    return gen


def _converter(model, precision: str, representative: np.ndarray | None, io_dtype: str):
    from edgesmith.tfshim import tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if precision in ("fp16", "dynamic", "int8"):
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if precision == "fp16":
        converter.target_spec.supported_types = [tf.float16]
    elif precision == "int8":
        converter.representative_dataset = _representative(representative)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = getattr(tf, io_dtype)
        converter.inference_output_type = getattr(tf, io_dtype)
    return converter


def to_tflite(model, path: str | Path, *, precision: str = "fp32", representative: np.ndarray | None = None,
              io_dtype: str = "uint8", labels: list[str] | None = None) -> Path:
    """Convert a float (or QAT) Keras model to a ``.tflite`` file.

    Example::

        to_tflite(model, "model_int8.tflite", precision="int8", representative=train.images[:256])

    Args:
        model: float32 tf_keras model taking ``(N, H, W, C)`` float32 pixels 0-255.
        path: output file; written atomically.
        precision: ``"fp32"``; ``"fp16"`` (float16 weights); ``"dynamic"`` (dynamic-range
            int8 weights); or ``"int8"`` for full-integer PTQ (per-channel int8 weights,
            int8 activations calibrated on ``representative``).
        representative: ``(M, H, W, C) uint8`` training images, the representative
            dataset for int8 (a few hundred suffice).
        io_dtype: int8 only: ``"uint8"`` (raw pixels go straight in: scale 1, zero
            point 0 for a 0-255 input) or ``"int8"``.
        labels: class names; when given, the file carries the ``edgesmith`` metadata
            (labels + input spec) and describes itself.

    Returns:
        ``path``.

    Raises:
        ValueError: unknown precision or io_dtype, or int8 without a representative dataset.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"unknown TFLite precision {precision!r}; choose {', '.join(PRECISIONS)}")
    if precision == "int8":
        if representative is None or not len(representative):
            raise ValueError("int8 conversion needs a representative dataset")
        if io_dtype not in ("uint8", "int8"):
            raise ValueError(f"io_dtype must be uint8 or int8, got {io_dtype!r}")
    converter = _converter(model, precision, representative, io_dtype)
    with _quiet():
        flatbuffer = converter.convert()
    return _write(flatbuffer, path, labels)


def _write(flatbuffer: bytes, path: str | Path, labels: list[str] | None) -> Path:
    if labels is not None:
        flatbuffer, _ = with_metadata(flatbuffer, labels=labels)
    with atomic_path(path) as tmp:
        tmp.write_bytes(flatbuffer)
    return Path(path)


@contextlib.contextmanager
def _quiet():
    """A conversion without its noise: the native lines (the MLIR quantizer's ``fully_quantize: 0,
    inference_type: 6, ...`` settings, once per file, dozens in a --fallback auto search) go through
    :func:`edgesmith.core.quiet.quiet_native_output`, and two warnings TF gives on every int8
    conversion, with nothing for the user to act on, are ignored: its own calibrator
    (tensorflow/lite/python/optimize/calibrator.py) still runs the deprecated tf.lite.Interpreter,
    and with uint8/int8 I/O it asks for the input statistics of the old TOCO path, which the
    representative dataset's calibration replaces."""
    with warnings.catch_warnings(), quiet_native_output():
        warnings.filterwarnings("ignore", message=r"\s*Warning: tf\.lite\.Interpreter is deprecated")
        warnings.filterwarnings("ignore", message="Statistics for quantized inputs were expected")
        yield


def calibrate_tflite(model, representative: np.ndarray) -> bytes:
    """The float flatbuffer with calibration statistics: the step before int8 quantization.

    Calibrating once lets :func:`quantize_calibrated` make many int8 files with different
    layers kept in float, without re-running the representative dataset each time (what
    ``tf.lite.experimental.QuantizationDebugger`` does with its ``denylisted_nodes``).

    Args:
        model: float32 tf_keras model taking ``(N, H, W, C)`` float32 pixels 0-255.
        representative: ``(M, H, W, C) uint8`` training images.

    Raises:
        ValueError: an empty representative dataset.
    """
    if representative is None or not len(representative):
        raise ValueError("int8 conversion needs a representative dataset")
    converter = _converter(model, "int8", representative, "uint8")
    converter._experimental_calibrate_only = True  # the route QuantizationDebugger takes
    with _quiet():
        return converter.convert()


def op_names(flatbuffer: bytes) -> list[str]:
    """Each operator's first output tensor name, in graph order: the names ``denylisted_nodes`` matches.

    A name lists the TF ops fused into the operator, ``;``-separated, each a path such as
    ``resnet8/conv2d_3/Conv2D`` that holds its Keras layer's name.
    """
    from ai_edge_litert.tools import flatbuffer_utils as fbu

    graph = fbu.read_model_from_bytearray(bytearray(flatbuffer)).subgraphs[0]
    names = []
    for op in graph.operators:
        if op.outputs is not None and len(op.outputs):
            name = graph.tensors[op.outputs[0]].name
            names.append(name.decode() if isinstance(name, bytes) else name)
    return names


def quantize_calibrated(calibrated: bytes, path: str | Path, *, io_dtype: str = "uint8",
                        float_ops: tuple[str, ...] = (), labels: list[str] | None = None) -> Path:
    """Full-integer int8 from a calibrated flatbuffer, keeping the ``float_ops`` in float32.

    The kept operators compute in float with float32 weights; LiteRT runs them between a
    DEQUANTIZE of their int8 inputs and a QUANTIZE of their outputs. Every other operator is
    as in :func:`to_tflite` ``precision="int8"`` (per-channel int8 weights, ``io_dtype`` I/O).

    Args:
        calibrated: from :func:`calibrate_tflite`.
        path: output file; written atomically.
        io_dtype: ``"uint8"`` or ``"int8"`` input/output.
        float_ops: operator names of :func:`op_names` to keep in float (``denylisted_nodes``).
        labels: class names for the ``edgesmith`` metadata.

    Returns:
        ``path``.

    Raises:
        ValueError: unknown io_dtype.
    """
    if io_dtype not in ("uint8", "int8"):
        raise ValueError(f"io_dtype must be uint8 or int8, got {io_dtype!r}")
    from tensorflow.lite.python.convert import mlir_quantize

    from edgesmith.tfshim import tf

    with _quiet():
        flatbuffer = mlir_quantize(calibrated, input_data_type=getattr(tf, io_dtype),
                                   output_data_type=getattr(tf, io_dtype), denylisted_nodes=list(float_ops))
    return _write(flatbuffer, path, labels)


def _dim(d) -> int | None:
    d = int(d)
    return d if d > 0 else None


def with_metadata(flatbuffer: bytes, *, labels: list[str] | None = None,
                  resize: str = "squash") -> tuple[bytes, dict]:
    """The flatbuffer with its ``edgesmith`` metadata entry added (or replaced), and the document.

    Args:
        flatbuffer: a ``.tflite`` model with one ``(N, H, W, C)`` image input.
        labels: class names, index = class id.
        resize: the resize policy recorded (see :func:`.metadata.describe`).
    """
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils as fbu

    model = fbu.read_model_from_bytearray(bytearray(flatbuffer))
    graph = model.subgraphs[0]
    inp, out = graph.tensors[graph.inputs[0]], graph.tensors[graph.outputs[0]]
    shape = [int(d) for d in inp.shape]
    h, w, c = (shape[1:4] + [None] * 3)[:3] if len(shape) == 4 else (None, None, None)
    type_names = {v: k.lower() for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
    doc = describe(height=h, width=w, channels=c, tensor_dtype=type_names.get(inp.type, "unknown"),
                   layout="NHWC", num_classes=_dim(out.shape[-1]) if len(out.shape) else None,
                   labels=labels, resize=resize)
    metadata = model.metadata or []
    entry = next((m for m in metadata if m.name in (TFLITE_METADATA_NAME, TFLITE_METADATA_NAME.encode())),
                 None)
    if entry is None:
        model.buffers.append(schema.BufferT())
        entry = schema.MetadataT()
        entry.name, entry.buffer = TFLITE_METADATA_NAME, len(model.buffers) - 1
        metadata.append(entry)
        model.metadata = metadata
    buffer = model.buffers[entry.buffer]
    buffer.data = np.frombuffer(json.dumps(doc).encode("utf-8"), dtype=np.uint8)
    buffer.offset, buffer.size = 0, 0
    return bytes(fbu.convert_object_to_bytearray(model)), doc


def embed_tflite(path: str | Path, *, labels: list[str] | None = None, resize: str = "squash") -> dict:
    """Add (or replace) the ``edgesmith`` metadata entry of a ``.tflite`` file, in place.

    Args:
        path: a ``.tflite`` file with one ``(N, H, W, C)`` image input; rewritten atomically.
        labels: class names, index = class id.
        resize: the resize policy recorded (see :func:`.metadata.describe`).

    Returns:
        The document embedded.
    """
    path = Path(path)
    flatbuffer, doc = with_metadata(path.read_bytes(), labels=labels, resize=resize)
    with atomic_path(path) as tmp:
        tmp.write_bytes(flatbuffer)
    return doc


def _convert(precision: str):
    def convert(job: Job) -> None:
        to_tflite(job.model, job.path, precision=precision, representative=job.calibration,
                  io_dtype=job.io_dtype, labels=job.labels)
    return convert


def _describe_int8(job: Job) -> str:
    if job.qat:
        return f"QAT ranges, full-integer int8, {job.io_dtype} I/O"
    return (f"PTQ full-integer int8, per-channel weights, {job.io_dtype} I/O, "
            f"representative dataset of {len(job.calibration)} training images")


VARIANTS = (
    Variant("tflite", "fp32", "fp32", "fp32", _convert("fp32"), fixed("float32 conversion")),
    Variant("tflite", "fp16", "fp16", "fp16", _convert("fp16"), fixed("PTQ float16 weights (float compute)")),
    Variant("tflite", "dynamic", "dynamic", "dynamic", _convert("dynamic"),
            fixed("PTQ dynamic range: int8 weights, activations quantized at run time")),
    Variant("tflite", "int8", "int8", "int8", _convert("int8"), _describe_int8),
)
