"""Grade passback (LTI Assignment and Grade Services): which score goes to the gradebook, and
sending it. The Celery task in ``lti.tasks`` calls :func:`post_score` and retries on failure.

Rules (docs/decisions/0003-lti-tool.md):

* an instructor's override wins and is sent FullyGraded (with the instructor's criterion scores
  in the comment when they scored an analytic item per criterion);
* an automatic score with confidence at or above the item's review threshold: FullyGraded;
* under the threshold: ``PendingManual`` without a score (the item's "post when reviewed"), or
  FullyGraded now and overwritten by the review ("post now"), because Moodle clears the grade
  for anything but FullyGraded;
* an answer the engine could not score: ``PendingManual`` without a score;
* an answer to an item with no active model (it needs a human score, issue 16):
  ``PendingManual`` without a score, activity ``Submitted``.

The gradebook holds one score per student and line item. With several attempts the item's
gradebook policy (``ItemLtiSettings.gradebook_policy``) picks the attempt whose grade is sent:

* ``latest`` (default): the latest attempt that has a score;
* ``highest``: the attempt with the highest score (the earliest of equal ones);
* ``first``: the first attempt, whatever later attempts score.

An attempt without a score (held for review under "post when reviewed", or failed) never
replaces a score already sent: it is sent as ``PendingManual`` only while no attempt chosen by
the policy has a score. So a later attempt held for review leaves an earlier 0.00 in place until
the review gives it a score. The other attempts' rows say "the gradebook holds another attempt".

Every score sent carries a timestamp strictly later than any sent before for the same user and
line item (Moodle answers 409 to a timestamp that is not newer), even on a retry.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

import requests
from django.db import transaction
from django.db.models import Max
from django.utils import timezone
from pylti1p3.exception import LtiException, LtiServiceException
from pylti1p3.grade import Grade
from pylti1p3.lineitem import LineItem

from lti import platform_services
from lti.models import ItemLtiSettings, LtiSubmission
from scoring_plugin.models import Submission

logger = logging.getLogger(__name__)

FULLY_GRADED = "FullyGraded"
PENDING_MANUAL = "PendingManual"
COMPLETED = "Completed"
SUBMITTED = "Submitted"


@dataclass(frozen=True)
class GradeToPost:
    """One AGS score, without its timestamp."""

    score_given: float | None
    score_maximum: float
    grading_progress: str
    comment: str = ""
    activity_progress: str = COMPLETED


class PassbackError(Exception):
    """Sending failed. ``retry`` says whether trying again later can help."""

    def __init__(self, message: str, *, retry: bool) -> None:
        super().__init__(message)
        self.retry = retry


def grade_for(link: LtiSubmission) -> GradeToPost | None:
    """The score the gradebook should hold for this submission, or None while unscored."""
    submission = link.submission
    item = submission.item
    maximum = float(item.max_score)
    if submission.reviewed_score is not None:
        return GradeToPost(
            float(submission.reviewed_score), maximum, FULLY_GRADED, reviewed_comment(submission)
        )
    if submission.status == Submission.Status.FAILED:
        return GradeToPost(
            None, maximum, PENDING_MANUAL, "Automatic scoring failed; an instructor will grade."
        )
    if submission.waiting_for == Submission.WaitingFor.MODEL:
        return GradeToPost(
            None,
            maximum,
            PENDING_MANUAL,
            "Waiting for an instructor's score.",
            activity_progress=SUBMITTED,
        )
    if submission.status != Submission.Status.SCORED or submission.score is None:
        return None
    if submission.needs_review:
        if ItemLtiSettings.for_item(item).post_mode == ItemLtiSettings.PostMode.NOW:
            note = f"Automatic score; an instructor will review it. {criteria_comment(submission)}"
            return GradeToPost(float(submission.score), maximum, FULLY_GRADED, note.strip())
        return GradeToPost(
            None, maximum, PENDING_MANUAL, "Scored automatically; waiting for instructor review."
        )
    return GradeToPost(float(submission.score), maximum, FULLY_GRADED, criteria_comment(submission))


def criteria_comment(submission: Submission) -> str:
    """An analytic item's automatic criterion scores for the gradebook comment, e.g.
    "Criteria: content 2/2, language 0/1." ("" for a holistic item). An instructor's score
    replaces them (:func:`reviewed_comment`)."""
    summary = submission.criteria_summary
    return f"Criteria: {summary}." if summary else ""


def reviewed_comment(submission: Submission) -> str:
    """The gradebook comment of an instructor's score: the instructor's criterion scores when
    they scored per criterion ("Criteria: content 1/2, language 1/1."), then their comment."""
    summary = submission.reviewed_criteria_summary
    criteria = f"Criteria: {summary}." if summary else ""
    return f"{criteria} {submission.review_comment}".strip()


def _attempts(link: LtiSubmission) -> list[LtiSubmission]:
    return list(
        LtiSubmission.objects.filter(
            lti_user_id=link.lti_user_id, resource_link_id=link.resource_link_id
        )
        .select_related("submission__item")
        .order_by("attempt", "submission__created_at")
    )


def gradebook_grade(
    link: LtiSubmission, attempts: Sequence[LtiSubmission] | None = None
) -> tuple[LtiSubmission, GradeToPost] | None:
    """The attempt whose grade the gradebook should hold for ``link``'s student and resource
    link under the item's gradebook policy, with that grade; None while there is nothing to
    send."""
    attempts = list(attempts) if attempts is not None else _attempts(link)
    if not attempts:
        return None
    policy = ItemLtiSettings.for_item(link.submission.item).gradebook_policy
    if policy == ItemLtiSettings.GradebookPolicy.FIRST:
        first = attempts[0]
        grade = grade_for(first)
        return (first, grade) if grade is not None else None
    graded = [(a, g) for a in attempts if (g := grade_for(a)) is not None]
    with_score = [(a, g) for a, g in graded if g.score_given is not None]
    if with_score:
        if policy == ItemLtiSettings.GradebookPolicy.HIGHEST:
            return max(with_score, key=lambda pair: (pair[1].score_given, -pair[0].attempt))
        return with_score[-1]
    # No attempt has a score: the latest one that is held or failed says PendingManual.
    return graded[-1] if graded else None


def next_timestamp(link: LtiSubmission, now: datetime | None = None) -> datetime:
    """A timestamp later than every one sent for this user and line item (1 ms at least)."""
    now = now or timezone.now()
    latest = LtiSubmission.objects.filter(
        lti_user_id=link.lti_user_id, resource_link_id=link.resource_link_id
    ).aggregate(latest=Max("last_timestamp"))["latest"]
    if latest is not None and now <= latest:
        return latest + timedelta(milliseconds=1)
    return now.replace(microsecond=(now.microsecond // 1000) * 1000)


def _line_item_url(link: LtiSubmission) -> str:
    """The launch's line item; found by tag or created when the launch had none."""
    if link.line_item_url:
        return link.line_item_url
    if not link.line_items_url:
        raise PassbackError("The launch had neither a line item nor a line items URL.", retry=False)
    resource_link = link.resource_link
    service, _ = platform_services.ags_service(
        link.context.deployment.registration,
        scopes=link.ags_scopes,
        line_items_url=link.line_items_url,
    )
    wanted = (
        LineItem()
        .set_tag(f"scorebridge:{link.submission.item.key}")
        .set_resource_link_id(resource_link.id_on_platform)
        .set_resource_id(link.submission.item.key)
        .set_label(resource_link.title or link.submission.item.key)
        .set_score_maximum(link.submission.item.max_score)
    )
    try:
        found = service.find_or_create_lineitem(wanted, find_by="resource_link_id")
    except LtiServiceException as exc:
        raise _service_error(exc) from exc
    except requests.RequestException as exc:
        raise PassbackError(f"{exc.__class__.__name__}: {exc}", retry=True) from exc
    except LtiException as exc:
        raise PassbackError(str(exc), retry=False) from exc
    url = found.get_id() or ""
    if not url:
        raise PassbackError("The platform returned a line item without an id.", retry=False)
    LtiSubmission.objects.filter(resource_link_id=link.resource_link_id, line_item_url="").update(
        line_item_url=url
    )
    link.line_item_url = url
    return url


