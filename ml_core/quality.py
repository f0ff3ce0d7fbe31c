"""Quality of model kinds against the TF-IDF baseline, on the same folds (issue 13).

Used by ``python -m ml_core benchmark``: every requested kind and the baseline are trained and
tested on every fold of every item (:mod:`ml_core.crossval`); the report gives per kind the mean
QWK with a 95% confidence interval per language and overall, per item the difference to the
baseline, paired tests over items, expected calibration error and training time.

Frozen-backbone vectors (``auto``, ``head``) are computed once per answer and cached on disk
under ``embedding_cache/<backbone fingerprint>-<pooling>/``.
"""

from __future__ import annotations

import json
import math
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ml_core.baseline import BASELINE_DESCRIPTION, BASELINE_KIND, TfidfBaseline
from ml_core.crossval import (
    Fold,
    FoldPrediction,
    ItemData,
    Method,
    MethodResult,
    expected_calibration_error,
    folds_for,
    paired_comparison,
    run_folds,
    t_interval,
)
from ml_core.data import ItemRecord
from ml_core.embeddings import EmbeddingCache
from ml_core.training import TrainConfig, TrainExample, train_item

QUALITY_KINDS: tuple[str, ...] = ("auto", "head", "lora", "full", BASELINE_KIND)


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return np.asarray(exp / exp.sum(axis=1, keepdims=True))


def baseline_method(
    train: Sequence[TrainExample], test: Sequence[TrainExample], item: ItemData
) -> FoldPrediction:
    model = TfidfBaseline(item.num_labels).fit([e.text for e in train], [e.label for e in train])
    probabilities = model.predict_proba([e.text for e in test])
    return FoldPrediction(scores=probabilities.argmax(axis=1), probabilities=probabilities)


@dataclass(frozen=True)
class FoldTraining:
    """How the head/lora/full methods train on a fold: the same for every kind.

    With ``keep`` (one fold: split mode) the artifact is kept at ``keep/<kind>/<item>`` and,
    with ``reuse``, read back instead of trained when it exists.
    """

    backbone: str | None
    seed: int
    epochs: int | None = None
    keep: Path | None = None
    reuse: bool = False

    def train(
        self,
        kind: str,
        train: Sequence[TrainExample],
        item: ItemData,
        tmp: str,
        embed: EmbeddingCache | None = None,
    ) -> Path:
        """Train (or reuse) ``kind`` on the fold; returns the artifact folder."""
        folder = (
            self.keep / kind / item.item_id if self.keep is not None else Path(tmp) / "artifact"
        )
        if self.reuse and (folder / "manifest.json").is_file():
            return folder
        config = TrainConfig(kind=kind, seed=self.seed)
        if self.epochs:
            config.epochs = self.epochs
        train_item(
            train,
            item_id=item.item_id,
            num_labels=item.num_labels,
            out_dir=folder,
            backbone=self.backbone,
            config=config,
            embed=embed,
        )
        return folder


def head_method(cache: EmbeddingCache, training: FoldTraining) -> Method:
    """``head`` trained on cached frozen vectors; predicts with its linear head on them."""
    from ml_core.artifact import load_artifact

    def method(
        train: Sequence[TrainExample], test: Sequence[TrainExample], item: ItemData
    ) -> FoldPrediction:
        with tempfile.TemporaryDirectory() as tmp:
            folder = training.train("head", train, item, tmp, embed=cache)
            weight, bias = load_artifact(folder).head_tensors(0)
        features = cache([e.text for e in test])
        probabilities = _softmax(features @ weight.numpy().T + bias.numpy())
        return FoldPrediction(scores=probabilities.argmax(axis=1), probabilities=probabilities)

    return method


def torch_method(kind: str, training: FoldTraining) -> Method:
    """``lora`` / ``full``: trained on the fold, scored through the engine / standalone model."""
    from ml_core.artifact import load_artifact
    from ml_core.evaluation import FullModelScorer

    engines: list[object] = []
    backbone = training.backbone

    def method(
        train: Sequence[TrainExample], test: Sequence[TrainExample], item: ItemData
    ) -> FoldPrediction:
        from ml_core.engine import ScoreRequest, ScoringEngine

        texts = [e.text for e in test]
        with tempfile.TemporaryDirectory() as tmp:
            folder = training.train(kind, train, item, tmp)
            if kind == "full":
                probabilities = FullModelScorer(load_artifact(folder), backbone).probabilities(
                    texts
                )[0]
            else:
                if not engines:
                    engines.append(ScoringEngine(backbone, backend="torch"))
                engine = engines[0]
                assert isinstance(engine, ScoringEngine)
                engine.load_item("fold", folder, "fold")
                results = engine.score([ScoreRequest("fold", t) for t in texts])
                engine.remove_item("fold")
                probabilities = np.array(
                    [
                        r.probabilities if r.error is None else np.eye(item.num_labels)[0]
                        for r in results
                    ],
                    dtype=np.float64,
                )
        return FoldPrediction(scores=probabilities.argmax(axis=1), probabilities=probabilities)

    return method


