"""Listening to the scoring app: a finished submission that came through a launch gets its
score sent to the LMS gradebook."""

from __future__ import annotations

from scoring_plugin.models import Submission
from scoring_plugin.signals import submission_finished


def on_submission_finished(sender: object, submission_id: str, status: str, **_: object) -> None:
    from lti.models import LtiSubmission
    from lti.tasks import enqueue_post_score

    if LtiSubmission.objects.filter(pk=submission_id).exists():
        enqueue_post_score(str(submission_id))


def connect() -> None:
    submission_finished.connect(
        on_submission_finished, sender=Submission, dispatch_uid="lti-grade-passback"
    )
