"""Starting an item without scored answers (issue 16): what to score next, and how many more.

The answers that wait for a human score are the item's :class:`UnscoredAnswer` rows (imported
without a score) and its submissions that wait for a model (``waiting_for = model``) with no
instructor score yet. The training answers are its :class:`ScoredAnswer` rows and the
submissions an instructor scored (not yet copied into training data).

:func:`request_report` stores a pending :class:`ColdStartReport` and enqueues its computation on
the ``training`` queue (it embeds every answer of the item and of the bank: too slow for a web
request); :func:`compute_report` is that computation (the worker task and ``manage.py
cold_start --now`` call it). :func:`score_unscored_answer` is what an instructor's score of a
waiting imported answer does: the answer becomes training data, with who scored it.

Training by itself: every instructor's score of an item without an active model may make a new
report due (:func:`request_report_if_due`: a batch of new scores since the last one); when a
report says the curve's model clears the TF-IDF baseline, :func:`start_training_if_due` starts
training once for that evidence, and the version is activated only if its cross-validated QWK
reaches the item's target (:attr:`Item.effective_target_qwk`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext

from ml_core.cold_start import (
    BankPrior,
    baseline_qwk,
    learning_curve,
    normalise_rows,
    reference_features,
    suggest_batch,
)
from queueing import dispatch
from scoring_plugin.audit import record
from scoring_plugin.models import (
    AuditLog,
    ColdStartReport,
    Item,
    ModelVersion,
    ScoredAnswer,
    Submission,
    UnscoredAnswer,
)
from scoring_plugin.review import REVIEW_KEY_PREFIX, copy_reviewed_answers

logger = logging.getLogger(__name__)

Embedder = Callable[[Sequence[str]], np.ndarray]
DEFAULT_BATCH = 10
BANK_ANSWERS_PER_ITEM = 300  # enough for the bank prior; bounds the embedding work
SCORED_SOURCE = "scored"
MIN_CURVE_ANSWERS = 10


@dataclass(frozen=True)
class WaitingAnswer:
    """An answer that needs a human score: ``kind`` is ``unscored`` (an imported answer, ``key``
    its response_id) or ``submission`` (``key`` the submission id)."""

    kind: str
    key: str
    text: str


def waiting_answers(item: Item) -> list[WaitingAnswer]:
    """The item's answers without any human score, imported ones first."""
    imported = [
        WaitingAnswer("unscored", a.response_key, a.text)
        for a in item.unscored_answers.order_by("pk")
    ]
    submitted = Submission.objects.filter(
        item=item,
        reviewed_score__isnull=True,
        score__isnull=True,
        waiting_for=Submission.WaitingFor.MODEL,
    ).order_by("created_at")
    return imported + [WaitingAnswer("submission", str(s.pk), s.text) for s in submitted]


def training_answers(item: Item) -> list[tuple[str, int]]:
    """(text, score) of every human-scored answer of the item."""
    rows = [(a.text, a.score) for a in item.scored_answers.order_by("pk")]
    copied = set(
        item.scored_answers.filter(response_key__startswith=REVIEW_KEY_PREFIX).values_list(
            "response_key", flat=True
        )
    )
    for pk, text, score in Submission.objects.filter(
        item=item, reviewed_score__isnull=False
    ).values_list("pk", "text", "reviewed_score"):
        if f"{REVIEW_KEY_PREFIX}{pk}" not in copied:
            rows.append((text, int(score)))
    return rows


def score_unscored_answer(
    answer: UnscoredAnswer,
    score: int | None,
    actor: str,
    *,
    criteria: Mapping[str, object] | None = None,
    via: str = "cold start",
) -> ScoredAnswer:
    """Give an imported answer its human score: it becomes a training answer (source
    ``scored``, ``scored_by`` = ``actor``) and leaves the waiting list, with an audit entry.
    An analytic item's answer can be scored per criterion (``criteria``, checked as an
    override's: :func:`scoring_plugin.overrides.criterion_override`; ``score`` None or their
    sum), so it trains the per-criterion heads. ``via``: where the score was given."""
    from scoring_plugin.overrides import criterion_override

    item = answer.item
    criterion_scores: dict[str, int] = {}
    if criteria is not None:
        criterion_scores = criterion_override(item, criteria)
        total = sum(criterion_scores.values())
        if score is not None and score != total:
            raise ValidationError(
                gettext("The criterion scores add up to %(total)s, not %(score)s.")
                % {"total": total, "score": score}
            )
        score = total
    if isinstance(score, bool) or not isinstance(score, int) or not 0 <= score <= item.max_score:
        raise ValidationError(
            gettext("Enter a whole number from 0 to %(max)s.") % {"max": item.max_score}
        )
    if not actor.strip():
        raise ValidationError("Say who gives the score.")
    with transaction.atomic():
        scored, _ = ScoredAnswer.objects.update_or_create(
            item=item,
            response_key=answer.response_key,
            defaults={
                "text": answer.text,
                "score": score,
                "source": SCORED_SOURCE,
                "scored_by": actor[:200],
                "criterion_scores": criterion_scores,
            },
        )
        UnscoredAnswer.objects.filter(pk=answer.pk).delete()
        details: dict[str, object] = {
            "response_key": answer.response_key,
            "score": score,
            "via": via,
        }
        if criterion_scores:
            details["criterion_scores"] = criterion_scores
        record(AuditLog.Action.OVERRIDE, actor, item=item, details=details)
        transaction.on_commit(lambda: request_report_if_due(item))
    return scored


