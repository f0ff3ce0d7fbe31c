"""What a review threshold costs: held-out answers posted automatically vs their agreement.

An answer whose confidence is at least the threshold is posted without review. For each
threshold the curve gives the fraction of answers posted automatically and the exact agreement
of those answers with the human score; an admin reads off what a threshold costs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

CURVE_KEY = "automation_curve"
"""Metrics key of the curve: a list of ``{"threshold", "automated", "agreement"}``."""
ECE_KEY = "ece"
"""Metrics key of the expected calibration error of the held-out answers."""
CURVE_SOURCE_KEY = "automation_curve_source"
"""Metrics key saying which answers the curve was measured on."""
REVIEW_THRESHOLD_KEY = "review_threshold"
"""Metrics key of the review threshold a model chose for the target agreement."""


def automation_curve(
    confidence: Sequence[float] | np.ndarray,
    correct: Sequence[bool] | np.ndarray,
    *,
    points: int = 41,
) -> list[dict[str, float]]:
    """Thresholds from 0 to 1 (``points`` steps, plus every distinct confidence when there are
    few), each with the fraction of answers at or above it and their exact agreement (1.0 when
    none is posted). Sorted by threshold."""
    conf = np.asarray(confidence, dtype=np.float64)
    hit = np.asarray(correct, dtype=bool)
    if len(conf) == 0:
        return []
    thresholds = set(np.linspace(0.0, 1.0, points).round(4).tolist())
    if len(np.unique(conf)) <= 200:
        thresholds |= set(np.unique(conf).round(4).tolist())
    curve = []
    for threshold in sorted(thresholds):
        posted = conf >= threshold - 1e-9
        count = int(posted.sum())
        curve.append(
            {
                "threshold": float(threshold),
                "automated": count / len(conf),
                "agreement": float(hit[posted].mean()) if count else 1.0,
            }
        )
    return curve


def threshold_for_agreement(curve: Sequence[dict[str, float]], target: float) -> float | None:
    """The lowest threshold (most answers posted) whose posted answers agree at least
    ``target``; None for an empty curve."""
    for point in sorted(curve, key=lambda p: p["threshold"]):
        if point["agreement"] >= target:
            return float(point["threshold"])
    return None if not curve else 1.0


def expected_calibration_error(
    confidence: Sequence[float] | np.ndarray, correct: Sequence[bool] | np.ndarray, bins: int = 10
) -> float:
    """Answer-weighted mean |accuracy - mean confidence| over equal-width confidence bins."""
    conf = np.asarray(confidence, dtype=np.float64)
    hit = np.asarray(correct, dtype=np.float64)
    if len(conf) == 0:
        return math.nan
    which = np.clip(np.ceil(conf * bins).astype(int) - 1, 0, bins - 1)
    total = 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            total += mask.sum() * abs(hit[mask].mean() - conf[mask].mean())
    return float(total / len(conf))
