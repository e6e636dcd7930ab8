"""Latency statistics and the noise model used to compare two benchmark runs (numpy only)."""
from __future__ import annotations

import math

import numpy as np


def latency_summary(samples_ms: np.ndarray | list[float]) -> dict:
    """Summarise latency samples in milliseconds.

    Percentiles use numpy's default linear interpolation (type 7, as in R and Excel).

    Args:
        samples_ms: ``(n,)`` per-call latencies in ms.

    Returns:
        ``n`` samples, then in ms: ``mean``, ``std`` (population), ``min``, ``p25``,
        ``p50``, ``p75``, ``p90``, ``p99``, ``max``.

    Raises:
        ValueError: no samples.
    """
    a = np.asarray(samples_ms, dtype=np.float64)
    if a.size == 0:
        raise ValueError("no latency samples")
    p25, p50, p75, p90, p99 = np.percentile(a, [25, 50, 75, 90, 99])
    return {"n": int(a.size), "mean": float(a.mean()), "std": float(a.std()), "min": float(a.min()),
            "p25": float(p25), "p50": float(p50), "p75": float(p75), "p90": float(p90),
            "p99": float(p99), "max": float(a.max())}


def median_standard_error(summary: dict) -> float:
    """Standard error of a p50 in ms, from the interquartile range of its samples.

    Uses the large-sample result SE(median) = 1.2533 * sigma / sqrt(n) with the robust
    sigma = IQR / 1.349 (exact for a normal distribution; latency tails do not inflate it).
    Summaries without quartiles (schema 1) fall back to the standard deviation.
    """
    if "p25" in summary and "p75" in summary:
        sigma = (summary["p75"] - summary["p25"]) / 1.349
    else:
        sigma = summary.get("std", 0.0)
    return 1.2533 * sigma / math.sqrt(max(int(summary.get("n", 1)), 1))


def p50_noise_ms(old: dict, new: dict, *, rel_tol: float = 0.10, z: float = 3.0) -> float:
    """The smallest change of p50 (ms) that counts as real between two latency summaries.

    Two sources of noise, and the larger one wins:

    * sampling noise within each run: ``z`` combined standard errors of the two medians
      (:func:`median_standard_error`); with hundreds of runs this is usually tiny;
    * run-to-run drift of the machine (frequency scaling, other processes, cache state),
      which the samples of one run cannot see: ``rel_tol`` of the old p50. The 10 %
      default is the stability bar the suite is held to (two consecutive runs agree
      within 10 % on p50 on a shared 2-core CPU).
    """
    sampling = z * math.hypot(median_standard_error(old), median_standard_error(new))
    return max(rel_tol * old["p50"], sampling)


def paired_drop_ci95_pts(only_candidate: int, only_reference: int, n: int) -> float:
    """Half-width, in top-1 points, of the 95% interval of an accuracy difference on the same images.

    Both models are scored on the same ``n`` images, so only the discordant ones carry
    information: ``only_candidate`` images only the candidate gets right, ``only_reference``
    only the reference. With ``d = (only_reference - only_candidate) / n`` the Wald interval is
    ``d ± 1.96 * sqrt(((b + c) / n - d**2) / n)`` (Agresti, *Categorical Data Analysis*, 3rd ed.,
    section 11.1.1). The TF-free home of the formula ``export.fidelity.drop_ci95_pts`` applies
    to per-image results.

    Returns:
        The half-width in points (0-100 scale), rounded to 0.01; 0.0 for no images.
    """
    if n <= 0:
        return 0.0
    b, c = int(only_candidate), int(only_reference)
    d = (c - b) / n
    return round(100 * 1.96 * math.sqrt(max((b + c) / n - d * d, 0.0) / n), 2)


def two_proportion_ci95_pts(p1: float, n1: int, p2: float, n2: int) -> float:
    """Half-width, in top-1 points, of the 95% interval of ``p1 - p2`` when no per-image pairing is known.

    The unpaired (binomial) Wald interval ``1.96 * sqrt(p1 (1 - p1) / n1 + p2 (1 - p2) / n2)``:
    wider than the paired one of :func:`paired_drop_ci95_pts` (two files that disagree on few
    images look noisier than they are), so a tie it declares is a safe one.

    Args:
        p1, p2: accuracies, 0-1. n1, n2: images each was scored on (> 0).

    Returns:
        Points (0-100 scale), rounded to 0.01; 0.0 when a count is 0.
    """
    if n1 <= 0 or n2 <= 0:
        return 0.0
    return round(100 * 1.96 * math.sqrt(p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2), 2)
