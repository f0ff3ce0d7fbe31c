"""Celery tasks. Each takes ids, re-reads its rows, and is idempotent.

* ``score_submission``: scores one answer with its item's active model version.
* ``train_model_version``: trains a pending model version and activates it when asked.
* ``sweep_stuck_submissions``: re-enqueues answers left received or queued for too long.
"""

from __future__ import annotations

import logging
import random
import shutil
from datetime import timedelta
from pathlib import Path

from celery import shared_task
from django.conf import settings
from django.db import DatabaseError, transaction
from django.utils import timezone

from ml_core.engine import ScoreRequest
from ml_core.training import TrainConfig, TrainExample, TrainingCancelled, TrainProgress, train_item
from scoring_plugin.models import ModelVersion, Submission
from scoring_plugin.signals import submission_finished
from workers import engine_host

logger = logging.getLogger(__name__)


def _backoff(retries: int) -> float:
    """Exponential backoff with full jitter, capped at five minutes."""
    return random.uniform(0, min(300.0, 2.0 * (2**retries)))


@shared_task(bind=True, name="workers.tasks.score_submission", max_retries=8)
def score_submission(self, submission_id: str) -> str:  # type: ignore[no-untyped-def]
    """Score one submission. A submission already scored or failed is left alone."""
    try:
        submission = Submission.objects.select_related("item").get(pk=submission_id)
    except Submission.DoesNotExist:
        logger.warning("submission %s does not exist; nothing to score", submission_id)
        return "missing"
    except DatabaseError as exc:
        raise self.retry(exc=exc, countdown=_backoff(self.request.retries)) from exc
    if submission.status in (Submission.Status.SCORED, Submission.Status.FAILED):
        return submission.status

    version = submission.item.active_version
    if version is None or version.status != ModelVersion.Status.READY:
        _finish_failed(submission_id, f"item '{submission.item.key}' has no active model")
        return "failed"

    try:
        scorer = engine_host.ensure_loaded(
            submission.item.key, version.label, version.artifact_path
        )
    except Exception as exc:  # a broken artifact must fail the answer, not the worker
        logger.exception("cannot load %s", version.label)
        _finish_failed(submission_id, f"model {version.label} cannot be loaded: {exc}")
        return "failed"
    (result,) = scorer.score([ScoreRequest(submission.item.key, submission.text)])

    try:
        with transaction.atomic():
            row = Submission.objects.select_for_update().get(pk=submission_id)
            if row.status in (Submission.Status.SCORED, Submission.Status.FAILED):
                return row.status  # a duplicate delivery finished first
            if result.error is not None or result.score is None:
                row.mark_failed(result.error or "the engine returned no score")
            else:
                row.status = Submission.Status.SCORED
                row.score = result.score
                row.probabilities = list(result.probabilities)
                row.confidence = result.confidence
                row.truncated = result.truncated
                row.model_version = version
                row.error = ""
                row.scored_at = timezone.now()
            row.save()
            _announce(submission_id, row.status)
    except DatabaseError as exc:
        raise self.retry(exc=exc, countdown=_backoff(self.request.retries)) from exc
    logger.info(
        "scored submission=%s item=%s score=%s version=%s",
        submission_id,
        submission.item.key,
        result.score,
        version.label,
    )
    return row.status


def _announce(submission_id: str, status: str) -> None:
    """Tell listeners (grade passback) once the final state is committed."""
    transaction.on_commit(
        lambda: submission_finished.send(
            sender=Submission, submission_id=submission_id, status=status
        )
    )


def _finish_failed(submission_id: str, reason: str) -> None:
    with transaction.atomic():
        row = Submission.objects.select_for_update().get(pk=submission_id)
        if row.status not in (Submission.Status.SCORED, Submission.Status.FAILED):
            row.mark_failed(reason)
            row.save()
            _announce(submission_id, row.status)
    logger.warning("submission=%s failed: %s", submission_id, reason)


