"""Merge runs: one plan merged with one method (and storage dtype), evaluated on every split.

A merge job runs its own plan with its own method; asked to compare, it also runs other plans
and methods (:class:`ml_core.merge.job.MergeJobConfig`). A group that several runs share is
merged once (:class:`GroupMerger`).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ml_core.merge.config import MergeConfig
from ml_core.merge.heads import cross_validated_correct
from ml_core.merge.models import Encoder, head_tensors
from ml_core.merge.pipeline import (
    GroupResult,
    ItemData,
    item_report,
    merge_group,
    pooled_report,
    predict_heads,
)
from ml_core.merge.plans import MergePlan

GroupKey = tuple[tuple[str, ...], str, str]


@dataclass(frozen=True)
class RunSpec:
    """Which plan, merged with which method, stored in which dtype."""

    plan: str
    method: str
    shared_dtype: str = "float32"

    @property
    def label(self) -> str:
        return f"{self.plan}/{self.method}" + ("/fp16" if self.shared_dtype == "float16" else "")


@dataclass(frozen=True)
class MergeRun:
    """One plan merged with one method: test, validation and training-CV figures, storage."""

    plan: str
    method: str
    shared_dtype: str
    summary: dict[str, float]
    val_summary: dict[str, float]
    per_item: dict[str, dict[str, float]]
    # the merged features scored by each item's heads as trained (no re-fit)
    summary_without_refit: dict[str, float]
    # share of training answers a head re-fitted on the other folds scores right (None: off)
    cv_accuracy: float | None
    storage_bytes: int
    groups: list[dict[str, object]]
    seconds: float
    # per item, its test answers' predicted classes ([answers][criteria])
    predictions: dict[str, list[list[int]]]

    @property
    def label(self) -> str:
        return RunSpec(self.plan, self.method, self.shared_dtype).label

    def to_json(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> MergeRun:
        return cls(**dict(data))  # type: ignore[arg-type]


class GroupMerger:
    """Merges groups under ``out_dir``, each (members, method, dtype) once, and counts its
    cross-validated head accuracy on the training answers when ``cv_folds`` is set."""

    def __init__(
        self,
        by_id: Mapping[str, ItemData],
        encoder: Encoder,
        out_dir: Path,
        backbone_label: str,
        *,
        cv_folds: int = 0,
        seed: int = 13,
    ) -> None:
        self.by_id, self.encoder, self.out_dir = by_id, encoder, out_dir
        self.backbone_label, self.cv_folds, self.seed = backbone_label, cv_folds, seed
        self.results: dict[GroupKey, GroupResult] = {}
        self.cv_correct: dict[tuple[GroupKey, str], int] = {}

    def merged(
        self,
        members: Sequence[str],
        method: str,
        dtype: str = "float32",
        *,
        out_dir: Path | None = None,
        group_id: str | None = None,
        extra: Mapping[str, object] | None = None,
    ) -> GroupResult:
        """The group merged (now, or by an earlier run); folder and id default to
        ``merged/<method>-<dtype>/group-<digest>`` and ``<method>-<item>+<item>...``."""
        key: GroupKey = (tuple(members), method, dtype)
        if key not in self.results:
            digest = hashlib.sha256(repr(key).encode()).hexdigest()[:10]
            self.results[key] = merge_group(
                [self.by_id[i] for i in members],
                self.encoder,
                out_dir or self.out_dir / "merged" / f"{method}-{dtype}" / f"group-{digest}",
                group_id=group_id or f"{method}-" + "+".join(members),
                config=MergeConfig(method=method, shared_dtype=dtype),
                backbone_label=self.backbone_label,
                extra=extra,
            )
        if self.cv_folds:
            self._count_cross_validated(key)
        return self.results[key]

    def _count_cross_validated(self, key: GroupKey) -> None:
        result = self.results[key]
        for item_id in key[0]:
            if (key, item_id) in self.cv_correct:
                continue
            item = self.by_id[item_id]
            weight, bias = head_tensors(item.artifact)[0]
            self.cv_correct[(key, item_id)] = cross_validated_correct(
                result.features[item_id][list(item.split.train)],
                item.labels(item.split.train)[:, 0],
                weight,
                bias,
                folds=self.cv_folds,
                seed=self.seed,
            )

    def cv_accuracy(self, plan: MergePlan, method: str, dtype: str) -> float | None:
        if not self.cv_folds:
            return None
        correct = sum(
            self.cv_correct[((tuple(g), method, dtype), i)] for g in plan.groups for i in g
        )
        answers = sum(len(self.by_id[i].split.train) for i in plan.item_ids)
        return correct / max(1, answers)


def merge_run(
    merger: GroupMerger, spec: RunSpec, plan: MergePlan, started: float | None = None
) -> MergeRun:
    """``plan`` merged with ``spec``'s method and dtype, evaluated on the test and validation
    answers; ``started`` (a ``perf_counter`` value) when its groups were merged beforehand."""
    started = time.perf_counter() if started is None else started
    groups = [merger.merged(g, spec.method, spec.shared_dtype) for g in plan.groups]
    items = [merger.by_id[i] for i in plan.item_ids]
    test: dict[str, np.ndarray] = {}
    val: dict[str, np.ndarray] = {}
    as_trained: dict[str, np.ndarray] = {}
    for group in groups:
        for item in (merger.by_id[i] for i in group.item_ids):
            test[item.item_id] = group.predictions(item, item.split.test)
            val[item.item_id] = group.predictions(item, item.split.val)
            as_trained[item.item_id] = predict_heads(
                group.features[item.item_id][list(item.split.test)], head_tensors(item.artifact)
            )
    return MergeRun(
        plan=spec.plan,
        method=spec.method,
        shared_dtype=spec.shared_dtype,
        summary=pooled_report(items, test),
        val_summary=pooled_report(items, val, "val"),
        per_item={i.item_id: item_report(i, test[i.item_id]) for i in items},
        summary_without_refit=pooled_report(items, as_trained),
        cv_accuracy=merger.cv_accuracy(plan, spec.method, spec.shared_dtype),
        storage_bytes=sum(g.size_bytes for g in groups),
        groups=[
            {"items": list(g.item_ids), "path": str(g.path), "bytes": g.size_bytes} for g in groups
        ],
        seconds=time.perf_counter() - started,
        predictions={key: value.tolist() for key, value in test.items()},
    )
