"""Celery tasks. Each takes ids, re-reads its rows, and is idempotent.

* ``score_submission``: one message per answer; the worker gathers them and scores each batch,
  any mix of items, in one engine call with each item's active model version.
* ``train_model_version``: trains a pending model version and activates it when asked.
* ``sweep_stuck_submissions``: re-enqueues answers left received or queued for too long.

An answer never fails for lack of a worker, a broker or an active model: it waits (its
``waiting_for`` says for what) and is scored when they are back. A scoring attempt is counted
when a worker takes the answer, not when it is sent; only an answer that workers took
``SCOREBRIDGE_MAX_SCORING_ATTEMPTS`` times without finishing it (one that kills them) fails.
"""

from __future__ import annotations

import logging
import random
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from celery_batches import SimpleRequest
from django.conf import settings
from django.db import DatabaseError, InterfaceError, connection, transaction
from django.db.models import Exists, F, OuterRef
from django.utils import timezone

from ml_core.confidence import (
    BASELINE_QWK_KEY,
    CURVE_KEY,
    REVIEW_THRESHOLD_KEY,
    held_out_report,
    json_safe,
    stored_report,
)
from ml_core.engine import ScoreRequest, ScoreResult, ScoringEngine
from ml_core.serving import Scorer
from ml_core.subgroups import GROUPS_KEY, LENGTH_BANDS_KEY, SUBGROUP_SOURCE_KEY
from ml_core.training import (
    TrainConfig,
    TrainedArtifact,
    TrainExample,
    TrainingCancelled,
    TrainProgress,
    split_examples,
    train_item,
)
from queueing import catalog
from queueing.tasks import task
from scoring_plugin.answer_groups import pack_vector
from scoring_plugin.artifact_store import publish, version_folder
from scoring_plugin.models import ModelVersion, Submission, review_threshold_for
from scoring_plugin.signals import submissions_finished
from workers import engine_host, trust_hooks, worker_metrics
from workers.batching import AdaptiveBatches

if TYPE_CHECKING:
    from ml_core.distill.job import DistillJobConfig

logger = logging.getLogger(__name__)


FINAL = (Submission.Status.SCORED, Submission.Status.FAILED)
WAITING = (Submission.Status.RECEIVED, Submission.Status.QUEUED)


class ScoringBatches(AdaptiveBatches):
    """Micro-batches whose outcome the worker's own metrics count (in the worker's main
    process, where its exporter serves them)."""

    def batch_returned(self, result: object) -> None:
        worker_metrics.record_batch(result)

    def batch_raised(self, error: object) -> None:
        worker_metrics.record_batch_error(error)


@task(
    catalog.SCORE,
    base=ScoringBatches,
    flush_every=settings.SCORING_BATCH_SIZE,
    flush_interval=settings.SCORING_BATCH_WAIT_SECONDS,
)
def score_submission(requests: Sequence[SimpleRequest]) -> dict[str, object]:
    """Score every answer the worker gathered (by count or by time) in one engine call.

    Each message carries one submission id (``score_submission.delay(id)``); messages are
    acknowledged after the batch is written. A message lost with a dying worker leaves its row
    queued, and the sweeper enqueues it again. Returns the batch's summary for the metrics.
    """
    started = time.monotonic()
    ids = [str(request.args[0]) for request in requests if request.args]
    outcome = score_batch(ids)
    return outcome.summary(time.monotonic() - started)


@dataclass
class BatchOutcome:
    statuses: dict[str, str]
    """Each id's state afterwards: scored, failed, missing, deferred (database away) or
    waiting (no active model)."""
    latencies: list[float] = field(default_factory=list)
    """Submit-to-scored seconds of the answers this call scored (not earlier deliveries)."""
    failed: int = 0
    """Answers this call marked failed."""

    def summary(self, seconds: float) -> dict[str, object]:
        """Plain values, for the worker's main process (the pool pickles them)."""
        deferred = sum(1 for s in self.statuses.values() if s in ("deferred", "waiting"))
        return {
            "answers": len(self.statuses),
            "scored": len(self.latencies),
            "failed": self.failed,
            "deferred": deferred,
            "latencies": self.latencies,
            "seconds": seconds,
        }


