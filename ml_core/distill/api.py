"""``distill_item``: the one call that turns an item's answers and its teacher's probabilities
into a distilled student artifact (a folder with ``manifest.json`` and one ``student.onnx``)."""

from __future__ import annotations

import copy
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from ml_core.distill.augment import augment_texts
from ml_core.distill.config import DistillConfig
from ml_core.distill.embeddings import backbone_embedding_init
from ml_core.distill.onnx_export import export_onnx
from ml_core.distill.scorer import ONNX_FILE, DistilledScorer
from ml_core.distill.speed import measure_speed
from ml_core.distill.student import parameter_count
from ml_core.distill.trainer import (
    NO_LABEL,
    StudentSet,
    TrainedStudent,
    predict_probabilities,
    train_student,
)
from ml_core.distill.vocabulary import Vocabulary, build_vocabulary
from ml_core.metrics import classification_report

FORMAT_VERSION = 1
MANIFEST_FILE = "manifest.json"
KIND = "distilled"
METRIC_KEYS: tuple[str, ...] = ("qwk", "accuracy", "macro_f1", "micro_f1")


@dataclass(frozen=True)
class DistilledArtifact:
    """Where the student was written, its flat test metrics, the ``.onnx`` file and folder size.

    ``metrics`` holds ``qwk``/``accuracy``/``macro_f1``/``micro_f1`` of the student, the same with
    ``teacher_`` and ``baseline_`` (lambda = 0) prefixes, ``parameters``, ``onnx_bytes``,
    ``answers_per_second`` (ONNX Runtime, one thread) and the chosen ``lambda``. ``report`` is
    the full comparison as stored in ``manifest.json``.
    """

    path: Path
    metrics: dict[str, float]
    onnx_path: Path
    size_bytes: int
    report: dict[str, object]


