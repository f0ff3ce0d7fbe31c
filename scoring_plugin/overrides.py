"""An instructor's score for an answer: the one place that applies it.

``Submission.reviewed_score`` is the only reviewed score there is. Every place that lets a
person score an answer (the LTI review page, a group action, Django admin, the API) calls
:func:`apply_override`; it records the score and an audit entry in one transaction and, once
that commits, sends :data:`scoring_plugin.signals.submission_reviewed`. The LTI app listens and
sends the grade to the LMS gradebook, so a grade follows wherever the score was given.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from scoring_plugin.audit import record
from scoring_plugin.models import AuditLog, Submission
from scoring_plugin.signals import submission_reviewed

COMMENT_LIMIT = 2000


def apply_override(
    submission: Submission, score: int | None, comment: str, actor: str, *, via: str
) -> Submission:
    """Give ``submission`` an instructor's ``score`` (None removes the review, so the
    automatic score counts again), with one audit entry; the gradebook follows after commit.

    ``actor`` names who did it ("admin:alice", "lti:Ms Smith"); ``via`` where
    (``Submission.ReviewedVia``). Raises ``ValidationError`` for a score outside 0..max_score.
    """
    max_score = submission.item.max_score
    if score is not None and not 0 <= score <= max_score:
        raise ValidationError(f"Enter a whole number from 0 to {max_score}.")
    comment = (comment or "")[:COMMENT_LIMIT]
    with transaction.atomic():
        # Re-read under a lock: two reviewers at once each get an audit entry in order.
        current = Submission.objects.select_for_update().get(pk=submission.pk)
        previous = current.reviewed_score
        submission.reviewed_score = score
        submission.review_comment = comment if score is not None else ""
        submission.reviewed_by = actor[:200] if score is not None else ""
        submission.reviewed_at = timezone.now() if score is not None else None
        submission.reviewed_via = via if score is not None else ""
        if score is not None:
            submission.review_requested = False  # the student's request is answered
        submission.save(
            update_fields=[
                "reviewed_score",
                "review_comment",
                "reviewed_by",
                "reviewed_at",
                "reviewed_via",
                "review_requested",
            ]
        )
        record(
            AuditLog.Action.OVERRIDE,
            actor,
            submission=submission,
            model_version=submission.model_version,
            details={
                "auto_score": submission.score,
                "previous_override": previous,
                "score": score,
                "comment": comment,
                "via": via,
            },
        )
        submission_id = str(submission.pk)
        transaction.on_commit(
            lambda: submission_reviewed.send(
                sender=Submission, submission_id=submission_id, score=score
            )
        )
    return submission
