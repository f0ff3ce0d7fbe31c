"""Results of a model per subgroup of its evaluated answers: per answer-length band and per
imported group column (``group:<name>`` in ``responses.csv``), for model cards.

Inputs are per answer: the human score, the model's score on that answer when it was not
trained on it (out-of-fold or held-out), and the answer's word count or group values; never
its text. A subgroup with fewer than ``min_answers`` answers is listed with its count and a note
instead of figures (agreement on a handful of answers says little and can single students out).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from ml_core.metrics import quadratic_weighted_kappa

MIN_GROUP_ANSWERS = 20
LENGTH_BANDS = ((0, 10, "1-10 words"), (10, 30, "11-30 words"), (30, 10**9, "over 30 words"))
SUBGROUP_SOURCE_KEY = "subgroups_source"
"""Metrics key saying which answers the per-band and per-group results were measured on."""
LENGTH_BANDS_KEY = "by_length_band"
"""Metrics key of :func:`results_by_length_band`."""
GROUPS_KEY = "by_group"
"""Metrics key of :func:`results_by_group`."""
OUT_OF_FOLD_KEY = "out_of_fold"
"""Manifest key of an ``auto`` artifact's per-answer out-of-fold predictions (in training order:
``scores``, ``predicted``, ``confidence``, ``words``)."""


def wilson_interval(successes: float, n: float, z: float = 1.96) -> list[float] | None:
    """95% Wilson score interval of a proportion (None without answers)."""
    if n <= 0:
        return None
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return [round(max(0.0, centre - half), 4), round(min(1.0, centre + half), 4)]


def subgroup_result(
    name: str,
    pairs: Sequence[tuple[int, int]],
    num_labels: int,
    min_answers: int = MIN_GROUP_ANSWERS,
) -> dict[str, object]:
    """Count, exact agreement (with its 95% interval) and QWK of (human, model) score pairs."""
    out: dict[str, object] = {"value": name, "answers": len(pairs)}
    if len(pairs) < min_answers:
        out["note"] = f"fewer than {min_answers} answers: not reported"
        return out
    human = [h for h, _ in pairs]
    model = [m for _, m in pairs]
    agree = sum(h == m for h, m in pairs)
    out["accuracy"] = round(agree / len(pairs), 4)
    out["accuracy_ci95"] = wilson_interval(agree, len(pairs))
    qwk = quadratic_weighted_kappa(human, model, num_labels)
    out["qwk"] = round(float(qwk), 4) if math.isfinite(qwk) else None
    return out


def results_by_group(
    groups: Sequence[Mapping[str, str]],
    scores: Sequence[int],
    predicted: Sequence[int],
    num_labels: int,
    min_answers: int = MIN_GROUP_ANSWERS,
) -> dict[str, list[dict[str, object]]]:
    """Per group column, per value (sorted): :func:`subgroup_result`. ``groups[i]`` holds
    answer ``i``'s values (a column it has no value in is left out for that answer)."""
    if not len(groups) == len(scores) == len(predicted):
        raise ValueError("groups, scores and predictions must be given per answer")
    pairs: dict[str, dict[str, list[tuple[int, int]]]] = {}
    for values, human, model in zip(groups, scores, predicted, strict=True):
        for column, value in values.items():
            pairs.setdefault(column, {}).setdefault(value, []).append((int(human), int(model)))
    return {
        column: [
            subgroup_result(value, rows, num_labels, min_answers)
            for value, rows in sorted(by_value.items())
        ]
        for column, by_value in sorted(pairs.items())
    }


def results_by_length_band(
    words: Sequence[int],
    scores: Sequence[int],
    predicted: Sequence[int],
    num_labels: int,
    min_answers: int = MIN_GROUP_ANSWERS,
) -> list[dict[str, object]]:
    """Per answer-length band that has answers: :func:`subgroup_result`."""
    bands = []
    for low, high, name in LENGTH_BANDS:
        rows = [
            (int(h), int(m))
            for w, h, m in zip(words, scores, predicted, strict=True)
            if low < w <= high or (low == 0 and w == 0)
        ]
        if rows:
            bands.append(subgroup_result(name, rows, num_labels, min_answers))
    return bands


def out_of_fold(artifact_dir: Path) -> dict[str, list[float]] | None:
    """The artifact's per-answer out-of-fold predictions, or None when it stores none."""
    try:
        manifest = json.loads((Path(artifact_dir) / "manifest.json").read_text())
    except (OSError, ValueError):
        return None
    record = manifest.get(OUT_OF_FOLD_KEY) if isinstance(manifest, dict) else None
    if not isinstance(record, dict):
        return None
    needed = ("scores", "predicted", "confidence", "words")
    if not all(isinstance(record.get(k), list) for k in needed):
        return None
    if len({len(record[k]) for k in needed}) != 1:
        return None
    return {k: record[k] for k in needed}
