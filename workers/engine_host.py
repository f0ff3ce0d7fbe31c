"""The scoring engine of this worker process.

The backbone is loaded once per worker process, after fork (``worker_process_init``), never in
the parent: a forked copy of torch's thread pools misbehaves, and the parent must stay light.
Before scoring, the host compares the item's active model version in the database with what the
engine holds and loads the new one, so an activation reaches every worker without a restart.

Three places serve an item, by its active version: the multi-item engine (``head``, ``lora``, and
merged LoRA groups exported per item), a distilled student (ONNX), or a merged ``full`` group (and
an unmerged ``full`` model, a group of one): one :class:`~ml_core.merge.GroupScorer` per folder (a
whole encoder, ~90 MB), loaded on first use and dropped as soon as none of its items is served
from it any more.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from celery.signals import celeryd_after_setup, worker_process_init
from django.conf import settings

from ml_core.distill.scorer import DistilledScorer
from ml_core.engine import ScoreRequest, ScoreResult, ScoringEngine
from ml_core.merge.group import GroupScorer, is_group_folder

logger = logging.getLogger(__name__)

_engine: ScoringEngine | None = None
# Distilled students run apart from the engine (ONNX, no backbone): item key -> (version, scorer).
_students: dict[str, tuple[str, DistilledScorer]] = {}
_lock = threading.Lock()


@dataclass
class _HeldGroup:
    """A merged group's scorer and the items (key -> version label) served from it."""

    scorer: GroupScorer
    items: dict[str, str] = field(default_factory=dict)


# Merged full groups, by resolved folder; and item key -> (label, folder) of items they serve.
_groups: dict[str, _HeldGroup] = {}
_merged: dict[str, tuple[str, str]] = {}
# Whether an artifact folder is a merged group, by path (read once; folders never change).
_is_group: dict[str, bool] = {}
# How often the groups of items whose version changed while no answer came are dropped.
GROUP_PRUNE_SECONDS = 30.0
_last_prune = 0.0
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
        _leave_group(item_key)
        ensure_student(item_key, version_label, artifact_path)
    elif kind in ("merged", "full") and _group_folder(artifact_path):
        # a merged full group, or an unmerged full model (a group of one)
        ensure_group_item(item_key, version_label, artifact_path)
    else:
        _leave_group(item_key)
        with _lock:
            _students.pop(item_key, None)
        ensure_loaded(item_key, version_label, artifact_path)


def is_group_artifact(artifact_path: str) -> bool:
    """Whether the artifact is served by its own encoder (a full model or a merged group)."""
    return _group_folder(str(Path(artifact_path).resolve()))


def _group_folder(artifact_path: str) -> bool:
    if artifact_path not in _is_group:
        _is_group[artifact_path] = is_group_folder(Path(artifact_path))
    return _is_group[artifact_path]


def ensure_group_item(item_key: str, version_label: str, group_path: str) -> GroupScorer:
    """Serve the item from the merged group at ``group_path`` (its scorer loaded once)."""
    folder = str(Path(group_path).resolve())
    if _merged.get(item_key) == (version_label, folder):
        return _groups[folder].scorer
    with _lock:
        held = _groups.get(folder)
        if held is None:
            logger.info("loading merged group %s for %s", folder, version_label)
            scorer = GroupScorer(
                Path(folder),
                settings.SCORING_BACKBONE or None,
                device=settings.SCORING_DEVICE or None,
            )
            held = _groups[folder] = _HeldGroup(scorer)
        if item_key not in held.scorer.item_ids:
            if not held.items:
                del _groups[folder]
            raise ValueError(f"item {item_key!r} is not in the merged group at {folder}")
        _students.pop(item_key, None)
        _leave_group_locked(item_key, keep=folder)
        held.items[item_key] = version_label
        _merged[item_key] = (version_label, folder)
    if _engine is not None and item_key in _engine.loaded():
        _engine.remove_item(item_key)  # its adapter and heads would only take memory
    return held.scorer


def _leave_group(item_key: str) -> None:
    if item_key in _merged:
        with _lock:
            _leave_group_locked(item_key)


def _leave_group_locked(item_key: str, keep: str | None = None) -> None:
    """Stop serving the item from its group; drop the group when it serves nothing else."""
    held_by = _merged.pop(item_key, None)
    if held_by is None:
        return
    folder = held_by[1]
    group = _groups.get(folder)
    if group is None:
        return
    group.items.pop(item_key, None)
    if not group.items and folder != keep:
        logger.info("dropping merged group %s: no item is served from it", folder)
        del _groups[folder]


def held_groups() -> dict[str, dict[str, str]]:
    """Group folder -> {item key: version label} of the merged groups this process holds."""
    return {folder: dict(group.items) for folder, group in _groups.items()}


def prune_groups() -> int:
    """Drop items (and emptied groups) whose group version is no longer active; returns how many.

    An activation is noticed when the item's next answer arrives; this catches items that got
    no answer since, so their group's encoder does not stay resident.
    """
    global _last_prune
    from scoring_plugin.models import ModelVersion

    _last_prune = time.monotonic()
    if not _merged:
        return 0
    active = {
        f"{key}@v{number}"
        for key, number in ModelVersion.objects.filter(
            item__key__in=list(_merged),
            is_active=True,
            status=ModelVersion.Status.READY,
            kind__in=[ModelVersion.Kind.MERGED, ModelVersion.Kind.FULL],
        ).values_list("item__key", "number")
    }
    stale = [key for key, (label, _) in list(_merged.items()) if label not in active]
    with _lock:
        for key in stale:
            _leave_group_locked(key)
    return len(stale)


def score(requests: Sequence[ScoreRequest]) -> list[ScoreResult]:
    """Score answers of any mix of items: the engine's items in one call, each merged group's
    items in one call, students per item.

    Each item must have been loaded with :func:`ensure_version` first.
    """
    results: list[ScoreResult | None] = [None] * len(requests)
    by_student: dict[str, list[int]] = {}
    by_group: dict[str, list[int]] = {}
    on_engine: list[int] = []
    for index, request in enumerate(requests):
        if request.item_key in _students:
            by_student.setdefault(request.item_key, []).append(index)
        elif request.item_key in _merged:
            by_group.setdefault(_merged[request.item_key][1], []).append(index)
        else:
            on_engine.append(index)
    if on_engine:
        scored = engine().score([requests[i] for i in on_engine])
        for index, result in zip(on_engine, scored, strict=True):
            results[index] = result
    for folder, indexes in by_group.items():
        group = _groups[folder]
        scored = group.scorer.score_requests([requests[i] for i in indexes], group.items)
        for index, result in zip(indexes, scored, strict=True):
            results[index] = result
    for item_key, indexes in by_student.items():
        label, student = _students[item_key]
        for index, answer in zip(
            indexes, student.score([requests[i].text for i in indexes]), strict=True
        ):
            results[index] = ScoreResult(
                item_key=item_key,
                score=answer.score,
                probabilities=answer.probabilities,
                confidence=answer.confidence,
                model_version=label,
                truncated=answer.truncated,
                error=answer.error,
            )
    if _merged and time.monotonic() - _last_prune > GROUP_PRUNE_SECONDS:
        try:
            prune_groups()
        except Exception:  # a database hiccup must not lose the scores of this batch
            logger.exception("cannot check merged groups")
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
        _groups.clear()
        _merged.clear()
        _is_group.clear()


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
