"""Agreement metrics."""

from __future__ import annotations

import numpy as np
import pytest

from ml_core.metrics import (
    classification_report,
    confusion_matrix,
    exact_match,
    f1_scores,
    paired_t_test,
    per_label_accuracy,
    quadratic_weighted_kappa,
)


def test_qwk_is_one_for_agreement_and_penalises_far_errors_more() -> None:
    truth = [0, 1, 2, 2, 1, 0]
    assert quadratic_weighted_kappa(truth, truth) == pytest.approx(1.0)
    near = quadratic_weighted_kappa(truth, [0, 1, 2, 1, 1, 0])
    far = quadratic_weighted_kappa(truth, [0, 1, 2, 0, 1, 0])
    assert 1.0 > near > far
    # known value: 2x2 table [[1,1],[0,2]] gives kappa 0.5
    assert quadratic_weighted_kappa([0, 0, 1, 1], [0, 1, 1, 1]) == pytest.approx(0.5)


def test_confusion_matrix_rows_are_human_scores() -> None:
    matrix = confusion_matrix([0, 0, 1], [0, 1, 1], 3)
    assert matrix.tolist() == [[1, 1, 0], [0, 1, 0], [0, 0, 0]]


def test_f1_macro_and_micro() -> None:
    macro, micro = f1_scores([0, 0, 1, 1], [0, 1, 1, 1], 2)
    assert micro == pytest.approx(0.75)
    assert macro == pytest.approx((2 / 3 + 0.8) / 2)


def test_multi_criterion_exact_match_and_per_label_accuracy() -> None:
    truth = np.array([[0, 1], [1, 1], [2, 0]])
    pred = np.array([[0, 1], [1, 0], [2, 0]])
    assert exact_match(truth, pred) == pytest.approx(2 / 3)
    assert per_label_accuracy(truth, pred) == pytest.approx([1.0, 2 / 3])
    report = classification_report(truth, pred, num_labels=[3, 2], criteria=["a", "b"])
    assert report["accuracy/a"] == 1.0 and report["exact_match"] == pytest.approx(2 / 3)


def test_paired_t_test_detects_a_consistent_difference() -> None:
    result = paired_t_test([0.9, 0.8, 0.85, 0.7, 0.95], [0.8, 0.72, 0.74, 0.61, 0.86])
    assert result.mean_difference == pytest.approx(0.094)
    assert result.p_value < 0.01 and result.n == 5
