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
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from ml_core.cold_start import (
    BankPrior,
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
    ScoredAnswer,
    Submission,
    UnscoredAnswer,
)
from scoring_plugin.review import REVIEW_KEY_PREFIX

Embedder = Callable[[Sequence[str]], np.ndarray]
DEFAULT_BATCH = 10
DEFAULT_TARGET_QWK = 0.7
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


def score_unscored_answer(answer: UnscoredAnswer, score: int, actor: str) -> ScoredAnswer:
    """Give an imported answer its human score: it becomes a training answer (source
    ``scored``, ``scored_by`` = ``actor``) and leaves the waiting list, with an audit entry."""
    item = answer.item
    if isinstance(score, bool) or not isinstance(score, int) or not 0 <= score <= item.max_score:
        raise ValidationError(f"Enter a whole number from 0 to {item.max_score}.")
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
            },
        )
        UnscoredAnswer.objects.filter(pk=answer.pk).delete()
        record(
            AuditLog.Action.OVERRIDE,
            actor,
            item=item,
            details={"response_key": answer.response_key, "score": score, "via": "cold start"},
        )
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
    item: Item, *, batch_size: int = DEFAULT_BATCH, target_qwk: float = DEFAULT_TARGET_QWK
) -> ColdStartReport:
    """Mark the item's report pending and enqueue its computation once this commits."""
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
    transaction.on_commit(lambda: dispatch.send_cold_start(item.pk))
    return report


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
    item: Item, embed: Embedder, *, batch_size: int = DEFAULT_BATCH, target_qwk: float = 0.7
) -> dict[str, object]:
    """The next batch to score and the learning curve of ``item`` (JSON-ready).

    ``embed`` maps texts to the backbone's pooled vectors (any embedder; a worker passes a
    cached one). Raises ``ValidationError`` when the item has no answer waiting or scored.
    """
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
    curve = None
    if len(training) >= MIN_CURVE_ANSWERS:
        curve = learning_curve(vectors, scored, labels, num_labels, target_qwk, prior=prior)
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
    suggested = result["suggested"]
    assert isinstance(suggested, list)
    lines.append(f"score next ({len(suggested)}):")
    lines += [f"  {s['kind']} {s['key']}: {s['text'][:80]!r}" for s in suggested]
    return lines
