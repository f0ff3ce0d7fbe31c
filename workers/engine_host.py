"""The serving set of this worker process.

Everything this process serves lives in one :class:`~ml_core.serving.ServingSet`, created after
fork (``worker_process_init``), never in the parent: a forked copy of torch's thread pools
misbehaves, and the parent must stay light. The set maps each model kind to its loader (the
multi-item engine for ``head``/``lora``, a merged group's encoder for ``merged``/``full``, an
ONNX student for ``distilled``, per-item models on the engine's backbone vectors for ``auto``),
so nothing here depends on kinds. Before scoring, the host compares each item's active model
version in the database with what the set serves and swaps it in, so an activation reaches
every worker without a restart; versions no longer active are retired periodically.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from celery.signals import celeryd_after_setup, worker_process_init
from django.conf import settings

from ml_core.engine import ScoreRequest, ScoreResult, ScoringEngine
from ml_core.serving import LazyEngine, ServingSet, default_loaders

if TYPE_CHECKING:
    from scoring_plugin.models import ModelVersion

logger = logging.getLogger(__name__)

# How often versions that stopped being active while no answer came are retired.
RETIRE_CHECK_SECONDS = 30.0
# SCOREBRIDGE_PRELOAD_ENGINE=auto is decided in the worker's parent before fork (the pool
# processes inherit it): whether this worker consumes the scoring queue.
_preload_decided: str | None = None

_serving: ServingSet | None = None


def serving() -> ServingSet:
    """This process's serving set, created on first use (its engine too, on first need)."""
    global _serving
    if _serving is None:
        _serving = _new_serving_set()
    return _serving


def _new_serving_set() -> ServingSet:
    from ml_core.distill.scorer import DistilledScorer
    from ml_core.merge.group import GroupScorer

    def create_engine() -> ScoringEngine:
        logger.info("loading scoring backbone %s", settings.SCORING_BACKBONE or "(default)")
        return ScoringEngine(
            settings.SCORING_BACKBONE or None,
            backend=settings.SCORING_BACKEND,
            device=settings.SCORING_DEVICE or None,
            threads=scoring_threads(),
            cache_dir=Path(settings.SCORING_ONNX_CACHE) if settings.SCORING_ONNX_CACHE else None,
        )

    def open_group(folder: Path) -> GroupScorer:
        return GroupScorer(
            folder, settings.SCORING_BACKBONE or None, device=settings.SCORING_DEVICE or None
        )

    engine = LazyEngine(create_engine)
    return ServingSet(default_loaders(engine, open_group, DistilledScorer), engine=engine)


def engine() -> ScoringEngine:
    """This process's multi-item engine, created on first use."""
    shared = serving().engine
    assert shared is not None
    return shared()


def scoring_threads() -> int:
    """SCORING_THREADS, or the cores shared by the scoring processes plus the web server."""
    if settings.SCORING_THREADS:
        return settings.SCORING_THREADS
    return max(1, (os.cpu_count() or 1) // (settings.SCORING_WORKER_PROCESSES + 1))


def engine_if_loaded() -> ScoringEngine | None:
    """This process's engine if one was created, without creating it."""
    if _serving is None or _serving.engine is None:
        return None
    return _serving.engine.if_loaded()


def ensure_version(version: ModelVersion) -> None:
    """Serve a model version of any kind (a no-op when it is already served); its artifact is
    fetched from the store, verified and cached on first use in this process."""
    from scoring_plugin.artifact_store import version_folder

    served = serving().served().get(version.item.key)
    if served is not None and served.version == version.label and served.kind == version.kind:
        return
    serving().ensure(version.item.key, version.kind, version.label, version_folder(version))


def is_group_artifact(folder: str | Path) -> bool:
    """Whether an artifact folder is a full model or merged group (its own encoder)."""
    from ml_core.merge.group import is_group_folder

    return is_group_folder(Path(folder))


def retire_inactive() -> int:
    """Retire served versions that are no longer their item's active version; returns how many.

    An activation is noticed when the item's next answer arrives; this catches items that got
    no answer since, so what only they used (a merged group's encoder) does not stay resident.
    """
    from scoring_plugin.models import ModelVersion

    held = serving()
    held.last_retired_check = time.monotonic()
    served = held.served()
    if not served:
        return 0
    active = {
        key: f"{key}@v{number}"
        for key, number in ModelVersion.objects.filter(
            item__key__in=list(served), is_active=True, status=ModelVersion.Status.READY
        ).values_list("item__key", "number")
    }
    retired = held.retire_except(active)
    try:
        from scoring_plugin.artifact_store import evict_unneeded

        evict_unneeded()
    except Exception:  # a full disk is better than a worker that stops scoring
        logger.exception("cannot evict cached artifacts")
    return retired


def score(requests: Sequence[ScoreRequest]) -> list[ScoreResult]:
    """Score answers of any mix of items and kinds in one call of the serving set.

    Each item must have been loaded with :func:`ensure_version` first.
    """
    held = serving()
    results = held.score(requests)
    if time.monotonic() - held.last_retired_check > RETIRE_CHECK_SECONDS:
        try:
            retire_inactive()
        except Exception:  # a database hiccup must not lose the scores of this batch
            logger.exception("cannot check the served versions")
    return results


def preload_active_versions() -> int:
    """Load every item's active model version, so the first answers wait for nothing."""
    from scoring_plugin.models import ModelVersion

    loaded = 0
    active = ModelVersion.objects.filter(
        is_active=True, status=ModelVersion.Status.READY
    ).select_related("item")
    for version in active:
        try:
            ensure_version(version)
            loaded += 1
        except Exception:  # one broken artifact must not keep the worker from starting
            logger.exception("cannot preload %s", version.label)
    return loaded


def reset() -> None:
    """Forget everything served (tests, and a worker that must reload everything)."""
    global _serving
    _serving = None


@celeryd_after_setup.connect
def _remember_queues(sender: str, instance: object, **kwargs: object) -> None:
    global _preload_decided
    if settings.SCOREBRIDGE_PRELOAD_ENGINE != "auto":
        return
    app = getattr(instance, "app", None)
    consume_from = getattr(getattr(app, "amqp", None), "queues", None)
    names = set(getattr(consume_from, "consume_from", {}) or {})
    _preload_decided = "1" if (not names or "scoring" in names) else "0"


@worker_process_init.connect
def _load_engine_after_fork(**kwargs: object) -> None:
    if (_preload_decided or settings.SCOREBRIDGE_PRELOAD_ENGINE) in ("1", "auto"):
        engine()
        count = preload_active_versions()
        logger.info("scoring engine ready with %d item(s)", count)
