"""Latency statistics and the noise model used to compare two benchmark runs (numpy only)."""
from __future__ import annotations

import math

import numpy as np

from edgesmith.core.intervals import paired_drop_ci95_pts, two_proportion_ci95_pts  # noqa: F401  (the bench's API)


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


