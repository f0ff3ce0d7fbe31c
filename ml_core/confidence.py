"""What a review threshold costs, for every model kind: the agreement-versus-automation curve.

An answer whose confidence is at least the threshold is posted without review. The curve gives,
per threshold, the fraction of held-out answers posted automatically (``auto_fraction``) and
their exact agreement with the human score (``agreement``; NaN when none is posted), in the
format ``auto`` artifacts store (:func:`ml_core.auto.agreement_curve`). ``auto`` measures it on
its out-of-fold predictions; other kinds get it from their held-out test answers here.
Importing this module loads numpy only (the web process reads its keys), no torch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

CURVE_KEY = "agreement_curve"
"""Key of the curve in an ``auto`` manifest and in a version's stored metrics."""
ECE_KEY = "ece"
"""Metrics key of the expected calibration error."""
CURVE_SOURCE_KEY = "agreement_curve_source"
"""Metrics key saying which answers the curve was measured on."""
REVIEW_THRESHOLD_KEY = "review_threshold"
"""Metrics key of the review threshold a model chose for the target agreement."""
BASELINE_QWK_KEY = "baseline_qwk"
"""Metrics key of the TF-IDF + logistic regression baseline's QWK on the folds the model's own
``qwk`` was measured on (``auto``)."""


def held_out_report(
    confidence: Sequence[float] | np.ndarray, correct: Sequence[bool] | np.ndarray, source: str
) -> dict[str, object]:
    """The curve and the ECE of held-out answers (their served confidence, and whether the
    served score equals the human one), as metrics entries."""
    from ml_core.auto import agreement_curve
    from ml_core.crossval import expected_calibration_error

    conf = np.asarray(confidence, dtype=np.float64)
    hit = np.asarray(correct, dtype=bool)
    return {
        CURVE_KEY: agreement_curve(conf, hit),
        ECE_KEY: expected_calibration_error(conf, hit),
        CURVE_SOURCE_KEY: source,
    }


def stored_report(artifact_path: Path) -> dict[str, object]:
    """The curve an artifact stores in its manifest (``auto``), as metrics entries; {} if none."""
    from ml_core.artifact import ArtifactError, read_manifest

    try:
        curve = read_manifest(Path(artifact_path)).get(CURVE_KEY)
    except ArtifactError:
        return {}
    if not isinstance(curve, list) or not curve:
        return {}
    return {CURVE_KEY: curve, CURVE_SOURCE_KEY: "out-of-fold answers of the cross-validation"}


def json_safe(value: object) -> object:
    """``value`` with NaN and infinities replaced by None (JSON columns reject them)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.generic):
        return json_safe(value.item())
    return value