def score_submissions(submission_ids: Sequence[str]) -> dict[str, str]:
    """Score the submissions not yet final; returns each id's outcome. Idempotent."""
    return score_batch(submission_ids).statuses


def score_batch(submission_ids: Sequence[str]) -> BatchOutcome:
    """Score the submissions not yet final. Idempotent.

    A database that is briefly away is waited for (backoff with jitter, the connection dropped
    and opened again); if it stays away the rows stay queued for the sweeper: nothing is lost,
    nothing scored twice.
    """
    claimed: set[str] = set()  # taken once per delivery, however often the database retries
    for attempt in range(DB_ATTEMPTS):
        try:
            return _score_submissions(submission_ids, claimed)
        except (DatabaseError, InterfaceError) as exc:
            logger.warning("database unavailable (attempt %d): %s", attempt + 1, exc)
            _drop_broken_connection()
            if attempt + 1 < DB_ATTEMPTS:
                time.sleep(random.uniform(0.5, 1.0) * min(8.0, 2.0**attempt))
    logger.error(
        "database still unavailable; %d answer(s) left for the sweeper", len(submission_ids)
    )
    return BatchOutcome({pk: "deferred" for pk in submission_ids})


def _drop_broken_connection() -> None:
    """Close this process's database connection after an error, so the next query opens a new
    one (a connection the server or network dropped stays broken otherwise)."""
    if connection.in_atomic_block:
        return
    try:
        connection.close()
    except (DatabaseError, InterfaceError):
        pass


DB_ATTEMPTS = 6


def _announce(statuses: dict[str, str]) -> None:
    """Tell listeners (grade passback) once the batch's final states are committed."""
    if statuses:
        transaction.on_commit(
            lambda: submissions_finished.send(sender=Submission, statuses=statuses)
        )


def _write_scored(rows: Sequence[Submission]) -> None:
    """Store what scoring wrote on each row: one statement executed for the whole batch.

    Django's ``bulk_update`` builds CASE WHEN over 10 fields x 32 rows (~4 ms of CPU per
    answer, issue 19 profile), one ``update()`` per row costs a query compilation each; this
    prepares the values once per field and sends one parameterised UPDATE, executed for every
    row (in one round trip on PostgreSQL, psycopg's pipeline).
    """
    if not rows:
        return
    meta = Submission._meta
    fields = [meta.get_field(name) for name in SCORED_FIELDS]
    quote = connection.ops.quote_name
    assignments = ", ".join(f"{quote(f.column)} = %s" for f in fields)  # type: ignore[union-attr]
    sql = f"UPDATE {quote(meta.db_table)} SET {assignments} WHERE {quote(meta.pk.column)} = %s"
    params = [
        [f.get_db_prep_save(getattr(row, f.attname), connection) for f in fields]  # type: ignore[union-attr]
        + [meta.pk.get_db_prep_value(row.pk, connection)]
        for row in rows
    ]
    with connection.cursor() as cursor:
        cursor.executemany(sql, params)


def _wait_for_model(rows: Sequence[Submission]) -> None:
    """Answers of items with no active model wait for one (not taken, no attempt counted) and
    need a human score meanwhile: listeners hear ``waiting`` (the gradebook shows them pending);
    activating a version sends them again."""
    waiting: dict[str, str] = {}
    for row in rows:
        updated = Submission.objects.filter(pk=row.pk, status__in=WAITING).update(
            status=Submission.Status.RECEIVED,
            waiting_for=Submission.WaitingFor.MODEL,
            error=f"waiting for an active model (item '{row.item.key}' has none)",
        )
        if updated and row.waiting_for != Submission.WaitingFor.MODEL:  # once, not per delivery
            waiting[str(row.pk)] = "waiting"
        logger.info("submission=%s item=%s status=waiting reason=model", row.pk, row.item.key)
    _announce(waiting)


