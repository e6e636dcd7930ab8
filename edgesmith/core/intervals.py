"""95% intervals of accuracy differences, in top-1 points: one home for export's fidelity, the
bench's tie rule and tune's margin. Standard library only.
"""
from __future__ import annotations

import math


def paired_drop_ci95_pts(only_candidate: int, only_reference: int, n: int) -> float:
    """Half-width, in top-1 points, of the 95% interval of an accuracy difference on the same images.

    Both models are scored on the same ``n`` images, so only the discordant ones carry
    information: ``only_candidate`` images only the candidate gets right, ``only_reference``
    only the reference. With ``d = (only_reference - only_candidate) / n`` the Wald interval is
    ``d ± 1.96 * sqrt(((b + c) / n - d**2) / n)`` (Agresti, *Categorical Data Analysis*, 3rd ed.,
    section 11.1.1). :func:`edgesmith.export.fidelity.drop_ci95_pts` counts the discordant
    images of per-image results and calls this.

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
