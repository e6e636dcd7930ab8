"""Latency statistics (numpy only)."""
from __future__ import annotations

import numpy as np


def latency_summary(samples_ms: np.ndarray | list[float]) -> dict:
    """Summarise latency samples in milliseconds.

    Percentiles use numpy's default linear interpolation (type 7, as in R and Excel).

    Returns:
        ``mean``, ``std`` (population), ``min``, ``p50``, ``p90``, ``p99``, ``max`` in ms,
        and ``n`` samples.

    Raises:
        ValueError: no samples.
    """
    a = np.asarray(samples_ms, dtype=np.float64)
    if a.size == 0:
        raise ValueError("no latency samples")
    p50, p90, p99 = np.percentile(a, [50, 90, 99])
    return {"n": int(a.size), "mean": float(a.mean()), "std": float(a.std()), "min": float(a.min()),
            "p50": float(p50), "p90": float(p90), "p99": float(p99), "max": float(a.max())}