def _claim(rows: Sequence[Submission], claimed: set[str]) -> None:
    """Count one scoring attempt for each answer this delivery takes."""
    fresh = [row for row in rows if str(row.pk) not in claimed]
    if not fresh:
        return
    Submission.objects.filter(pk__in=[r.pk for r in fresh], status__in=WAITING).update(
        attempts=F("attempts") + 1, waiting_for=Submission.WaitingFor.NOTHING, error=""
    )
    for row in fresh:
        row.attempts += 1
        claimed.add(str(row.pk))


# What scoring writes on a submission.
SCORED_FIELDS = (
    "status", "score", "criterion_scores", "probabilities", "confidence", "truncated",
    "embedding", "model_version", "review_threshold", "error", "waiting_for", "scored_at",
)  # fmt: skip


def _score_submissions(submission_ids: Sequence[str], claimed: set[str]) -> BatchOutcome:
    """Claim the rows, call the engine, write the outcome (each a phase below)."""
    outcome: dict[str, str] = {pk: "missing" for pk in submission_ids}
    rows = []
    for row in Submission.objects.select_related("item").filter(pk__in=set(submission_ids)):
        if row.status in FINAL:  # one query for the batch, final rows included
            outcome[str(row.pk)] = row.status
        else:
            rows.append(row)
    if not rows:
        return BatchOutcome(outcome)
    versions = {
        v.item_id: v
        for v in ModelVersion.objects.select_related("item").filter(
            item_id__in={r.item_id for r in rows}, is_active=True, status=ModelVersion.Status.READY
        )
    }
    without_model = [row for row in rows if row.item_id not in versions]
    if without_model:
        _wait_for_model(without_model)
        for row in without_model:
            outcome[str(row.pk)] = "waiting"
        rows = [row for row in rows if row.item_id in versions]
        if not rows:
            return BatchOutcome(outcome)
    _claim(rows, claimed)
    failures = _unscorable(rows, versions)
    results = _run_engine([row for row in rows if str(row.pk) not in failures])
    now = timezone.now()
    changed = _write_scores(rows, versions, failures, results, outcome, now)
    return _report(outcome, rows, changed, now)


def _unscorable(rows: Sequence[Submission], versions: dict[int, ModelVersion]) -> dict[str, str]:
    """Answers that fail without scoring, with the reason: taken too often (they kill workers),
    or their model cannot be loaded (its item leaves ``versions``)."""
    failures: dict[str, str] = {}
    limit = settings.SCOREBRIDGE_MAX_SCORING_ATTEMPTS
    for row in rows:
        if row.attempts > limit:  # taken this often and never finished: it kills workers
            failures[str(row.pk)] = f"not scored after {row.attempts - 1} attempts by workers"
    for item_id in {r.item_id for r in rows}:
        version = versions.get(item_id)
        if version is None:
            continue
        try:
            engine_host.ensure_version(version)
        except Exception as exc:  # a broken artifact fails its answers, not the worker
            logger.exception("cannot load %s", version.label)
            for row in rows:
                if row.item_id == item_id:
                    failures[str(row.pk)] = f"model {version.label} cannot be loaded: {exc}"
            versions.pop(item_id)
    return failures


def _run_engine(to_score: Sequence[Submission]) -> dict[str, ScoreResult]:
    """One engine call for the whole batch, any mix of items; results by submission id."""
    if not to_score:
        return {}
    scored = engine_host.score([ScoreRequest(row.item.key, row.text) for row in to_score])
    logger.info(
        "batch answers=%d items=%s",
        len(to_score),
        ",".join(sorted({row.item.key for row in to_score})),
    )
    return {str(row.pk): result for row, result in zip(to_score, scored, strict=True)}


