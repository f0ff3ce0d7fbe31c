"""The ``auto`` kind (issue 13): per item, the best of a lexical and a frozen-encoder channel.

What is trained, chosen by cross-validated QWK on the item's own training answers:

- **lexical channel**: TF-IDF of word 1-2-grams + ``char_wb`` 2-5-grams (:mod:`ml_core.lexical`)
  -> multinomial logistic regression (balanced class weights);
- **neural channel**: the frozen packaged backbone's mean-pooled vectors, L2-normalised, centred
  and scaled -> logistic regression. Vectors are computed once per answer (``embed`` may be a
  cache) and reused by every inner fold and candidate;
- **joint**: one logistic regression over both feature sets side by side;
- **blend**: a weighted mean of the lexical and neural probabilities (weight chosen on
  out-of-fold predictions: stacking by blending);
- **decoding**: argmax, or the expected score cut at thresholds tuned on out-of-fold predictions
  to maximise QWK (ordinal decoding).

Each candidate is scored on out-of-fold predictions of an inner stratified k-fold; the best
(candidate, decoding) wins. Its out-of-fold probabilities calibrate a temperature (minimum
negative log-likelihood), the cut points are tuned on the calibrated probabilities, and the same
predictions give the expected calibration error, the agreement-versus-automation curve and the
review threshold. Then the chosen channel(s) are refitted on all answers.

All logistic regressions are fitted in the dual of the linear kernel (the L2-penalised optimum
lies in the span of the training rows), so a TF-IDF model with tens of thousands of columns costs
an ``n x n`` problem; the primal weights are recovered for serving, which needs only numpy.

The artifact is one folder: ``manifest.json`` (kind ``auto``, backbone fingerprint, pooling,
labels, chosen candidate, temperature, cut points, metrics, curve), ``weights.safetensors``
(float32 arrays: idf, coefficients, embedding centring), ``lexical.json`` (the n-gram vocabulary).
No pickles, and no student's text: the manifest keeps per training answer only its score,
prediction and word count, the self-check runs on the reference answers and fixed sentences,
and the vocabulary keeps n-grams of at least ``min_df`` (2) answers.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ml_core.artifact import AUTO_KIND, MANIFEST_FILE, WEIGHTS_FILE, read_manifest, write_artifact
from ml_core.baseline import fit_logistic
from ml_core.crossval import expected_calibration_error, stratified_folds, t_interval
from ml_core.embeddings import frozen_embedder as _frozen_embedder
from ml_core.lexical import LexicalVectorizer, SparseRows, linear_logits, softmax
from ml_core.metrics import quadratic_weighted_kappa
from ml_core.training import TrainedArtifact, TrainExample, TrainingCancelled, TrainProgress

LEXICAL_FILE = "lexical.json"
CANDIDATES: tuple[str, ...] = ("lexical", "embedding", "joint", "blend")
DECODERS: tuple[str, ...] = ("argmax", "cutpoints")
_EPS = 1e-12


@dataclass(frozen=True)
class AutoConfig:
    """How ``auto`` trains one item. Defaults were chosen by cross-validation on SAF (issue 13)."""

    folds: int = field(default=5, metadata={"help": "inner cross-validation folds"})
    seed: int = field(default=13, metadata={"help": "seed of the inner folds"})
    target_agreement: float = field(
        default=0.90,
        metadata={"help": "exact agreement the auto-posted answers must reach (review threshold)"},
    )
    candidates: tuple[str, ...] = field(
        default=CANDIDATES, metadata={"help": f"candidates compared by inner CV: {CANDIDATES}"}
    )
    decoders: tuple[str, ...] = field(
        default=DECODERS, metadata={"help": f"decodings compared by inner CV: {DECODERS}"}
    )
    blend_weights: tuple[float, ...] = field(
        default=(0.25, 0.5, 0.75), metadata={"help": "lexical weights tried by the blend"}
    )
    lexical_c: float = field(
        default=4.0, metadata={"help": "inverse L2 strength of the lexical regression"}
    )
    embedding_c: float = field(
        default=4.0, metadata={"help": "inverse L2 strength of the neural regression"}
    )
    joint_embedding_weight: float = field(
        default=1.0, metadata={"help": "scale of the neural block beside the lexical one (joint)"}
    )
    sublinear_tf: bool = field(default=False, metadata={"help": "TF-IDF with 1 + ln(tf)"})
    min_df: int = field(
        default=2,
        metadata={
            "help": "drop n-grams in fewer training answers: at 2, a word (a name, say) that "
            "only one answer holds never enters the stored vocabulary"
        },
    )
    class_weight: str | None = field(
        default="balanced", metadata={"help": "'balanced' or None for the regressions"}
    )
    pooling: str = field(default="mean", metadata={"help": "backbone pooling (mean | cls)"})
    max_seconds: float | None = field(
        default=None,
        metadata={"help": "stop trying further candidates after this many seconds (None: all)"},
    )
    curve_step: float = field(default=0.05, metadata={"help": "threshold step of the curve"})
    answer_features: bool = field(
        default=True,
        metadata={
            "help": "add the answer's length and its likeness to the reference answer(s) "
            "(vector cosine, TF-IDF similarity, content-word coverage) to every candidate"
        },
    )
    feature_weight: float = field(
        default=1.0, metadata={"help": "scale of the answer-feature block beside the others"}
    )
    c_scales: tuple[float, ...] = field(
        default=(1.0,),
        metadata={"help": "multipliers of each candidate's C compared by inner CV"},
    )
    reference_as_answer: bool = field(
        default=False,
        metadata={"help": "add each reference answer as a training answer with the top score"},
    )
    blas_threads: int = field(
        default=1,
        metadata={
            "help": "BLAS threads for the n x n problems (small matrices: more threads only "
            "contend, badly so on a shared machine)"
        },
    )


# --------------------------------------------------------------------------------------------
# Building blocks


def _normalise(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.asarray(vectors / np.maximum(norms, _EPS), dtype=np.float64)


@dataclass(frozen=True)
class _DualModel:
    """Logistic regression in the dual of a linear kernel: ``logits = K(x, X) @ alpha + b``."""

    alpha: np.ndarray  # [n_train, classes]
    intercept: np.ndarray  # [classes]

    def logits(self, kernel_rows: np.ndarray) -> np.ndarray:
        return np.asarray(kernel_rows @ self.alpha + self.intercept)


def _eigen_basis(kernel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(basis, scale)``: the kernel's eigenvectors and root eigenvalues above round-off."""
    values, vectors = np.linalg.eigh(kernel)
    keep = values > max(float(values.max()) * 1e-10, 1e-12)
    return vectors[:, keep], np.sqrt(values[keep])


