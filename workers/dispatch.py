"""Sending work to the queues by task name, without importing the tasks.

The web process enqueues but never runs tasks; importing ``workers.tasks`` would load torch and
the ML code into every web worker (seconds of start-up and hundreds of MB each).
"""

from __future__ import annotations

from workers.celery_app import app


def send_score(submission_id: str) -> None:
    """One answer to the scoring queue (workers gather them into micro-batches)."""
    app.send_task(
        "workers.tasks.score_submission", args=[submission_id], queue="scoring", retry=False
    )


def send_training(version_id: int, activate: bool) -> None:
    app.send_task(
        "workers.tasks.train_model_version", args=[version_id, activate], queue="training"
    )


def send_distillation(version_id: int, activate: bool) -> None:
    app.send_task(
        "workers.tasks.distill_model_version", args=[version_id, activate], queue="training"
    )


def send_merge(version_ids: list[int], options: dict[str, object]) -> None:
    """A merge job (one pending ``merged`` version per item) to the training queue."""
    app.send_task(
        "workers.merge_tasks.merge_model_versions", args=[version_ids, options], queue="training"
    )