def _write_scores(
    rows: Sequence[Submission],
    versions: Mapping[int, ModelVersion],
    failures: Mapping[str, str],
    results: Mapping[str, ScoreResult],
    outcome: dict[str, str],
    now: datetime,
) -> list[Submission]:
    """Write each row's score or failure under a row lock (a duplicate delivery that finished
    first wins); announce each final state after commit. Returns the rows written."""
    with transaction.atomic():
        locked = Submission.objects.select_for_update().filter(pk__in=[r.pk for r in rows])
        changed = []
        for row in locked:
            key = str(row.pk)
            if row.status in FINAL:  # a duplicate delivery finished first
                outcome[key] = row.status
                continue
            result = results.get(key)
            if key in failures:
                row.mark_failed(failures[key])
            elif result is None or result.error is not None or result.score is None:
                row.mark_failed(result.error if result and result.error else "no score returned")
            else:
                _set_score(row, result, versions[row.item_id], now)
            changed.append(row)
            outcome[key] = row.status
        _write_scored(changed)
        _announce({str(row.pk): row.status for row in changed})
    return changed


def _set_score(row: Submission, result: ScoreResult, version: ModelVersion, now: datetime) -> None:
    assert result.score is not None
    row.status = Submission.Status.SCORED
    row.score = result.score
    row.criterion_scores = dict(result.criteria) if result.criteria else {}  # analytic items
    row.probabilities = list(result.probabilities)
    row.confidence = result.confidence
    row.truncated = result.truncated
    row.embedding = pack_vector(result.vector)  # answer groups
    row.model_version = version
    row.review_threshold = review_threshold_for(version.item, version)  # decision log
    row.error = ""
    row.waiting_for = Submission.WaitingFor.NOTHING
    row.scored_at = now


def _report(
    outcome: dict[str, str],
    rows: Sequence[Submission],
    changed: Sequence[Submission],
    now: datetime,
) -> BatchOutcome:
    """The batch's outcome for the metrics, and one log line per answer written."""
    report = BatchOutcome(outcome)
    item_keys = {r.item_id: r.item.key for r in rows}  # the locked rows come without their item
    for row in changed:
        latency = (now - row.created_at).total_seconds()
        if row.status == Submission.Status.SCORED:
            report.latencies.append(latency)
        else:
            report.failed += 1
        logger.info(
            "submission=%s item=%s status=%s score=%s version=%s latency_ms=%.0f",
            row.pk, item_keys.get(row.item_id, "-"), row.status, row.score,
            row.model_version.label if row.model_version else "-",
            latency * 1000,
        )  # fmt: skip
    return report


def set_progress(version_ids: Sequence[int], values: dict[str, object]) -> None:
    """Store the progress the admin pages poll, on every version of a training job."""
    ModelVersion.objects.filter(pk__in=list(version_ids)).update(progress=values)


def cancel_requested(version_ids: Sequence[int]) -> bool:
    """Whether an admin cancelled any version of a training job."""
    return ModelVersion.objects.filter(
        pk__in=list(version_ids), status=ModelVersion.Status.CANCELLED
    ).exists()


def claim_for_training(version_id: int) -> bool:
    """Mark a pending (or redelivered, half-done) version as training; False if it is not."""
    return bool(
        ModelVersion.objects.filter(
            pk=version_id, status__in=[ModelVersion.Status.PENDING, ModelVersion.Status.TRAINING]
        ).update(status=ModelVersion.Status.TRAINING, error="")
    )


def _finish_ready(
    version: ModelVersion, artifact_path: Path, metrics: Mapping[str, object], *, activate: bool
) -> str:
    """Mark a trained (or distilled) version ready with its artifact; activate it if asked and
    no admin activated another version while it trained.

    A ``review_threshold`` in the metrics (chosen at training for the target agreement) becomes
    the version's review threshold.
    """
    from scoring_plugin.services import activate_if_still_current

    threshold = metrics.get(REVIEW_THRESHOLD_KEY)
    if not isinstance(threshold, (int, float)) or threshold != threshold:
        threshold = None
    key, content_hash = publish(artifact_path)  # the shared store: every worker can fetch it
    with transaction.atomic():  # nobody sees it ready before it is activated
        ModelVersion.objects.filter(pk=version.pk).update(
            status=ModelVersion.Status.READY,
            artifact_key=key,
            artifact_hash=content_hash,
            metrics=json_safe(dict(metrics)),
            review_threshold=float(threshold) if threshold is not None else None,
            trained_at=timezone.now(),
            progress={"percent": 100.0},
        )
        if activate:
            version.refresh_from_db()
            activate_if_still_current(version)
    return "ready"


