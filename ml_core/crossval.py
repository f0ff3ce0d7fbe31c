"""Evaluation that is not noise (issue 13): repeated stratified k-fold over an item's answers.

Every scored answer of an item is in the test fold exactly once per repeat (default 5 folds x 2
repeats, seeded). A *method* (a model kind, the baseline) is trained on the other folds and
predicts the test fold; all methods see the same folds, so they can be compared pair by pair.

Statistics:

- per item: mean QWK over the ``folds x repeats`` test folds with a 95% **t-interval over the
  fold QWKs** (``mean +- t(0.975, k-1) * sd / sqrt(k)``). Folds of repeated CV share training
  answers, so this interval is somewhat narrow; it is the usual practical choice;
- over items: the mean of the items' mean QWKs with a 95% t-interval over items (per language and
  for all items);
- method vs baseline: per-item difference of mean QWK on the same folds, and over items the paired
  t-test and the Wilcoxon signed-rank test (two-sided, ``scipy.stats``);
- calibration: expected calibration error (10 equal-width bins of the served confidence, the
  probability of the predicted score) on the pooled out-of-fold predictions.

``--eval split`` runs one "fold": the data's own train (+val) answers against its test answers.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import stats

from ml_core.metrics import accuracy, paired_t_test, quadratic_weighted_kappa
from ml_core.training import TrainExample

EVAL_MODES: tuple[str, ...] = ("cv", "split")


@dataclass(frozen=True)
class Fold:
    """One train/test division of an item's answers (indices into its example list)."""

    repeat: int
    index: int
    train: tuple[int, ...]
    test: tuple[int, ...]


def stratified_folds(
    labels: Sequence[int], *, folds: int = 5, repeats: int = 2, seed: int = 13
) -> list[Fold]:
    """Repeated stratified k-fold: ``repeats`` partitions of ``range(len(labels))`` into folds.

    Within a repeat the test folds are disjoint and cover every answer. Each score class is
    shuffled (seeded by ``seed`` and the repeat) and dealt round-robin, continuing from where the
    previous class stopped, so classes with fewer answers than folds are spread over different
    folds instead of failing, and fold sizes differ by at most one. With fewer answers than
    ``folds``, the number of folds is the number of answers.
    """
    n = len(labels)
    if n < 2:
        raise ValueError("cross-validation needs at least 2 answers")
    if folds < 2 or repeats < 1:
        raise ValueError("folds must be >= 2 and repeats >= 1")
    k = min(folds, n)
    by_class: dict[int, list[int]] = {}
    for index, label in enumerate(labels):
        by_class.setdefault(int(label), []).append(index)
    out: list[Fold] = []
    for repeat in range(repeats):
        rng = random.Random(f"{seed}:{repeat}")
        assignment = [0] * n
        position = rng.randrange(k)
        for label in sorted(by_class):
            members = by_class[label][:]
            rng.shuffle(members)
            for member in members:
                assignment[member] = position % k
                position += 1
        for index in range(k):
            test = tuple(i for i in range(n) if assignment[i] == index)
            train = tuple(i for i in range(n) if assignment[i] != index)
            out.append(Fold(repeat=repeat, index=index, train=train, test=test))
    return out


# --------------------------------------------------------------------------------------------
# Statistics


@dataclass(frozen=True)
class Interval:
    """A mean with its 95% confidence interval (t-interval); ``n`` values."""

    mean: float
    low: float
    high: float
    n: int

    def as_dict(self) -> dict[str, float]:
        return {"mean": self.mean, "low": self.low, "high": self.high, "n": float(self.n)}


def t_interval(values: Sequence[float], confidence: float = 0.95) -> Interval:
    """Mean and t-interval ``mean +- t * sd / sqrt(n)`` (``low = high = mean`` for n < 2)."""
    array = np.asarray([v for v in values if not math.isnan(v)], dtype=np.float64)
    if len(array) == 0:
        return Interval(math.nan, math.nan, math.nan, 0)
    mean = float(array.mean())
    if len(array) < 2:
        return Interval(mean, mean, mean, len(array))
    half = float(
        stats.t.ppf(0.5 + confidence / 2, len(array) - 1)
        * array.std(ddof=1)
        / math.sqrt(len(array))
    )
    return Interval(mean, mean - half, mean + half, len(array))


def expected_calibration_error(
    confidence: Sequence[float] | np.ndarray, correct: Sequence[bool] | np.ndarray, bins: int = 10
) -> float:
    """ECE: answer-weighted mean |accuracy - mean confidence| over equal-width confidence bins."""
    conf = np.asarray(confidence, dtype=np.float64)
    hit = np.asarray(correct, dtype=np.float64)
    if len(conf) == 0:
        return math.nan
    edges = np.linspace(0.0, 1.0, bins + 1)
    # bin i holds (edges[i], edges[i+1]]; confidence 0 goes to the first bin
    which = np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, bins - 1)
    total = 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            total += mask.sum() * abs(hit[mask].mean() - conf[mask].mean())
    return float(total / len(conf))


@dataclass(frozen=True)
class PairedComparison:
    """Method ``a`` minus method ``b`` over the same items (per-item mean QWK)."""

    mean_difference: float
    ci_low: float
    ci_high: float
    t_p_value: float
    wilcoxon_p_value: float
    wins: int
    losses: int
    n: int


