"""Embed labels and the input spec in an exported model file, so the file describes itself.

The document and where it lives in each format are defined in
:mod:`edgesmith.runtime.modelmeta` (which reads it back without TensorFlow). Each backend
writes it in its own way, as part of its conversion: :func:`edgesmith.export.tflite.with_metadata`
(a ``metadata`` entry named ``edgesmith`` in the flatbuffer) and
:func:`edgesmith.export.onnx.stamp_metadata` (``metadata_props``).
:func:`edgesmith.export.embed.embed_metadata` (re)embeds it in an existing file of either format.
"""
from __future__ import annotations

from pathlib import Path

from edgesmith.runtime.modelmeta import SCHEMA

_COLOR = {1: "L", 3: "RGB", 4: "RGBA"}


def describe(*, height: int | None, width: int | None, channels: int | None, tensor_dtype: str,
             layout: str, num_classes: int | None, labels: list[str] | None, resize: str = "squash") -> dict:
    """The metadata document for one model (see :mod:`edgesmith.runtime.modelmeta`).

    Callers always feed raw ``uint8`` pixels 0-255 (preprocessing lives in the model),
    so ``input.dtype`` and ``input.value_range`` are fixed; ``tensor_dtype`` and
    ``layout`` describe the model's own input tensor; ``resize`` is how the training images
    reached ``height x width`` (:data:`edgesmith.core.images.RESIZE_MODES`), which
    :func:`edgesmith.runtime.load_image` applies to any file.
    """
    doc = {"schema": SCHEMA,
           "input": {"height": height, "width": width, "channels": channels,
                     "color": _COLOR.get(channels, "unknown"), "dtype": "uint8",
                     "value_range": [0, 255], "layout": layout, "tensor_dtype": tensor_dtype,
                     "resize": resize},
           "output": {"kind": "probabilities", "num_classes": num_classes}}
    if labels:
        doc["labels"] = [str(s) for s in labels]
    return doc
