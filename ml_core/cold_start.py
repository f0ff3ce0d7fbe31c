"""Starting an item from few scored answers (issue 16): what to score next, how many more
answers are needed, and a prior from what the item already says.

Everything works on the item's answer vectors (the frozen backbone's pooled vectors, as
:func:`ml_core.embeddings.frozen_embedder` returns them; rows are L2-normalised here) and is
cheap enough to run after every batch an instructor scores:

- :func:`reference_features` describes each answer by what the item says: cosine to the
  reference answer(s) and to the prompt (raw, and standardised within the item's answers),
  word overlap with the reference, length. :class:`BankPrior` maps those features to a
  normalised score ``0..1`` with a model fitted on the OTHER items of the bank, and turns the
  prediction into a distribution over the item's scores (:meth:`BankPrior.class_probabilities`).
- :func:`predict_probabilities` fits the item's own model (logistic regression over the vectors)
  on the answers scored so far and blends it with the prior: the own model's weight is
  ``n / (n + prior_strength)`` for ``n`` scored answers.
- :func:`suggest_batch` picks the next answers to score: with nothing scored, the answers
  nearest the centres of a k-means over the vectors (pure diversity, representative answers);
  then greedily the answers with the highest product of rarity (predicted mass on the score
  levels scored least), uncertainty (the variance of the predicted score) and distance to
  everything scored or already picked (k-center); with ``coverage_from`` set (off by default),
  from that many scored answers on, cluster coverage: a k-means over the candidates and the
  scored answers with one cluster per scored answer plus one per answer to pick, the clusters
  without a scored answer ranked by their summed rarity x uncertainty, and from each the most
  typical answer (highest mean cosine to its cluster); with ``lookahead`` set (off by default),
  expected error reduction over a shortlist the rule picks. Measured on SAF against
  uncertainty + distance, k-means medoids, pure k-center, margin x density, uncertainty x
  density, density-weighted rarity x uncertainty, batches balanced over the predicted scores,
  coverage from the first batch on and expected error reduction
  (benchmarks/issue16-cold-start.md, docs/decisions/0014-cold-start.md).
- :func:`learning_curve` cross-validates the same predictor on prefixes of the scored answers
  (QWK of the pooled out-of-fold predictions, each scored answer weighted by how many of the
  item's answers it stands for: suggested answers are the rare and hard ones, and unweighted
  they put the curve far below the QWK on the item's answers), fits an inverse power law
  ``qwk(n) = a - b * n**-c`` (each point weighted by its training size ``n``) and estimates how many scored answers reach a target QWK, with a
  bootstrap interval over the scored answers.

No Django, no environment; numpy, scipy and scikit-learn only.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ml_core.baseline import fit_logistic
from ml_core.lexical import softmax

_EPS = 1e-12
Integers = Sequence[int] | np.ndarray
"""Positions or scores: a list of ints or an integer array."""
_WORD = re.compile(r"\w+", re.UNICODE)


@dataclass(frozen=True)
class ColdStartConfig:
    """How the few-answers model, the suggester and the curve work (chosen on SAF, issue 16)."""

    own_c: float = field(default=10.0, metadata={"help": "inverse L2 strength of the own model"})
    class_weight: str | None = field(
        default="balanced", metadata={"help": "'balanced' or None for the own model"}
    )
    prior_strength: float = field(
        default=20.0,
        metadata={"help": "scored answers at which the own model and the bank prior weigh equally"},
    )
    prior_feature_scale: float = field(
        default=3.0,
        metadata={
            "help": "scale of the prior's predicted score appended to the own features (larger:"
            " less shrunk by the L2 penalty; 3 over 1 on SAF, issue 16)"
        },
    )
    uncertainty_floor: float = field(
        default=0.1,
        metadata={"help": "added to the scaled uncertainty: rare levels count when all are sure"},
    )
    coverage_from: int | None = field(
        default=None,
        metadata={
            "help": "scored answers from which batches cover uncovered answer clusters (None: "
            "never; measured on SAF it gained +0.006 QWK at 50 answers, within noise, and made "
            "the answers-needed estimate right on 17 items of 30 instead of 20)"
        },
    )
    lookahead: int = field(
        default=0,
        metadata={
            "help": "with a positive value, expected error reduction: the batch is the answers,"
            " among this many picked by rarity x uncertainty x distance, whose score (each"
            " possible one, by its predicted probability) leaves the least predicted-score"
            " variance over the unscored answers once the model is refitted (0: off; 10 on"
            " SAF's German items: -0.000 QWK at 50 answers against random, the default rule"
            " +0.001, issue 16)"
        },
    )
    curve_folds: int = field(default=5, metadata={"help": "folds of the learning curve"})
    curve_exponent: float | None = field(
        default=None,
        metadata={"help": "fixed exponent c of the curve (None: fitted with a and b)"},
    )
    curve_weighted: bool = field(
        default=True,
        metadata={"help": "weight scored answers by how many of the item's answers they stand for"},
    )
    curve_point_weight: str = field(
        default="size",
        metadata={
            "help": "weight of each curve point in the fit: 'none', 'sqrt' (sqrt of its training"
            " size), 'size' (its training size: the points with more answers are the less noisy"
            " and the nearer to what is asked; on SAF right on 21 items of 30, 'none' 20) or"
            " 'inverse_variance' (1 / its bootstrap variance; needs curve_bootstrap >= 2)"
        },
    )
    curve_estimate: str = field(
        default="fit",
        metadata={
            "help": "'fit': answers needed from the curve fitted to the points; 'bootstrap_median':"
            " the median over the bootstrap refits (a refit that never reaches the target counts"
            " as infinite)"
        },
    )
    curve_repeats: int = field(default=2, metadata={"help": "repeats of the curve's folds"})
    curve_bootstrap: int = field(default=200, metadata={"help": "bootstrap refits of the curve"})
    horizon: float = field(
        default=20.0,
        metadata={"help": "estimates beyond this many times the scored answers count as never"},
    )
    seed: int = field(default=16, metadata={"help": "seed of k-means, folds and bootstrap"})


def normalise_rows(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (float64)."""
    array = np.asarray(vectors, dtype=np.float64)
    if array.ndim != 2:
        raise ValueError(f"vectors must be a 2-d array, got shape {array.shape}")
    return array / np.maximum(np.linalg.norm(array, axis=1, keepdims=True), _EPS)