def distill_item(
    texts: Sequence[str],
    labels: Sequence[int],
    teacher_probabilities: np.ndarray | Sequence[Sequence[float]],
    unlabelled_texts: Sequence[str] = (),
    unlabelled_teacher_probabilities: np.ndarray | Sequence[Sequence[float]] | None = None,
    *,
    config: DistillConfig | None = None,
    out_dir: Path | str,
    item_id: str = "item",
    score_labels: Sequence[int] | None = None,
    splits: Sequence[str] | None = None,
    teacher_version: str = "",
    teacher_seconds_per_answer: float | None = None,
    model_version: str | None = None,
    teacher: Callable[[Sequence[str]], np.ndarray] | None = None,
    progress: Callable[[dict[str, float]], None] | None = None,
) -> DistilledArtifact:
    """Distill one item's teacher into a student and write its artifact folder at ``out_dir``.

    ``labels`` are class indices (``0..C-1``) of the human scores; ``teacher_probabilities`` is
    ``[len(texts), C]``, the teacher's class probabilities for the same answers (from any model
    version, e.g. :func:`ml_core.distill.teacher.teacher_probabilities`). Unlabelled answers
    (e.g. production submissions) come with their teacher probabilities and train on those alone.
    ``score_labels`` gives the score value of each class (default ``0..C-1``). ``splits`` may fix
    ``train``/``val``/``test`` per answer (blank: split here, seeded and stratified, by
    ``config.val_fraction``/``test_fraction``); only the train answers and the unlabelled answers
    are learnt from, validation picks the epoch and the lambda, test is reported.
    ``teacher`` (texts -> probabilities ``[n, C]``, e.g. ``functools.partial(teacher_probabilities,
    engine)``) lets distillation ask the teacher about ``config.augment_copies`` variants of each
    training answer (:mod:`ml_core.distill.augment`); without it only the given answers are used.
    ``teacher_seconds_per_answer`` (measured by the caller) is copied into the report for the
    speed comparison. The folder is written atomically (replaced if it exists).
    """
    config = copy.deepcopy(config) if config is not None else DistillConfig()
    config.validate()
    started = time.perf_counter()
    inputs = _Inputs.checked(
        texts,
        labels,
        teacher_probabilities,
        unlabelled_texts,
        unlabelled_teacher_probabilities,
        score_labels,
        item_id,
    )
    split = _split(inputs.labels, splits, config)
    if not split["train"]:
        raise ValueError(f"item {item_id!r}: no training answers after splitting")
    # variants only recombine words of the training answers: the vocabulary is built without them
    vocabulary = _vocabulary(inputs, split["train"], config)
    augmented = _augment(inputs, split["train"], teacher, config)
    trained = _train_students(inputs, split, vocabulary, config, progress)
    version = model_version or f"distilled:{teacher_version or item_id}"
    names = {"item_id": item_id, "model_version": version, "teacher_version": teacher_version}
    staging = Path(tempfile.mkdtemp(prefix=f".{Path(out_dir).name}.", dir=_parent(out_dir)))
    try:
        onnx_path = staging / ONNX_FILE
        onnx_bytes = _export(trained, inputs, config, onnx_path, names)
        report = _report(
            scorer=DistilledScorer(onnx_path, threads=1),
            chosen=trained.chosen,
            baseline=trained.baseline,
            ids=trained.ids,
            texts=inputs.texts,
            labels=inputs.labels,
            teacher=inputs.soft,
            test=split["test"],
            num_labels=inputs.num_labels,
            config=config,
            teacher_seconds_per_answer=teacher_seconds_per_answer,
        )
        report |= {"sweep": trained.sweep, "augmented": augmented, "onnx_bytes": onnx_bytes}
        metrics = _flat_metrics(report)
        manifest = _manifest(
            inputs,
            trained,
            config,
            split,
            augmented,
            names=names,
            metrics=metrics,
            report=report,
        )
        manifest["train_seconds"] = time.perf_counter() - started
        (staging / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        out = Path(out_dir)
        if out.exists():
            shutil.rmtree(out)
        os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    size = sum(f.stat().st_size for f in out.iterdir() if f.is_file())
    return DistilledArtifact(
        path=out, metrics=metrics, onnx_path=out / ONNX_FILE, size_bytes=size, report=report
    )


def _vocabulary(inputs: _Inputs, train_rows: Sequence[int], config: DistillConfig) -> Vocabulary:
    return build_vocabulary(
        [inputs.texts[i] for i in train_rows] + inputs.extra_texts,
        mode=config.vocabulary,
        min_docs=config.min_docs,
        max_size=config.max_vocabulary,
        max_length=config.max_length,
        backbone=config.backbone,
    )


def _export(
    trained: _Students,
    inputs: _Inputs,
    config: DistillConfig,
    onnx_path: Path,
    names: dict[str, str],
) -> int:
    """The chosen student as one ONNX file (vocabulary and labels inside); returns its size."""
    return export_onnx(
        trained.chosen.model,
        trained.vocabulary,
        inputs.values,
        onnx_path,
        format_version=FORMAT_VERSION,
        item_id=names["item_id"],
        model_version=names["model_version"],
        teacher_version=names["teacher_version"],
        distill_lambda=trained.chosen.distill_lambda,
        temperature=config.temperature,
    )


def _manifest(
    inputs: _Inputs,
    trained: _Students,
    config: DistillConfig,
    split: dict[str, list[int]],
    augmented: int,
    *,
    names: dict[str, str],
    metrics: dict[str, float],
    report: dict[str, object],
) -> dict[str, object]:
    return {
        "format_version": FORMAT_VERSION,
        "kind": KIND,
        **names,
        "labels": list(inputs.values),
        "files": {"onnx": ONNX_FILE},
        "vocabulary": {
            "mode": trained.vocabulary.mode,
            "size": len(trained.vocabulary),
            "max_length": trained.vocabulary.max_length,
        },
        "metrics": metrics,
        "report": report,
        "config": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(config).items()},
        "split_sizes": {name: len(rows) for name, rows in split.items()}
        | {"unlabelled": len(inputs.extra_texts) - augmented, "augmented": augmented},
    }


@dataclass
class _Inputs:
    """The answers checked: texts, class labels, teacher rows; unlabelled texts with theirs."""

    texts: list[str]
    labels: np.ndarray
    soft: np.ndarray
    values: tuple[int, ...]
    extra_texts: list[str]
    extra: np.ndarray

    @property
    def num_labels(self) -> int:
        return int(self.soft.shape[1])

    @classmethod
    def checked(
        cls,
        texts: Sequence[str],
        labels: Sequence[int],
        teacher_probabilities: np.ndarray | Sequence[Sequence[float]],
        unlabelled_texts: Sequence[str],
        unlabelled_teacher_probabilities: np.ndarray | Sequence[Sequence[float]] | None,
        score_labels: Sequence[int] | None,
        item_id: str,
    ) -> _Inputs:
        """Raises ``ValueError`` saying what does not fit."""
        texts = [str(t) for t in texts]
        label_array = np.asarray(labels, dtype=np.int64)
        soft = np.asarray(teacher_probabilities, dtype=np.float32)
        if soft.ndim != 2 or len(soft) != len(texts) or len(label_array) != len(texts):
            raise ValueError(
                "texts, labels and teacher_probabilities [n, classes] must have one row per answer"
            )
        if not texts:
            raise ValueError(f"item {item_id!r}: no answers to distill")
        num_labels = soft.shape[1]
        if num_labels < 2:
            raise ValueError("a student needs at least two classes")
        if label_array.min() < 0 or label_array.max() >= num_labels:
            raise ValueError(f"labels must be class indices in 0..{num_labels - 1}")
        values = (
            tuple(int(v) for v in score_labels)
            if score_labels is not None
            else tuple(range(num_labels))
        )
        if len(values) != num_labels:
            raise ValueError(
                f"score_labels names {len(values)} classes, the teacher gives {num_labels}"
            )
        extra_texts = [str(t) for t in unlabelled_texts]
        extra = np.asarray(
            unlabelled_teacher_probabilities
            if unlabelled_teacher_probabilities is not None
            else np.zeros((0, num_labels)),
            dtype=np.float32,
        ).reshape(-1, num_labels)
        if len(extra) != len(extra_texts):
            raise ValueError(
                "unlabelled_teacher_probabilities must have one row per unlabelled text"
            )
        return cls(texts, label_array, soft, values, extra_texts, extra)