def score_waiting(item: Item, kind: str, key: str, score: int, actor: str) -> None:
    """An instructor's score for a suggested answer (``kind``/``key`` as in the report): an
    imported answer becomes a training answer; a waiting submission gets the instructor's score
    (:func:`scoring_plugin.overrides.apply_override`, gradebook included), which
    ``copy_reviewed_answers`` makes training data. What an admin action or page calls."""
    from scoring_plugin.overrides import apply_override

    if kind == "unscored":
        answer = UnscoredAnswer.objects.filter(item=item, response_key=key).first()
        if answer is None:
            raise ValidationError(f"No answer '{key}' of item '{item.key}' waits for a score.")
        score_unscored_answer(answer, score, actor)
    elif kind == "submission":
        submission = Submission.objects.filter(item=item, pk=key).first()
        if submission is None:
            raise ValidationError(f"No submission '{key}' of item '{item.key}'.")
        apply_override(submission, score, "", actor, via=Submission.ReviewedVia.ADMIN)
    else:
        raise ValidationError(f"'{kind}' is not an answer kind (unscored or submission).")


def request_report(
    item: Item,
    *,
    batch_size: int = DEFAULT_BATCH,
    target_qwk: float | None = None,
    quiet: bool = False,
) -> ColdStartReport:
    """Mark the item's report pending and enqueue its computation once this commits (the
    target QWK defaults to the item's, :attr:`Item.effective_target_qwk`). ``quiet``: a broker
    that is away is logged, not raised (the report stays pending, asked for again when
    stale)."""
    if target_qwk is None:
        target_qwk = item.effective_target_qwk
    if not 1 <= batch_size <= 200:
        raise ValidationError("The batch size must be from 1 to 200.")
    if not 0.0 < target_qwk < 1.0:
        raise ValidationError("The target QWK must lie between 0 and 1.")
    report, _ = ColdStartReport.objects.update_or_create(
        item=item,
        defaults={
            "status": ColdStartReport.Status.PENDING,
            "batch_size": batch_size,
            "target_qwk": target_qwk,
            "requested_at": timezone.now(),
            "error": "",
        },
    )
    transaction.on_commit(lambda: _send(item, quiet))
    return report


def _send(item: Item, quiet: bool) -> None:
    try:
        dispatch.send_cold_start(item.pk)
    except Exception as exc:  # kombu raises several types for an unreachable broker
        if not quiet:
            raise
        logger.warning("cold-start report for item %s not queued: %s", item.key, exc)


def _bank_prior(item: Item, embed: Embedder) -> BankPrior | None:
    """A prior fitted on the other items' scored answers and reference answers (None when the
    bank has too little: an item without a reference answer, or fewer than 20 answers)."""
    rows: list[np.ndarray] = []
    scores: list[np.ndarray] = []
    others = Item.objects.exclude(pk=item.pk).exclude(reference_answer="")
    for other in others:
        answers = list(
            other.scored_answers.order_by("pk").values_list("text", "score")[:BANK_ANSWERS_PER_ITEM]
        )
        if len(answers) < 5:
            continue
        rows.append(_features(other, [t for t, _ in answers], embed))
        scores.append(np.array([s / other.max_score for _, s in answers], dtype=np.float64))
    if not rows or sum(len(r) for r in rows) < 20:
        return None
    return BankPrior().fit(np.vstack(rows), np.concatenate(scores))


def _features(item: Item, texts: Sequence[str], embed: Embedder) -> np.ndarray:
    vectors = embed(texts)
    reference = [item.reference_answer]
    return reference_features(texts, vectors, reference, embed(reference), embed([item.prompt])[0])