def _finish_failed_version(version: ModelVersion, exc: Exception) -> None:
    """Mark a version failed with its reason; the active model stays as it was."""
    ModelVersion.objects.filter(pk=version.pk).update(
        status=ModelVersion.Status.FAILED, error=str(exc)[:2000]
    )


@task(catalog.TRAIN, bind=True)
def train_model_version(self, version_id: int, activate: bool = True) -> str:  # type: ignore[no-untyped-def]
    """Train a pending model version on its item's scored answers."""
    from scoring_plugin.services import training_data

    if not claim_for_training(version_id):
        return "not pending"
    version = ModelVersion.objects.select_related("item").get(pk=version_id)
    examples, groups = training_data(version.item)
    return run_training(version, activate=activate, examples=examples, groups=groups)


def run_training(
    version: ModelVersion,
    *,
    activate: bool,
    examples: list[TrainExample],
    groups: Sequence[Mapping[str, str]] = (),
    show_progress: bool = False,
) -> str:
    """Train ``version`` in this process; shared by the task and the ``train_items`` command.
    ``groups`` (beside each example, its imported group values) give the model card's results
    per group."""
    item = version.item
    out_dir = Path(settings.ARTIFACTS_DIR) / item.key / f"v{version.number}-{version.kind}"
    if out_dir.exists():
        shutil.rmtree(out_dir)  # a previous attempt that died half-way

    def progress(p: TrainProgress) -> None:
        percent = round(100.0 * ((p.epoch - 1) * p.steps + p.step) / max(1, p.epochs * p.steps), 1)
        set_progress(
            [version.pk], {"percent": percent, "epoch": p.epoch, "epochs": p.epochs, **p.metric}
        )

    def should_stop() -> bool:
        return cancel_requested([version.pk])

    try:
        # auto: with the TF-IDF baseline's QWK on the same folds when auto did not measure it
        artifact, baseline = _train_artifact(version, examples, out_dir, progress, should_stop)
        metrics = _trained_metrics(version, artifact.metrics, artifact.path, examples, groups)
        if baseline is not None:
            metrics[BASELINE_QWK_KEY] = baseline
    except TrainingCancelled:
        shutil.rmtree(out_dir, ignore_errors=True)
        return "cancelled"
    except Exception as exc:  # the active model stays as it was
        logger.exception("training %s failed", version)
        _finish_failed_version(version, exc)
        shutil.rmtree(out_dir, ignore_errors=True)
        return "failed"

    outcome = _finish_ready(version, artifact.path, metrics, activate=activate)
    trust_hooks.after_training(version.pk)  # gaming check + model card (issue 18)
    return outcome


def _train_artifact(
    version: ModelVersion,
    examples: list[TrainExample],
    out_dir: Path,
    progress: Callable[[TrainProgress], None],
    should_stop: Callable[[], bool],
) -> tuple[TrainedArtifact, float | None]:
    """Train the version's kind; with ``auto``, also the baseline's QWK when auto did not
    measure it (for the activation warning)."""
    item = version.item
    criteria = list(item.criteria.order_by("order", "pk"))
    if criteria and version.kind == ModelVersion.Kind.AUTO:
        raise ValueError(f"{item.key} is an analytic item: train it with head, lora or full")
    if version.kind != ModelVersion.Kind.AUTO:
        artifact = train_item(
            examples,
            item_id=item.key,
            # analytic: one head per criterion (each example carries its criterion scores)
            num_labels=[c.max_score + 1 for c in criteria] or item.max_score + 1,
            criteria=[c.name for c in criteria] or None,
            out_dir=out_dir,
            backbone=settings.SCORING_BACKBONE or None,
            config=TrainConfig(kind=version.kind),
            progress=progress,
            should_stop=should_stop,
        )
        return artifact, None
    from ml_core.auto import AutoConfig, train_auto

    reference = item.reference_answer.strip()
    auto_config = AutoConfig(target_agreement=settings.SCOREBRIDGE_TARGET_AGREEMENT)
    auto = train_auto(
        examples,
        item.max_score + 1,
        out_dir,
        backbone=settings.SCORING_BACKBONE or None,
        config=auto_config,
        reference_answers=[reference] if reference else (),
        item_id=item.key,
        progress=progress,
        should_cancel=should_stop,
    )
    if BASELINE_QWK_KEY in auto.metrics:
        return auto, None
    return auto, baseline_qwk(examples, item.max_score + 1, auto_config.folds, auto_config.seed)


