"""The reference every quality report carries (issue 13): TF-IDF + logistic regression per item.

Exactly what a data scientist tries first, with scikit-learn defaults otherwise:

- features: ``TfidfVectorizer(ngram_range=(1, 2))`` on words (default token pattern, lowercase)
  joined by a ``FeatureUnion`` with ``TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5))``
  (character 2-5-grams inside word boundaries, words padded with a space);
- classifier: ``LogisticRegression(C=1, class_weight="balanced")`` (lbfgs, multinomial),
  ``max_iter=2000`` so that it converges;
- prediction: the most probable score (argmax).

Fitted per item on the training answers only; nothing is tuned.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import FeatureUnion

BASELINE_KIND = "baseline"
BASELINE_DESCRIPTION = (
    "TF-IDF (word 1-2-grams + char_wb 2-5-grams, scikit-learn defaults) + "
    "LogisticRegression(C=1, class_weight='balanced') per item, argmax"
)


def baseline_features() -> FeatureUnion:
    """The baseline's unfitted feature extractor."""
    return FeatureUnion(
        [
            ("word", TfidfVectorizer(ngram_range=(1, 2))),
            ("char", TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5))),
        ]
    )


def fit_logistic(
    features: object,
    labels: Sequence[int] | np.ndarray,
    num_labels: int,
    *,
    C: float = 1.0,
    class_weight: str | None = "balanced",
    max_iter: int = 2000,
) -> tuple[np.ndarray, np.ndarray]:
    """Multinomial logistic regression; ``(coef [num_labels, d], intercept [num_labels])``.

    Classes absent from ``labels`` get zero weights and a very negative intercept (probability
    ~0); a single present class gives a constant model.
    """
    y = np.asarray(labels, dtype=np.int64)
    width = int(features.shape[1])  # type: ignore[attr-defined]
    coef = np.zeros((num_labels, width), dtype=np.float64)
    intercept = np.full(num_labels, -30.0, dtype=np.float64)
    present = np.unique(y)
    if len(present) == 1:
        intercept[int(present[0])] = 0.0
        return coef, intercept
    model = LogisticRegression(C=C, class_weight=class_weight, max_iter=max_iter)
    model.fit(features, y)
    classes = [int(c) for c in model.classes_]
    raw_coef = np.asarray(model.coef_, dtype=np.float64)
    raw_intercept = np.asarray(model.intercept_, dtype=np.float64)
    if len(classes) == 2:  # binary: scikit-learn keeps one row, for the second class
        raw_coef = np.vstack([-raw_coef[0] / 2, raw_coef[0] / 2])
        raw_intercept = np.array([-raw_intercept[0] / 2, raw_intercept[0] / 2])
    for row, cls in enumerate(classes):
        coef[cls] = raw_coef[row]
        intercept[cls] = raw_intercept[row]
    return coef, intercept


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return np.asarray(exp / exp.sum(axis=1, keepdims=True))


class TfidfBaseline:
    """The issue-13 baseline for one item: ``fit`` on training answers, then score others."""

    def __init__(self, num_labels: int) -> None:
        if num_labels < 2:
            raise ValueError("num_labels must be >= 2")
        self.num_labels = num_labels
        self._features = baseline_features()
        self._coef: np.ndarray | None = None
        self._intercept: np.ndarray | None = None

    def fit(self, texts: Sequence[str], labels: Sequence[int]) -> TfidfBaseline:
        if len(texts) != len(labels) or not texts:
            raise ValueError("fit needs as many labels as texts, and at least one")
        from threadpoolctl import threadpool_limits

        # small problems: extra BLAS threads only contend (as for auto)
        with threadpool_limits(limits=1):
            matrix = self._features.fit_transform(list(texts))
            self._coef, self._intercept = fit_logistic(matrix, labels, self.num_labels)
        return self

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """``[len(texts), num_labels]`` class probabilities."""
        if self._coef is None or self._intercept is None:
            raise ValueError("TfidfBaseline is not fitted")
        matrix = self._features.transform(list(texts))
        return _softmax(np.asarray(matrix @ self._coef.T) + self._intercept)

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        """Predicted scores (argmax class)."""
        return self.predict_proba(texts).argmax(axis=1)
