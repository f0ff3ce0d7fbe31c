"""The scoring engine of this worker process.

The backbone is loaded once per worker process, after fork (``worker_process_init``), never in
the parent: a forked copy of torch's thread pools misbehaves, and the parent must stay light.
Before scoring, the host compares the item's active model version in the database with what the
engine holds and loads the new one, so an activation reaches every worker without a restart.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

from celery.signals import celeryd_after_setup, worker_process_init
from django.conf import settings

from ml_core.engine import ScoringEngine

logger = logging.getLogger(__name__)

_engine: ScoringEngine | None = None
_lock = threading.Lock()
# Set in the worker's parent before fork: whether this worker consumes the scoring queue.
_preload = os.environ.get("SCOREBRIDGE_PRELOAD_ENGINE", "auto")


def engine() -> ScoringEngine:
    """This process's engine, created on first use."""
    global _engine
    with _lock:
        if _engine is None:
            logger.info("loading scoring backbone %s", settings.SCORING_BACKBONE or "(default)")
            _engine = ScoringEngine(
                settings.SCORING_BACKBONE or None,
                backend=settings.SCORING_BACKEND,
                device=settings.SCORING_DEVICE or None,
            )
        return _engine


def ensure_loaded(item_key: str, version_label: str, artifact_path: str) -> ScoringEngine:
    """Make the engine hold ``version_label`` for the item (a no-op when it already does)."""
    current = engine()
    if current.loaded().get(item_key) != version_label:
        logger.info("loading %s from %s", version_label, artifact_path)
        current.load_item(item_key, Path(artifact_path), version_label)
    return current


def preload_active_versions() -> int:
    """Load every item's active model version, so the first answers wait for nothing."""
    from scoring_plugin.models import ModelVersion

    loaded = 0
    active = ModelVersion.objects.filter(
        is_active=True, status=ModelVersion.Status.READY
    ).select_related("item")
    for version in active:
        try:
            ensure_loaded(version.item.key, version.label, version.artifact_path)
            loaded += 1
        except Exception:  # one broken artifact must not keep the worker from starting
            logger.exception("cannot preload %s", version.label)
    return loaded


def reset() -> None:
    """Forget the engine (tests, and a worker that must reload everything)."""
    global _engine
    with _lock:
        _engine = None


@celeryd_after_setup.connect
def _remember_queues(sender: str, instance: object, **kwargs: object) -> None:
    global _preload
    if _preload != "auto":
        return
    app = getattr(instance, "app", None)
    consume_from = getattr(getattr(app, "amqp", None), "queues", None)
    names = set(getattr(consume_from, "consume_from", {}) or {})
    _preload = "1" if (not names or "scoring" in names) else "0"


@worker_process_init.connect
def _load_engine_after_fork(**kwargs: object) -> None:
    if _preload in ("1", "auto"):
        engine()
        count = preload_active_versions()
        logger.info("scoring engine ready with %d item(s)", count)
