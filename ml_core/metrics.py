"""Agreement metrics between human and machine scores.

Scores are ordinal class indices ``0..num_labels-1``. Single-criterion arrays are 1-D;
multi-criterion arrays are ``[n, criteria]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats


def confusion_matrix(
    y_true: ArrayLike, y_pred: ArrayLike, num_labels: int | None = None
) -> np.ndarray:
    """``[num_labels, num_labels]`` counts; rows are human scores, columns machine scores."""
    true = np.asarray(y_true, dtype=np.int64).ravel()
    pred = np.asarray(y_pred, dtype=np.int64).ravel()
    if true.shape != pred.shape:
        raise ValueError(f"y_true and y_pred differ in length: {true.size} vs {pred.size}")
    if num_labels is None:
        num_labels = int(max(true.max(initial=0), pred.max(initial=0))) + 1
    matrix = np.zeros((num_labels, num_labels), dtype=np.int64)
    np.add.at(matrix, (true, pred), 1)
    return matrix


def quadratic_weighted_kappa(
    y_true: ArrayLike, y_pred: ArrayLike, num_labels: int | None = None
) -> float:
    """Cohen's kappa with quadratic weights (QWK), the usual agreement measure for ordinal scores.

    When the humans and the machine both give a single identical score to everything, the
    expected disagreement is zero; this returns 1.0 for perfect agreement and 0.0 otherwise
    instead of NaN.
    """
    observed = confusion_matrix(y_true, y_pred, num_labels).astype(np.float64)
    k = observed.shape[0]
    total = observed.sum()
    if total == 0:
        return 0.0
    grid = np.arange(k)
    weights = (grid[:, None] - grid[None, :]) ** 2 / max(1, (k - 1) ** 2)
    expected = np.outer(observed.sum(axis=1), observed.sum(axis=0)) / total
    denominator = float((weights * expected).sum())
    numerator = float((weights * observed).sum())
    if denominator == 0.0:
        return 1.0 if numerator == 0.0 else 0.0
    return 1.0 - numerator / denominator


def accuracy(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Share of answers scored exactly as the human did."""
    true = np.asarray(y_true).ravel()
    pred = np.asarray(y_pred).ravel()
    return float((true == pred).mean()) if true.size else 0.0


def f1_scores(
    y_true: ArrayLike, y_pred: ArrayLike, num_labels: int | None = None
) -> tuple[float, float]:
    """(macro F1 over the classes that occur in either array, micro F1)."""
    matrix = confusion_matrix(y_true, y_pred, num_labels).astype(np.float64)
    tp = np.diag(matrix)
    support_true = matrix.sum(axis=1)
    support_pred = matrix.sum(axis=0)
    present = (support_true + support_pred) > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        f1 = np.where(present, 2 * tp / (support_true + support_pred), 0.0)
    macro = float(f1[present].mean()) if present.any() else 0.0
    # single-label classification: micro F1 equals accuracy
    total = matrix.sum()
    micro = float(tp.sum() / total) if total else 0.0
    return macro, micro


def exact_match(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Share of answers whose every criterion matches (multi-criterion items)."""
    true = np.asarray(y_true)
    pred = np.asarray(y_pred)
    if true.ndim == 1:
        return accuracy(true, pred)
    return float((true == pred).all(axis=1).mean()) if len(true) else 0.0


def per_label_accuracy(y_true: ArrayLike, y_pred: ArrayLike) -> list[float]:
    """Accuracy of each criterion column separately (multi-criterion items)."""
    true = np.atleast_2d(np.asarray(y_true).T).T
    pred = np.atleast_2d(np.asarray(y_pred).T).T
    return [accuracy(true[:, c], pred[:, c]) for c in range(true.shape[1])]


def classification_report(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    num_labels: int | Sequence[int],
    criteria: Sequence[str] | None = None,
) -> dict[str, float]:
    """``qwk``, ``accuracy``, ``macro_f1``, ``micro_f1`` (means over criteria when several).

    Multi-criterion input also gives ``exact_match`` and ``<metric>/<criterion>`` per criterion.
    """
    true = np.asarray(y_true, dtype=np.int64)
    pred = np.asarray(y_pred, dtype=np.int64)
    if true.ndim == 1:
        true, pred = true[:, None], pred[:, None]
    counts = [num_labels] if isinstance(num_labels, int) else list(num_labels)
    names = list(criteria) if criteria is not None else [str(i) for i in range(len(counts))]
    rows: list[dict[str, float]] = []
    for c, count in enumerate(counts):
        macro, micro = f1_scores(true[:, c], pred[:, c], count)
        rows.append(
            {
                "qwk": quadratic_weighted_kappa(true[:, c], pred[:, c], count),
                "accuracy": accuracy(true[:, c], pred[:, c]),
                "macro_f1": macro,
                "micro_f1": micro,
            }
        )
    report = {key: float(np.mean([row[key] for row in rows])) for key in rows[0]}
    if len(counts) > 1:
        report["exact_match"] = exact_match(true, pred)
        for name, row in zip(names, rows, strict=False):
            for key, value in row.items():
                report[f"{key}/{name}"] = value
    return report


@dataclass(frozen=True)
class PairedTest:
    """Paired t-test of one metric between two kinds over the same items."""

    mean_a: float
    mean_b: float
    mean_difference: float
    t_statistic: float
    p_value: float
    n: int


def paired_t_test(a: Sequence[float], b: Sequence[float]) -> PairedTest:
    """Paired t-test (``scipy.stats.ttest_rel``) of per-item values of kind ``a`` vs kind ``b``."""
    first = np.asarray(a, dtype=np.float64)
    second = np.asarray(b, dtype=np.float64)
    if first.shape != second.shape or first.ndim != 1:
        raise ValueError("a paired test needs two 1-D sequences of the same length")
    if len(first) < 2 or np.allclose(first - second, (first - second)[0]):
        # t is undefined without variance in the differences
        t_stat, p_value = float("nan"), float("nan")
    else:
        result = stats.ttest_rel(first, second)
        t_stat, p_value = float(result.statistic), float(result.pvalue)
    return PairedTest(
        mean_a=float(first.mean()) if len(first) else float("nan"),
        mean_b=float(second.mean()) if len(second) else float("nan"),
        mean_difference=float((first - second).mean()) if len(first) else float("nan"),
        t_statistic=t_stat,
        p_value=p_value,
        n=int(len(first)),
    )
