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

import logging
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from ml_core.artifact import load_artifact
from ml_core.merge.job import MergeJobConfig, run_merge_job
from ml_core.merge.models import Encoder
from ml_core.merge.pipeline import ItemData, prepare_item
from queueing import catalog
from queueing.tasks import task
from scoring_plugin.artifact_store import publish, version_folder
from scoring_plugin.models import ModelVersion
from scoring_plugin.services import MergeOptions, training_examples
from workers import trust_hooks
from workers.tasks import cancel_requested, claim_for_training, set_progress

logger = logging.getLogger(__name__)


class MergeCancelled(Exception):
    """An admin cancelled one of the job's versions."""


def merges_dir() -> Path:
    return Path(settings.ARTIFACTS_DIR) / "merges"


@task(catalog.MERGE, bind=True)
def merge_model_versions(self, version_ids: list[int], options: dict[str, object]) -> str:  # type: ignore[no-untyped-def]
    """Run a merge job on its pending ``merged`` versions (see the module docstring)."""
    claimed = [pk for pk in version_ids if claim_for_training(pk)]
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
    config = MergeJobConfig(
        job=options.job,
        method=options.method,
        group_size=options.group_size,
        feature_answers=options.feature_answers,
        plan=tuple(tuple(g) for g in options.plan) if options.plan is not None else None,
        backbone=settings.SCORING_BACKBONE or None,
    )
    encoder = Encoder(config.backbone, device=settings.SCORING_DEVICE or None)
    items: list[ItemData] = []
    for version in versions:
        source = version.parent
        if source is None or source.status != ModelVersion.Status.READY:
            raise ValueError(f"{version}: the model to merge ({source}) is not ready")
        artifact = load_artifact(version_folder(source))
        if artifact.item_id != version.item.key:
            raise ValueError(f"{source.artifact_key} holds item {artifact.item_id!r}")
        items.append(prepare_item(artifact, training_examples(version.item), encoder))
    job = run_merge_job(
        items, encoder, job_dir, config, cache_dir=merges_dir() / "cache", report=report
    )
    out: dict[int, tuple[Path, dict[str, object]]] = {}
    for version in versions:
        outcome = next(o for o in job.items if o.item_id == version.item.key)
        metrics = job.item_metrics(version.item.key)
        merge = metrics["merge"]
        assert isinstance(merge, dict)
        merge["source_version"] = version.parent.label if version.parent else None
        out[version.pk] = (Path(outcome.artifact_path), metrics)
    return out
