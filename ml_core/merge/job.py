"""One merge job, end to end: distances, plan, merged groups, before/after evaluation.

The training worker (``workers.merge_tasks``), ``python -m ml_core.merge job`` and the benchmark
all run a job through :func:`run_merge_job`; they differ only in where the items come from and
where the report goes. The report is typed and round-trips through JSON
(:meth:`MergeJobReport.to_json` / :meth:`MergeJobReport.from_json`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ml_core.backbone import backbone_label
from ml_core.merge.config import DistanceConfig, FeatureConfig, MergeConfig, PlanConfig
from ml_core.merge.distances import DistanceMatrix, cached_matrix, draw_heatmap
from ml_core.merge.group import export_lora_items
from ml_core.merge.models import Encoder, head_tensors, weights_bytes
from ml_core.merge.pipeline import (
    GroupResult,
    ItemData,
    item_report,
    merge_group,
    own_features,
    pooled_report,
    predict_heads,
)
from ml_core.merge.plans import MergePlan, make_plan, plan_cost, validate_plan
from ml_core.metrics import confusion_matrix

REPORT_KEYS = ("micro_f1", "macro_f1", "qwk", "accuracy")


@dataclass(frozen=True)
class MergeJobConfig:
    """What a merge job is asked for."""

    job: str
    method: str = "ties"
    group_size: int = 3
    # answers per item whose features the distances compare
    feature_answers: int = 64
    # a human plan (groups of item ids); None: planned from the Gromov-Wasserstein distances
    plan: tuple[tuple[str, ...], ...] | None = None
    backbone: str | None = None

    def to_json(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> MergeJobConfig:
        plan = data.get("plan")
        groups = tuple(tuple(str(k) for k in g) for g in plan) if isinstance(plan, list) else None
        return cls(
            job=str(data["job"]),
            method=str(data.get("method", "ties")),
            group_size=int(data.get("group_size", 3)),  # type: ignore[call-overload]
            feature_answers=int(data.get("feature_answers", 64)),  # type: ignore[call-overload]
            plan=groups,
            backbone=data.get("backbone") if isinstance(data.get("backbone"), str) else None,  # type: ignore[arg-type]
        )


@dataclass(frozen=True)
class ItemOutcome:
    """One item after the job: where its merged model is and how it scores before and after."""

    item_id: str
    artifact_path: str
    group_id: str
    group_items: list[str]
    group_path: str
    method: str
    after: dict[str, float]
    before: dict[str, float]
    n_test: float
    confusion: list[list[int]]
    head_refits: list[object]
    storage_before_bytes: int
    storage_after_bytes: int


@dataclass(frozen=True)
class MergeJobReport:
    job: str
    plan_source: str
    plan: list[list[str]]
    heatmap: str
    summary: dict[str, dict[str, float]]
    distances: dict[str, object]
    items: list[ItemOutcome] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> MergeJobReport:
        fields = {k: v for k, v in data.items() if k != "items"}
        items = [ItemOutcome(**entry) for entry in data.get("items", [])]  # type: ignore[attr-defined]
        return cls(**fields, items=items)  # type: ignore[arg-type]

    def item_metrics(self, item_id: str) -> dict[str, object]:
        """The metrics a merged model version stores for one item (admin reads them)."""
        outcome = next(o for o in self.items if o.item_id == item_id)
        metrics: dict[str, object] = dict(outcome.after)
        metrics["n_test"] = outcome.n_test
        metrics["confusion"] = outcome.confusion
        metrics["before"] = dict(outcome.before)
        metrics["merge"] = {
            "job": self.job,
            "group_id": outcome.group_id,
            "group_items": outcome.group_items,
            "group_path": outcome.group_path,
            "method": outcome.method,
            "plan_source": self.plan_source,
            "plan": self.plan,
            "heatmap": self.heatmap,
            "storage_before_bytes": outcome.storage_before_bytes,
            "storage_after_bytes": outcome.storage_after_bytes,
            "head_refits": outcome.head_refits,
            "job_summary": self.summary,
            "distances": self.distances,
        }
        return metrics


def run_merge_job(
    items: Sequence[ItemData],
    encoder: Encoder,
    job_dir: Path,
    config: MergeJobConfig,
    *,
    cache_dir: Path,
    report: Callable[[float, str], None] = lambda percent, stage: None,
) -> MergeJobReport:
    """Merge ``items`` (each with its own model and test split) into groups under ``job_dir``.

    ``report(percent, stage)`` is called as the job advances (it may raise to cancel the job).
    Distances are cached under ``cache_dir``; ``job_dir`` gets the heatmap, ``plan.json``,
    ``report.json``, ``groups/`` and, for LoRA groups, one exported folder per item.
    """
    by_key = {item.item_id: item for item in items}
    report(5, "embedding answers with each item's own model")
    feature_config = FeatureConfig(max_answers=config.feature_answers, seed=13)
    samples, tests, feature_seconds = own_features(items, encoder, feature_config, with_test=True)
    before = {i.item_id: predict_heads(tests[i.item_id], head_tensors(i.artifact)) for i in items}
    report(35, "Gromov-Wasserstein distances")
    matrix, cached = cached_matrix(
        "gw",
        samples,
        {i.item_id: i.hash for i in items},
        cache_dir,
        config=DistanceConfig(),
        feature_settings=asdict(feature_config),
    )
    job_dir.mkdir(parents=True, exist_ok=True)
    heatmap = draw_heatmap(matrix, job_dir / "heatmap-gw.png", title="GW distance between items")
    plan = _plan(matrix, config, list(by_key), job_dir)
    groups = _merge_groups(plan, by_key, encoder, job_dir, config, report)
    report(92, "evaluating")
    after = {
        key: group.predictions(by_key[key], by_key[key].split.test)
        for group in groups
        for key in group.item_ids
    }
    summary = {"before": pooled_report(items, before), "after": pooled_report(items, after)}
    (job_dir / "report.json").write_text(json.dumps(summary, indent=2) + "\n")
    job = MergeJobReport(
        job=config.job,
        plan_source=plan.source,
        plan=[list(g) for g in plan.groups],
        heatmap=str(heatmap),
        summary=summary,
        distances={
            "kind": "gw",
            "seconds": round(matrix.seconds, 3),
            "cached": cached,
            "feature_seconds": round(feature_seconds, 3),
            "item_ids": list(matrix.item_ids),
            "values": matrix.values.round(6).tolist(),
        },
    )
    for group in groups:
        job.items.extend(_outcomes(group, by_key, before, after, job_dir))
    return job


def _plan(
    matrix: DistanceMatrix, config: MergeJobConfig, item_ids: list[str], job_dir: Path
) -> MergePlan:
    """The human plan, checked, or one planned from the distances; written to ``plan.json``."""
    if config.plan is not None:
        plan = validate_plan(MergePlan(config.plan, "human"), item_ids, config.group_size)
    else:
        plan = make_plan(matrix, PlanConfig(group_size=config.group_size), "gw")
    (job_dir / "plan.json").write_text(
        json.dumps({**plan.to_json(), "gw_cost": plan_cost(plan, matrix)}, indent=2) + "\n"
    )
    return plan


def _merge_groups(
    plan: MergePlan,
    by_key: Mapping[str, ItemData],
    encoder: Encoder,
    job_dir: Path,
    config: MergeJobConfig,
    report: Callable[[float, str], None],
) -> list[GroupResult]:
    merge_config = MergeConfig(method=config.method)
    groups: list[GroupResult] = []
    for number, members in enumerate(plan.groups):
        report(
            40 + 50 * number / len(plan.groups), f"merging group {number + 1}/{len(plan.groups)}"
        )
        groups.append(
            merge_group(
                [by_key[key] for key in members],
                encoder,
                job_dir / "groups" / f"group-{number:02d}",
                group_id=f"{config.job}-g{number:02d}",
                config=merge_config,
                backbone_label=backbone_label(config.backbone),
                extra={"plan": plan.to_json(), "job": config.job},
            )
        )
    return groups


def _outcomes(
    group: GroupResult,
    by_key: Mapping[str, ItemData],
    before: Mapping[str, np.ndarray],
    after: Mapping[str, np.ndarray],
    job_dir: Path,
) -> list[ItemOutcome]:
    """Each item of ``group``; LoRA groups also export one artifact folder per item."""
    lora = group.method in ("svd", "concat")
    exported = export_lora_items(group.path, job_dir / "items") if lora else {}
    source_bytes = sum(weights_bytes(by_key[k].artifact.path) for k in group.item_ids)
    outcomes = []
    for key in group.item_ids:
        item = by_key[key]
        now_report, then_report = item_report(item, after[key]), item_report(item, before[key])
        truth = item.labels(item.split.test)[:, 0]
        confusion = confusion_matrix(truth, after[key][:, 0], item.artifact.criteria[0].num_labels)
        outcomes.append(
            ItemOutcome(
                item_id=key,
                artifact_path=str(exported.get(key, group.path)),
                group_id=group.group_id,
                group_items=list(group.item_ids),
                group_path=str(group.path),
                method=group.method,
                after={k: now_report[k] for k in REPORT_KEYS},
                before={k: then_report[k] for k in REPORT_KEYS},
                n_test=now_report["n_test"],
                confusion=confusion.tolist(),
                head_refits=list(group.head_refits.get(key, [])),
                storage_before_bytes=source_bytes,
                storage_after_bytes=group.size_bytes,
            )
        )
    return outcomes
