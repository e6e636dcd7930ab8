"""How closely an exported artifact follows its reference model."""
from __future__ import annotations

import numpy as np


def compare(reference: np.ndarray, candidate: np.ndarray, labels: np.ndarray) -> dict:
    """Agreement of ``candidate`` with ``reference`` on the same images.

    Args:
        reference: ``(N, K) float32`` probabilities of the float Keras model.
        candidate: ``(N, K) float32`` probabilities of the artifact.
        labels: ``(N,) int`` true classes.

    Returns:
        ``top1_agreement`` (fraction of images with the same top-1 class),
        ``mean_abs_error`` / ``max_abs_error`` of the probabilities, ``top1`` of the
        artifact and ``reference_top1``, and ``n`` images.
    """
    ref_top, cand_top = reference.argmax(1), candidate.argmax(1)
    err = np.abs(reference.astype(np.float64) - candidate)
    return {"n": int(len(labels)), "top1_agreement": float((ref_top == cand_top).mean()),
            "mean_abs_error": float(err.mean()), "max_abs_error": float(err.max()),
            "top1": float((cand_top == labels).mean()), "reference_top1": float((ref_top == labels).mean())}