def _augment(
    inputs: _Inputs,
    train_rows: Sequence[int],
    teacher: Callable[[Sequence[str]], np.ndarray] | None,
    config: DistillConfig,
) -> int:
    """Variants of the training answers, labelled by the teacher, join the unlabelled answers;
    returns how many."""
    if teacher is None or config.augment_copies <= 0:
        return 0
    variants = augment_texts(
        [inputs.texts[i] for i in train_rows], copies=config.augment_copies, seed=config.seed
    )
    if not variants:
        return 0
    probabilities = np.asarray(teacher(variants), dtype=np.float32)
    inputs.extra_texts = inputs.extra_texts + variants
    inputs.extra = np.concatenate(
        [inputs.extra, probabilities.reshape(len(variants), inputs.num_labels)]
    )
    return len(variants)


@dataclass
class _Students:
    vocabulary: Vocabulary
    ids: list[list[int]]
    chosen: TrainedStudent
    baseline: TrainedStudent | None
    sweep: list[dict[str, float]]


def _train_students(
    inputs: _Inputs,
    split: dict[str, list[int]],
    vocabulary: Vocabulary,
    config: DistillConfig,
    progress: Callable[[dict[str, float]], None] | None,
) -> _Students:
    """One student per lambda of the sweep; the best on validation is chosen (validation QWK
    first, the label loss as the tie-break), and the lambda = 0 baseline kept if asked."""
    ids = [e.ids for e in vocabulary.encode_batch(inputs.texts)]
    extra_ids = [e.ids for e in vocabulary.encode_batch(inputs.extra_texts)]
    everything = StudentSet(ids=ids, labels=inputs.labels, teacher=inputs.soft)
    train = everything.subset(split["train"])
    if extra_ids:
        train = StudentSet(
            ids=train.ids + extra_ids,
            labels=np.concatenate(
                [train.labels, np.full(len(extra_ids), NO_LABEL, dtype=np.int64)]
            ),
            teacher=np.concatenate([train.teacher, inputs.extra])
            if train.teacher is not None
            else None,
        )
    val = everything.subset(split["val"])
    init = (
        backbone_embedding_init(vocabulary, config.embedding_dim, config.backbone)
        if config.embedding_init == "backbone"
        else None
    )

    def fit(distill_lambda: float) -> TrainedStudent:
        report = (
            None if progress is None else (lambda row: progress({**row, "lambda": distill_lambda}))
        )
        return train_student(
            train,
            val,
            vocab_size=len(vocabulary),
            num_labels=inputs.num_labels,
            config=config,
            distill_lambda=distill_lambda,
            embedding_init=init,
            progress=report,
        )

    val_rows = split["val"] or split["train"]
    sweep: list[dict[str, float]] = []
    students: dict[float, TrainedStudent] = {}
    for distill_lambda in config.lambdas():
        student = fit(distill_lambda)
        students[distill_lambda] = student
        sweep.append(
            {
                "lambda": distill_lambda,
                "epochs_run": float(student.epochs_run),
                **_val_scores(student, ids, inputs.labels, val_rows, inputs.num_labels),
            }
        )
    best = max(sweep, key=lambda row: (round(row["val_qwk"], 6), -row["val_label_loss"]))
    baseline: TrainedStudent | None = None
    if config.compare_baseline:
        baseline = students.get(0.0) or fit(0.0)
    return _Students(vocabulary, ids, students[best["lambda"]], baseline, sweep)


# ----------------------------------------------------------------------------------------------


def _parent(out_dir: Path | str) -> Path:
    parent = Path(out_dir).resolve().parent
    parent.mkdir(parents=True, exist_ok=True)
    return parent


def _split(
    labels: np.ndarray, splits: Sequence[str] | None, config: DistillConfig
) -> dict[str, list[int]]:
    # the same seeded stratified splitter as item training, so a teacher and its student trained
    # with the same seed and fractions see the same test answers
    from ml_core.training import TrainConfig, TrainExample, split_examples

    given = list(splits) if splits is not None else [""] * len(labels)
    if len(given) != len(labels):
        raise ValueError("splits must have one entry per answer")
    examples = [
        TrainExample(text="", label=int(label), split=str(s))
        for label, s in zip(labels, given, strict=True)
    ]
    result = split_examples(
        examples,
        TrainConfig(
            val_fraction=config.val_fraction, test_fraction=config.test_fraction, seed=config.seed
        ),
    )
    return {"train": list(result.train), "val": list(result.val), "test": list(result.test)}