# --------------------------------------------------------------------------------------------
# What the item already says


def _words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if len(w) > 2}


def _standardise(values: np.ndarray) -> np.ndarray:
    return (values - values.mean()) / max(float(values.std()), 1e-6)


FEATURE_NAMES: tuple[str, ...] = (
    "cos_reference",
    "cos_reference_z",
    "cos_reference_rank",
    "cos_prompt",
    "cos_prompt_z",
    "reference_recall",
    "reference_precision",
    "log_words",
    "log_length_ratio",
    "cos_centroid_z",
)


def reference_features(
    texts: Sequence[str],
    vectors: np.ndarray,
    reference_texts: Sequence[str],
    reference_vectors: np.ndarray,
    prompt_vector: np.ndarray,
) -> np.ndarray:
    """``[n, len(FEATURE_NAMES)]`` features of the item's answers from its reference answer(s)
    and prompt. Pass ALL the item's answers (scored or not): the ``_z`` and rank columns
    standardise within them, which removes the item-to-item offset of raw cosines.
    """
    if len(texts) != len(vectors):
        raise ValueError(f"{len(texts)} texts but {len(vectors)} vectors")
    if not reference_texts or len(reference_texts) != len(reference_vectors):
        raise ValueError("give at least one reference answer, with one vector each")
    answers = normalise_rows(vectors)
    references = normalise_rows(reference_vectors)
    prompt = normalise_rows(np.asarray(prompt_vector).reshape(1, -1))[0]
    cos_ref = (answers @ references.T).max(axis=1)
    cos_prompt = answers @ prompt
    centroid = answers.mean(axis=0)
    cos_centroid = answers @ (centroid / max(float(np.linalg.norm(centroid)), _EPS))
    ranks = np.argsort(np.argsort(cos_ref)) / max(len(texts) - 1, 1)
    ref_words = set().union(*(_words(r) for r in reference_texts))
    ref_length = np.mean([max(len(_WORD.findall(r)), 1) for r in reference_texts])
    rows = []
    for text in texts:
        words = _words(text)
        count = len(_WORD.findall(text))
        overlap = len(words & ref_words)
        rows.append(
            (
                overlap / max(len(ref_words), 1),
                overlap / max(len(words), 1),
                math.log1p(count),
                math.log((count + 1) / (ref_length + 1)),
            )
        )
    lexical = np.asarray(rows, dtype=np.float64).reshape(len(texts), 4)
    return np.column_stack(
        [
            cos_ref,
            _standardise(cos_ref),
            ranks,
            cos_prompt,
            _standardise(cos_prompt),
            lexical,
            _standardise(cos_centroid),
        ]
    )


