"""Listening to the scoring app: a finished submission that came through a launch gets its
score sent to the LMS gradebook."""

from __future__ import annotations

from scoring_plugin.models import Submission
from scoring_plugin.signals import submission_finished, submission_reviewed, submissions_finished


def on_submission_finished(sender: object, submission_id: str, status: str, **_: object) -> None:
    from lti.models import LtiSubmission
    from lti.tasks import enqueue_post_score

    if LtiSubmission.objects.filter(pk=submission_id).exists():
        enqueue_post_score(str(submission_id))


def on_submissions_finished(sender: object, statuses: dict[str, str], **_: object) -> None:
    """A scoring worker's batch: one query finds the answers that came through a launch."""
    from lti.models import LtiSubmission
    from lti.tasks import enqueue_post_score

    launched = LtiSubmission.objects.filter(pk__in=list(statuses)).values_list("pk", flat=True)
    for submission_id in launched:
        enqueue_post_score(str(submission_id))


def on_submission_reviewed(sender: object, submission_id: str, **_: object) -> None:
    """An instructor's score, wherever it was given (LTI page, admin, API), goes to the
    gradebook."""
    from lti.models import LtiSubmission
    from lti.tasks import enqueue_post_score

    if LtiSubmission.objects.filter(pk=submission_id).exists():
        enqueue_post_score(str(submission_id))


def on_registration_changed(sender: object, **_: object) -> None:
    """A registration or deployment turned on or off changes the CSP frame-ancestors."""
    from lti.frames import forget_platform_origins

    forget_platform_origins()


def connect() -> None:
    from django.db.models.signals import post_delete, post_save
    from lti_tool.models import LtiDeployment, LtiRegistration

    for model in (LtiRegistration, LtiDeployment):
        post_save.connect(on_registration_changed, sender=model, dispatch_uid=f"lti-csp-{model}")
        post_delete.connect(
            on_registration_changed, sender=model, dispatch_uid=f"lti-csp-del-{model}"
        )
    submission_finished.connect(
        on_submission_finished, sender=Submission, dispatch_uid="lti-grade-passback"
    )
    submissions_finished.connect(
        on_submissions_finished, sender=Submission, dispatch_uid="lti-grade-passback-batch"
    )
    submission_reviewed.connect(
        on_submission_reviewed, sender=Submission, dispatch_uid="lti-grade-passback-review"
    )