def paired_comparison(a: Sequence[float], b: Sequence[float]) -> PairedComparison:
    """Paired t-test (:func:`ml_core.metrics.paired_t_test`) and Wilcoxon signed-rank test
    (two-sided) of ``a - b`` over items."""
    t_p = paired_t_test(a, b).p_value  # also checks the shapes
    first = np.asarray(a, dtype=np.float64)
    second = np.asarray(b, dtype=np.float64)
    difference = first - second
    interval = t_interval(difference.tolist())
    w_p = math.nan
    if np.count_nonzero(difference) >= 1 and len(difference) >= 2:
        try:
            w_p = float(stats.wilcoxon(first, second).pvalue)
        except ValueError:
            w_p = math.nan
    return PairedComparison(
        mean_difference=interval.mean,
        ci_low=interval.low,
        ci_high=interval.high,
        t_p_value=t_p,
        wilcoxon_p_value=w_p,
        wins=int((difference > 0).sum()),
        losses=int((difference < 0).sum()),
        n=int(len(difference)),
    )


# --------------------------------------------------------------------------------------------
# Running methods over the folds


@dataclass(frozen=True)
class ItemData:
    """What a method may use about an item besides the training answers."""

    item_id: str
    num_labels: int
    language: str = ""
    reference_answers: tuple[str, ...] = ()


@dataclass(frozen=True)
class FoldPrediction:
    """A method's output on one test fold: served scores, their probabilities (or None)."""

    scores: np.ndarray
    probabilities: np.ndarray | None = None
    confidence: np.ndarray | None = None
    """Served confidence per answer; default: the probability of the served score."""


Method = Callable[[Sequence[TrainExample], Sequence[TrainExample], ItemData], FoldPrediction]
"""``method(train, test, item)``: train on ``train`` (splits are ``train``/``val``), score ``test``."""


@dataclass
class MethodResult:
    """One method on one item: per-fold QWK and the out-of-fold predictions of every repeat."""

    fold_qwk: list[float] = field(default_factory=list)
    fold_accuracy: list[float] = field(default_factory=list)
    train_seconds: list[float] = field(default_factory=list)
    # per repeat: served score and confidence of every answer (-1 / nan where not predicted)
    scores: list[np.ndarray] = field(default_factory=list)
    confidence: list[np.ndarray] = field(default_factory=list)

    def qwk(self) -> Interval:
        return t_interval(self.fold_qwk)

    def calibration_error(self, labels: np.ndarray) -> float:
        conf = np.concatenate(self.confidence)
        correct = np.concatenate([s == labels for s in self.scores])
        keep = ~np.isnan(conf)
        return expected_calibration_error(conf[keep], correct[keep]) if keep.any() else math.nan


def folds_for(
    examples: Sequence[TrainExample], mode: str, *, folds: int, repeats: int, seed: int
) -> list[Fold]:
    """CV folds (``cv``), or the data's own division (``split``: test vs everything else)."""
    if mode == "cv":
        return stratified_folds(
            [e.label for e in examples], folds=folds, repeats=repeats, seed=seed
        )
    if mode == "split":
        test = tuple(i for i, e in enumerate(examples) if e.split == "test")
        train = tuple(i for i, e in enumerate(examples) if e.split != "test")
        if not test or not train:
            raise ValueError("--eval split needs answers in the test split and outside it")
        return [Fold(repeat=0, index=0, train=train, test=test)]
    raise ValueError(f"eval mode must be one of {EVAL_MODES}, got {mode!r}")


def run_folds(
    examples: Sequence[TrainExample],
    item: ItemData,
    methods: Mapping[str, Method],
    fold_list: Sequence[Fold],
    *,
    log: Callable[[str], None] | None = None,
) -> dict[str, MethodResult]:
    """Train and test every method on every fold of one item (methods interleaved per fold)."""
    labels = np.array([e.label for e in examples], dtype=np.int64)
    repeats = max(f.repeat for f in fold_list) + 1
    results = {name: MethodResult() for name in methods}
    for result in results.values():
        result.scores = [np.full(len(examples), -1, dtype=np.int64) for _ in range(repeats)]
        result.confidence = [np.full(len(examples), np.nan) for _ in range(repeats)]
    for fold in fold_list:
        # fold training answers are "train" unless the data's split says "val" (split mode)
        train = [
            TrainExample(
                examples[i].text,
                examples[i].label,
                "val" if examples[i].split == "val" else "train",
                examples[i].criteria_labels,
            )
            for i in fold.train
        ]
        test = [
            TrainExample(examples[i].text, examples[i].label, "test", examples[i].criteria_labels)
            for i in fold.test
        ]
        truth = labels[list(fold.test)]
        for name, method in methods.items():
            started = time.perf_counter()
            prediction = method(train, test, item)
            seconds = time.perf_counter() - started
            scores = np.asarray(prediction.scores, dtype=np.int64)
            if prediction.confidence is not None:
                confidence = np.asarray(prediction.confidence, dtype=np.float64)
            elif prediction.probabilities is not None:
                confidence = np.asarray(prediction.probabilities)[np.arange(len(scores)), scores]
            else:
                confidence = np.full(len(scores), np.nan)
            result = results[name]
            result.fold_qwk.append(quadratic_weighted_kappa(truth, scores, item.num_labels))
            result.fold_accuracy.append(accuracy(truth, scores))
            result.train_seconds.append(seconds)
            result.scores[fold.repeat][list(fold.test)] = scores
            result.confidence[fold.repeat][list(fold.test)] = confidence
            if log is not None:
                log(
                    f"{item.item_id} r{fold.repeat}f{fold.index} {name}: "
                    f"qwk={result.fold_qwk[-1]:.3f} in {seconds:.1f}s"
                )
    return results