def auto_method(cache: EmbeddingCache, backbone: str | None, seed: int) -> Method:
    """``auto`` trained on the fold and served from its written artifact (the round trip)."""
    from ml_core.auto import AutoConfig, AutoModel, train_auto

    def method(
        train: Sequence[TrainExample], test: Sequence[TrainExample], item: ItemData
    ) -> FoldPrediction:
        texts = [e.text for e in test]
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp) / "artifact"
            train_auto(
                train,
                item.num_labels,
                folder,
                backbone=backbone,
                config=AutoConfig(seed=seed),
                reference_answers=item.reference_answers,
                embed=cache,
                item_id=item.item_id,
            )
            model = AutoModel.load(folder)
        embeddings = cache(texts) if model.needs_embeddings else None
        probabilities = model.probabilities(texts, embeddings)
        return FoldPrediction(scores=model.decode(probabilities), probabilities=probabilities)

    return method


def _embedding_cache(backbone: str | None, embedding_cache: Path | None) -> EmbeddingCache:
    """Frozen vectors on disk per backbone fingerprint; the backbone loads on the first miss."""
    from ml_core.backbone import backbone_fingerprint
    from ml_core.embeddings import frozen_embedder

    folder = None
    if embedding_cache is not None:
        key = backbone_fingerprint(backbone).replace("@sha256:", "-").replace("/", "_")
        folder = Path(embedding_cache) / f"{key}-mean"
    lazy: list[Callable[[Sequence[str]], np.ndarray]] = []

    def embed(texts: Sequence[str]) -> np.ndarray:
        if not lazy:  # load the backbone only when some vector is not on disk
            lazy.append(frozen_embedder(backbone))
        return lazy[0](texts)

    return EmbeddingCache(embed, folder)


def _methods(
    ordered: Sequence[str], cache: EmbeddingCache | None, training: FoldTraining
) -> dict[str, Method]:
    methods: dict[str, Method] = {}
    for kind in ordered:
        if kind == BASELINE_KIND:
            methods[kind] = baseline_method
        elif kind == "auto":
            assert cache is not None
            methods[kind] = auto_method(cache, training.backbone, training.seed)
        elif kind == "head":
            assert cache is not None
            methods[kind] = head_method(cache, training)
        else:
            methods[kind] = torch_method(kind, training)
    return methods


def _item_row(
    item: ItemData,
    n_answers: int,
    fold_list: Sequence[Fold],
    results: Mapping[str, MethodResult],
    labels: np.ndarray,
) -> dict[str, object]:
    """One item's line of the report: per kind QWK with its interval, accuracy, ECE, time."""
    row: dict[str, object] = {
        "language": item.language,
        "n_answers": n_answers,
        "n_test_per_fold": float(np.mean([len(f.test) for f in fold_list])),
        "num_labels": item.num_labels,
    }
    base = results[BASELINE_KIND].fold_qwk
    for kind, result in results.items():
        interval = result.qwk()
        cells: dict[str, object] = {
            "qwk": interval.mean,
            "qwk_ci": [interval.low, interval.high],
            "fold_qwk": result.fold_qwk,
            "accuracy": float(np.mean(result.fold_accuracy)),
            "ece": result.calibration_error(labels),
            "train_seconds": float(np.mean(result.train_seconds)),
        }
        if kind != BASELINE_KIND:
            cells["qwk_minus_baseline"] = float(np.mean(result.fold_qwk) - np.mean(base))
        row[kind] = cells
    return row


