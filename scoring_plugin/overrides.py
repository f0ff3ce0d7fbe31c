"""An instructor's score for an answer: the one place that applies it.

``Submission.reviewed_score`` is the only reviewed score there is. Every place that lets a
person score an answer (the LTI review page, a group action, Django admin, the API) calls
:func:`apply_override`; it records the score and an audit entry in one transaction and, once
that commits, sends :data:`scoring_plugin.signals.submission_reviewed`. The LTI app listens and
sends the grade to the LMS gradebook, so a grade follows wherever the score was given.

An analytic item (issue 16) can be scored per criterion: ``criteria`` gives each criterion's
score, the reviewed score is their sum, and the criterion scores are kept
(``Submission.reviewed_criterion_scores``) for the gradebook comment and the training data.
"""

from __future__ import annotations

from collections.abc import Mapping

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from scoring_plugin.audit import record
from scoring_plugin.models import AuditLog, Item, Submission
from scoring_plugin.signals import submission_reviewed

COMMENT_LIMIT = 2000


def criterion_override(item: Item, given: Mapping[str, object]) -> dict[str, int]:
    """An analytic item's criterion scores as an instructor gave them (whole numbers, or text
    from a form), checked: every criterion of the item once, each within its own range.
    Raises ``ValidationError`` with one message per problem, naming the criterion."""
    criteria = list(item.criteria.order_by("order", "pk"))
    if not criteria:
        raise ValidationError(
            _("%(item)s has no criteria: give one score for the answer.") % {"item": item.key}
        )
    errors = [
        _("%(name)s is not a criterion of %(item)s.") % {"name": name, "item": item.key}
        for name in given
        if name not in {c.name for c in criteria}
    ]
    scores: dict[str, int] = {}
    for c in criteria:
        value = given.get(c.name)
        text = "" if value is None or isinstance(value, bool) else str(value).strip()
        if not text:
            errors.append(
                _("%(criterion)s: enter a score from 0 to %(max)s.")
                % {"criterion": c.name, "max": c.max_score}
            )
        elif not text.isdigit() or int(text) > c.max_score:
            errors.append(
                _("%(criterion)s: enter a whole number from 0 to %(max)s, not %(given)s.")
                % {"criterion": c.name, "max": c.max_score, "given": text}
            )
        else:
            scores[c.name] = int(text)
    if errors:
        raise ValidationError(errors)
    return scores


def apply_override(
    submission: Submission,
    score: int | None,
    comment: str,
    actor: str,
    *,
    via: str,
    criteria: Mapping[str, object] | None = None,
) -> Submission:
    """Give ``submission`` an instructor's ``score`` (None removes the review, so the
    automatic score counts again), with one audit entry; the gradebook follows after commit.

    ``actor`` names who did it ("admin:alice", "lti:Ms Smith"); ``via`` where
    (``Submission.ReviewedVia``). With ``criteria`` (an analytic item's score per criterion,
    checked by :func:`criterion_override`) the score is their sum; ``score`` is then None or
    that sum. A total without criteria clears criterion scores an earlier review gave.
    Raises ``ValidationError`` for a score outside 0..max_score; nothing is saved then.
    """
    max_score = submission.item.max_score
    reviewed_criteria: dict[str, int] = {}
    if criteria is not None:
        reviewed_criteria = criterion_override(submission.item, criteria)
        total = sum(reviewed_criteria.values())
        if score is not None and score != total:
            raise ValidationError(
                _("The criterion scores add up to %(total)s, not %(score)s: give one or the other.")
                % {"total": total, "score": score}
            )
        score = total
    if score is not None and not 0 <= score <= max_score:
        raise ValidationError(_("Enter a whole number from 0 to %(max)s.") % {"max": max_score})
    comment = (comment or "")[:COMMENT_LIMIT]
    with transaction.atomic():
        # Re-read under a lock: two reviewers at once each get an audit entry in order.
        current = Submission.objects.select_for_update().get(pk=submission.pk)
        previous = current.reviewed_score
        previous_criteria = current.reviewed_criterion_scores or {}
        submission.reviewed_score = score
        submission.reviewed_criterion_scores = reviewed_criteria
        submission.review_comment = comment if score is not None else ""
        submission.reviewed_by = actor[:200] if score is not None else ""
        submission.reviewed_at = timezone.now() if score is not None else None
        submission.reviewed_via = via if score is not None else ""
        if score is not None:
            submission.review_requested = False  # the student's request is answered
        submission.save(
            update_fields=[
                "reviewed_score",
                "reviewed_criterion_scores",
                "review_comment",
                "reviewed_by",
                "reviewed_at",
                "reviewed_via",
                "review_requested",
            ]
        )
        details: dict[str, object] = {
            "auto_score": submission.score,
            "previous_override": previous,
            "score": score,
            "comment": comment,
            "via": via,
        }
        if reviewed_criteria or previous_criteria:
            details["criterion_scores"] = reviewed_criteria
            details["auto_criterion_scores"] = submission.criterion_scores or {}
            details["previous_criterion_scores"] = previous_criteria
        record(
            AuditLog.Action.OVERRIDE,
            actor,
            submission=submission,
            model_version=submission.model_version,
            details=details,
        )
        submission_id = str(submission.pk)
        transaction.on_commit(
            lambda: submission_reviewed.send(
                sender=Submission, submission_id=submission_id, score=score
            )
        )
    return submission
