"""One merge job, end to end: distances, plan, merged groups, before/after evaluation.

The training worker (``workers.merge_tasks``), ``python -m ml_core.merge job`` and the benchmark
(``benchmarks/merge_benchmark.py``) all run a job through :func:`run_merge_job`; they differ in
where the items come from, where the report goes and how much the job compares: the worker merges
one plan with one method, the benchmark also asks for every planner's plan, random plans, other
methods, float16 storage and cross-validated head accuracy (:class:`MergeJobConfig`). Config and
report are typed and round-trip through JSON (``to_json`` / ``from_json``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np

from ml_core.backbone import backbone_label
from ml_core.merge.config import FeatureConfig, MergeConfig, PlanConfig
from ml_core.merge.distances import DistanceMatrix
from ml_core.merge.group import export_lora_items
from ml_core.merge.models import Encoder, head_tensors, item_state, weights_bytes
from ml_core.merge.pipeline import (
    GroupResult,
    ItemData,
    encode_indices,
    item_report,
    own_features,
    pooled_report,
    predict_heads,
    pretrained_features,
    sample_scores,
)
from ml_core.merge.planners import (
    PLANNERS,
    PlannerInputs,
    comparison_plans,
    plan_summary,
    planner_matrices,
)
from ml_core.merge.plans import MergePlan, make_plan, validate_plan
from ml_core.merge.runs import GroupMerger, MergeRun, RunSpec, merge_run
from ml_core.metrics import confusion_matrix

REPORT_KEYS = ("micro_f1", "macro_f1", "qwk", "accuracy")


@dataclass(frozen=True)
class MergeJobConfig:
    """What a merge job is asked for; left at their defaults, the fields after ``backbone`` make
    the job merge its own plan with its own method and nothing else."""

    job: str
    method: str = "ties"
    group_size: int = 3
    # answers per item whose features the distances compare
    feature_answers: int = 64
    # a human plan (groups of item ids); None: planned from the Gromov-Wasserstein distances
    plan: tuple[tuple[str, ...], ...] | None = None
    backbone: str | None = None
    # planners (ml_core.merge.planners.PLANNERS) whose plans are also merged with ``method``
    compare_planners: tuple[str, ...] = ()
    # random plans (same group sizes) also merged with ``method``
    random_plans: int = 0
    # methods also run on the job's plan
    compare_methods: tuple[str, ...] = ()
    # the job's plan also merged with float16 shared weights
    fp16_run: bool = False
    # folds of the cross-validated head accuracy on the training answers (0: not measured)
    cv_folds: int = 0
    # weight of score differences in the gw-labels planner's intra-set cost
    label_weight: float = 0.5
    # seed of the feature sample, the plans and the cross-validation folds
    seed: int = 13

    def validate(self) -> None:
        unknown = [name for name in self.compare_planners if name not in PLANNERS]
        if unknown:
            raise ValueError(f"unknown planners {unknown}; known: {sorted(PLANNERS)}")
        for method in (self.method, *self.compare_methods):
            MergeConfig(method=method).validate()
        if self.random_plans < 0 or self.cv_folds < 0:
            raise ValueError("random_plans and cv_folds must be >= 0")

    def run_specs(self, plan_names: Sequence[str]) -> list[RunSpec]:
        """Every run, the job's own first: each plan (the job's is the first name) with
        ``method``, then the job's plan with each other method, then with float16 weights."""
        own = plan_names[0]
        specs = [RunSpec(name, self.method) for name in plan_names]
        specs += [RunSpec(own, m) for m in self.compare_methods if m != self.method]
        return specs + ([RunSpec(own, self.method, "float16")] if self.fp16_run else [])

    def to_json(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> MergeJobConfig:
        values: dict[str, object] = {f.name: data[f.name] for f in fields(cls) if f.name in data}
        plan = values.get("plan")
        values["plan"] = tuple(tuple(str(k) for k in g) for g in plan) if plan else None  # type: ignore[attr-defined]
        for name in ("compare_planners", "compare_methods"):
            values[name] = tuple(values.get(name) or ())  # type: ignore[arg-type]
        return cls(**values)  # type: ignore[arg-type]


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
    # pooled test figures of the items before and after (the job's plan and method)
    summary: dict[str, dict[str, float]]
    # the GW matrix the job's plan comes from, with its timing
    distances: dict[str, object]
    items: list[ItemOutcome] = field(default_factory=list)
    # the unmerged models: pooled test and validation figures, and each item's test figures
    unmerged: dict[str, object] = field(default_factory=dict)
    # every plan run (the job's first): groups, source, GW cost (and centroid-cosine cost)
    plans: dict[str, dict[str, object]] = field(default_factory=dict)
    # every planner's distance matrix: seconds, cached, pairs, item_ids, values
    matrices: dict[str, dict[str, object]] = field(default_factory=dict)
    pretrained_feature_seconds: float = 0.0
    # every merge run, the job's own first (its plan with its method)
    runs: list[MergeRun] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> MergeJobReport:
        values = {k: v for k, v in data.items() if k not in ("items", "runs")}
        items = [ItemOutcome(**entry) for entry in data.get("items", [])]  # type: ignore[attr-defined]
        runs = [MergeRun.from_json(entry) for entry in data.get("runs", [])]  # type: ignore[attr-defined]
        return cls(**values, items=items, runs=runs)  # type: ignore[arg-type]

    def run(self, label: str) -> MergeRun:
        """The run labelled ``<plan>/<method>`` (``/fp16`` added for float16 weights)."""
        return next(run for run in self.runs if run.label == label)

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


@dataclass(frozen=True)
class _Features:
    """Each item's feature sample (under its own model and, when a planner asks, the backbone),
    and its unmerged models' test and validation predictions."""

    inputs: PlannerInputs
    before: dict[str, np.ndarray]
    before_val: dict[str, np.ndarray]
    seconds: float
    pretrained_seconds: float


def run_merge_job(
    items: Sequence[ItemData],
    encoder: Encoder,
    job_dir: Path,
    config: MergeJobConfig,
    *,
    cache_dir: Path,
    report: Callable[[float, str], None] = lambda percent, stage: None,
    on_run: Callable[[MergeJobReport], None] = lambda job: None,
) -> MergeJobReport:
    """Merge ``items`` (each with its own model and test split) into groups under ``job_dir``.

    ``report(percent, stage)`` is called as the job advances (it may raise to cancel the job);
    ``on_run(report)`` after each merge run with the report so far. Distances are cached under
    ``cache_dir``; ``job_dir`` gets the heatmaps, ``plan.json``, ``report.json``, ``groups/``
    (the job's plan), for LoRA groups one exported folder per item under ``items/``, and the
    other runs' groups under ``merged/``.
    """
    config.validate()
    by_key = {item.item_id: item for item in items}
    report(5, "embedding answers with each item's own model")
    features = _features(items, encoder, config)
    report(35, "Gromov-Wasserstein distances")
    job_dir.mkdir(parents=True, exist_ok=True)
    planner_names = ["gw", *(n for n in config.compare_planners if n != "gw")]
    found = planner_matrices(
        planner_names, features.inputs, config.label_weight, cache_dir, job_dir
    )
    matrices = {name: matrix for name, (matrix, _) in found.items()}
    plan = _plan(matrices, config, list(by_key), job_dir)
    merger = GroupMerger(
        by_key,
        encoder,
        job_dir,
        backbone_label(config.backbone),
        cv_folds=config.cv_folds,
        seed=config.seed,
    )
    started = time.perf_counter()
    groups = _merge_groups(plan, merger, job_dir, config, report)
    report(92, "evaluating")
    own = merge_run(merger, RunSpec(plan.source, config.method), plan, started)
    after = {
        key: group.predictions(by_key[key], by_key[key].split.test)
        for group in groups
        for key in group.item_ids
    }
    plans = comparison_plans(
        plan,
        {name: matrices[name] for name in config.compare_planners},
        list(by_key),
        PlanConfig(group_size=config.group_size, seed=config.seed),
        config.random_plans,
    )
    job = _job_report(items, config, plan, features, found, after, job_dir)
    job.plans.update({name: plan_summary(p, matrices) for name, p in plans.items()})
    for group in groups:
        job.items.extend(_outcomes(group, by_key, features.before, after, job_dir))
    job.runs.append(own)
    on_run(job)
    for spec in config.run_specs(list(plans))[1:]:
        report(95, f"comparing {spec.label}")
        job.runs.append(merge_run(merger, spec, plans[spec.plan]))
        on_run(job)
    return job


def _features(items: Sequence[ItemData], encoder: Encoder, config: MergeJobConfig) -> _Features:
    """Feature samples for the planners the job runs, and the unmerged models' predictions."""
    feature_config = FeatureConfig(
        max_answers=config.feature_answers, max_length=encoder.max_length, seed=config.seed
    )
    samples, tests, seconds = own_features(items, encoder, feature_config, with_test=True)
    wanted = [PLANNERS[name] for name in ("gw", *config.compare_planners)]
    pretrained: dict[str, np.ndarray] = {}
    pretrained_seconds = 0.0
    if any(planner.extractor == "pretrained" for planner in wanted):
        pretrained, pretrained_seconds = pretrained_features(items, encoder, feature_config)
    labelled = any(planner.uses_labels for planner in wanted)
    before = {i.item_id: predict_heads(tests[i.item_id], head_tensors(i.artifact)) for i in items}
    before_val = {}
    for item in items:  # validation answers under each item's own model
        encoder.load(
            item_state(item.artifact, encoder.base_state), tag=f"item:{item.item_id}:{item.hash}"
        )
        features = encode_indices(encoder, item, item.split.val)
        before_val[item.item_id] = predict_heads(features, head_tensors(item.artifact))
    inputs = PlannerInputs(
        own=samples,
        pretrained=pretrained,
        scores=sample_scores(items, feature_config) if labelled else {},
        item_hashes={i.item_id: i.hash for i in items},
        feature_settings=asdict(feature_config),
    )
    return _Features(inputs, before, before_val, seconds, pretrained_seconds)


def _job_report(
    items: Sequence[ItemData],
    config: MergeJobConfig,
    plan: MergePlan,
    features: _Features,
    found: Mapping[str, tuple[DistanceMatrix, bool]],
    after: Mapping[str, np.ndarray],
    job_dir: Path,
) -> MergeJobReport:
    """The report before its runs and item outcomes; ``report.json`` gets its summary."""
    summary = {
        "before": pooled_report(items, features.before),
        "after": pooled_report(items, after),
    }
    (job_dir / "report.json").write_text(json.dumps(summary, indent=2) + "\n")
    gw, gw_cached = found["gw"]
    pairs = len(items) * (len(items) - 1) // 2
    return MergeJobReport(
        job=config.job,
        plan_source=plan.source,
        plan=[list(g) for g in plan.groups],
        heatmap=str(job_dir / "heatmap-gw.png"),
        summary=summary,
        distances={
            "kind": "gw",
            "seconds": round(gw.seconds, 3),
            "cached": gw_cached,
            "feature_seconds": round(features.seconds, 3),
            "item_ids": list(gw.item_ids),
            "values": gw.values.round(6).tolist(),
        },
        unmerged={
            "summary": summary["before"],
            "val_summary": pooled_report(items, features.before_val, "val"),
            "per_item": {i.item_id: item_report(i, features.before[i.item_id]) for i in items},
        },
        matrices={
            name: {
                "seconds": matrix.seconds,
                "cached": cached,
                "pairs": pairs,
                "item_ids": list(matrix.item_ids),
                "values": matrix.values.round(6).tolist(),
            }
            for name, (matrix, cached) in found.items()
        },
        pretrained_feature_seconds=features.pretrained_seconds,
    )


def _plan(
    matrices: Mapping[str, DistanceMatrix],
    config: MergeJobConfig,
    item_ids: list[str],
    job_dir: Path,
) -> MergePlan:
    """The human plan, checked, or one planned from the GW distances; written to ``plan.json``."""
    if config.plan is not None:
        plan = validate_plan(MergePlan(config.plan, "human"), item_ids, config.group_size)
    else:
        plan_config = PlanConfig(group_size=config.group_size, seed=config.seed)
        plan = make_plan(matrices["gw"], plan_config, "gw")
    summary = {**plan.to_json(), "gw_cost": plan_summary(plan, matrices)["gw_cost"]}
    (job_dir / "plan.json").write_text(json.dumps(summary, indent=2) + "\n")
    return plan


def _merge_groups(
    plan: MergePlan,
    merger: GroupMerger,
    job_dir: Path,
    config: MergeJobConfig,
    report: Callable[[float, str], None],
) -> list[GroupResult]:
    """The job's plan merged with its method: ``groups/group-NN``, ids ``<job>-gNN``."""
    groups: list[GroupResult] = []
    for number, members in enumerate(plan.groups):
        report(
            40 + 50 * number / len(plan.groups), f"merging group {number + 1}/{len(plan.groups)}"
        )
        groups.append(
            merger.merged(
                members,
                config.method,
                out_dir=job_dir / "groups" / f"group-{number:02d}",
                group_id=f"{config.job}-g{number:02d}",
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