def run_quality(
    examples_per_item: Mapping[str, Sequence[TrainExample]],
    item_bank: Mapping[str, ItemRecord],
    *,
    kinds: Sequence[str],
    eval_mode: str = "cv",
    folds: int = 5,
    repeats: int = 2,
    seed: int = 13,
    backbone: str | None = None,
    embedding_cache: Path | None = None,
    epochs: int | None = None,
    artifacts: Path | None = None,
    reuse: bool = False,
    log: Callable[[str], None] = print,
) -> dict[str, object]:
    """Every kind and the baseline on the same folds of every item; returns the report dict.

    In ``split`` mode with ``artifacts``, the head/lora/full artifacts are kept at
    ``artifacts/<kind>/<item>`` (and reused with ``reuse``), as the engine benchmark reads them.
    """
    unknown = [k for k in kinds if k not in QUALITY_KINDS]
    if unknown:
        raise ValueError(f"unknown kinds {unknown}; choose from {QUALITY_KINDS}")
    ordered = [BASELINE_KIND] + [k for k in kinds if k != BASELINE_KIND]
    cache = (
        _embedding_cache(backbone, embedding_cache)
        if any(k in ("auto", "head") for k in ordered)
        else None
    )
    training = FoldTraining(
        backbone, seed, epochs, artifacts if eval_mode == "split" else None, reuse
    )
    methods = _methods(ordered, cache, training)
    items: dict[str, dict[str, object]] = {}
    raw: dict[str, dict[str, MethodResult]] = {}
    labels_of: dict[str, np.ndarray] = {}
    for item_id, examples in examples_per_item.items():
        record = item_bank.get(item_id)
        num_labels = record.max_score + 1 if record else max(e.label for e in examples) + 1
        item = ItemData(
            item_id=item_id,
            num_labels=num_labels,
            language=record.language if record else "",
            reference_answers=(record.reference_answer,)
            if record and record.reference_answer
            else (),
        )
        fold_list = folds_for(examples, eval_mode, folds=folds, repeats=repeats, seed=seed)
        if cache is not None:
            cache.preload([e.text for e in examples])
        results = run_folds(examples, item, methods, fold_list, log=log)
        labels = np.array([e.label for e in examples], dtype=np.int64)
        raw[item_id], labels_of[item_id] = results, labels
        items[item_id] = _item_row(item, len(examples), fold_list, results, labels)
        log(
            f"{item_id}: " + ", ".join(f"{k} {items[item_id][k]['qwk']:.3f}" for k in ordered)  # type: ignore[index]
        )

    summary = _summary(items, raw, labels_of, ordered)
    return {
        "eval": eval_mode,
        "folds": folds if eval_mode == "cv" else 1,
        "repeats": repeats if eval_mode == "cv" else 1,
        "seed": seed,
        "baseline": BASELINE_DESCRIPTION,
        "kinds": ordered,
        "items": items,
        "summary": summary,
    }


def _summary(
    items: Mapping[str, Mapping[str, object]],
    raw: Mapping[str, Mapping[str, MethodResult]],
    labels_of: Mapping[str, np.ndarray],
    kinds: Sequence[str],
) -> dict[str, object]:
    languages = sorted({str(row["language"]) for row in items.values()} - {""})
    groups: dict[str, list[str]] = {"all": list(items)}
    for language in languages:
        groups[language] = [i for i, row in items.items() if row["language"] == language]
    summary: dict[str, object] = {}
    for kind in kinds:
        per_group: dict[str, object] = {}
        for group, ids in groups.items():
            if not ids:
                continue
            qwks = [float(items[i][kind]["qwk"]) for i in ids]  # type: ignore[index]
            interval = t_interval(qwks)
            confidence = np.concatenate([np.concatenate(raw[i][kind].confidence) for i in ids])
            correct = np.concatenate(
                [np.concatenate([s == labels_of[i] for s in raw[i][kind].scores]) for i in ids]
            )
            keep = ~np.isnan(confidence)
            entry: dict[str, object] = {
                "items": len(ids),
                "mean_qwk": interval.mean,
                "qwk_ci": [interval.low, interval.high],
                "mean_accuracy": float(np.mean([items[i][kind]["accuracy"] for i in ids])),  # type: ignore[index]
                "ece_pooled": expected_calibration_error(confidence[keep], correct[keep])
                if keep.any()
                else math.nan,
                "mean_item_ece": float(np.nanmean([items[i][kind]["ece"] for i in ids])),  # type: ignore[index]
                "mean_train_seconds_per_fold": float(
                    np.mean([items[i][kind]["train_seconds"] for i in ids])  # type: ignore[index]
                ),
            }
            if kind != BASELINE_KIND:
                comparison = paired_comparison(
                    qwks,
                    [float(items[i][BASELINE_KIND]["qwk"]) for i in ids],  # type: ignore[index]
                )
                entry["vs_baseline"] = {
                    "mean_difference": comparison.mean_difference,
                    "difference_ci": [comparison.ci_low, comparison.ci_high],
                    "paired_t_p": comparison.t_p_value,
                    "wilcoxon_p": comparison.wilcoxon_p_value,
                    "wins": comparison.wins,
                    "losses": comparison.losses,
                }
            per_group[group] = entry
        summary[kind] = per_group
    return summary


