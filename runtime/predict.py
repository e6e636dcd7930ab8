"""Classify image files with a loaded Runner: decode, predict in chunks, rank. No TensorFlow.

Example::

    from edgesmith.runtime import load
    from edgesmith.runtime.images import find_images
    from edgesmith.runtime.predict import predict_files
    runner = load("model_int8.tflite")
    predictions, failures = predict_files(runner, find_images(["photos/"]), k=3)
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from edgesmith.core.errors import DataError

from .images import load_image

CHUNK = 256  # images decoded and predicted per step: bounds memory for any folder size


def top_k(probs: np.ndarray, k: int, labels: tuple[str, ...] | None) -> list[list[dict]]:
    """The ``k`` most probable classes per row of ``(N, K) float32`` probabilities.

    Returns:
        Per image, ``min(k, K)`` dicts ``{"label", "class", "probability"}``, most probable
        first (ties broken by the lower class index); ``label`` is ``"class <i>"`` without labels.
    """
    k = min(k, probs.shape[1])
    order = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    return [[{"label": labels[c] if labels else f"class {c}", "class": int(c),
              "probability": round(float(p[c]), 6)} for c in row] for p, row in zip(probs, order)]


def predict_files(runner, paths: list[Path], k: int,
                  on_error: Callable[[dict], None] | None = None) -> tuple[list[dict], list[dict]]:
    """Decode, predict and rank every file, :data:`CHUNK` images at a time; unreadable files are skipped.

    Args:
        runner: a loaded :class:`~edgesmith.runtime.Runner` (its ``input_spec`` sets the decode size).
        paths: image files (see :func:`edgesmith.runtime.images.find_images`).
        k: classes per image (>= 1).
        on_error: called with each ``{"path", "error"}`` record as it happens.

    Returns:
        ``(predictions, failures)``: ``[{"path", "top_k"}]`` in input order (see :func:`top_k`),
        and ``[{"path", "error"}]`` for the files skipped.
    """
    predictions, failures = [], []
    for start in range(0, len(paths), CHUNK):
        good, arrays = [], []
        for p in paths[start:start + CHUNK]:
            try:
                arrays.append(load_image(p, runner.input_spec))
                good.append(p)
            except DataError as e:
                failures.append({"path": str(p), "error": str(e)})
                if on_error:
                    on_error(failures[-1])
        if good:
            ranked = top_k(runner.predict(np.stack(arrays)), k, runner.labels)
            predictions.extend({"path": str(p), "top_k": r} for p, r in zip(good, ranked))
    return predictions, failures
