"""(Re)embed the self-describing metadata (:mod:`.metadata`) in an existing exported file, by its suffix.

Each backend owns how its format stores the document (:func:`.tflite.embed_tflite`,
:func:`.onnx.embed_onnx`); this dispatcher sits above both, so :mod:`.metadata` imports neither.
"""
from __future__ import annotations

from pathlib import Path

from edgesmith.core.errors import ConfigError

from .onnx import embed_onnx
from .tflite import embed_tflite


def embed_metadata(path: str | Path, *, labels: list[str] | None = None, resize: str = "squash") -> dict:
    """Make an exported model file self-describing (labels + input spec), by its suffix.

    Args:
        path: a ``.tflite`` or ``.onnx`` file, rewritten in place (atomically).
        labels: class names, index = class id.
        resize: the resize policy the model was trained with (``squash``, ``crop``, ``pad``).

    Returns:
        The embedded document (``schema``, ``labels``, ``input``, ``output``).

    Raises:
        ConfigError: any other suffix.
    """
    suffix = Path(path).suffix.lower()
    if suffix == ".tflite":
        return embed_tflite(path, labels=labels, resize=resize)
    if suffix == ".onnx":
        return embed_onnx(path, labels=labels, resize=resize)
    raise ConfigError(f"{path}: cannot embed metadata in a {suffix or 'suffix-less'} file")
