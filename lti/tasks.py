"""Grade passback on the ``lms`` queue.

``post_score`` takes a submission id, re-reads its rows and sends the gradebook score; a score
already accepted is not sent again, so a duplicate delivery changes nothing. Failures that can
pass (network, 5xx, 429, 409, 401) are retried with exponential backoff and full jitter; the
state and last error are on the ``LtiSubmission`` row (admin: LTI submissions).
"""

from __future__ import annotations

import logging

from django.conf import settings

from lti.models import LtiSubmission
from lti.passback import PassbackError
from lti.passback import post_score as send_score
from queueing import catalog
from queueing.tasks import task

logger = logging.getLogger(__name__)

QUEUE = catalog.POST_SCORE.queue


def backoff_seconds(retries: int) -> float:
    """Exponential backoff with full jitter: 0..min(10 min, 5 s * 2**retries)."""
    assert catalog.POST_SCORE.retry is not None
    return catalog.POST_SCORE.retry.seconds(retries)


@task(catalog.POST_SCORE, bind=True, max_retries=None)  # bounded by LTI_PASSBACK_MAX_RETRIES
def post_score(self, submission_id: str) -> str:  # type: ignore[no-untyped-def]
    """Send one LTI submission's score to the platform's gradebook."""
    try:
        return send_score(submission_id)
    except PassbackError as exc:
        retries = self.request.retries
        can_retry = exc.retry and retries < settings.LTI_PASSBACK_MAX_RETRIES
        LtiSubmission.objects.filter(pk=submission_id).update(
            passback_status=(
                LtiSubmission.Passback.RETRYING if can_retry else LtiSubmission.Passback.FAILED
            ),
            passback_error=str(exc)[:2000],
        )
        logger.warning(
            "grade passback submission=%s try=%d failed (%s): %s",
            submission_id,
            retries + 1,
            "will retry" if can_retry else "giving up",
            exc,
        )
        if not can_retry:
            return "failed"
        raise self.retry(exc=exc, countdown=backoff_seconds(retries), queue=QUEUE) from exc


def enqueue_post_score(submission_id: str) -> bool:
    """Send ``post_score`` to the lms queue; on a broker error the row says so (admin can
    resend it with the "Send score again" action)."""
    LtiSubmission.objects.filter(pk=submission_id).update(
        passback_status=LtiSubmission.Passback.QUEUED, passback_error=""
    )
    try:
        post_score.apply_async(args=[submission_id], queue=QUEUE, retry=False)
    except Exception as exc:  # kombu raises several types for an unreachable broker
        logger.warning("broker unavailable for grade passback %s: %s", submission_id, exc)
        LtiSubmission.objects.filter(pk=submission_id).update(
            passback_status=LtiSubmission.Passback.FAILED,
            passback_error=f"not queued (broker unavailable: {exc.__class__.__name__})",
        )
        return False
    return True