def compute_report(
    item: Item,
    embed: Embedder,
    *,
    batch_size: int = DEFAULT_BATCH,
    target_qwk: float | None = None,
) -> dict[str, object]:
    """The next batch to score and the learning curve of ``item`` (JSON-ready).

    ``embed`` maps texts to the backbone's pooled vectors (any embedder; a worker passes a
    cached one). Raises ``ValidationError`` when the item has no answer waiting or scored.
    """
    target_qwk = item.effective_target_qwk if target_qwk is None else target_qwk
    waiting = waiting_answers(item)
    training = training_answers(item)
    texts = [w.text for w in waiting] + [t for t, _ in training]
    if not texts:
        raise ValidationError(f"Item '{item.key}' has no answers yet, scored or not.")
    vectors = normalise_rows(embed(texts))
    num_labels = item.max_score + 1
    prior_model = _bank_prior(item, embed) if item.reference_answer.strip() else None
    prior = (
        prior_model.class_probabilities(_features(item, texts, embed), num_labels)
        if prior_model is not None
        else None
    )
    scored = list(range(len(waiting), len(texts)))
    labels = [s for _, s in training]
    batch = suggest_batch(
        vectors, scored, labels, num_labels, batch_size, prior=prior, candidates=range(len(waiting))
    )
    curve = baseline = None
    if len(training) >= MIN_CURVE_ANSWERS:
        curve = learning_curve(vectors, scored, labels, num_labels, target_qwk, prior=prior)
        baseline = baseline_qwk([t for t, _ in training], labels, num_labels)
    return {
        "suggested": [
            {"kind": waiting[i].kind, "key": waiting[i].key, "text": waiting[i].text[:300]}
            for i in batch
        ],
        "waiting": len(waiting),
        "scored": len(training),
        "bank_prior": prior is not None,
        "target_qwk": target_qwk,
        "curve": curve.to_json() if curve is not None else None,
        "baseline_qwk": baseline,
        # the curve's model at today's scored answers against TF-IDF + logistic regression
        "clears_baseline": bool(
            curve is not None and baseline is not None and curve.points[-1].qwk >= baseline
        ),
    }


def run_report(item_id: int, embed: Embedder) -> ColdStartReport:
    """Compute and store the item's pending report (the worker's task body)."""
    report = ColdStartReport.objects.select_related("item").get(item_id=item_id)
    try:
        result = compute_report(
            report.item, embed, batch_size=report.batch_size, target_qwk=report.target_qwk
        )
    except ValidationError as exc:
        report.status, report.error = ColdStartReport.Status.FAILED, " ".join(exc.messages)
    else:
        report.status, report.result, report.error = ColdStartReport.Status.READY, result, ""
    report.computed_at = timezone.now()
    report.save(update_fields=["status", "result", "error", "computed_at"])
    return report


# --- Training by itself ---------------------------------------------------------------------

REPORT_STALE = timedelta(minutes=30)
"""A report pending this long is taken as lost (broker or worker away) and asked for again."""
AUTO_ACTOR = "scorebridge:cold start"


def request_report_if_due(item: Item) -> bool:
    """After a human score of an item without an active model: queue a new report once a
    batch of new scores (the last report's batch size) has come in since the last report, and
    there are enough for a learning curve. Returns whether it queued one."""
    if item.model_versions.filter(is_active=True).exists():
        return False
    scored = len(training_answers(item))
    report = ColdStartReport.objects.filter(item=item).first()
    if report is None:
        due = scored >= MIN_CURVE_ANSWERS
    elif report.status == ColdStartReport.Status.PENDING:
        due = report.requested_at < timezone.now() - REPORT_STALE
    else:
        last = report.result.get("scored", 0) if isinstance(report.result, dict) else 0
        due = scored >= MIN_CURVE_ANSWERS and scored - int(last) >= report.batch_size
    if due:  # quietly: a broker that is away must not fail the instructor's score
        request_report(item, batch_size=report.batch_size if report else DEFAULT_BATCH, quiet=True)
    return due


def on_submission_reviewed(
    sender: object, submission_id: str, score: int | None, **_: object
) -> None:
    """An instructor's score (LTI page, answer group, admin, API) may make a new report due."""
    if score is None:
        return
    item = Item.objects.filter(submissions__pk=submission_id).first()
    if item is not None:
        request_report_if_due(item)