def _val_scores(
    student: TrainedStudent,
    ids: Sequence[Sequence[int]],
    labels: np.ndarray,
    rows: Sequence[int],
    num_labels: int,
) -> dict[str, float]:
    probabilities = predict_probabilities(student.model, [ids[i] for i in rows])
    truth = labels[list(rows)]
    report = classification_report(truth, probabilities.argmax(axis=1), num_labels=num_labels)
    label_loss = float(
        -np.log(np.clip(probabilities[np.arange(len(rows)), truth], 1e-8, 1.0)).mean()
    )
    return {
        "val_qwk": report["qwk"],
        "val_accuracy": report["accuracy"],
        "val_label_loss": label_loss,
        "val_loss": student.best_val_loss,
    }


def _scores(truth: np.ndarray, probabilities: np.ndarray, num_labels: int) -> dict[str, float]:
    if len(truth) == 0:
        return {}
    report = classification_report(truth, probabilities.argmax(axis=1), num_labels=num_labels)
    return {key: float(report[key]) for key in METRIC_KEYS}


def _report(
    *,
    scorer: DistilledScorer,
    chosen: TrainedStudent,
    baseline: TrainedStudent | None,
    ids: Sequence[Sequence[int]],
    texts: Sequence[str],
    labels: np.ndarray,
    teacher: np.ndarray,
    test: Sequence[int],
    num_labels: int,
    config: DistillConfig,
    teacher_seconds_per_answer: float | None,
) -> dict[str, object]:
    test = list(test)
    truth = labels[test]
    # the student is judged as shipped: through the exported file and ONNX Runtime
    student_probs = (
        scorer.predict_ids([ids[i] for i in test]) if test else np.zeros((0, num_labels))
    )
    torch_probs = (
        predict_probabilities(chosen.model, [ids[i] for i in test]) if test else student_probs
    )
    student: dict[str, object] = {
        **_scores(truth, student_probs, num_labels),
        "lambda": chosen.distill_lambda,
        "epochs_run": chosen.epochs_run,
        "parameters": parameter_count(chosen.model),
        "onnx_max_abs_difference": float(np.abs(student_probs - torch_probs).max())
        if test
        else 0.0,
        "teacher_agreement": float((student_probs.argmax(1) == teacher[test].argmax(1)).mean())
        if test
        else 0.0,
    }
    if config.measure_speed:
        with torch.no_grad():
            speed = measure_speed(scorer, list(texts), min_seconds=0.5)
        student.update(speed)
        student["seconds_per_answer"] = (
            1.0 / speed["answers_per_second"] if speed["answers_per_second"] else 0.0
        )
    report: dict[str, object] = {
        "n_test": len(test),
        "student": student,
        "teacher": {
            **_scores(truth, teacher[test], num_labels),
            "seconds_per_answer": teacher_seconds_per_answer,
        },
    }
    if baseline is not None:
        baseline_probs = (
            predict_probabilities(baseline.model, [ids[i] for i in test]) if test else student_probs
        )
        report["baseline"] = {
            **_scores(truth, baseline_probs, num_labels),
            "lambda": 0.0,
            "epochs_run": baseline.epochs_run,
        }
    student_seconds = student.get("seconds_per_answer")
    if teacher_seconds_per_answer and isinstance(student_seconds, float) and student_seconds > 0:
        report["speedup_vs_teacher"] = teacher_seconds_per_answer / student_seconds
    return report


def _flat_metrics(report: dict[str, object]) -> dict[str, float]:
    out: dict[str, float] = {"n_test": float(report["n_test"])}  # type: ignore[arg-type]
    for prefix, key in (("", "student"), ("teacher_", "teacher"), ("baseline_", "baseline")):
        section = report.get(key)
        if isinstance(section, dict):
            for name in METRIC_KEYS:
                if name in section:
                    out[prefix + name] = float(section[name])
    student = report["student"]
    assert isinstance(student, dict)
    for name in (
        "lambda",
        "parameters",
        "answers_per_second",
        "answers_per_second_end_to_end",
        "teacher_agreement",
    ):
        if student.get(name) is not None:
            out[name] = float(student[name])
    out["onnx_bytes"] = float(report["onnx_bytes"])  # type: ignore[arg-type]
    if report.get("speedup_vs_teacher") is not None:
        out["speedup_vs_teacher"] = float(report["speedup_vs_teacher"])  # type: ignore[arg-type]
    return out