@shared_task(
    bind=True,
    name="workers.tasks.train_model_version",
    acks_late=True,
    reject_on_worker_lost=True,
)
def train_model_version(self, version_id: int, activate: bool = True) -> str:  # type: ignore[no-untyped-def]
    """Train a pending model version on its item's scored answers."""
    from scoring_plugin.services import training_examples

    claimed = ModelVersion.objects.filter(
        pk=version_id, status__in=[ModelVersion.Status.PENDING, ModelVersion.Status.TRAINING]
    ).update(status=ModelVersion.Status.TRAINING, error="")
    if not claimed:
        return "not pending"
    version = ModelVersion.objects.select_related("item").get(pk=version_id)
    return run_training(version, activate=activate, examples=training_examples(version.item))


def run_training(
    version: ModelVersion,
    *,
    activate: bool,
    examples: list[TrainExample],
    show_progress: bool = False,
) -> str:
    """Train ``version`` in this process; shared by the task and the ``train_items`` command."""
    from scoring_plugin.services import activate_version

    item = version.item
    out_dir = Path(settings.ARTIFACTS_DIR) / item.key / f"v{version.number}-{version.kind}"
    if out_dir.exists():
        shutil.rmtree(out_dir)  # a previous attempt that died half-way

    def progress(p: TrainProgress) -> None:
        percent = round(100.0 * ((p.epoch - 1) * p.steps + p.step) / max(1, p.epochs * p.steps), 1)
        ModelVersion.objects.filter(pk=version.pk).update(
            progress={"percent": percent, "epoch": p.epoch, "epochs": p.epochs, **p.metric}
        )

    def should_stop() -> bool:
        return ModelVersion.objects.filter(
            pk=version.pk, status=ModelVersion.Status.CANCELLED
        ).exists()

    try:
        artifact = train_item(
            examples,
            item_id=item.key,
            num_labels=item.max_score + 1,
            out_dir=out_dir,
            backbone=settings.SCORING_BACKBONE or None,
            config=TrainConfig(kind=version.kind),
            progress=progress,
            should_stop=should_stop,
        )
    except TrainingCancelled:
        shutil.rmtree(out_dir, ignore_errors=True)
        return "cancelled"
    except Exception as exc:  # the active model stays as it was
        logger.exception("training %s failed", version)
        ModelVersion.objects.filter(pk=version.pk).update(
            status=ModelVersion.Status.FAILED, error=str(exc)[:2000]
        )
        shutil.rmtree(out_dir, ignore_errors=True)
        return "failed"

    ModelVersion.objects.filter(pk=version.pk).update(
        status=ModelVersion.Status.READY,
        artifact_path=str(artifact.path),
        metrics=artifact.metrics,
        trained_at=timezone.now(),
        progress={"percent": 100.0},
    )
    if activate:
        version.refresh_from_db()
        activate_version(version)
    return "ready"


@shared_task(name="workers.tasks.sweep_stuck_submissions")
def sweep_stuck_submissions() -> int:
    """Enqueue again answers that sat received or queued too long (a lost message)."""
    from scoring_plugin.services import enqueue_submission

    cutoff = timezone.now() - timedelta(seconds=settings.SCOREBRIDGE_REQUEUE_AFTER_SECONDS)
    stuck = list(
        Submission.objects.filter(
            status__in=[Submission.Status.RECEIVED, Submission.Status.QUEUED],
            created_at__lt=cutoff,
        )
        .exclude(queued_at__gte=cutoff)
        .values_list("pk", "attempts")[:1000]
    )
    requeued = 0
    for pk, attempts in stuck:
        if attempts >= settings.SCOREBRIDGE_MAX_SCORING_ATTEMPTS:
            _finish_failed(str(pk), f"not scored after {attempts} attempts")
            continue
        enqueue_submission(str(pk))
        requeued += 1
    if requeued:
        logger.warning("re-enqueued %d stuck submission(s)", requeued)
    return requeued