def _fit_dual(
    kernel: np.ndarray | tuple[np.ndarray, np.ndarray],
    labels: np.ndarray,
    num_labels: int,
    c: float,
    class_weight: str | None,
) -> _DualModel:
    """L2-penalised multinomial LR with a linear kernel, exactly (representer theorem).

    ``kernel`` is the ``n x n`` Gram matrix or its :func:`_eigen_basis`."""
    basis, scale = _eigen_basis(kernel) if isinstance(kernel, np.ndarray) else kernel
    coef, intercept = fit_logistic(
        basis * scale, labels, num_labels, C=c, class_weight=class_weight, max_iter=5000
    )
    alpha = (basis / scale) @ coef.T
    return _DualModel(alpha=alpha, intercept=intercept)


def _log(probabilities: np.ndarray) -> np.ndarray:
    return np.log(np.clip(probabilities, _EPS, 1.0))


def apply_temperature(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """``softmax(log p / T)``: T > 1 softens over-confident probabilities."""
    return softmax(_log(probabilities) / temperature)


def fit_temperature(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """The temperature minimising the negative log-likelihood of ``labels`` (0.05 .. 20)."""
    from scipy.optimize import minimize_scalar

    logp = _log(probabilities)
    rows = np.arange(len(labels))

    def nll(log_t: float) -> float:
        scaled = logp / math.exp(log_t)
        scaled = scaled - scaled.max(axis=1, keepdims=True)
        log_norm = np.log(np.exp(scaled).sum(axis=1))
        return float(-(scaled[rows, labels] - log_norm).mean())

    result = minimize_scalar(nll, bounds=(math.log(0.05), math.log(20.0)), method="bounded")
    return float(math.exp(result.x))


def expected_scores(probabilities: np.ndarray) -> np.ndarray:
    return np.asarray(probabilities @ np.arange(probabilities.shape[1], dtype=np.float64))


def decode_with_cuts(probabilities: np.ndarray, cuts: Sequence[float]) -> np.ndarray:
    """Score = number of cut points below the expected score."""
    return np.searchsorted(
        np.asarray(cuts, dtype=np.float64), expected_scores(probabilities), side="right"
    ).astype(np.int64)


def tune_cut_points(
    probabilities: np.ndarray, labels: np.ndarray, num_labels: int, passes: int = 3
) -> tuple[float, ...]:
    """Cut points on the expected score maximising QWK against ``labels`` (coordinate search).

    Starts at the midpoints ``k - 0.5``; each pass moves one cut at a time to the best of up to
    64 candidate positions between its neighbours (the order of the cuts is kept).
    """
    expected = expected_scores(probabilities)
    cuts = [k + 0.5 for k in range(num_labels - 1)]

    def qwk(candidate: Sequence[float]) -> float:
        predicted = np.searchsorted(np.asarray(candidate), expected, side="right")
        return quadratic_weighted_kappa(labels, predicted, num_labels)

    best = qwk(cuts)
    for _ in range(passes):
        improved = False
        for k in range(len(cuts)):
            low = cuts[k - 1] if k > 0 else 0.0
            high = cuts[k + 1] if k + 1 < len(cuts) else float(num_labels - 1)
            inside = np.unique(expected[(expected > low) & (expected < high)])
            if len(inside) > 64:
                inside = np.quantile(inside, np.linspace(0, 1, 64))
            # a cut halfway between neighbouring expected scores separates exactly those answers
            positions = np.unique(np.concatenate([(inside[:-1] + inside[1:]) / 2, [cuts[k]]]))
            for position in positions:
                trial = cuts[:k] + [float(position)] + cuts[k + 1 :]
                value = qwk(trial)
                if value > best + 1e-12:
                    best, cuts, improved = value, trial, True
        if not improved:
            break
    return tuple(cuts)


def decode_scores(probabilities: np.ndarray, decoder: str, cuts: Sequence[float]) -> np.ndarray:
    if decoder == "cutpoints":
        return decode_with_cuts(probabilities, cuts)
    return np.asarray(probabilities.argmax(axis=1), dtype=np.int64)


def agreement_curve(
    confidence: np.ndarray, correct: np.ndarray, step: float = 0.05
) -> list[dict[str, float]]:
    """Per confidence threshold: share of answers auto-posted (confidence >= threshold) and the
    exact agreement of those with the human score (nan when none is posted)."""
    out = []
    for threshold in np.round(np.arange(0.0, 1.0 + step / 2, step), 6):
        posted = confidence >= threshold - 1e-12
        out.append(
            {
                "threshold": float(threshold),
                "auto_fraction": float(posted.mean()) if len(posted) else 0.0,
                "agreement": float(correct[posted].mean()) if posted.any() else math.nan,
            }
        )
    return out


def review_threshold_for(curve: Sequence[dict[str, float]], target: float) -> float:
    """Lowest curve threshold whose auto-posted answers reach ``target`` exact agreement.

    Returns a value above 1 (nothing auto-posted: every answer goes to review) when none does.
    """
    for point in curve:
        if point["auto_fraction"] > 0 and point["agreement"] >= target:
            return float(point["threshold"])
    return 1.01


# --------------------------------------------------------------------------------------------
# Answer features beside the n-grams and the vectors: length and likeness to the reference

_TOKEN = re.compile(r"\w+", re.UNICODE)


def _tokens(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


def _content_words(text: str) -> frozenset[str]:
    """The reference's words that carry content (a language-free proxy: 4 letters or more)."""
    return frozenset(t for t in _tokens(text) if len(t) >= 4 and not t.isdigit())


@dataclass(frozen=True)
class _AnswerFeatures:
    """Per answer: ``log(1 + words)``; with reference answers also, each the best over them,
    the cosine of the answer's vector to the reference's (when vectors are used), the TF-IDF
    similarity to the reference, and the share of the reference's content words present."""

    references: tuple[str, ...]
    reference_rows: np.ndarray  # dense TF-IDF rows of the references [r, width]
    reference_vectors: np.ndarray | None  # unit backbone vectors of the references [r, hidden]

    @property
    def names(self) -> list[str]:
        names = ["log_words"]
        if self.references:
            names += ["vector_cosine"] if self.reference_vectors is not None else []
            names += ["tfidf_similarity", "reference_coverage"]
        return names

    def compute(
        self, texts: Sequence[str], rows: SparseRows, unit_vectors: np.ndarray | None
    ) -> np.ndarray:
        columns = [np.log1p([len(_tokens(t)) for t in texts])]
        if self.references:
            if self.reference_vectors is not None:
                assert unit_vectors is not None
                columns.append((unit_vectors @ self.reference_vectors.T).max(axis=1))
            similarity = linear_logits(
                rows, self.reference_rows, np.zeros(len(self.reference_rows))
            )
            columns.append(similarity.max(axis=1) / 2.0)  # two L2-normalised blocks
            words = [_content_words(r) for r in self.references]
            coverage = np.zeros(len(texts))
            for i, text in enumerate(texts):
                present = set(_tokens(text))
                coverage[i] = max(len(w & present) / len(w) if w else 0.0 for w in words)
            columns.append(coverage)
        return np.asarray(np.stack(columns, axis=1), dtype=np.float64)


def _dense_rows(rows: SparseRows) -> np.ndarray:
    dense = np.zeros((len(rows), rows.width))
    for i in range(len(rows)):
        start, stop = int(rows.indptr[i]), int(rows.indptr[i + 1])
        dense[i, rows.indices[start:stop]] = rows.data[start:stop]
    return dense


# --------------------------------------------------------------------------------------------
# Training


@dataclass
class _Channels:
    """Per-answer features of one training set: TF-IDF rows and prepared embeddings."""

    lexical_kernel: np.ndarray | None
    embedding_kernel: np.ndarray | None
    feature_kernel: np.ndarray | None = None


def _prepare_embeddings(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """L2-normalise, centre on the training mean, scale to unit mean squared norm."""
    unit = _normalise(raw)
    mean = unit.mean(axis=0)
    centred = unit - mean
    scale = float(math.sqrt(max((centred**2).sum(axis=1).mean(), _EPS)))
    return centred / scale, mean, scale


def _candidate_kernel(
    name: str, channels: _Channels, config: AutoConfig
) -> tuple[np.ndarray, float] | None:
    spec = _channel_kernel(name, channels, config)
    if spec is None or channels.feature_kernel is None:
        return spec
    return spec[0] + channels.feature_kernel, spec[1]


def _channel_kernel(
    name: str, channels: _Channels, config: AutoConfig
) -> tuple[np.ndarray, float] | None:
    if name == "lexical" and channels.lexical_kernel is not None:
        return channels.lexical_kernel, config.lexical_c
    if name == "embedding" and channels.embedding_kernel is not None:
        return channels.embedding_kernel, config.embedding_c
    if (
        name == "joint"
        and channels.lexical_kernel is not None
        and channels.embedding_kernel is not None
    ):
        return (
            channels.lexical_kernel + config.joint_embedding_weight**2 * channels.embedding_kernel,
            config.lexical_c,
        )
    return None


def _out_of_fold(
    kernel: np.ndarray,
    labels: np.ndarray,
    num_labels: int,
    cs: Sequence[float],
    class_weight: str | None,
    folds: Sequence[tuple[np.ndarray, np.ndarray]],
) -> dict[float, np.ndarray]:
    """Out-of-fold probabilities per C (one eigendecomposition per fold serves every C)."""
    probabilities = {c: np.zeros((len(labels), num_labels)) for c in cs}
    for train, test in folds:
        basis = _eigen_basis(kernel[np.ix_(train, train)])
        for c in cs:
            model = _fit_dual(basis, labels[train], num_labels, c, class_weight)
            probabilities[c][test] = softmax(model.logits(kernel[np.ix_(test, train)]))
    return probabilities


@dataclass(frozen=True)
class _Choice:
    candidate: str  # lexical | embedding | joint | blend
    blend_weight: float  # lexical share (blend only)
    decoder: str
    qwk: float
    cs: tuple[float, ...]  # C of the candidate (blend: of the lexical, then the neural part)


@dataclass(frozen=True)
class _Option:
    name: str
    weight: float
    cs: tuple[float, ...]
    probabilities: np.ndarray

    @property
    def label(self) -> str:
        weight = f"@{self.weight}" if self.name == "blend" else ""
        return f"{self.name}{weight}[C={'/'.join(f'{c:g}' for c in self.cs)}]"


def _options(
    oof: dict[str, dict[float, np.ndarray]], labels: np.ndarray, num_labels: int, config: AutoConfig
) -> list[_Option]:
    """Every (candidate, C) and the blends of the lexical and neural channels, each at the C
    whose out-of-fold argmax QWK is best."""
    options = [
        _Option(name, 1.0 if name == "lexical" else 0.0, (c,), p)
        for name, by_c in oof.items()
        if name in config.candidates
        for c, p in by_c.items()
    ]
    if "blend" in config.candidates and "lexical" in oof and "embedding" in oof:

        def best_c(by_c: dict[float, np.ndarray]) -> float:
            return max(
                by_c,
                key=lambda c: quadratic_weighted_kappa(labels, by_c[c].argmax(axis=1), num_labels),
            )

        c_lexical, c_neural = best_c(oof["lexical"]), best_c(oof["embedding"])
        for weight in config.blend_weights:
            mixed = weight * oof["lexical"][c_lexical] + (1 - weight) * oof["embedding"][c_neural]
            options.append(_Option("blend", weight, (c_lexical, c_neural), mixed))
    return options


@dataclass(frozen=True)
class _FeatureBlock:
    features: _AnswerFeatures
    mean: np.ndarray
    scale: np.ndarray  # per column: feature_weight / sqrt(columns) / training std
    matrix: np.ndarray  # the training answers' scaled features [n, columns]


def _feature_block(
    texts: Sequence[str],
    rows: SparseRows,
    unit_vectors: np.ndarray | None,
    vectorizer: LexicalVectorizer,
    reference_answers: Sequence[str],
    embed: Callable[[Sequence[str]], np.ndarray] | None,
    config: AutoConfig,
) -> _FeatureBlock:
    """The answer features of the training answers, standardised and scaled as one block."""
    references = tuple(r for r in reference_answers if r.strip())
    reference_vectors = None
    if references and unit_vectors is not None:
        assert embed is not None
        reference_vectors = _normalise(np.asarray(embed(list(references)), dtype=np.float64))
    features = _AnswerFeatures(
        references,
        _dense_rows(vectorizer.transform(references)),
        reference_vectors,
    )
    raw = features.compute(texts, rows, unit_vectors)
    mean = raw.mean(axis=0)
    scale = config.feature_weight / math.sqrt(raw.shape[1]) / np.maximum(raw.std(axis=0), 1e-6)
    return _FeatureBlock(features, mean, scale, (raw - mean) * scale)


def train_auto(
    examples: Sequence[TrainExample],
    num_labels: int,
    out_dir: Path,
    *,
    backbone: str | None = None,
    config: AutoConfig = AutoConfig(),  # noqa: B008 - frozen dataclass, never mutated
    reference_answers: Sequence[str] = (),
    embed: Callable[[Sequence[str]], np.ndarray] | None = None,
    progress: Callable[[TrainProgress], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
    item_id: str = "",
) -> TrainedArtifact:
    """Train the ``auto`` scorer of one item on ``examples`` and write its artifact to ``out_dir``.

    Every example is a training answer (``split`` is ignored: the inner cross-validation holds
    answers out itself); ``label`` is the score class ``0..num_labels-1``. ``embed`` maps texts to
    the frozen backbone's **mean-pooled, not normalised** ``float32 [n, hidden]`` vectors (what
    :func:`frozen_embedder` and ``ScoringEngine.embed`` return; the model normalises them
    itself); ``None`` loads :func:`frozen_embedder` for ``backbone`` when a neural candidate is
    tried. ``reference_answers`` are recorded in the manifest. ``should_cancel`` is polled
    between stages: :class:`~ml_core.training.TrainingCancelled` is raised and nothing is
    written. The artifact's metrics are the chosen candidate's inner cross-validated figures:
    ``qwk`` with ``qwk_ci_low``/``qwk_ci_high`` (t-interval over inner folds), ``accuracy``,
    ``ece`` (after calibration), ``review_threshold``, ``auto_fraction_at_threshold``.
    ``item_id`` is recorded in the manifest (optional).
    """
    from threadpoolctl import threadpool_limits

    texts = [e.text for e in examples]
    if embed is None and any(c in ("embedding", "joint", "blend") for c in config.candidates):
        # the backbone runs before the BLAS limit below, with every core
        embedder = _frozen_embedder(backbone, config.pooling)
        vectors = embedder(texts)

        def embed(batch: Sequence[str]) -> np.ndarray:
            return vectors if list(batch) == texts else embedder(batch)

    with threadpool_limits(limits=config.blas_threads):
        return _train_auto(
            examples,
            num_labels,
            Path(out_dir),
            backbone=backbone,
            config=config,
            reference_answers=reference_answers,
            embed=embed,
            progress=progress,
            should_cancel=should_cancel,
            item_id=item_id,
        )


def _checked_inputs(
    examples: Sequence[TrainExample],
    num_labels: int,
    config: AutoConfig,
    reference_answers: Sequence[str],
) -> tuple[list[str], np.ndarray]:
    """The training texts and labels (with the reference answers as top-score answers when the
    config asks); raises ``ValueError`` on bad input."""
    if num_labels < 2:
        raise ValueError("num_labels must be >= 2")
    if not examples:
        raise ValueError("no examples to train on")
    labels = np.array([e.label for e in examples], dtype=np.int64)
    if labels.min() < 0 or labels.max() >= num_labels:
        raise ValueError(f"labels must be within 0..{num_labels - 1}")
    unknown = [c for c in config.candidates if c not in CANDIDATES] + [
        d for d in config.decoders if d not in DECODERS
    ]
    if unknown or not config.candidates or not config.decoders:
        raise ValueError(f"unknown or no candidates/decoders: {unknown}")
    texts = [e.text for e in examples]
    if config.reference_as_answer:
        extra = [r for r in reference_answers if r.strip()]
        texts = texts + extra
        labels = np.concatenate([labels, np.full(len(extra), num_labels - 1, dtype=np.int64)])
    return texts, labels


# Written to the manifest for the load-time self-check beside the item's reference answers:
# never a student's text, so no artifact holds one.
SELF_CHECK_TEXTS: tuple[str, ...] = (
    "I do not know the answer.",
    "Ich weiß die Antwort nicht.",
    "The answer is 42, because the first value is larger than the second one.",
)
MAX_SELF_CHECK_TEXTS = 5


def self_check_texts(reference_answers: Sequence[str]) -> list[str]:
    """The texts whose training-time probabilities the manifest keeps for
    :meth:`AutoModel.self_check`: the item's reference answers (written by its author), then
    fixed generic sentences; at most :data:`MAX_SELF_CHECK_TEXTS`."""
    texts = [r for r in reference_answers if r.strip()] + list(SELF_CHECK_TEXTS)
    return texts[:MAX_SELF_CHECK_TEXTS]


@dataclass
class _Inputs:
    """Everything computed once from the training answers (phase 1), and the kernel rows of
    the self-check texts against them (``check_texts``, ``check_channels``)."""

    vectorizer: LexicalVectorizer
    lexical_matrix: object  # scipy sparse [n, vocabulary]
    embedding_features: np.ndarray | None
    embedding_mean: np.ndarray
    embedding_scale: float
    block: _FeatureBlock | None
    channels: _Channels
    check_texts: list[str]
    check_channels: _Channels


def _compute_inputs(
    texts: Sequence[str],
    config: AutoConfig,
    reference_answers: Sequence[str],
    embed: Callable[[Sequence[str]], np.ndarray] | None,
) -> _Inputs:
    vectorizer = LexicalVectorizer(min_df=config.min_df, sublinear_tf=config.sublinear_tf)
    rows = vectorizer.fit_transform(texts)
    lexical_matrix = rows.to_scipy()
    lexical_kernel = np.asarray((lexical_matrix @ lexical_matrix.T).toarray(), dtype=np.float64)  # type: ignore[attr-defined]
    neural = any(c in ("embedding", "joint", "blend") for c in config.candidates)
    embedding_features: np.ndarray | None = None
    embedding_mean = np.zeros(0)
    embedding_scale = 1.0
    unit_vectors: np.ndarray | None = None
    if neural:
        assert embed is not None
        raw = np.asarray(embed(texts), dtype=np.float64)
        unit_vectors = _normalise(raw)
        embedding_features, embedding_mean, embedding_scale = _prepare_embeddings(raw)
    block = (
        _feature_block(texts, rows, unit_vectors, vectorizer, reference_answers, embed, config)
        if config.answer_features
        else None
    )
    channels = _Channels(
        lexical_kernel=lexical_kernel,
        embedding_kernel=embedding_features @ embedding_features.T
        if embedding_features is not None
        else None,
        feature_kernel=block.matrix @ block.matrix.T if block is not None else None,
    )
    inputs = _Inputs(
        vectorizer,
        lexical_matrix,
        embedding_features,
        embedding_mean,
        embedding_scale,
        block,
        channels,
        self_check_texts(reference_answers),
        channels,
    )
    inputs.check_channels = _check_channels(inputs, embed)
    return inputs


def _check_channels(
    inputs: _Inputs, embed: Callable[[Sequence[str]], np.ndarray] | None
) -> _Channels:
    """Kernel rows of the self-check texts against the training answers, per channel, computed
    the way training computes its own (the dual form), not the way serving does."""
    texts = inputs.check_texts
    rows = inputs.vectorizer.transform(texts)
    lexical = rows.to_scipy()
    lexical_kernel = np.asarray((lexical @ inputs.lexical_matrix.T).toarray(), dtype=np.float64)  # type: ignore[attr-defined]
    unit: np.ndarray | None = None
    embedding_kernel: np.ndarray | None = None
    if inputs.embedding_features is not None:
        assert embed is not None
        unit = _normalise(np.asarray(embed(texts), dtype=np.float64))
        prepared = (unit - inputs.embedding_mean) / inputs.embedding_scale
        embedding_kernel = prepared @ inputs.embedding_features.T
    feature_kernel: np.ndarray | None = None
    if inputs.block is not None:
        block = inputs.block
        features = (block.features.compute(texts, rows, unit) - block.mean) * block.scale
        feature_kernel = features @ block.matrix.T
    return _Channels(lexical_kernel, embedding_kernel, feature_kernel)


def _all_out_of_fold(
    inputs: _Inputs,
    labels: np.ndarray,
    num_labels: int,
    config: AutoConfig,
    fold_index: list[tuple[np.ndarray, np.ndarray]],
    out_of_time: Callable[[], bool],
) -> dict[str, dict[float, np.ndarray]]:
    """Out-of-fold probabilities of every candidate channel, per C (phase 2)."""
    oof: dict[str, dict[float, np.ndarray]] = {}
    for name in ("lexical", "embedding", "joint"):
        needed = name in config.candidates or (
            name in ("lexical", "embedding") and "blend" in config.candidates
        )
        spec = _candidate_kernel(name, inputs.channels, config) if needed else None
        if spec is None or (oof and out_of_time()):
            continue
        oof[name] = _out_of_fold(
            spec[0],
            labels,
            num_labels,
            [spec[1] * scale for scale in config.c_scales],
            config.class_weight,
            fold_index,
        )
    return oof


def _choose(
    options: Sequence[_Option], labels: np.ndarray, num_labels: int, config: AutoConfig
) -> tuple[_Choice, np.ndarray]:
    """The (candidate, decoding) with the best out-of-fold QWK and its probabilities."""
    best: _Choice | None = None
    best_probabilities = np.zeros(0)
    for option in options:
        for decoder in config.decoders:
            probabilities = option.probabilities
            cuts = (
                tune_cut_points(probabilities, labels, num_labels) if decoder == "cutpoints" else ()
            )
            score = quadratic_weighted_kappa(
                labels, decode_scores(probabilities, decoder, cuts), num_labels
            )
            # ties keep the earlier (simpler) option
            if best is None or score > best.qwk + 1e-9:
                best = _Choice(option.name, option.weight, decoder, score, option.cs)
                best_probabilities = probabilities
    assert best is not None
    return best, best_probabilities


@dataclass
class _Calibrated:
    """The chosen candidate's calibration, cut points and out-of-fold figures (phase 3)."""

    temperature: float
    cuts: tuple[float, ...]
    decoded: np.ndarray
    confidence: np.ndarray
    curve: list[dict[str, float]]
    metrics: dict[str, float]


def _calibrate(
    best: _Choice,
    best_probabilities: np.ndarray,
    labels: np.ndarray,
    num_labels: int,
    config: AutoConfig,
    fold_index: list[tuple[np.ndarray, np.ndarray]],
    n_answers: int,
) -> _Calibrated:
    """Temperature and cut points fitted on every training row; the figures (and the curve and
    review threshold) on the first ``n_answers`` rows only: the students' answers, not the
    reference answers ``reference_as_answer`` adds after them."""
    temperature = fit_temperature(best_probabilities, labels)
    calibrated = apply_temperature(best_probabilities, temperature)
    cuts = tune_cut_points(calibrated, labels, num_labels) if best.decoder == "cutpoints" else ()
    decoded = decode_scores(calibrated, best.decoder, cuts)
    confidence = calibrated[np.arange(len(decoded)), decoded]
    answers = labels[:n_answers]
    correct = decoded[:n_answers] == answers
    curve = agreement_curve(confidence[:n_answers], correct, config.curve_step)
    threshold = review_threshold_for(curve, config.target_agreement)
    fold_qwks = [
        quadratic_weighted_kappa(labels[test], decoded[test], num_labels)
        for test in (t[t < n_answers] for _, t in fold_index)
        if len(test)
    ]
    interval = t_interval(fold_qwks)
    posted = confidence[:n_answers] >= threshold
    uncalibrated = decode_scores(best_probabilities[:n_answers], best.decoder, cuts)
    metrics: dict[str, float] = {
        "qwk": interval.mean,
        "qwk_ci_low": interval.low,
        "qwk_ci_high": interval.high,
        "qwk_pooled": quadratic_weighted_kappa(answers, decoded[:n_answers], num_labels),
        "accuracy": float(correct.mean()),
        "ece": expected_calibration_error(confidence[:n_answers], correct),
        "ece_uncalibrated": expected_calibration_error(
            best_probabilities[np.arange(n_answers), uncalibrated], uncalibrated == answers
        ),
        "temperature": temperature,
        "review_threshold": threshold,
        "target_agreement": config.target_agreement,
        "auto_fraction_at_threshold": float(posted.mean()),
        "agreement_at_threshold": float(correct[posted].mean()) if posted.any() else math.nan,
        "n_train": float(n_answers),
        "inner_folds": float(len(fold_index)),
    }
    return _Calibrated(temperature, tuple(cuts), decoded, confidence, curve, metrics)


@dataclass
class _Final:
    """The chosen channel(s) refitted on every answer (phase 4): serving arrays and the
    calibrated probabilities of the self-check texts for the load-time self-check."""

    arrays: dict[str, np.ndarray]
    files: dict[str, str]
    uses_lexical: bool
    uses_embedding: bool
    check: np.ndarray


def _final_fit(
    best: _Choice,
    inputs: _Inputs,
    labels: np.ndarray,
    num_labels: int,
    config: AutoConfig,
    temperature: float,
) -> _Final:
    arrays: dict[str, np.ndarray] = {}
    block = inputs.block
    uses_lexical = best.candidate in ("lexical", "joint") or (best.candidate == "blend")
    uses_embedding = best.candidate in ("embedding", "joint", "blend")
    final_logits: dict[str, np.ndarray] = {}
    if best.candidate == "blend":
        parts = [("lexical", "lexical"), ("embedding", "embedding")]
    else:
        parts = [(best.candidate, best.candidate)]
    for (prefix, name), c in zip(parts, best.cs, strict=True):
        spec = _candidate_kernel(name, inputs.channels, config)
        assert spec is not None
        model = _fit_dual(spec[0], labels, num_labels, c, config.class_weight)
        check = _candidate_kernel(name, inputs.check_channels, config)
        assert check is not None
        final_logits[prefix] = model.logits(check[0])
        arrays[f"{prefix}.intercept"] = model.intercept
        if name in ("lexical", "joint"):
            arrays[f"{prefix}.lexical_coef"] = np.asarray(inputs.lexical_matrix.T @ model.alpha).T  # type: ignore[attr-defined]
        if name in ("embedding", "joint"):
            assert inputs.embedding_features is not None
            factor = config.joint_embedding_weight if name == "joint" else 1.0
            arrays[f"{prefix}.embedding_coef"] = (
                factor * (inputs.embedding_features.T @ model.alpha).T
            )
        if block is not None:
            arrays[f"{prefix}.feature_coef"] = (block.matrix.T @ model.alpha).T
    description, lexical_arrays = inputs.vectorizer.state()
    needs_vectorizer = uses_lexical or (block is not None and bool(block.features.references))
    if needs_vectorizer:
        arrays.update(lexical_arrays)
    if block is not None:
        arrays["features.mean"] = block.mean
        arrays["features.scale"] = block.scale
        if block.features.reference_vectors is not None:
            arrays["features.reference_vectors"] = block.features.reference_vectors
    if uses_embedding:
        arrays["embedding.mean"] = inputs.embedding_mean
        arrays["embedding.scale"] = np.array([inputs.embedding_scale])
    # what the fitted model says about the self-check texts, for load-time self-checks
    if best.candidate == "blend":
        check_raw = best.blend_weight * softmax(final_logits["lexical"]) + (
            1 - best.blend_weight
        ) * softmax(final_logits["embedding"])
    else:
        check_raw = softmax(final_logits[best.candidate])
    files = {LEXICAL_FILE: json.dumps(description, ensure_ascii=False)} if needs_vectorizer else {}
    return _Final(
        arrays, files, uses_lexical, uses_embedding, apply_temperature(check_raw, temperature)
    )


def _auto_manifest(
    examples: Sequence[TrainExample],
    labels: np.ndarray,
    num_labels: int,
    backbone: str | None,
    config: AutoConfig,
    reference_answers: Sequence[str],
    item_id: str,
    parts: tuple[_Inputs, Sequence[_Option], _Choice, _Calibrated, _Final],
) -> dict[str, object]:
    from ml_core.backbone import backbone_fingerprint, backbone_label

    inputs, options, best, chosen, final = parts
    block = inputs.block
    return {
        "item_id": item_id,
        "kind": AUTO_KIND,
        "backbone": backbone_label(backbone),
        "backbone_fingerprint": backbone_fingerprint(backbone),
        "criteria": [{"name": "score", "labels": list(range(num_labels))}],
        "num_labels": num_labels,
        "labels": list(range(num_labels)),
        "pooling": config.pooling,
        "normalize_embeddings": True,
        "needs_embeddings": final.uses_embedding
        or (block is not None and block.features.reference_vectors is not None),
        "lora": None,
        "auto": {
            "candidate": best.candidate,
            "blend_weight": best.blend_weight,
            "decoder": best.decoder,
            "cut_points": list(chosen.cuts),
            "temperature": chosen.temperature,
            "uses_lexical": final.uses_lexical,
            "c": list(best.cs),
            "features": block.features.names if block is not None else [],
            "feature_references": list(block.features.references) if block is not None else [],
            "inner_cv_qwk_by_candidate": {
                option.label: quadratic_weighted_kappa(
                    labels, option.probabilities.argmax(axis=1), num_labels
                )
                for option in options
            },
        },
        "metrics": chosen.metrics,
        "agreement_curve": chosen.curve,
        # per training answer, in the order of ``examples`` (reference answers left out): the
        # out-of-fold score and confidence and the answer's word count, never its text, for
        # results per answer-length band and per imported group column (model cards)
        "out_of_fold": {
            "scores": labels[: len(examples)].tolist(),
            "predicted": chosen.decoded[: len(examples)].tolist(),
            "confidence": [round(float(c), 4) for c in chosen.confidence[: len(examples)]],
            "words": [len(e.text.split()) for e in examples],
        },
        # calibrated probabilities and scores of the reference answers and fixed sentences (never
        # a student's answer) as the dual form computes them at training (float64):
        # AutoModel.self_check() recomputes them from the stored weights
        "self_check": {
            "texts": list(inputs.check_texts),
            "probabilities": final.check.tolist(),
            "scores": decode_scores(final.check, best.decoder, chosen.cuts).tolist(),
        },
        "reference_answers": list(reference_answers),
        "training": {**asdict(config), "seconds": chosen.metrics["train_seconds"]},
    }


def _train_auto(
    examples: Sequence[TrainExample],
    num_labels: int,
    out_dir: Path,
    *,
    backbone: str | None,
    config: AutoConfig,
    reference_answers: Sequence[str],
    embed: Callable[[Sequence[str]], np.ndarray] | None,
    progress: Callable[[TrainProgress], None] | None,
    should_cancel: Callable[[], bool] | None,
    item_id: str,
) -> TrainedArtifact:
    """Four phases: inputs computed once, out-of-fold probabilities of every candidate, the
    choice with its calibration and figures, the final fit; then one artifact."""
    started = time.perf_counter()
    texts, labels = _checked_inputs(examples, num_labels, config, reference_answers)
    stages = 4
    stage = 0

    def advance(name: str) -> None:
        nonlocal stage
        if should_cancel is not None and should_cancel():
            raise TrainingCancelled(f"auto training cancelled before {name}")
        stage += 1
        if progress is not None:
            progress(
                TrainProgress(
                    stage, stages, stage, stages, {"seconds": time.perf_counter() - started}
                )
            )

    def out_of_time() -> bool:
        return config.max_seconds is not None and time.perf_counter() - started > config.max_seconds

    advance("features")
    inputs = _compute_inputs(texts, config, reference_answers, embed)
    advance("cross-validation")
    inner = stratified_folds(labels.tolist(), folds=config.folds, repeats=1, seed=config.seed)
    fold_index = [(np.array(f.train), np.array(f.test)) for f in inner]
    oof = _all_out_of_fold(inputs, labels, num_labels, config, fold_index, out_of_time)
    advance("selection")
    options = _options(oof, labels, num_labels, config)
    best, best_probabilities = _choose(options, labels, num_labels, config)
    chosen = _calibrate(
        best, best_probabilities, labels, num_labels, config, fold_index, len(examples)
    )
    advance("final fit")
    final = _final_fit(best, inputs, labels, num_labels, config, chosen.temperature)
    chosen.metrics["train_seconds"] = time.perf_counter() - started
    manifest = _auto_manifest(
        examples,
        labels,
        num_labels,
        backbone,
        config,
        reference_answers,
        item_id,
        (inputs, options, best, chosen, final),
    )
    import torch

    tensors = {
        k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32))
        for k, v in final.arrays.items()
    }
    size = write_artifact(Path(out_dir), manifest, tensors, final.files)
    return TrainedArtifact(
        path=Path(out_dir), kind=AUTO_KIND, metrics=chosen.metrics, size_bytes=size
    )


# --------------------------------------------------------------------------------------------
# Serving


class AutoModel:
    """A loaded ``auto`` artifact; needs only numpy (and ``safetensors.numpy``) to score.

    ``probabilities(texts, embeddings)`` takes the frozen backbone's pooled vectors of ``texts``
    as :func:`frozen_embedder` / ``ScoringEngine.embed`` return them (not normalised; the model
    L2-normalises them since ``normalize_embeddings`` is True), or ``None`` when
    ``needs_embeddings`` is False. ``decode`` turns (calibrated) probabilities into the served
    scores; the served confidence is the probability of the decoded score. Answers whose
    confidence is at least ``review_threshold`` may be posted without review.
    """

    version: str
    num_labels: int
    labels: tuple[int, ...]
    pooling: str
    normalize_embeddings: bool
    backbone_fingerprint: str
    review_threshold: float
    needs_embeddings: bool

    def __init__(
        self,
        path: Path,
        manifest: dict[str, object],
        arrays: dict[str, np.ndarray],
        vectorizer: LexicalVectorizer | None,
    ) -> None:
        self.path = path
        self.manifest = manifest
        self.version = path.name
        self.num_labels = int(manifest["num_labels"])  # type: ignore[call-overload]
        self.labels = tuple(int(v) for v in manifest["labels"])  # type: ignore[attr-defined]
        self.pooling = str(manifest.get("pooling", "mean"))
        self.normalize_embeddings = bool(manifest.get("normalize_embeddings", True))
        self.backbone_fingerprint = str(manifest["backbone_fingerprint"])
        self.needs_embeddings = bool(manifest["needs_embeddings"])
        auto: dict[str, object] = manifest["auto"]  # type: ignore[assignment]
        self.candidate = str(auto["candidate"])
        self.blend_weight = float(auto["blend_weight"])  # type: ignore[arg-type]
        self.decoder = str(auto["decoder"])
        self.cut_points = tuple(float(c) for c in auto["cut_points"])  # type: ignore[attr-defined]
        self.temperature = float(auto["temperature"])  # type: ignore[arg-type]
        metrics: dict[str, float] = manifest.get("metrics") or {}  # type: ignore[assignment]
        self.metrics = {str(k): float(v) for k, v in metrics.items()}
        self.review_threshold = float(self.metrics.get("review_threshold", 1.01))
        self.agreement_curve: list[dict[str, float]] = list(manifest.get("agreement_curve") or [])  # type: ignore[call-overload]
        self._arrays = {k: np.asarray(v, dtype=np.float64) for k, v in arrays.items()}
        self._vectorizer = vectorizer
        self._features: _AnswerFeatures | None = None
        if "features.mean" in self._arrays:
            references = tuple(str(r) for r in auto.get("feature_references") or [])  # type: ignore[attr-defined]
            if references and vectorizer is None:
                raise ValueError("reference features need the lexical vocabulary")
            self._features = _AnswerFeatures(
                references,
                _dense_rows(vectorizer.transform(references))
                if vectorizer is not None
                else np.zeros((0, 0)),
                self._arrays.get("features.reference_vectors"),
            )
            if len(self._features.names) != len(self._arrays["features.mean"]):
                raise ValueError("answer features do not match their stored statistics")

    @classmethod
    def load(cls, artifact_dir: Path) -> AutoModel:
        """Read an ``auto`` artifact folder (raises ``ArtifactError`` for anything else)."""
        from safetensors.numpy import load_file

        from ml_core.artifact import ArtifactError

        path = Path(artifact_dir)
        manifest = read_manifest(path)
        if manifest.get("kind") != AUTO_KIND:
            raise ArtifactError(f"{path} is a {manifest.get('kind')!r} artifact, not 'auto'")
        try:
            arrays = load_file(str(path / WEIGHTS_FILE))
            vectorizer = None
            if (path / LEXICAL_FILE).is_file():
                description = json.loads((path / LEXICAL_FILE).read_text(encoding="utf-8"))
                vectorizer = LexicalVectorizer.from_state(description, arrays)
            return cls(path, manifest, dict(arrays), vectorizer)
        except (KeyError, TypeError, ValueError, OSError) as exc:
            raise ArtifactError(f"auto artifact {path} is malformed: {exc}") from exc

    def _embedding_rows(self, embeddings: np.ndarray | None, n: int) -> np.ndarray:
        if embeddings is None:
            raise ValueError("this auto model needs the backbone's embeddings of the answers")
        vectors = np.asarray(embeddings, dtype=np.float64)
        if vectors.shape[0] != n:
            raise ValueError(f"{vectors.shape[0]} embeddings for {n} answers")
        if self.normalize_embeddings:
            vectors = _normalise(vectors)
        return (vectors - self._arrays["embedding.mean"]) / float(
            self._arrays["embedding.scale"][0]
        )

    def _lexical_rows(self, texts: Sequence[str]) -> SparseRows:
        """The TF-IDF rows of ``texts`` (computed once per call; both channels read them)."""
        if self._vectorizer is None:
            return SparseRows(
                np.zeros(len(texts) + 1, np.int64), np.zeros(0, np.int64), np.zeros(0), 0
            )
        return self._vectorizer.transform(texts)

    def _feature_rows(
        self, texts: Sequence[str], embeddings: np.ndarray | None, rows: SparseRows
    ) -> np.ndarray:
        """The answer features of ``texts``, scaled as in training."""
        assert self._features is not None
        unit = None
        if self._features.reference_vectors is not None:
            if embeddings is None or len(embeddings) != len(texts):
                raise ValueError("this auto model needs the backbone's embeddings of the answers")
            unit = _normalise(np.asarray(embeddings, dtype=np.float64))
        raw = self._features.compute(texts, rows, unit)
        return np.asarray((raw - self._arrays["features.mean"]) * self._arrays["features.scale"])

    def _channel_logits(
        self,
        prefix: str,
        texts: Sequence[str],
        embeddings: np.ndarray | None,
        features: np.ndarray | None,
        rows: SparseRows,
    ) -> np.ndarray:
        logits = np.tile(self._arrays[f"{prefix}.intercept"], (len(texts), 1))
        if f"{prefix}.feature_coef" in self._arrays:
            assert features is not None
            logits = logits + features @ self._arrays[f"{prefix}.feature_coef"].T
        if f"{prefix}.lexical_coef" in self._arrays:
            assert self._vectorizer is not None
            logits = logits + linear_logits(
                rows, self._arrays[f"{prefix}.lexical_coef"], np.zeros(self.num_labels)
            )
        if f"{prefix}.embedding_coef" in self._arrays:
            features = self._embedding_rows(embeddings, len(texts))
            logits = logits + features @ self._arrays[f"{prefix}.embedding_coef"].T
        return np.asarray(logits)

    def raw_probabilities(self, texts: Sequence[str], embeddings: np.ndarray | None) -> np.ndarray:
        """Uncalibrated probabilities ``[n, num_labels]`` of the chosen candidate."""
        rows = self._lexical_rows(texts)
        features = (
            self._feature_rows(texts, embeddings, rows) if self._features is not None else None
        )
        if self.candidate == "blend":
            lexical = softmax(self._channel_logits("lexical", texts, None, features, rows))
            neural = softmax(self._channel_logits("embedding", texts, embeddings, features, rows))
            return self.blend_weight * lexical + (1 - self.blend_weight) * neural
        return softmax(self._channel_logits(self.candidate, texts, embeddings, features, rows))

    def probabilities(self, texts: Sequence[str], embeddings: np.ndarray | None) -> np.ndarray:
        """Calibrated class probabilities ``[len(texts), num_labels]``."""
        if not texts:
            return np.zeros((0, self.num_labels))
        return apply_temperature(self.raw_probabilities(texts, embeddings), self.temperature)

    def self_check(self, embed: Callable[[Sequence[str]], np.ndarray] | None = None) -> float:
        """Largest difference between the stored training-time probabilities of the self-check
        texts (the reference answers and fixed sentences) and what this loaded model computes
        for them (``embed``: the frozen
        embedder, needed when :attr:`needs_embeddings`). Raises ``ValueError`` if the decoded
        scores differ."""
        record: dict[str, list[object]] = self.manifest["self_check"]  # type: ignore[assignment]
        texts = [str(t) for t in record["texts"]]
        expected = np.asarray(record["probabilities"], dtype=np.float64)
        embeddings = embed(texts) if self.needs_embeddings and embed is not None else None
        got = self.probabilities(texts, embeddings)
        if self.decode(got).tolist() != [int(s) for s in record["scores"]]:  # type: ignore[call-overload]
            raise ValueError(f"auto artifact {self.path}: served scores differ from training")
        return float(np.abs(got - expected).max()) if len(texts) else 0.0

    def decode(self, probabilities: np.ndarray) -> np.ndarray:
        """Served scores ``[n]`` (class indices) from :meth:`probabilities`."""
        return decode_scores(
            np.asarray(probabilities, dtype=np.float64), self.decoder, self.cut_points
        )


def frozen_embedder(
    backbone: str | None = None, pooling: str = "mean", threads: int | None = None
) -> Callable[[Sequence[str]], np.ndarray]:
    """Texts -> ``float32 [n, hidden]`` frozen-backbone vectors, pooled, **not** normalised.

    Tokenized once per call, length-sorted batches without padding to the window, ``threads``
    intra-op threads (default: the usable cores). See :mod:`ml_core.embeddings`.
    """
    return _frozen_embedder(backbone, pooling, threads)


__all__ = [
    "AutoConfig",
    "AutoModel",
    "MANIFEST_FILE",
    "agreement_curve",
    "apply_temperature",
    "decode_with_cuts",
    "fit_temperature",
    "frozen_embedder",
    "review_threshold_for",
    "train_auto",
    "tune_cut_points",
]
