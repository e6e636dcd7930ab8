"""How closely an exported artifact follows its reference model."""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from edgesmith.core.intervals import paired_drop_ci95_pts


def compare(reference: np.ndarray, candidate: np.ndarray, labels: np.ndarray) -> dict:
    """Agreement of ``candidate`` with ``reference`` on the same images.

    Args:
        reference: ``(N, K) float32`` probabilities of the float Keras model.
        candidate: ``(N, K) float32`` probabilities of the artifact.
        labels: ``(N,) int`` true classes.

    Returns:
        ``top1_agreement`` (fraction of images with the same top-1 class),
        ``mean_abs_error`` / ``max_abs_error`` of the probabilities, ``top1`` of the
        artifact and ``reference_top1``, ``drop_ci95_pts`` (see :func:`drop_ci95_pts`), and
        ``n`` images.
    """
    ref_top, cand_top = reference.argmax(1), candidate.argmax(1)
    err = np.abs(reference.astype(np.float64) - candidate)
    return {"n": int(len(labels)), "top1_agreement": float((ref_top == cand_top).mean()),
            "mean_abs_error": float(err.mean()), "max_abs_error": float(err.max()),
            "top1": float((cand_top == labels).mean()), "reference_top1": float((ref_top == labels).mean()),
            "drop_ci95_pts": drop_ci95_pts(ref_top == labels, cand_top == labels)}


def drop_ci95_pts(reference_correct: np.ndarray, candidate_correct: np.ndarray) -> float:
    """Half-width, in top-1 points, of the 95% confidence interval of the accuracy drop.

    Both models are scored on the same images, so the drop is a difference of paired
    proportions: only the images one model gets right and the other wrong carry information.
    With ``b`` images only the candidate gets right, ``c`` only the reference, ``n`` in all and
    ``d = (c - b) / n``, the Wald interval is ``d ± 1.96 * sqrt(((b + c) / n - d**2) / n)``
    (Agresti, *Categorical Data Analysis*, 3rd ed., 2013, section 11.1.1). Two models that agree
    on every image give 0; a 0.3 pt drop on 1,000 images with 3% of them flipped is ±1.1 pt.

    Args:
        reference_correct, candidate_correct: ``(N,) bool``, whether each model's top-1 is right.

    Returns:
        The half-width in points (0-100 scale), rounded to 0.01; 0.0 for no images.
    """
    return paired_drop_ci95_pts(int(np.count_nonzero(candidate_correct & ~reference_correct)),
                                int(np.count_nonzero(reference_correct & ~candidate_correct)), len(reference_correct))


def accuracy_drop_pts(fidelity: dict) -> float:
    """Top-1 lost against the float reference, in percentage points (negative: gained)."""
    return round(100 * (fidelity["reference_top1"] - fidelity["top1"]), 3)


def gzip_bytes(path: str | Path) -> int:
    """Size in bytes of the file compressed with gzip level 9 (what a download costs).

    Pruning leaves the raw size unchanged (every zero is still stored); only this
    compressed size shows its effect.
    """
    return len(gzip.compress(Path(path).read_bytes(), compresslevel=9))


def _tflite_weights(path: Path) -> list[np.ndarray]:
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model(str(path))
    _NP = {0: np.float32, 1: np.float16, 2: np.int32, 3: np.uint8, 9: np.int8}  # schema TensorType
    out = []
    for sub in model.subgraphs:
        for t in sub.tensors:
            buf = model.buffers[t.buffer].data if t.buffer < len(model.buffers) else None
            if buf is None or len(buf) == 0 or t.type not in _NP or len(t.shape) < 2:
                continue
            out.append(np.frombuffer(bytes(bytearray(buf)), dtype=_NP[t.type]))
    return out


def _onnx_weights(path: Path) -> list[np.ndarray]:
    import onnx
    from onnx import numpy_helper

    proto = onnx.load(str(path))
    return [numpy_helper.to_array(i) for i in proto.graph.initializer if len(i.dims) >= 2]


def weight_stats(path: str | Path, *, min_size: int = 64) -> dict:
    """The weights as stored in an artifact file: their dtypes and fraction of zeros.

    Weights are the constant tensors of rank >= 2 with at least ``min_size`` elements
    (convolution kernels, dense matrices), read from the TFLite flatbuffer or the ONNX
    initializers.

    Returns:
        ``weight_dtypes`` (sorted dtype names), ``weight_params`` (elements) and
        ``weight_sparsity`` (fraction exactly zero).
    """
    path = Path(path)
    arrays = _tflite_weights(path) if path.suffix == ".tflite" else _onnx_weights(path)
    arrays = [a for a in arrays if a.size >= min_size]
    total = sum(a.size for a in arrays)
    zeros = sum(int(np.count_nonzero(a == 0)) for a in arrays)
    return {"weight_dtypes": sorted({a.dtype.name for a in arrays}), "weight_params": int(total),
            "weight_sparsity": round(zeros / total, 4) if total else 0.0}