def _f(value: object, digits: int = 3) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.{digits}f}"
    return str(value)


def _ci(pair: object) -> str:
    values = list(pair)  # type: ignore[call-overload]
    return f"[{_f(values[0])}, {_f(values[1])}]"


def render_quality_markdown(report: Mapping[str, object], title: str = "Scoring quality") -> str:
    """Markdown: per-kind summary with CIs, paired tests, per-item table with differences."""
    kinds: list[str] = list(report["kinds"])  # type: ignore[call-overload]
    summary: Mapping[str, Mapping[str, Mapping[str, object]]] = report["summary"]  # type: ignore[assignment]
    items: Mapping[str, Mapping[str, object]] = report["items"]  # type: ignore[assignment]
    evaluation = (
        f"{report['folds']}-fold stratified cross-validation x {report['repeats']} repeats "
        f"(seed {report['seed']}) over all scored answers of each item"
        if report["eval"] == "cv"
        else "the data's own split (train+val answers -> test answers)"
    )
    lines = [
        f"# {title}\n",
        f"Evaluation: {evaluation}. Baseline: {report['baseline']}.\n",
        "Mean QWK = mean over items of each item's mean fold QWK; 95% CI = t-interval over items. "
        "ECE = expected calibration error of the served confidence (probability of the served "
        "score), 10 bins, on all out-of-fold answers pooled. Paired tests over items, against the "
        "baseline on the same folds (two-sided).\n",
        "## Summary\n",
        "| kind | group | items | mean QWK | 95% CI | diff. vs baseline | 95% CI of diff. | wins/losses | paired t p | Wilcoxon p | accuracy | ECE (pooled) | train s per fold |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for kind in kinds:
        for group, entry in summary[kind].items():
            versus: Mapping[str, object] = entry.get("vs_baseline") or {}  # type: ignore[assignment]
            lines.append(
                "| "
                + " | ".join(
                    [
                        kind,
                        group,
                        _f(entry["items"]),
                        _f(entry["mean_qwk"]),
                        _ci(entry["qwk_ci"]),
                        _f(versus.get("mean_difference", "")) if versus else "",
                        _ci(versus["difference_ci"]) if versus else "",
                        f"{versus['wins']}/{versus['losses']}" if versus else "",
                        _f(versus.get("paired_t_p"), 4) if versus else "",
                        _f(versus.get("wilcoxon_p"), 4) if versus else "",
                        _f(entry["mean_accuracy"]),
                        _f(entry["ece_pooled"]),
                        _f(entry["mean_train_seconds_per_fold"], 2),
                    ]
                )
                + " |"
            )
    lines += ["", "## Per item (mean fold QWK [95% CI]; difference to the baseline)\n"]
    header = "| item | lang | answers | " + " | ".join(
        f"{k} QWK [CI]" + ("" if k == BASELINE_KIND else f" | {k} - base") for k in kinds
    )
    header += " | " + " | ".join(f"{k} ECE | {k} s" for k in kinds) + " |"
    columns = 3 + sum(1 if k == BASELINE_KIND else 2 for k in kinds) + 2 * len(kinds)
    lines += [header, "|" + "---|" * columns]
    for item_id, row in items.items():
        cells = [item_id, str(row["language"]), str(row["n_answers"])]
        for kind in kinds:
            m: Mapping[str, object] = row[kind]  # type: ignore[assignment]
            cells.append(f"{_f(m['qwk'])} {_ci(m['qwk_ci'])}")
            if kind != BASELINE_KIND:
                cells.append(f"{float(m['qwk_minus_baseline']):+.3f}")  # type: ignore[arg-type]
        for kind in kinds:
            m = row[kind]  # type: ignore[assignment]
            cells += [_f(m["ece"]), _f(m["train_seconds"], 2)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_quality_report(report: Mapping[str, object], out: Path, stem: str = "quality") -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.json").write_text(json.dumps(report, indent=2, default=float) + "\n")
    (out / f"{stem}.md").write_text(render_quality_markdown(report))