def baseline_qwk(examples: Sequence[TrainExample], num_labels: int, folds: int, seed: int) -> float:
    """Mean QWK of the TF-IDF + logistic regression baseline over the same stratified folds
    ``auto`` cross-validates on (its ``qwk`` is the mean over them too), for the activation
    warning."""
    import numpy as np

    from ml_core.baseline import TfidfBaseline
    from ml_core.crossval import stratified_folds
    from ml_core.metrics import quadratic_weighted_kappa

    labels = [e.label for e in examples]
    texts = [e.text for e in examples]
    values = []
    for fold in stratified_folds(labels, folds=folds, repeats=1, seed=seed):
        model = TfidfBaseline(num_labels).fit(
            [texts[i] for i in fold.train], [labels[i] for i in fold.train]
        )
        predicted = model.predict([texts[i] for i in fold.test])
        values.append(
            quadratic_weighted_kappa([labels[i] for i in fold.test], predicted, num_labels)
        )
    return float(np.mean(values))


def _trained_metrics(
    version: ModelVersion,
    trained: Mapping[str, object],
    artifact_path: Path,
    examples: Sequence[TrainExample],
    groups: Sequence[Mapping[str, str]],
) -> dict[str, object]:
    """The training's metrics with the automation curve, ECE and results per length band and
    group: out-of-fold (``auto``) or on the held-out test answers (other kinds)."""
    metrics: dict[str, object] = {**trained, **stored_report(artifact_path)}
    if CURVE_KEY not in metrics:
        metrics.update(held_out_confidence(version, examples, artifact_path, groups))
    else:
        metrics.update(out_of_fold_subgroups(artifact_path, groups, version.item.max_score + 1))
    return metrics


def out_of_fold_subgroups(
    artifact_path: Path, groups: Sequence[Mapping[str, str]], num_labels: int
) -> dict[str, object]:
    """Results per answer-length band and per group column from an artifact's out-of-fold
    predictions (``auto``); {} when it stores none."""
    from ml_core.subgroups import out_of_fold, results_by_group, results_by_length_band

    oof = out_of_fold(artifact_path)
    if oof is None:
        return {}
    scores = [int(v) for v in oof["scores"]]
    predicted = [int(v) for v in oof["predicted"]]
    words = [int(v) for v in oof["words"]]
    out: dict[str, object] = {
        SUBGROUP_SOURCE_KEY: "out-of-fold answers of the cross-validation",
        LENGTH_BANDS_KEY: results_by_length_band(words, scores, predicted, num_labels),
    }
    if any(groups) and len(groups) == len(scores):
        out[GROUPS_KEY] = results_by_group(groups, scores, predicted, num_labels)
    return out