def _service_error(exc: LtiServiceException) -> PassbackError:
    status = exc.response.status_code
    body = (exc.response.text or "")[:500]
    # 409: the platform saw a timestamp not newer than ours (a retry sends a newer one);
    # 401: the cached token expired early; 429 and 5xx: the platform is busy or down.
    retry = status in (401, 408, 409, 425, 429) or status >= 500
    return PassbackError(f"HTTP {status} from {exc.response.url}: {body}", retry=retry)


def post_score(submission_id: str) -> str:
    """Send the gradebook score for one LTI submission. Idempotent: a score already accepted is
    not sent again. Returns what happened; raises :class:`PassbackError` when sending failed."""
    link = (
        LtiSubmission.objects.select_related(
            "submission__item", "context__deployment__registration", "resource_link", "lti_user"
        )
        .filter(pk=submission_id)
        .first()
    )
    if link is None:
        return "not an LTI submission"
    attempts = _attempts(link)
    chosen = gradebook_grade(link, attempts)
    if chosen is None:
        LtiSubmission.objects.filter(pk=link.pk).update(
            passback_status=LtiSubmission.Passback.NOT_SCORED
        )
        return "not scored yet"
    source, grade = chosen
    if source.pk != link.pk:
        # This attempt is not the one the policy sends; the chosen one's row records the post.
        LtiSubmission.objects.filter(pk=link.pk).update(
            passback_status=LtiSubmission.Passback.OTHER_ATTEMPT, passback_error=""
        )
        link = LtiSubmission.objects.select_related(
            "submission__item",
            "context__deployment__registration",
            "resource_link",
            "lti_user",
        ).get(pk=source.pk)
    wanted = asdict(grade)
    in_gradebook = [a.pk for a in attempts if a.passback_status == LtiSubmission.Passback.POSTED]
    if in_gradebook == [link.pk] and link.posted_grade == wanted:
        return "already posted"
    if platform_services.SCORE_SCOPE not in link.ags_scopes:
        LtiSubmission.objects.filter(pk=link.pk).update(
            passback_status=LtiSubmission.Passback.UNAVAILABLE,
            passback_error="The platform did not grant the AGS score scope in the launch.",
        )
        return "no score scope"

    line_item_url = _line_item_url(link)
    with transaction.atomic():
        timestamp = next_timestamp(link)
        # Stored before sending: a retry after a lost answer still sends a newer timestamp.
        LtiSubmission.objects.filter(pk=link.pk).update(
            last_timestamp=timestamp, passback_tries=link.passback_tries + 1
        )
    score = (
        Grade()
        .set_score_maximum(grade.score_maximum)
        .set_activity_progress(grade.activity_progress)
        .set_grading_progress(grade.grading_progress)
        .set_timestamp(timestamp.isoformat(timespec="milliseconds"))
        .set_user_id(link.lti_user.sub)
    )
    if grade.score_given is not None:
        score.set_score_given(grade.score_given)
    if grade.comment:
        score.set_comment(grade.comment)
    service, connector = platform_services.ags_service(
        link.context.deployment.registration,
        scopes=link.ags_scopes,
        line_items_url=link.line_items_url,
        line_item_url=line_item_url,
    )
    try:
        service.put_grade(score)
    except LtiServiceException as exc:
        if exc.response.status_code == 401:
            connector.forget_token(link.ags_scopes)
        raise _service_error(exc) from exc
    except requests.RequestException as exc:
        raise PassbackError(f"{exc.__class__.__name__}: {exc}", retry=True) from exc
    except LtiException as exc:
        raise PassbackError(str(exc), retry=False) from exc
    with transaction.atomic():
        LtiSubmission.objects.filter(pk=link.pk).update(
            passback_status=LtiSubmission.Passback.POSTED,
            passback_error="",
            posted_grade=wanted,
            posted_at=timezone.now(),
        )
        LtiSubmission.objects.filter(
            lti_user_id=link.lti_user_id,
            resource_link_id=link.resource_link_id,
            passback_status=LtiSubmission.Passback.POSTED,
        ).exclude(pk=link.pk).update(passback_status=LtiSubmission.Passback.OTHER_ATTEMPT)
    logger.info(
        "posted score submission=%s attempt=%s progress=%s given=%s (for submission %s)",
        link.pk,
        link.attempt,
        grade.grading_progress,
        grade.score_given,
        submission_id,
    )
    return "posted"
