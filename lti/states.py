"""One state per answer, the same on the student's page and the instructor's list."""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _

from scoring_plugin.models import Submission

SCORING = "scoring"
SCORED = "scored"
WAITING_FOR_REVIEW = "waiting_for_review"
REVIEWED = "reviewed"
FAILED = "failed"

#: What a student reads for each state.
STUDENT_LABELS = {
    SCORING: _("Being scored"),
    SCORED: _("Scored"),
    WAITING_FOR_REVIEW: _("Waiting for review"),
    REVIEWED: _("Reviewed"),
    FAILED: _("Not scored"),
}

#: What an instructor reads in the course list.
INSTRUCTOR_LABELS = {
    SCORING: _("being scored"),
    SCORED: _("scored"),
    WAITING_FOR_REVIEW: _("needs review"),
    REVIEWED: _("reviewed"),
    FAILED: _("failed"),
}


def answer_state(submission: Submission) -> str:
    """An instructor's score settles it; else failed, still being scored, waiting for review
    (low confidence, a gaming flag, the student asked, or no model for the item yet), or
    scored."""
    if submission.reviewed_score is not None:
        return REVIEWED
    if submission.status == Submission.Status.FAILED:
        return FAILED
    if submission.waiting_for == Submission.WaitingFor.MODEL:
        return WAITING_FOR_REVIEW  # no model for its item yet: it needs a human score
    if submission.status != Submission.Status.SCORED:
        return SCORING
    if submission.needs_review or getattr(submission, "review_requested", False):
        return WAITING_FOR_REVIEW
    return SCORED