def held_out_confidence(
    version: ModelVersion,
    examples: Sequence[TrainExample],
    artifact_path: Path,
    groups: Sequence[Mapping[str, str]] = (),
) -> dict[str, object]:
    """The automation curve and ECE of a trained ``head``/``lora``/``full`` model on its
    held-out test answers (the split training left out), for the version's admin page, and
    its results there per answer-length band and per group column."""
    from ml_core.merge.group import is_group_folder
    from ml_core.subgroups import results_by_group, results_by_length_band

    split = split_examples(examples, TrainConfig(kind=version.kind))
    test = [examples[i] for i in split.test]
    test_groups = [groups[i] for i in split.test] if len(groups) == len(examples) else []
    if not test:
        return {}
    item_key = version.item.key
    scorer: ScoringEngine | _Teacher
    if is_group_folder(artifact_path):
        scorer, key = _GroupTeacher(str(artifact_path)), item_key
    else:
        scorer, key = engine_host.engine(), f"heldout:{version.label}"
        scorer.load_item(key, artifact_path, version.label)
    try:
        results = scorer.score([ScoreRequest(key, e.text) for e in test])
    finally:
        if isinstance(scorer, ScoringEngine):
            scorer.remove_item(key)
    kept = [i for i, r in enumerate(results) if r.score is not None]
    if not kept:
        return {}
    labels = [test[i].label for i in kept]
    predicted = [int(results[i].score or 0) for i in kept]
    num_labels = version.item.max_score + 1
    source = f"{len(kept)} held-out test answers"
    out = held_out_report(
        [results[i].confidence for i in kept],
        [p == h for p, h in zip(predicted, labels, strict=True)],
        source,
    )
    out[SUBGROUP_SOURCE_KEY] = source
    words = [len(test[i].text.split()) for i in kept]
    out[LENGTH_BANDS_KEY] = results_by_length_band(words, labels, predicted, num_labels)
    if any(test_groups):
        out[GROUPS_KEY] = results_by_group(
            [test_groups[i] for i in kept], labels, predicted, num_labels
        )
    return out


@task(catalog.DISTILL, bind=True)
def distill_model_version(self, version_id: int, activate: bool = False) -> str:  # type: ignore[no-untyped-def]
    """Distill a pending ``distilled`` version from its teacher (``parent``)."""
    if not claim_for_training(version_id):
        return "not pending"
    version = ModelVersion.objects.select_related("item", "parent__item").get(pk=version_id)
    return run_distillation(version, activate=activate)


# Production answers the teacher scores to widen what the student learns from.
MAX_UNLABELLED_ANSWERS = 5000


class _Teacher:
    """Any scorer of the serving protocol in the engine's ``score`` shape, for one job."""

    def __init__(self, scorer: Scorer) -> None:
        self._scorer = scorer

    def score(self, requests: Sequence[ScoreRequest]) -> list[ScoreResult]:
        return self._scorer.score_requests(requests)


class _GroupTeacher(_Teacher):
    """A full model or merged group as a distillation teacher: its own encoder."""

    def __init__(self, artifact_path: str) -> None:
        from ml_core.merge.group import GroupScorer

        super().__init__(
            GroupScorer(
                Path(artifact_path),
                settings.SCORING_BACKBONE or None,
                device=settings.SCORING_DEVICE or None,
            )
        )


def _auto_teacher(key: str, teacher: ModelVersion) -> _Teacher:
    """An ``auto`` version as a teacher, on this process's engine (no global state)."""
    from ml_core.serving import AutoScorer

    scorer = AutoScorer(engine_host.engine)
    scorer.load(key, teacher.label, version_folder(teacher))
    return _Teacher(scorer)


def _distill_job(version: ModelVersion, teacher: ModelVersion) -> DistillJobConfig:
    """The item's scored answers and its recent production answers, for the teacher to label."""
    from ml_core.distill.config import DistillConfig
    from ml_core.distill.job import DistillJobConfig

    item = version.item
    answers = list(item.scored_answers.order_by("pk"))
    production = item.submissions.filter(status=Submission.Status.SCORED).order_by("-created_at")
    job = DistillJobConfig(
        item_id=item.key,
        texts=tuple(a.text for a in answers),
        scores=tuple(a.score for a in answers),
        splits=tuple(a.split for a in answers),
        max_score=item.max_score,
        teacher_version=teacher.label,
        model_version=version.label,
        unlabelled=tuple(production.values_list("text", flat=True)[:MAX_UNLABELLED_ANSWERS]),
        max_unlabelled=MAX_UNLABELLED_ANSWERS,
        # the teacher is asked about the given answers only (no variants)
        distill=DistillConfig(augment_copies=0),
    )
    job.validate()
    return job


