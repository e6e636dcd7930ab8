"""Classify image files with a loaded Runner: decode, predict in chunks, rank. No TensorFlow.

Example::

    from edgesmith.runtime import load
    from edgesmith.runtime.images import find_images
    from edgesmith.runtime.predict import predict_files
    runner = load("model_int8.tflite")
    predictions, failures = predict_files(runner, find_images(["photos/"]), k=3)

:func:`model_in_run` picks the file to use when given a run directory instead of a model file.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from edgesmith.core.errors import DataError, RunDirError

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


def model_in_run(run_dir: str | Path) -> tuple[Path, str]:
    """The model file to predict with in a run directory, and why that one.

    In order: the file the last bench recommended (``RUN/bench/results.json``), else the int8
    TFLite artifact, else the first artifact the manifest lists.

    Args:
        run_dir: a run directory with exported artifacts (``manifest.json``).

    Returns:
        ``(path, reason)``: the file and a few words saying why it was chosen.

    Raises:
        RunDirError: not a run directory, or no exported artifact.
    """
    import json

    from edgesmith.core.rundir import RunDir, load_manifest

    run = RunDir(run_dir)
    manifest = load_manifest(run)
    arts = manifest.get("artifacts") or []
    if not arts:
        raise RunDirError(f"{run.root} has no exported model file (run `edgesmith export {run.root}` first)")
    try:
        rec = json.loads((run.bench / "results.json").read_text(encoding="utf-8")).get("recommendation") or {}
    except (OSError, ValueError):
        rec = {}
    by_name = {a["name"]: a for a in arts}
    if rec.get("artifact") in by_name:
        return run.root / by_name[rec["artifact"]]["file"], "the bench's recommendation"
    for a in arts:
        if a.get("format") == "tflite" and a.get("precision") == "int8":
            return run.root / a["file"], "the int8 TFLite file (no bench recommendation)"
    return run.root / arts[0]["file"], "the run's first file (no bench recommendation, no int8 TFLite)"


def predict_files(runner, paths: list[Path], k: int,
                  on_error: Callable[[dict], None] | None = None,
                  on_result: Callable[[dict], None] | None = None,
                  chunk: int = CHUNK) -> tuple[list[dict], list[dict]]:
    """Decode, predict and rank every file, :data:`CHUNK` images at a time; unreadable files are skipped.

    Args:
        runner: a loaded :class:`~edgesmith.runtime.Runner` (its ``input_spec`` sets the decode size).
        paths: image files (see :func:`edgesmith.runtime.images.find_images`).
        k: classes per image (>= 1).
        on_error: called with each ``{"path", "error"}`` record as it happens.
        on_result: called with each ``{"path", "top_k"}`` record as soon as its chunk is predicted
            (to stream results).
        chunk: images decoded and predicted per step (smaller: the first results come sooner).

    Returns:
        ``(predictions, failures)``: ``[{"path", "top_k"}]`` in input order (see :func:`top_k`),
        and ``[{"path", "error"}]`` for the files skipped.
    """
    predictions, failures = [], []
    for start in range(0, len(paths), chunk):
        good, arrays = [], []
        for p in paths[start:start + chunk]:
            try:
                arrays.append(load_image(p, runner.input_spec))
                good.append(p)
            except DataError as e:
                failures.append({"path": str(p), "error": str(e)})
                if on_error:
                    on_error(failures[-1])
        if good:
            ranked = top_k(runner.predict(np.stack(arrays)), k, runner.labels)
            for p, r in zip(good, ranked):
                predictions.append({"path": str(p), "top_k": r})
                if on_result:
                    on_result(predictions[-1])
    return predictions, failures