@dataclass
class BankPrior:
    """A model fitted across items: reference features -> normalised score ``score / max``.

    Fit it on the other items of the bank (never on the item it will score).
    """

    max_iter: int = 200
    _model: object = None
    residual_sd: float = 0.3

    def fit(self, features: np.ndarray, normalised_scores: np.ndarray) -> BankPrior:
        from sklearn.ensemble import HistGradientBoostingRegressor

        x = np.asarray(features, dtype=np.float64)
        y = np.asarray(normalised_scores, dtype=np.float64)
        if len(x) != len(y) or len(x) < 20:
            raise ValueError("the bank prior needs at least 20 scored answers of other items")
        if y.min() < 0 or y.max() > 1:
            raise ValueError("normalised scores must lie in 0..1")
        model = HistGradientBoostingRegressor(
            max_iter=self.max_iter, learning_rate=0.05, max_leaf_nodes=15, random_state=0
        )
        model.fit(x, y)
        self._model = model
        self.residual_sd = max(float(np.std(y - model.predict(x))), 0.1)
        return self

    def predict(self, features: np.ndarray) -> np.ndarray:
        """Normalised predicted scores in ``0..1``."""
        if self._model is None:
            raise RuntimeError("the bank prior is not fitted")
        raw = self._model.predict(np.asarray(features, dtype=np.float64))  # type: ignore[attr-defined]
        return np.clip(np.asarray(raw, dtype=np.float64), 0.0, 1.0)

    def class_probabilities(self, features: np.ndarray, num_labels: int) -> np.ndarray:
        """``[n, num_labels]``: a discretised normal around the predicted score."""
        centre = self.predict(features) * (num_labels - 1)
        sd = max(self.residual_sd * (num_labels - 1), 0.3)
        grid = np.arange(num_labels, dtype=np.float64)
        logits = -0.5 * ((grid[None, :] - centre[:, None]) / sd) ** 2
        return softmax(logits)


# --------------------------------------------------------------------------------------------
# The item's own model, blended with the prior


def expected_scores(probabilities: np.ndarray) -> np.ndarray:
    return np.asarray(probabilities @ np.arange(probabilities.shape[1], dtype=np.float64))


def decode(probabilities: np.ndarray) -> np.ndarray:
    """Scores from probabilities: the expected score, rounded (ordinal, kind to QWK)."""
    return np.rint(expected_scores(probabilities)).astype(np.int64)


def predict_probabilities(
    vectors: np.ndarray,
    scored: Integers,
    labels: Integers,
    num_labels: int,
    *,
    prior: np.ndarray | None = None,
    config: ColdStartConfig | None = None,
) -> np.ndarray:
    """``[n, num_labels]`` for every row of ``vectors`` (normalised rows of ALL the item's
    answers), from the answers at positions ``scored`` with scores ``labels``.

    ``prior`` (``[n, num_labels]``, e.g. :meth:`BankPrior.class_probabilities`) is blended in
    with weight ``prior_strength / (n_scored + prior_strength)``; its expected score is also a
    feature of the own model. Without a prior and with fewer than two scored classes the result
    is uniform (nothing is known yet).
    """
    config = config or ColdStartConfig()
    index = np.asarray(scored, dtype=np.int64)
    y = np.asarray(labels, dtype=np.int64)
    if len(index) != len(y):
        raise ValueError(f"{len(index)} scored positions but {len(y)} labels")
    if len(y) and (y.min() < 0 or y.max() >= num_labels):
        raise ValueError(f"labels must lie in 0..{num_labels - 1}")
    n = len(vectors)
    uniform = np.full((n, num_labels), 1.0 / num_labels)
    # centred on the item's answers and scaled to unit mean length: what tells this item's
    # answers apart, not what they share
    centred = vectors - vectors.mean(axis=0)
    features = centred / max(float(np.linalg.norm(centred, axis=1).mean()), _EPS)
    if prior is not None:
        prior_score = expected_scores(prior) / max(num_labels - 1, 1)
        features = np.column_stack([features, config.prior_feature_scale * prior_score])
    own: np.ndarray | None = None
    if len(np.unique(y)) >= 2:
        coef, intercept = fit_logistic(
            features[index], y, num_labels, C=config.own_c, class_weight=config.class_weight
        )
        own = softmax(features @ coef.T + intercept)
    if prior is None:
        return own if own is not None else uniform
    if own is None:
        return np.asarray(prior, dtype=np.float64)
    weight = len(y) / (len(y) + config.prior_strength)
    return np.asarray(weight * own + (1.0 - weight) * prior)


