"""The merge job (issue 4, ADR 0005): items' active full or LoRA models merged into groups.

One job = one pending ``merged`` model version per selected item (``parent`` = the item's active
version, the model that is merged). On the ``training`` queue it embeds each item's training
answers with the item's own model, computes the Gromov-Wasserstein distances (cached) and their
heatmap, plans groups (or takes the admin's plan), merges each group (TIES by default), re-fits
every head, evaluates every item before and after on its test split, and marks the versions
ready with their metrics. It never activates anything: the admin compares and activates. A failed
or cancelled job leaves every active model as it was and removes what it wrote.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path

from celery import shared_task
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from ml_core.artifact import load_artifact
from ml_core.backbone import backbone_label
from ml_core.merge.config import DistanceConfig, FeatureConfig, MergeConfig, PlanConfig
from ml_core.merge.distances import cached_matrix, draw_heatmap
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
    prepare_item,
)
from ml_core.merge.plans import MergePlan, make_plan, plan_cost, validate_plan
from ml_core.metrics import confusion_matrix
from scoring_plugin.artifact_store import publish, version_folder
from scoring_plugin.models import ModelVersion
from scoring_plugin.services import MergeOptions, training_examples
from workers import trust_hooks
from workers.tasks import _claim_for_training, cancel_requested, set_progress

logger = logging.getLogger(__name__)

REPORT_KEYS = ("micro_f1", "macro_f1", "qwk", "accuracy")


class MergeCancelled(Exception):
    """An admin cancelled one of the job's versions."""


def merges_dir() -> Path:
    return Path(settings.ARTIFACTS_DIR) / "merges"


@shared_task(
    bind=True,
    name="workers.merge_tasks.merge_model_versions",
    acks_late=True,
    reject_on_worker_lost=True,
)
def merge_model_versions(self, version_ids: list[int], options: dict[str, object]) -> str:  # type: ignore[no-untyped-def]
    """Run a merge job on its pending ``merged`` versions (see the module docstring)."""
    claimed = [pk for pk in version_ids if _claim_for_training(pk)]
    if not claimed:
        return "not pending"
    if len(claimed) < len(version_ids):  # some were cancelled before the job started
        _cancel(version_ids, None)
        return "cancelled"
    return run_merge(version_ids, MergeOptions.from_json(options))


def run_merge(version_ids: Sequence[int], options: MergeOptions) -> str:
    """The job's body, in this process: "ready", "cancelled" or "failed"."""
    ids = list(version_ids)
    job_dir = merges_dir() / (options.job or f"job-{min(ids)}")

    def stage(percent: float, name: str) -> None:
        if cancel_requested(ids):
            raise MergeCancelled
        set_progress(ids, {"percent": round(percent, 1), "stage": name, "job": options.job})

    try:
        results = _merge(ids, options, job_dir, stage)
        with transaction.atomic():
            # a cancel that came during the last stage wins: nothing becomes ready
            locked = list(ModelVersion.objects.select_for_update().filter(pk__in=ids))
            if any(v.status != ModelVersion.Status.TRAINING for v in locked):
                raise MergeCancelled
            now = timezone.now()
            stored: dict[Path, tuple[str, str]] = {}  # a group folder serves several versions
            for version in locked:
                path, metrics = results[version.pk]
                if path not in stored:
                    stored[path] = publish(path)
                key, content_hash = stored[path]
                ModelVersion.objects.filter(pk=version.pk).update(
                    status=ModelVersion.Status.READY,
                    artifact_key=key,
                    artifact_hash=content_hash,
                    metrics=metrics,
                    trained_at=now,
                    progress={"percent": 100.0, "stage": "done", "job": options.job},
                    error="",
                )
    except MergeCancelled:
        _cancel(ids, job_dir)
        return "cancelled"
    except Exception as exc:  # the active models stay as they were
        logger.exception("merge job %s failed", options.job)
        ModelVersion.objects.filter(pk__in=ids).exclude(
            status=ModelVersion.Status.CANCELLED
        ).update(status=ModelVersion.Status.FAILED, error=f"merge failed: {exc}"[:2000])
        shutil.rmtree(job_dir, ignore_errors=True)
        return "failed"
    for pk in sorted(ids):  # every merged version gets a gaming check and a model card
        trust_hooks.after_training(pk)
    return "ready"


def _cancel(ids: Sequence[int], job_dir: Path | None) -> None:
    ModelVersion.objects.filter(
        pk__in=list(ids), status__in=[ModelVersion.Status.PENDING, ModelVersion.Status.TRAINING]
    ).update(status=ModelVersion.Status.CANCELLED)
    if job_dir is not None:
        shutil.rmtree(job_dir, ignore_errors=True)


