"""Read the description edgesmith embeds in every model file. No TensorFlow.

A model file describes itself, so the file alone is enough to run it:

* ``.tflite``: an entry named ``edgesmith`` in the flatbuffer's ``metadata`` list, whose
  buffer holds UTF-8 JSON (read here with the TFLite schema module that ``ai-edge-litert``
  ships, ``ai_edge_litert.schema_py_generated``, on top of the ``flatbuffers`` package);
* ``.onnx``: ``metadata_props`` keys ``edgesmith.labels`` (JSON list), ``edgesmith.layout``,
  ``edgesmith.value_range`` (JSON pair) and ``edgesmith.input`` (JSON object, below).

The JSON document (``schema`` ``edgesmith.model/1``)::

    {"schema": "edgesmith.model/1",
     "labels": ["airplane", ...],                  # index = class id
     "input": {"height": 32, "width": 32, "channels": 3, "color": "RGB",
               "dtype": "uint8",                   # what callers pass: raw pixels
               "value_range": [0, 255],            # of those pixels
               "layout": "NHWC",                   # of the model's own input tensor
               "tensor_dtype": "float32",          # of the model's own input tensor
               "resize": "squash"},                # how any image reaches height x width:
                                                   # squash | crop | pad (absent: squash)
     "output": {"kind": "probabilities", "num_classes": 10}}
"""
from __future__ import annotations

import json
from pathlib import Path

SCHEMA = "edgesmith.model/1"
TFLITE_METADATA_NAME = "edgesmith"
ONNX_PREFIX = "edgesmith."


def read_tflite_metadata(path: str | Path) -> dict | None:
    """The ``edgesmith`` JSON entry of a ``.tflite`` file's metadata list.

    Args:
        path: a ``.tflite`` flatbuffer.

    Returns:
        The parsed document, or ``None`` when the file has none (an older export, a
        foreign model) or is not a readable flatbuffer (the interpreter then says why).
    """
    try:
        from ai_edge_litert import schema_py_generated as schema
    except ImportError:  # pragma: no cover - ai-edge-litert is a base dependency
        return None
    try:
        buf = Path(path).read_bytes()
        if not schema.Model.ModelBufferHasIdentifier(buf, 0):
            return None
        model = schema.Model.GetRootAs(buf, 0)
        for i in range(model.MetadataLength()):
            entry = model.Metadata(i)
            if entry.Name() not in (TFLITE_METADATA_NAME, TFLITE_METADATA_NAME.encode()):
                continue
            b = model.Buffers(entry.Buffer())
            if b.Offset() > 1:  # large models keep buffers after the flatbuffer
                data = buf[b.Offset():b.Offset() + b.Size()]
            else:
                data = b.DataAsNumpy().tobytes()
            doc = json.loads(data.decode("utf-8"))
            return doc if isinstance(doc, dict) else None
    except Exception:  # a corrupt file: any parse error means "no metadata"
        return None
    return None


def from_onnx_props(props: dict[str, str]) -> dict | None:
    """The same document rebuilt from ONNX ``metadata_props`` (``edgesmith.*`` keys).

    Args:
        props: key -> value, e.g. ``InferenceSession.get_modelmeta().custom_metadata_map``.

    Returns:
        A dict with whichever of ``labels``, ``input`` were present (``input`` always
        has ``layout`` and ``value_range`` when the older keys are there), or ``None``.
    """
    if not any(k.startswith(ONNX_PREFIX) for k in props):
        return None
    doc: dict = {}
    try:
        if "edgesmith.input" in props:
            doc["input"] = dict(json.loads(props["edgesmith.input"]))
        inp = doc.setdefault("input", {})
        if "edgesmith.layout" in props:
            inp.setdefault("layout", props["edgesmith.layout"])
        if "edgesmith.value_range" in props:
            inp.setdefault("value_range", json.loads(props["edgesmith.value_range"]))
        if "edgesmith.labels" in props:
            doc["labels"] = list(json.loads(props["edgesmith.labels"]))
        if "edgesmith.schema" in props:
            doc["schema"] = props["edgesmith.schema"]
    except (ValueError, TypeError):
        return None
    return doc


def labels_of(doc: dict | None) -> tuple[str, ...] | None:
    """Class names from a metadata document, if it has a list of strings."""
    labels = (doc or {}).get("labels")
    if isinstance(labels, list) and labels and all(isinstance(s, str) for s in labels):
        return tuple(labels)
    return None


def value_range_of(doc: dict | None) -> tuple[float, float]:
    """The pixel value range the model was exported for (default 0-255)."""
    vr = ((doc or {}).get("input") or {}).get("value_range")
    try:
        lo, hi = (float(v) for v in vr)
        return lo, hi
    except (TypeError, ValueError):
        return 0.0, 255.0


def resize_of(doc: dict | None) -> str:
    """The resize policy the model was trained with (``squash`` when not recorded or unknown)."""
    from edgesmith.core.images import RESIZE_MODES

    resize = ((doc or {}).get("input") or {}).get("resize")
    return resize if resize in RESIZE_MODES else "squash"
