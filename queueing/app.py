"""The Celery app, configured from Django settings.

Queues: ``scoring`` (hosts the engine), ``training`` (long jobs, one at a time), ``lms`` (grade
passback). With no ``CELERY_BROKER_URL`` the broker is kombu's filesystem transport under
``var/broker``: a real broker and real worker processes, with no server to install.
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "scorebridge.settings")

from celery import Celery  # noqa: E402
from django.conf import settings  # noqa: E402
from kombu import Exchange, Queue  # noqa: E402

from queueing import catalog  # noqa: E402


def filesystem_transport_options(broker_dir: Path) -> dict[str, object]:
    """Folders of the embedded broker; web and workers on one machine share them."""
    queue_dir = broker_dir / "queue"
    processed = broker_dir / "processed"
    control = broker_dir / "control"
    staging = broker_dir / "staging"
    rejected = broker_dir / "rejected"
    for folder in (queue_dir, processed, control, staging, rejected):
        folder.mkdir(parents=True, exist_ok=True)
    return {
        "data_folder_in": str(queue_dir),
        "data_folder_out": str(queue_dir),
        "processed_folder": str(processed),
        "control_folder": str(control),
        "staging_folder": str(staging),
        "rejected_folder": str(rejected),
        "store_processed": False,
        # kombu polls the folder once a second by default: a second of latency per answer.
        "polling_interval": 0.02,
    }


def broker_transport_options(url: str) -> dict[str, object]:
    """Transport options that fit the broker ``url`` points at."""
    if url.startswith("filesystem://"):
        return filesystem_transport_options(settings.BROKER_DIR)
    if url.startswith(("redis://", "rediss://")):
        # Unacknowledged messages come back after this; it must outlast the longest job.
        return {"visibility_timeout": settings.CELERY_VISIBILITY_TIMEOUT}
    return {}


def broker_transport(url: str) -> str | None:
    """The transport class for ``url``: ours for the filesystem broker, kombu's otherwise."""
    return "queueing.fs_transport:Transport" if url.startswith("filesystem://") else None


def configure(app: Celery) -> None:
    exchange = Exchange("scorebridge", type="direct")
    app.conf.update(
        broker_url=settings.CELERY_BROKER_URL,
        broker_transport=broker_transport(settings.CELERY_BROKER_URL),
        broker_transport_options=broker_transport_options(settings.CELERY_BROKER_URL),
        # A worker whose broker goes away waits for it to come back, however long that takes,
        # instead of exiting after Celery's default 100 attempts; the web's sends do not retry
        # (the sweeper sends an answer again once the broker is back).
        broker_connection_retry_on_startup=True,
        broker_connection_retry=True,
        broker_connection_max_retries=None,
        # The database holds every result; Celery's result store would only duplicate it.
        task_ignore_result=True,
        result_backend=None,
        task_queues=[Queue(name, exchange, routing_key=name) for name in catalog.QUEUES],
        task_default_queue="scoring",
        task_default_exchange="scorebridge",
        task_default_routing_key="scoring",
        task_routes=catalog.routes(),
        # A message is acknowledged after its task ran, and requeued if the worker process dies.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_serializer="json",
        accept_content=["json"],
        timezone=settings.TIME_ZONE,
        worker_hijack_root_logger=False,
        beat_schedule={
            "sweep-stuck-submissions": {
                "task": catalog.SWEEP.name,
                "schedule": float(settings.SCOREBRIDGE_SWEEP_INTERVAL_SECONDS),
            },
            "purge-expired-data": {
                "task": catalog.PURGE.name,
                "schedule": float(settings.SCOREBRIDGE_PURGE_INTERVAL_SECONDS),
            },
        },
        beat_schedule_filename=str(settings.VAR_DIR / "celerybeat-schedule"),
    )


# workers.tasks is found by autodiscovery; other task modules are listed here.
app = Celery(
    "scorebridge",
    include=["workers.merge_tasks", "workers.privacy_tasks", "workers.cold_start_tasks"],
)
configure(app)
# lti.tasks holds grade passback (the lms queue); it is found when the lti app is installed.
app.autodiscover_tasks(["workers", "lti"])