def start_training_if_due(report: ColdStartReport) -> ModelVersion | None:
    """Start training the item's model (``SCORING_TRAIN_KIND``, training queue) when its ready
    report says the curve's model clears the TF-IDF baseline; once per new evidence: not again
    on as many scored answers as the last time, not while a version trains, not when a version
    is active. The version is activated only if its QWK reaches the item's target; until then
    answers keep going to the instructor. Instructors' scores are copied into training data
    first (with who scored them)."""
    from scoring_plugin.services import start_training

    result = report.result if isinstance(report.result, dict) else {}
    if report.status != ColdStartReport.Status.READY or not result.get("clears_baseline"):
        return None
    scored = int(result.get("scored", 0))
    item = report.item
    with transaction.atomic():
        locked = ColdStartReport.objects.select_for_update().get(pk=report.pk)
        busy = item.model_versions.filter(
            Q(is_active=True)
            | Q(status__in=[ModelVersion.Status.PENDING, ModelVersion.Status.TRAINING])
        ).exists()
        if busy or (locked.trained_on is not None and scored <= locked.trained_on):
            return None
        added, _ = copy_reviewed_answers(item)
        try:
            version = start_training(
                item, settings.SCORING_TRAIN_KIND, activation_qwk=item.effective_target_qwk
            )
        except ValidationError:
            return None
        ColdStartReport.objects.filter(pk=report.pk).update(trained_on=scored)
        record(
            AuditLog.Action.RETRAIN,
            AUTO_ACTOR,
            model_version=version,
            details={
                "scored": scored,
                "reviewed_added": added,
                "target": item.effective_target_qwk,
            },
        )
    report.trained_on = scored
    return version


def training_state(item: Item) -> str:
    """Where the item stands (admin): active, training, or collecting scores with the curve's
    estimate of how many more are needed."""
    active = item.active_version
    if active is not None:
        return f"active: {active.label}"
    training = item.model_versions.filter(
        status__in=[ModelVersion.Status.PENDING, ModelVersion.Status.TRAINING]
    ).first()
    if training is not None:
        return f"training {training.label} on the training queue"
    line = f"collecting scores: {len(training_answers(item))} scored"
    report = ColdStartReport.objects.filter(item=item, status=ColdStartReport.Status.READY).first()
    curve = report.result.get("curve") if report and isinstance(report.result, dict) else None
    if isinstance(curve, dict) and curve.get("more_needed") is not None:
        line += f", curve estimate {curve['more_needed']:.0f} more needed"
    elif isinstance(curve, dict):
        line += f", the curve does not reach the target QWK {curve['target']:.2f} yet"
    missed = item.model_versions.filter(
        status=ModelVersion.Status.READY, activation_qwk__isnull=False
    ).first()
    if missed is not None and missed.note:
        line += f"; {missed.label}: {missed.note}"
    return line


def describe(result: dict[str, object]) -> list[str]:
    """Lines a person reads: the batch to score next, and the curve's estimate."""
    lines = [
        f"{result['scored']} scored, {result['waiting']} waiting for a human score"
        + (" (reference answer and other items used)" if result["bank_prior"] else "")
    ]
    curve = result.get("curve")
    if isinstance(curve, dict):
        points = ", ".join(f"{p['size']}: {p['qwk']:.2f}" for p in curve["points"])
        lines.append(f"learning curve (answers: cross-validated QWK): {points}")
        if curve["needed"] is None:
            lines.append(
                f"target QWK {curve['target']:.2f}: not in sight from this curve "
                f"(reached in {100 * curve['reachable']:.0f}% of bootstrap refits)"
            )
        else:
            span = ""
            if curve["needed_low"] is not None:
                span = f" (80% interval {curve['needed_low']:.0f}-{curve['needed_high']:.0f})"
            lines.append(
                f"target QWK {curve['target']:.2f}: about {curve['needed']:.0f} scored answers"
                f"{span}, {curve['more_needed']:.0f} more"
            )
    else:
        lines.append(f"learning curve: needs at least {MIN_CURVE_ANSWERS} scored answers")
    baseline = result.get("baseline_qwk")
    if isinstance(baseline, float):
        verdict = "clears it" if result.get("clears_baseline") else "does not clear it yet"
        lines.append(f"TF-IDF baseline (cross-validated QWK {baseline:.2f}): the curve {verdict}")
    suggested = result["suggested"]
    assert isinstance(suggested, list)
    lines.append(f"score next ({len(suggested)}):")
    lines += [f"  {s['kind']} {s['key']}: {s['text'][:80]!r}" for s in suggested]
    return lines