# --------------------------------------------------------------------------------------------
# Which answers to score next


def score_uncertainty(probabilities: np.ndarray) -> np.ndarray:
    """Variance of the predicted score, scaled to ``0..1`` (the largest possible is
    ``((K-1)/2)**2``): ordinal uncertainty, which is what QWK punishes."""
    k = probabilities.shape[1]
    grid = np.arange(k, dtype=np.float64)
    mean = probabilities @ grid
    variance = probabilities @ grid**2 - mean**2
    return np.clip(variance / max(((k - 1) / 2) ** 2, _EPS), 0.0, 1.0)


def _diverse_first_batch(
    vectors: np.ndarray, candidates: np.ndarray, size: int, seed: int
) -> list[int]:
    from sklearn.cluster import KMeans

    clusters = min(size, len(candidates))
    model = KMeans(n_clusters=clusters, n_init=3, random_state=seed).fit(vectors[candidates])
    chosen: list[int] = []
    for centre in model.cluster_centers_:
        distances = np.linalg.norm(vectors[candidates] - centre, axis=1)
        for position in np.argsort(distances):
            if int(candidates[position]) not in chosen:
                chosen.append(int(candidates[position]))
                break
    return chosen


def suggest_batch(
    vectors: np.ndarray,
    scored: Integers,
    labels: Integers,
    num_labels: int,
    size: int,
    *,
    prior: np.ndarray | None = None,
    config: ColdStartConfig | None = None,
    candidates: Sequence[int] | None = None,
    probabilities: np.ndarray | None = None,
) -> list[int]:
    """Positions (rows of ``vectors``, normalised) of the next ``size`` answers to score, best
    first, among ``candidates`` (default: every row). Never returns a scored position; fewer
    than ``size`` when fewer are left. ``probabilities`` may pass what
    :func:`predict_probabilities` already returned for this scored set.
    """
    config = config or ColdStartConfig()
    if size < 1:
        raise ValueError("the batch size must be at least 1")
    done = set(int(i) for i in scored)
    pool = range(len(vectors)) if candidates is None else candidates
    left = np.array([int(i) for i in pool if int(i) not in done], dtype=np.int64)
    if len(left) <= size:
        return [int(i) for i in left]
    if not done:
        return _diverse_first_batch(vectors, left, size, config.seed)
    if probabilities is None:
        probabilities = predict_probabilities(
            vectors, scored, labels, num_labels, prior=prior, config=config
        )
    y = np.asarray(labels, dtype=np.int64)
    if config.lookahead > 0:
        shortlist = _rare_uncertain_diverse(
            vectors, left, sorted(done), y, probabilities, max(config.lookahead, size), config
        )
        return _least_expected_variance(
            vectors, left, shortlist, list(scored), y, num_labels, probabilities, size,
            prior, config,
        )  # fmt: skip
    if config.coverage_from is None or len(done) < config.coverage_from:
        return _rare_uncertain_diverse(vectors, left, sorted(done), y, probabilities, size, config)
    chosen = _uncovered_clusters(vectors, left, sorted(done), y, probabilities, size, config)
    if len(chosen) < size:  # fewer uncovered clusters than answers to pick (ties, duplicates)
        rest = np.array([i for i in left if int(i) not in chosen], dtype=np.int64)
        chosen += _rare_uncertain_diverse(
            vectors, rest, sorted(done), y, probabilities, size - len(chosen), config,
            anchors=sorted(done) + chosen,
        )  # fmt: skip
    return chosen


def _least_expected_variance(
    vectors: np.ndarray,
    candidates: np.ndarray,
    shortlist: list[int],
    scored: list[int],
    labels: np.ndarray,
    num_labels: int,
    probabilities: np.ndarray,
    size: int,
    prior: np.ndarray | None,
    config: ColdStartConfig,
) -> list[int]:
    """Expected error reduction (one step ahead, the model's own beliefs): per shortlisted
    answer, the model refitted with it scored as each level it may have (levels below 2%
    skipped), the predicted-score variance summed over ``candidates``, averaged with the
    level's predicted probability; the ``size`` answers with the least, least first."""
    expected = []
    for answer in shortlist:
        total = mass = 0.0
        for level in range(num_labels):
            p = float(probabilities[answer, level])
            if p < 0.02:
                continue
            after = predict_probabilities(
                vectors, [*scored, answer], np.append(labels, level), num_labels,
                prior=prior, config=config,
            )  # fmt: skip
            total += p * float(score_uncertainty(after[candidates]).sum())
            mass += p
        expected.append(total / max(mass, _EPS))
    order = np.argsort(np.asarray(expected), kind="stable")
    return [shortlist[int(i)] for i in order[:size]]