def _merge(
    ids: Sequence[int],
    options: MergeOptions,
    job_dir: Path,
    report: Callable[[float, str], None],
) -> dict[int, tuple[Path, dict[str, object]]]:
    """Everything but the final write: version id -> (artifact path, metrics).

    ``report(percent, stage)`` stores the progress and raises :class:`MergeCancelled` when the
    admin cancelled.
    """
    versions = list(
        ModelVersion.objects.select_related("item", "parent")
        .filter(pk__in=ids)
        .order_by("item__key")
    )
    report(1, "loading models")
    backbone = settings.SCORING_BACKBONE or None
    encoder = Encoder(backbone, device=settings.SCORING_DEVICE or None)
    items: list[ItemData] = []
    for version in versions:
        source = version.parent
        if source is None or source.status != ModelVersion.Status.READY:
            raise ValueError(f"{version}: the model to merge ({source}) is not ready")
        artifact = load_artifact(version_folder(source))
        if artifact.item_id != version.item.key:
            raise ValueError(f"{source.artifact_key} holds item {artifact.item_id!r}")
        items.append(prepare_item(artifact, training_examples(version.item), encoder))
    by_key = {item.item_id: item for item in items}
    by_version = {v.item.key: v for v in versions}

    report(5, "embedding answers with each item's own model")
    feature_config = FeatureConfig(max_answers=options.feature_answers, seed=13)
    samples, tests, feature_seconds = own_features(items, encoder, feature_config, with_test=True)
    before = {i.item_id: predict_heads(tests[i.item_id], head_tensors(i.artifact)) for i in items}

    report(35, "Gromov-Wasserstein distances")
    distance_config = DistanceConfig()
    matrix, cached = cached_matrix(
        "gw",
        samples,
        {i.item_id: i.hash for i in items},
        merges_dir() / "cache",
        config=distance_config,
        feature_settings=asdict(feature_config),
    )
    job_dir.mkdir(parents=True, exist_ok=True)
    heatmap = draw_heatmap(matrix, job_dir / "heatmap-gw.png", title="GW distance between items")
    if options.plan is not None:
        plan = validate_plan(
            MergePlan(tuple(tuple(g) for g in options.plan), "human"),
            list(by_key),
            options.group_size,
        )
    else:
        plan = make_plan(matrix, PlanConfig(group_size=options.group_size), "gw")
    (job_dir / "plan.json").write_text(
        json.dumps({**plan.to_json(), "gw_cost": plan_cost(plan, matrix)}, indent=2) + "\n"
    )

    config = MergeConfig(method=options.method)
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
                group_id=f"{options.job}-g{number:02d}",
                config=config,
                backbone_label=backbone_label(backbone),
                extra={"plan": plan.to_json(), "job": options.job},
            )
        )
    report(92, "evaluating")
    after = {
        key: group.predictions(by_key[key], by_key[key].split.test)
        for group in groups
        for key in group.item_ids
    }
    summary = {"before": pooled_report(items, before), "after": pooled_report(items, after)}
    (job_dir / "report.json").write_text(json.dumps(summary, indent=2) + "\n")
    distances = {
        "kind": "gw",
        "seconds": round(matrix.seconds, 3),
        "cached": cached,
        "feature_seconds": round(feature_seconds, 3),
        "item_ids": list(matrix.item_ids),
        "values": matrix.values.round(6).tolist(),
    }
    out: dict[int, tuple[Path, dict[str, object]]] = {}
    for group in groups:
        exported = export_lora_items(group.path, job_dir / "items") if _is_lora(group) else {}
        source_bytes = sum(weights_bytes(by_key[k].artifact.path) for k in group.item_ids)
        for key in group.item_ids:
            item, version = by_key[key], by_version[key]
            now_report = item_report(item, after[key])
            then_report = item_report(item, before[key])
            truth = item.labels(item.split.test)[:, 0]
            metrics: dict[str, object] = {k: now_report[k] for k in REPORT_KEYS}
            metrics["n_test"] = now_report["n_test"]
            metrics["confusion"] = confusion_matrix(
                truth, after[key][:, 0], item.artifact.criteria[0].num_labels
            ).tolist()
            metrics["before"] = {k: then_report[k] for k in REPORT_KEYS}
            metrics["merge"] = {
                "job": options.job,
                "group_id": group.group_id,
                "group_items": list(group.item_ids),
                "group_path": str(group.path),
                "method": group.method,
                "plan_source": plan.source,
                "plan": [list(g) for g in plan.groups],
                "source_version": version.parent.label if version.parent else None,
                "heatmap": str(heatmap),
                "storage_before_bytes": source_bytes,
                "storage_after_bytes": group.size_bytes,
                "head_refits": group.head_refits.get(key, []),
                "job_summary": summary,
                "distances": distances,
            }
            out[version.pk] = (exported.get(key, group.path), metrics)
    return out


def _is_lora(group: GroupResult) -> bool:
    return group.method in ("svd", "concat")
