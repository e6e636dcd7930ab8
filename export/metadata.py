"""Embed labels and the input spec in an exported model file, so the file describes itself.

The document and where it lives in each format are defined in
:mod:`edgesmith.runtime.modelmeta` (which reads it back without TensorFlow):

* ``.tflite``: a ``metadata`` entry named ``edgesmith`` pointing at a buffer of UTF-8 JSON,
  written by unpacking the flatbuffer with the TFLite schema's object API
  (``ai_edge_litert.tools.flatbuffer_utils``), appending the buffer and entry, and packing
  it again. The interpreter ignores metadata it does not know, so the model runs unchanged.
* ``.onnx``: ``metadata_props`` (``edgesmith.labels``, ``edgesmith.layout``,
  ``edgesmith.value_range``, ``edgesmith.input``, ``edgesmith.schema``), with the
  ``onnx`` package.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from edgesmith.core.errors import ConfigError
from edgesmith.core.fsutil import atomic_path
from edgesmith.runtime.modelmeta import SCHEMA, TFLITE_METADATA_NAME

_COLOR = {1: "L", 3: "RGB", 4: "RGBA"}
_ONNX_DTYPES = {1: "float32", 2: "uint8", 3: "int8", 10: "float16"}  # onnx.TensorProto enum


def describe(*, height: int | None, width: int | None, channels: int | None, tensor_dtype: str,
             layout: str, num_classes: int | None, labels: list[str] | None) -> dict:
    """The metadata document for one model (see :mod:`edgesmith.runtime.modelmeta`).

    Callers always feed raw ``uint8`` pixels 0-255 (preprocessing lives in the model),
    so ``input.dtype`` and ``input.value_range`` are fixed; ``tensor_dtype`` and
    ``layout`` describe the model's own input tensor.
    """
    doc = {"schema": SCHEMA,
           "input": {"height": height, "width": width, "channels": channels,
                     "color": _COLOR.get(channels, "unknown"), "dtype": "uint8",
                     "value_range": [0, 255], "layout": layout, "tensor_dtype": tensor_dtype},
           "output": {"kind": "probabilities", "num_classes": num_classes}}
    if labels:
        doc["labels"] = [str(s) for s in labels]
    return doc


def _dim(d) -> int | None:
    d = int(d)
    return d if d > 0 else None


def embed_tflite(path: str | Path, *, labels: list[str] | None = None) -> dict:
    """Add (or replace) the ``edgesmith`` metadata entry of a ``.tflite`` file, in place.

    Args:
        path: a ``.tflite`` file with one ``(N, H, W, C)`` image input; rewritten atomically.
        labels: class names, index = class id.

    Returns:
        The document embedded.
    """
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils as fbu

    path = Path(path)
    model = fbu.read_model_from_bytearray(bytearray(path.read_bytes()))
    graph = model.subgraphs[0]
    inp, out = graph.tensors[graph.inputs[0]], graph.tensors[graph.outputs[0]]
    shape = [int(d) for d in inp.shape]
    h, w, c = (shape[1:4] + [None] * 3)[:3] if len(shape) == 4 else (None, None, None)
    type_names = {v: k.lower() for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
    doc = describe(height=h, width=w, channels=c, tensor_dtype=type_names.get(inp.type, "unknown"),
                   layout="NHWC", num_classes=_dim(out.shape[-1]) if len(out.shape) else None,
                   labels=labels)
    data = np.frombuffer(json.dumps(doc).encode("utf-8"), dtype=np.uint8)
    metadata = model.metadata or []
    entry = next((m for m in metadata if m.name in (TFLITE_METADATA_NAME, TFLITE_METADATA_NAME.encode())),
                 None)
    if entry is None:
        buffer = schema.BufferT()
        model.buffers.append(buffer)
        entry = schema.MetadataT()
        entry.name, entry.buffer = TFLITE_METADATA_NAME, len(model.buffers) - 1
        metadata.append(entry)
        model.metadata = metadata
    buffer = model.buffers[entry.buffer]
    buffer.data, buffer.offset, buffer.size = data, 0, 0
    with atomic_path(path) as tmp:
        tmp.write_bytes(bytes(fbu.convert_object_to_bytearray(model)))
    return doc


def embed_onnx(path: str | Path, *, labels: list[str] | None = None) -> dict:
    """Add (or replace) the ``edgesmith.*`` ``metadata_props`` of an ``.onnx`` file, in place.

    Keeps the keys :func:`edgesmith.export.onnx.to_onnx` writes (labels, layout,
    value_range) and adds ``edgesmith.input`` (the JSON input spec) and ``edgesmith.schema``.

    Returns:
        The document embedded.
    """
    import onnx

    path = Path(path)
    proto = onnx.load(str(path))
    props = {p.key: p.value for p in proto.metadata_props}
    layout = props.get("edgesmith.layout", "NHWC")
    t = proto.graph.input[0].type.tensor_type
    dims = [_dim(d.dim_value) if d.HasField("dim_value") else None for d in t.shape.dim]
    if len(dims) == 4:
        n, a, b, c = dims
        h, w, ch = (b, c, a) if layout == "NCHW" else (a, b, c)
    else:
        h = w = ch = None
    out_dims = proto.graph.output[0].type.tensor_type.shape.dim
    num_classes = _dim(out_dims[-1].dim_value) if out_dims and out_dims[-1].HasField("dim_value") else None
    if labels is None and "edgesmith.labels" in props:
        labels = json.loads(props["edgesmith.labels"])
    doc = describe(height=h, width=w, channels=ch, tensor_dtype=_ONNX_DTYPES.get(t.elem_type, "unknown"),
                   layout=layout, num_classes=num_classes, labels=labels)
    new = {"edgesmith.schema": SCHEMA, "edgesmith.layout": layout, "edgesmith.value_range": "[0, 255]",
           "edgesmith.input": json.dumps(doc["input"])}
    if labels:
        new["edgesmith.labels"] = json.dumps(doc["labels"])
    keep = [(p.key, p.value) for p in proto.metadata_props if p.key not in new]
    del proto.metadata_props[:]
    for k, v in keep + list(new.items()):
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, v
    with atomic_path(path) as tmp:
        onnx.save(proto, str(tmp))
    return doc


def embed_metadata(path: str | Path, *, labels: list[str] | None = None) -> dict:
    """Make an exported model file self-describing (labels + input spec), by its suffix.

    Args:
        path: a ``.tflite`` or ``.onnx`` file, rewritten in place (atomically).
        labels: class names, index = class id.

    Returns:
        The embedded document (``schema``, ``labels``, ``input``, ``output``).

    Raises:
        ConfigError: any other suffix.
    """
    suffix = Path(path).suffix.lower()
    if suffix == ".tflite":
        return embed_tflite(path, labels=labels)
    if suffix == ".onnx":
        return embed_onnx(path, labels=labels)
    raise ConfigError(f"{path}: cannot embed metadata in a {suffix or 'suffix-less'} file")