def _value(
    candidates: np.ndarray, labels: np.ndarray, probabilities: np.ndarray, config: ColdStartConfig
) -> np.ndarray:
    """Per candidate: rarity x (uncertainty + floor), each part scaled to a maximum of 1.

    Rarity is the predicted probability mass on score levels with few scored answers
    (``sum_k p_k / (1 + count_k)``): it steers toward the levels the model has seen least (the
    extremes QWK weighs most); uncertainty (variance of the predicted score) toward what the
    model cannot yet tell.
    """
    counts = np.bincount(labels, minlength=probabilities.shape[1])
    rarity = probabilities[candidates] @ (1.0 / (1.0 + counts))
    rarity = rarity / max(float(rarity.max()), _EPS)
    uncertainty = score_uncertainty(probabilities[candidates])
    uncertainty = uncertainty / max(float(uncertainty.max()), _EPS)
    return np.asarray(rarity * (uncertainty + config.uncertainty_floor))


def _uncovered_clusters(
    vectors: np.ndarray,
    candidates: np.ndarray,
    done: Sequence[int],
    labels: np.ndarray,
    probabilities: np.ndarray,
    size: int,
    config: ColdStartConfig,
) -> list[int]:
    """Cluster coverage: k-means over candidates + scored answers with ``len(done) + size``
    clusters; the clusters holding no scored answer, by their summed rarity x uncertainty
    (:func:`_value`), each give their most typical candidate (highest mean cosine to the
    cluster's other candidates). A batch of answers that each stand for a part of the item
    nobody has scored yet, leaning to the parts the model finds rare and hard.
    """
    from sklearn.cluster import KMeans

    scored = np.asarray(done, dtype=np.int64)
    rows = np.concatenate([candidates, scored])
    clusters = min(len(scored) + size, len(rows))
    with warnings.catch_warnings():  # identical answers: fewer distinct clusters than asked
        warnings.simplefilter("ignore")
        model = KMeans(n_clusters=clusters, n_init=1, random_state=config.seed)
        assignment = model.fit(vectors[rows]).labels_
    covered = set(assignment[len(candidates) :].tolist())
    own = assignment[: len(candidates)]
    mass = np.bincount(own, weights=_value(candidates, labels, probabilities, config),
                       minlength=clusters)  # fmt: skip
    chosen: list[int] = []
    for cluster in np.argsort(-mass, kind="stable"):
        if len(chosen) == size:
            break
        if int(cluster) in covered or mass[cluster] <= 0:
            continue
        members = candidates[own == cluster]
        typical = (vectors[members] @ vectors[members].T).mean(axis=1)
        chosen.append(int(members[int(np.argmax(typical))]))
    return chosen


def _rare_uncertain_diverse(
    vectors: np.ndarray,
    candidates: np.ndarray,
    done: Sequence[int],
    labels: np.ndarray,
    probabilities: np.ndarray,
    size: int,
    config: ColdStartConfig,
    anchors: Sequence[int] | None = None,
) -> list[int]:
    """Greedy: value (:func:`_value`: rarity x uncertainty) x distance to what is scored
    (or in ``anchors``) or picked: the k-center distance keeps the batch from repeating one
    kind of answer."""
    value = _value(candidates, labels, probabilities, config)
    anchor = vectors[np.asarray(done if anchors is None else anchors, dtype=np.int64)]
    distance = (1.0 - vectors[candidates] @ anchor.T).min(axis=1)
    chosen: list[int] = []
    for _ in range(min(size, len(candidates))):
        score = value * distance / max(float(distance.max()), _EPS)
        score[[c for c in range(len(candidates)) if int(candidates[c]) in chosen]] = -np.inf
        best = int(np.argmax(score))
        chosen.append(int(candidates[best]))
        distance = np.minimum(distance, 1.0 - vectors[candidates] @ vectors[candidates[best]])
    return chosen


# --------------------------------------------------------------------------------------------
# The learning curve and how many more answers are needed


@dataclass(frozen=True)
class CurvePoint:
    size: int
    qwk: float
    sd: float


