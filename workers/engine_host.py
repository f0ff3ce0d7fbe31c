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
from collections.abc import Sequence
from pathlib import Path

from celery.signals import celeryd_after_setup, worker_process_init
from django.conf import settings

from ml_core.distill.scorer import DistilledScorer
from ml_core.engine import ScoreRequest, ScoreResult, ScoringEngine

logger = logging.getLogger(__name__)

_engine: ScoringEngine | None = None
# Distilled students run apart from the engine (ONNX, no backbone): item key -> (version, scorer).
_students: dict[str, tuple[str, DistilledScorer]] = {}
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
                threads=scoring_threads(),
            )
        return _engine


def scoring_threads() -> int:
    """SCORING_THREADS, or the cores shared by the scoring processes plus the web server."""
    if settings.SCORING_THREADS:
        return settings.SCORING_THREADS
    return max(1, (os.cpu_count() or 1) // (settings.SCORING_WORKER_PROCESSES + 1))


def engine_if_loaded() -> ScoringEngine | None:
    """This process's engine if one was created, without creating it."""
    return _engine


def ensure_loaded(item_key: str, version_label: str, artifact_path: str) -> ScoringEngine:
    """Make the engine hold ``version_label`` for the item (a no-op when it already does)."""
    current = engine()
    if current.loaded().get(item_key) != version_label:
        logger.info("loading %s from %s", version_label, artifact_path)
        current.load_item(item_key, Path(artifact_path), version_label)
    return current


def ensure_student(item_key: str, version_label: str, artifact_path: str) -> DistilledScorer:
    """The distilled student for the item at ``version_label``, loaded once."""
    with _lock:
        held = _students.get(item_key)
        if held is None or held[0] != version_label:
            logger.info("loading student %s from %s", version_label, artifact_path)
            _students[item_key] = (version_label, DistilledScorer(Path(artifact_path)))
        return _students[item_key][1]


def ensure_version(item_key: str, version_label: str, kind: str, artifact_path: str) -> None:
    """Load a model version of any kind where it is served."""
    if kind == "distilled":
        ensure_student(item_key, version_label, artifact_path)
    else:
        with _lock:
            _students.pop(item_key, None)
        ensure_loaded(item_key, version_label, artifact_path)


def score(requests: Sequence[ScoreRequest]) -> list[ScoreResult]:
    """Score answers of any mix of items: the engine's items in one call, students per item.

    Each item must have been loaded with :func:`ensure_version` first.
    """
    results: list[ScoreResult | None] = [None] * len(requests)
    by_student: dict[str, list[int]] = {}
    for index, request in enumerate(requests):
        if request.item_key in _students:
            by_student.setdefault(request.item_key, []).append(index)
    on_engine = [i for i in range(len(requests)) if requests[i].item_key not in _students]
    if on_engine:
        scored = engine().score([requests[i] for i in on_engine])
        for index, result in zip(on_engine, scored, strict=True):
            results[index] = result
    for item_key, indexes in by_student.items():
        label, student = _students[item_key]
        for index, result in zip(
            indexes, student.score([requests[i].text for i in indexes]), strict=True
        ):
            results[index] = ScoreResult(
                item_key=item_key,
                score=result.score,
                probabilities=result.probabilities,
                confidence=result.confidence,
                model_version=label,
                truncated=result.truncated,
                error=result.error,
            )
    return [r for r in results if r is not None]


def preload_active_versions() -> int:
    """Load every item's active model version, so the first answers wait for nothing."""
    from scoring_plugin.models import ModelVersion

    loaded = 0
    active = ModelVersion.objects.filter(
        is_active=True, status=ModelVersion.Status.READY
    ).select_related("item")
    for version in active:
        try:
            ensure_version(version.item.key, version.label, version.kind, version.artifact_path)
            loaded += 1
        except Exception:  # one broken artifact must not keep the worker from starting
            logger.exception("cannot preload %s", version.label)
    return loaded


def reset() -> None:
    """Forget the engine (tests, and a worker that must reload everything)."""
    global _engine
    with _lock:
        _engine = None
        _students.clear()


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
