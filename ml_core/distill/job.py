"""One item's distillation job: the rules of what a student learns from, then ``distill_item``.

The training worker (``workers.tasks``), ``python -m ml_core.distill job`` and the benchmark run a
job through :func:`run_distill_job`; they differ in where the answers and the teacher come from.
Config and report are typed and round-trip through JSON.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np

from ml_core.distill.api import distill_item
from ml_core.distill.config import DistillConfig

# A teacher: answer texts -> class probabilities ``[n, classes]``.
Teacher = Callable[[Sequence[str]], np.ndarray]


@dataclass(frozen=True)
class DistillJobConfig:
    """One item's answers (human-scored, with their split) and the teacher's name."""

    item_id: str
    texts: tuple[str, ...]
    scores: tuple[int, ...]
    max_score: int
    teacher_version: str
    # train/val/test per answer; blank: split by the distillation config
    splits: tuple[str, ...] = ()
    model_version: str | None = None
    # answers without a human score (e.g. production answers): the teacher labels them
    unlabelled: tuple[str, ...] = ()
    min_answers: int = 10
    max_unlabelled: int = 5000
    distill: DistillConfig = field(default_factory=DistillConfig)

    def validate(self) -> None:
        if len(self.scores) != len(self.texts) or (
            self.splits and len(self.splits) != len(self.texts)
        ):
            raise ValueError("a distillation job needs one score (and split) per answer")
        if len(self.texts) < self.min_answers:
            raise ValueError(
                f"item '{self.item_id}' needs at least {self.min_answers} scored answers"
            )

    def to_json(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> DistillJobConfig:
        values = dict(data)
        distill = values.pop("distill", {})
        for name in ("texts", "scores", "splits", "unlabelled"):
            values[name] = tuple(values.get(name, ()))  # type: ignore[call-overload,arg-type]
        known = {f.name for f in fields(DistillConfig)}
        given: dict[str, object] = {}
        if isinstance(distill, Mapping):
            given = {k: tuple(v) if isinstance(v, list) else v for k, v in distill.items()}
        config = DistillConfig(**{k: v for k, v in given.items() if k in known})  # type: ignore[arg-type]
        return cls(**values, distill=config)  # type: ignore[arg-type]


@dataclass(frozen=True)
class DistillJobReport:
    item_id: str
    path: str
    onnx_path: str
    size_bytes: int
    # flat test metrics of the student, the teacher (``teacher_``) and the baseline (``baseline_``)
    metrics: dict[str, float]
    teacher_version: str
    labelled_answers: int
    unlabelled_answers: int

    def to_json(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> DistillJobReport:
        return cls(**dict(data))  # type: ignore[arg-type]


def unlabelled_answers(job: DistillJobConfig) -> list[str]:
    """The first ``max_unlabelled`` unlabelled answers, less those that are also scored ones."""
    labelled = set(job.texts)
    return [text for text in job.unlabelled[: job.max_unlabelled] if text not in labelled]


def run_distill_job(
    job: DistillJobConfig,
    teacher: Teacher,
    out_dir: Path,
    *,
    teacher_seconds_per_answer: float | None = None,
    progress: Callable[[dict[str, float]], None] | None = None,
) -> DistillJobReport:
    """Ask ``teacher`` about every answer, distill the student, write it at ``out_dir``."""
    job.validate()
    unlabelled = unlabelled_answers(job)
    soft = teacher(list(job.texts))
    soft_unlabelled = teacher(unlabelled) if unlabelled else None
    artifact = distill_item(
        list(job.texts),
        list(job.scores),
        soft,
        unlabelled,
        soft_unlabelled,
        config=job.distill,
        out_dir=out_dir,
        item_id=job.item_id,
        score_labels=list(range(job.max_score + 1)),
        splits=list(job.splits) or None,
        teacher_version=job.teacher_version,
        teacher_seconds_per_answer=teacher_seconds_per_answer,
        model_version=job.model_version,
        # variants of the training answers are scored by the teacher on demand
        teacher=teacher,
        progress=progress,
    )
    return DistillJobReport(
        item_id=job.item_id,
        path=str(artifact.path),
        onnx_path=str(artifact.onnx_path),
        size_bytes=artifact.size_bytes,
        metrics=dict(artifact.metrics),
        teacher_version=job.teacher_version,
        labelled_answers=len(job.texts),
        unlabelled_answers=len(unlabelled),
    )