@dataclass(frozen=True)
class LearningCurve:
    """Cross-validated QWK against training size, and the answers needed for ``target``.

    ``needed`` is the total number of scored answers at which the fitted curve reaches
    ``target`` (None: the fitted curve levels off below it, or reaches it only beyond
    ``horizon`` times the scored answers); ``needed_low``/``needed_high``
    the 10th/90th percentiles over bootstrap refits (None when more than 10% of them level off
    below the target); ``reachable`` the share of refits that reach it at all.
    """

    scored: int
    target: float
    points: tuple[CurvePoint, ...]
    asymptote: float | None
    params: tuple[float, float, float] | None
    needed: float | None
    needed_low: float | None
    needed_high: float | None
    reachable: float

    @property
    def more_needed(self) -> float | None:
        return None if self.needed is None else max(0.0, self.needed - self.scored)

    def to_json(self) -> dict[str, object]:
        return {
            "scored": self.scored,
            "target": self.target,
            "points": [{"size": p.size, "qwk": p.qwk, "sd": p.sd} for p in self.points],
            "asymptote": self.asymptote,
            "params": list(self.params) if self.params else None,
            "needed": self.needed,
            "needed_low": self.needed_low,
            "needed_high": self.needed_high,
            "more_needed": self.more_needed,
            "reachable": self.reachable,
        }


def _power_law(n: np.ndarray, a: float, b: float, c: float) -> np.ndarray:
    return np.asarray(a - b * np.power(n, -c))


def _fixed_exponent_fit(
    x: np.ndarray, y: np.ndarray, sigma: np.ndarray | None, c: float
) -> tuple[float, float, float]:
    """Weighted least squares of ``a - b * x**-c`` for a fixed ``c`` (``b >= 0``)."""
    weights = np.ones_like(x) if sigma is None else 1.0 / sigma**2
    design = np.column_stack([np.ones_like(x), -np.power(x, -c)])
    root = np.sqrt(weights)
    (a, b), *_ = np.linalg.lstsq(design * root[:, None], y * root, rcond=None)
    if b < 0:  # a curve that falls: flat at the weighted mean
        a, b = float(np.average(y, weights=weights)), 0.0
    return float(np.clip(a, -1.0, 1.0)), float(b), c


def fit_power_law(
    sizes: Sequence[float] | np.ndarray,
    qwks: Sequence[float] | np.ndarray,
    sds: Sequence[float] | np.ndarray | None = None,
    exponent: float | None = None,
) -> tuple[float, float, float] | None:
    """``(a, b, c)`` of ``qwk(n) = a - b * n**-c`` (``a`` in ``-1..1``, ``b >= 0``,
    ``c`` in ``0.05..2``, or ``exponent`` when given), or None with fewer than three sizes or
    when the fit fails."""
    from scipy.optimize import curve_fit

    x = np.asarray(sizes, dtype=np.float64)
    y = np.asarray(qwks, dtype=np.float64)
    if len(x) < 3:
        return None
    sigma = None if sds is None else np.maximum(np.asarray(sds, dtype=np.float64), 0.02)
    if exponent is not None:
        return _fixed_exponent_fit(x, y, sigma, exponent)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            params, _ = curve_fit(
                _power_law,
                x,
                y,
                p0=(min(float(y.max()) + 0.05, 1.0), 1.0, 0.5),
                sigma=sigma,
                bounds=((-1.0, 0.0, 0.05), (1.0, 50.0, 2.0)),
                maxfev=4000,
            )
    except (RuntimeError, ValueError):
        return None
    return float(params[0]), float(params[1]), float(params[2])


def answers_for(
    params: tuple[float, float, float], target: float, limit: float = math.inf
) -> float | None:
    """Training size at which the fitted curve reaches ``target`` (None: never, or beyond
    ``limit``: an extrapolation that far says nothing)."""
    a, b, c = params
    if b <= 0:
        return 1.0 if a >= target else None
    if a <= target:
        return None
    needed = float((b / (a - target)) ** (1.0 / c))
    return needed if needed <= limit else None


def curve_sizes(largest: int, smallest: int = 5) -> list[int]:
    """Training sizes of the curve: about 1.4x apart from ``smallest`` up to ``largest``."""
    sizes: list[int] = []
    size = float(smallest)
    while size < largest:
        if not sizes or int(size) > sizes[-1]:
            sizes.append(int(size))
        size *= 1.4
    if largest >= smallest and (not sizes or sizes[-1] != largest):
        sizes.append(largest)
    return sizes


