"""What the tool's pages share: URLs, error pages, the launch session of a page and the one
decorator of pages after the launch (:func:`launch_page`)."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.cache import caches
from django.core.exceptions import PermissionDenied
from django.http import (
    HttpRequest,
    HttpResponse,
    JsonResponse,
)
from django.shortcuts import render
from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods
from lti_tool.lti_core.constants import ContextRole

from lti import sessions
from lti.frames import framed
from lti.launch import (
    LaunchError,
)
from lti.models import LtiSubmission
from lti.passback import grade_for
from lti.states import SCORED, STUDENT_LABELS, answer_state
from scoring_plugin.models import Item, Submission

logger = logging.getLogger(__name__)


ITEM_CUSTOM_PARAM = "scorebridge_item"


ITEM_ID_CUSTOM_PARAM = "scorebridge_item_id"
"""Links name the item by its stable id (renaming a key keeps them working) and by key (links
placed before issue 12 have only the key)."""


STAFF_ROLES = {ContextRole.INSTRUCTOR, ContextRole.ADMINISTRATOR, ContextRole.CONTENT_DEVELOPER}


def tool_url(request: HttpRequest, name: str, **kwargs: object) -> str:
    """Absolute URL of a tool endpoint (``SCOREBRIDGE_LTI_TOOL_ORIGIN`` when set)."""
    path = reverse(f"lti:{name}", kwargs=kwargs or None)
    if settings.LTI_TOOL_ORIGIN:
        return settings.LTI_TOOL_ORIGIN + path
    return request.build_absolute_uri(path)


def error_page(
    request: HttpRequest,
    error: LaunchError,
    *,
    return_url: str = "",
    new_window_url: str = "",
) -> HttpResponse:
    logger.info("LTI launch refused: %s", error)
    response = render(
        request,
        "lti/error.html",
        {"error": error, "return_url": return_url, "new_window_url": new_window_url},
        status=error.status,
    )
    return response


LOCALE_PREFIX = "scorebridge-lti-locale-"


def linked_item(item_id: object, key: object) -> Item | None:
    """The item a resource link names: by stable id, else by key (older links), else by the
    key it had before migration 0004 made keys slugs."""
    if str(item_id or "").isdigit():
        found = Item.objects.filter(pk=int(str(item_id))).first()
        if found is not None:
            return found
    key = str(key or "")
    if not key:
        return None
    return Item.objects.filter(key=key).first() or Item.objects.filter(legacy_key=key).first()


class ItemGone(Exception):
    """The item a launch opened was deleted since; its pages answer 410, not 500."""


def session_item(session: sessions.LaunchSession) -> Item:
    item = linked_item(session.item_id, session.item_key)
    if item is None:
        raise ItemGone(session.item_key)
    return item


def item_gone_page(request: HttpRequest, wants_json: bool = False) -> HttpResponse:
    message = _(
        "This activity's item is no longer in Scorebridge. Your answers so far are kept; "
        "ask your instructor to add the activity again."
    )
    if wants_json:
        return JsonResponse({"error": message, "code": "item_gone"}, status=410)
    return error_page(request, LaunchError("item_gone", message, 410))


def launch_session(request: HttpRequest, token: str) -> sessions.LaunchSession:
    session = sessions.load(token)
    language = caches[settings.LTI_CACHE_ALIAS].get(LOCALE_PREFIX + token)
    if isinstance(language, str) and language:
        translation.activate(language)
        request.LANGUAGE_CODE = language  # type: ignore[attr-defined]
    request.lti_frame_origins = session.frame_origins  # type: ignore[attr-defined]
    return session


LaunchPageView = Callable[..., HttpResponse]


def launch_page(*methods: str, instructor: bool = False) -> Callable[[LaunchPageView], Any]:
    """The one decorator of every page after the launch, addressed by its launch token.

    Who may call it: whoever holds the token of a live launch (404 otherwise); with
    ``instructor``, only an instructor of that launch's course (403 otherwise). The page is
    CSRF-exempt (the unguessable token does the cookie's job, and the cookie is often blocked
    in the frame), may be framed by the launch's platform only, answers only ``methods`` (405),
    and gets the launch session in place of the token.
    """

    def decorate(view: LaunchPageView) -> Any:
        @functools.wraps(view)
        def page(request: HttpRequest, token: str, **kwargs: Any) -> HttpResponse:
            session = launch_session(request, token)
            if instructor:
                require_instructor(session)
            return view(request, session, **kwargs)

        return csrf_exempt(framed(require_http_methods(list(methods))(page)))

    return decorate


def require_instructor(session: sessions.LaunchSession) -> None:
    if not session.is_instructor:
        raise PermissionDenied("Only instructors of this course can see this page.")


def answer_feedback(link: LtiSubmission, token: str = "") -> dict[str, object]:
    """What a student sees about one of their answers (consistent with the gradebook): the
    answer, one state, the score, the item's feedback for that score, whether a person or the
    model scored it, and whether a human review can be requested."""
    submission = link.submission
    item = submission.item
    state = answer_state(submission)
    data: dict[str, object] = {
        "id": str(submission.pk),
        "attempt": link.attempt,
        "answer": submission.text,
        "status": submission.status,
        "status_label": _(submission.get_status_display()),
        "state": state,
        "state_label": str(STUDENT_LABELS[state]),
        "submitted_at": submission.created_at.isoformat(),
        "max_score": item.max_score,
        "score": None,
        "feedback": "",
        "feedback_text": "",
        "criteria": [],
        "scored_by": "",
        "review_requested": submission.review_requested,
        "can_request_review": False,
        "request_review_url": "",
        # an answer waiting for a human score (no model yet) is done until the instructor
        # scores it: no polling for days
        "done": submission.status in (Submission.Status.SCORED, Submission.Status.FAILED)
        or submission.reviewed_score is not None
        or submission.waiting_for == Submission.WaitingFor.MODEL,
    }
    grade = grade_for(link)
    if not data["done"]:
        data["feedback"] = _("Scoring your answer...")
    elif grade is None or grade.score_given is None:
        data["feedback"] = (
            _("Automatic scoring failed; your instructor will grade this answer.")
            if submission.status == Submission.Status.FAILED
            else _("Your answer will be reviewed by your instructor before it is scored.")
        )
    else:
        data["score"] = grade.score_given
        parts = [
            _("Score: %(score)s of %(max)s.")
            % {"score": f"{grade.score_given:g}", "max": item.max_score}
        ]
        if submission.reviewed_score is not None:
            parts.append(_("Reviewed by your instructor."))
            if submission.review_comment:
                parts.append(submission.review_comment)
        elif submission.needs_review:
            parts.append(_("Your instructor will review this score."))
        if submission.truncated:
            parts.append(_("Your answer was long; only its beginning was read."))
        data["feedback"] = " ".join(parts)
        data["feedback_text"] = item.feedback_for(int(grade.score_given))
        # An instructor's score replaces the automatic criteria: by their own criterion
        # scores when they gave them, else by the total alone.
        data["criteria"] = criterion_scores(
            submission, reviewed=submission.reviewed_score is not None
        )
    if submission.reviewed_score is not None:
        data["scored_by"] = str(_("Your instructor scored this answer."))
    elif submission.status == Submission.Status.SCORED:
        data["scored_by"] = str(
            _(
                "This answer was scored automatically by a computer model trained on answers "
                "that teachers scored. It can be wrong."
            )
        )
    if submission.review_requested and submission.reviewed_score is None:
        data["review_note"] = str(
            _("You asked for a human review. Your answer is in your instructor's review queue.")
        )
    data["can_request_review"] = (
        state == SCORED and not submission.review_requested and submission.reviewed_score is None
    )
    if token and data["can_request_review"]:
        data["request_review_url"] = reverse(
            "lti:request-review", kwargs={"token": token, "submission_id": submission.pk}
        )
    return data


def criterion_scores(submission: Submission, *, reviewed: bool = False) -> list[dict[str, object]]:
    """An analytic item's automatic score per criterion (with ``reviewed``: the instructor's),
    in rubric order, each with its authored feedback ([] for a holistic item, an unscored
    answer, or an instructor's total without criterion scores)."""
    given = submission.reviewed_criterion_scores if reviewed else submission.criterion_scores
    scores = given if isinstance(given, dict) else {}
    return [
        {
            "name": c.name,
            "score": scores[c.name],
            "max_score": c.max_score,
            "feedback": c.feedback_for(scores[c.name]),
        }
        for c in submission.item.criteria.all()
        if c.name in scores
    ]