def _teacher_scorer(
    teacher: ModelVersion, teacher_key: str
) -> tuple[ScoringEngine | _Teacher, str]:
    """The teacher loaded for this job, and the item key it scores under."""
    from ml_core.merge.group import is_group_folder

    teacher_folder = version_folder(teacher)
    if is_group_folder(teacher_folder):
        # a full model or a merged group: its own encoder, loaded for this job only
        return _GroupTeacher(str(teacher_folder)), teacher.item.key
    if teacher.kind == ModelVersion.Kind.AUTO:
        return _auto_teacher(teacher_key, teacher), teacher_key
    engine = engine_host.engine()
    engine.load_item(teacher_key, teacher_folder, teacher.label)
    return engine, teacher_key


def run_distillation(version: ModelVersion, *, activate: bool) -> str:
    """Teach a tiny student from the teacher's class probabilities on the item's answers."""
    from ml_core.distill.job import run_distill_job
    from ml_core.distill.teacher import teacher_probabilities

    teacher = version.parent
    out_dir = Path(settings.ARTIFACTS_DIR) / version.item.key / f"v{version.number}-distilled"
    teacher_key = f"teacher:{teacher.label}" if teacher else ""
    try:
        if teacher is None or teacher.status != ModelVersion.Status.READY:
            raise ValueError("a distilled version needs a ready teacher version")
        if teacher.kind == ModelVersion.Kind.DISTILLED:
            raise ValueError("the teacher must be a backbone model, not another student")
        job = _distill_job(version, teacher)
        scorer, teacher_key = _teacher_scorer(teacher, teacher_key)

        def progress(values: dict[str, float]) -> None:
            ModelVersion.objects.filter(pk=version.pk).update(progress=dict(values))

        report = run_distill_job(
            job,
            lambda texts: teacher_probabilities(scorer, texts, teacher_key),
            out_dir,
            progress=progress,
        )
    except Exception as exc:  # the active model stays as it was
        logger.exception("distilling %s failed", version)
        _finish_failed_version(version, exc)
        return "failed"
    finally:
        held = engine_host.engine_if_loaded()
        if teacher_key and held is not None and teacher_key in held.loaded():
            held.remove_item(teacher_key)
    outcome = _finish_ready(version, Path(report.path), report.metrics, activate=activate)
    trust_hooks.after_training(version.pk)  # gaming check + model card (issue 18)
    return outcome


@task(catalog.SWEEP)
def sweep_stuck_submissions() -> int:
    """Send again answers that sat received or queued too long (a lost message, a broker or
    workers away). Sending is not an attempt, so however long workers are away no answer
    fails here; one that waited in the queue is marked as waiting for a scoring worker.
    Answers waiting for an active model are left alone until their item has one."""
    from scoring_plugin.services import enqueue_submission

    cutoff = timezone.now() - timedelta(seconds=settings.SCOREBRIDGE_REQUEUE_AFTER_SECONDS)
    has_model = Exists(
        ModelVersion.objects.filter(
            item_id=OuterRef("item_id"), is_active=True, status=ModelVersion.Status.READY
        )
    )
    stuck = list(
        Submission.objects.filter(status__in=WAITING, created_at__lt=cutoff)
        .exclude(queued_at__gte=cutoff)
        .annotate(has_model=has_model)
        .exclude(waiting_for=Submission.WaitingFor.MODEL, has_model=False)
        .values_list("pk", "status")[:1000]
    )
    requeued = 0
    for pk, status in stuck:
        waiting = Submission.WaitingFor.WORKER if status == Submission.Status.QUEUED else ""
        if enqueue_submission(str(pk), waiting_for=waiting):
            requeued += 1
    if requeued:
        logger.warning("re-enqueued %d stuck submission(s)", requeued)
    return requeued