def _folds(count: int, config: ColdStartConfig) -> list[np.ndarray]:
    """The curve's folds over ``count`` scored answers (a seeded random order, dealt out)."""
    order = np.random.default_rng(config.seed).permutation(count)
    folds = min(config.curve_folds, count)
    return [order[f::folds] for f in range(folds)]


def baseline_qwk(
    texts: Sequence[str],
    labels: Integers,
    num_labels: int,
    *,
    config: ColdStartConfig | None = None,
) -> float:
    """Cross-validated QWK of the TF-IDF + logistic regression baseline
    (:class:`ml_core.baseline.TfidfBaseline`) on the scored answers, over the learning curve's
    folds: what the curve's model must beat before training is worth starting."""
    from ml_core.baseline import TfidfBaseline

    config = config or ColdStartConfig()
    y = np.asarray(labels, dtype=np.int64)
    if len(texts) != len(y) or len(y) < 2:
        raise ValueError("give one label per text, at least two")
    predicted = np.zeros(len(y), dtype=np.int64)
    for test in _folds(len(y), config):
        train = np.setdiff1d(np.arange(len(y)), test)
        model = TfidfBaseline(num_labels).fit([texts[i] for i in train], y[train].tolist())
        predicted[test] = model.predict([texts[i] for i in test])
    # pooled over the out-of-fold predictions, as the curve's points are
    return weighted_qwk(y, predicted, num_labels, np.ones(len(y)))


def _out_of_fold(
    vectors: np.ndarray,
    scored: np.ndarray,
    y: np.ndarray,
    num_labels: int,
    prior: np.ndarray | None,
    config: ColdStartConfig,
) -> tuple[list[int], np.ndarray]:
    """Training sizes and ``[repeats, sizes, scored]`` out-of-fold predicted scores: in each
    repeat every scored answer is predicted once per size, by a model trained on the first
    ``size`` answers (random order) of the other folds."""
    rng = np.random.default_rng(config.seed)
    folds = min(config.curve_folds, len(y))
    largest = len(y) - int(math.ceil(len(y) / folds))
    sizes = curve_sizes(largest)
    predicted = np.zeros((config.curve_repeats, len(sizes), len(y)), dtype=np.int64)
    for repeat in range(config.curve_repeats):
        order = rng.permutation(len(y))
        parts = [order[f::folds] for f in range(folds)]
        for f, test in enumerate(parts):
            train = np.concatenate([p for g, p in enumerate(parts) if g != f])
            for s, size in enumerate(sizes):
                picked = train[:size]
                probabilities = predict_probabilities(
                    vectors, scored[picked], y[picked], num_labels, prior=prior, config=config
                )
                predicted[repeat, s, test] = decode(probabilities[scored[test]])
    return sizes, predicted


def weighted_qwk(
    y_true: np.ndarray, y_pred: np.ndarray, num_labels: int, weights: np.ndarray
) -> float:
    """QWK with a weight per answer (its share of the confusion matrix)."""
    observed = np.zeros((num_labels, num_labels))
    np.add.at(observed, (y_true, y_pred), weights)
    total = observed.sum()
    if total <= 0:
        return 0.0
    grid = np.arange(num_labels)
    cost = (grid[:, None] - grid[None, :]) ** 2 / max(1, (num_labels - 1) ** 2)
    expected = np.outer(observed.sum(axis=1), observed.sum(axis=0)) / total
    denominator = float((cost * expected).sum())
    numerator = float((cost * observed).sum())
    if denominator == 0.0:
        return 1.0 if numerator == 0.0 else 0.0
    return 1.0 - numerator / denominator


def representativeness(vectors: np.ndarray, scored: np.ndarray) -> np.ndarray:
    """Per scored answer, how many of the item's answers (scored or not) are nearest to it:
    suggested batches over-sample rare and uncertain answers, and weighting each scored
    answer by the share of the item it stands for makes the curve estimate the QWK on the
    item's answers as they come, not on the hard ones picked to be scored."""
    nearest = np.argmax(vectors @ vectors[scored].T, axis=1)
    return np.bincount(nearest, minlength=len(scored)).astype(np.float64)


def _pooled_qwk(
    y: np.ndarray, predicted: np.ndarray, num_labels: int, weights: np.ndarray
) -> np.ndarray:
    """``[sizes]``: QWK of all out-of-fold predictions at each size, mean over repeats."""
    repeats, sizes, _ = predicted.shape
    return np.array(
        [
            np.mean([weighted_qwk(y, predicted[r, s], num_labels, weights) for r in range(repeats)])
            for s in range(sizes)
        ]
    )


def point_sigmas(sizes: Sequence[int], sds: np.ndarray, weight: str = "none") -> np.ndarray | None:
    """Per curve point, the ``sigma`` of :func:`fit_power_law` (its weight is ``1 / sigma**2``)
    for ``weight`` (:attr:`ColdStartConfig.curve_point_weight`); None: all points equal."""
    n = np.asarray(sizes, dtype=np.float64)
    if weight == "none":
        return None
    if weight == "sqrt":
        return np.asarray(n**-0.25)
    if weight == "size":
        return np.asarray(n**-0.5)
    if weight == "inverse_variance":
        if len(sds) != len(n) or not np.any(np.asarray(sds) > 0):
            raise ValueError("inverse-variance weights need the bootstrap (curve_bootstrap >= 2)")
        return np.asarray(sds, dtype=np.float64)  # floored in fit_power_law
    raise ValueError(f"unknown curve point weight {weight!r}")


def _needed(
    params: tuple[float, float, float] | None, target: float, limit: float, smallest: float
) -> float:
    """:func:`answers_for`, never below the curve's first point (it says nothing below it);
    infinite when the curve never reaches ``target`` within ``limit``."""
    value = answers_for(params, target, limit) if params else None
    return math.inf if value is None else max(value, float(smallest))


def learning_curve(
    vectors: np.ndarray,
    scored: Integers,
    labels: Integers,
    num_labels: int,
    target: float,
    *,
    prior: np.ndarray | None = None,
    config: ColdStartConfig | None = None,
) -> LearningCurve:
    """Cross-validated QWK of :func:`predict_probabilities` on prefixes of the scored answers
    (``curve_repeats`` x ``curve_folds`` folds over the scored answers; each fold's training
    part taken in a random order; the QWK of all out-of-fold predictions at a size, not a mean
    of per-fold QWKs, which is biased low on small folds), and the inverse-power-law estimate
    of the scored answers needed to reach ``target`` (the points weighted as
    ``curve_point_weight`` says; by default by their training size); the interval refits the
    curve on bootstrap resamples of the scored answers.

    Needs at least 10 scored answers.
    """
    config = config or ColdStartConfig()
    index = np.asarray(scored, dtype=np.int64)
    y = np.asarray(labels, dtype=np.int64)
    if len(index) != len(y):
        raise ValueError(f"{len(index)} scored positions but {len(y)} labels")
    if len(y) < 10:
        raise ValueError("a learning curve needs at least 10 scored answers")
    sizes, predicted = _out_of_fold(vectors, index, y, num_labels, prior, config)
    weights = representativeness(vectors, index) if config.curve_weighted else np.ones(len(y))
    means = _pooled_qwk(y, predicted, num_labels, weights)
    rng = np.random.default_rng(config.seed + 1)
    samples = [rng.integers(0, len(y), len(y)) for _ in range(config.curve_bootstrap)]
    boot_curves = np.array(
        [_pooled_qwk(y[i], predicted[:, :, i], num_labels, weights[i]) for i in samples]
    )
    sds = boot_curves.std(axis=0) if len(samples) > 1 else np.zeros(len(sizes))
    points = tuple(
        CurvePoint(size, float(m), float(s)) for size, m, s in zip(sizes, means, sds, strict=True)
    )
    sigma = point_sigmas(sizes, sds, config.curve_point_weight)
    params = fit_power_law(sizes, means, sigma, config.curve_exponent)
    limit = config.horizon * len(y)
    boot = [
        _needed(fit_power_law(sizes, curve, sigma, config.curve_exponent), target, limit, sizes[0])
        for curve in boot_curves
    ]
    if config.curve_estimate == "bootstrap_median" and boot:
        middle = float(np.median(boot))
        needed = middle if math.isfinite(middle) else None
    else:
        value = _needed(params, target, limit, sizes[0])
        needed = value if math.isfinite(value) else None
    finite = np.asarray(boot)
    reachable = float(np.isfinite(finite).mean()) if len(finite) else 0.0
    low = high = None
    if reachable >= 0.9:
        low, high = (float(v) for v in np.percentile(finite, [10, 90]))
    return LearningCurve(
        scored=len(y),
        target=target,
        points=points,
        asymptote=params[0] if params else None,
        params=params,
        needed=needed,
        needed_low=low,
        needed_high=high,
        reachable=reachable,
    )
