"""The learner's pages: the item, their answers and their state, submitting, asking for a
review."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
    JsonResponse,
)
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from lti_tool.models import LtiUser

from lti import sessions
from lti.launch import (
    MessageType,
)
from lti.models import ItemLtiSettings, LtiSubmission
from lti.views.common import (
    ItemGone,
    answer_feedback,
    item_gone_page,
    launch_page,
    session_item,
)
from scoring_plugin.models import Item, Submission
from scoring_plugin.services import submit_answer

logger = logging.getLogger(__name__)


def _learner_links(session: sessions.LaunchSession) -> Iterable[LtiSubmission]:
    return (
        LtiSubmission.objects.filter(
            context_id=session.context_id,
            resource_link_id=session.resource_link_id,
            lti_user_id=session.user_id,
        )
        .select_related("submission__item")
        .order_by("attempt")
    )


def learner_state(session: sessions.LaunchSession, item: Item) -> dict[str, object]:
    allowed = ItemLtiSettings.for_item(item).max_attempts
    answers = [answer_feedback(link, session.token) for link in _learner_links(session)]
    return {
        "attempts_used": len(answers),
        "attempts_allowed": allowed,
        "can_submit": session.is_learner and (allowed == 0 or len(answers) < allowed),
        "submissions": answers,
    }


@launch_page("GET")
def status(request: HttpRequest, session: sessions.LaunchSession) -> JsonResponse:
    """The launching student's answers for this link, with scores once they are ready."""
    if session.resource_link_id is None:
        raise Http404("not a resource launch")
    try:
        item = session_item(session)
    except ItemGone:
        return item_gone_page(request, wants_json=True)  # type: ignore[return-value]
    response = JsonResponse(learner_state(session, item))
    response["Cache-Control"] = "no-store"
    return response


@launch_page("POST")
def submit(request: HttpRequest, session: sessions.LaunchSession) -> HttpResponse:
    """Store a student's answer through ``submit_answer`` (which enqueues scoring)."""
    wants_json = "application/json" in request.headers.get("Accept", "")
    if session.resource_link_id is None or session.message_type != MessageType.RESOURCE_LINK:
        raise Http404("not a resource launch")
    if not session.is_learner:
        raise PermissionDenied("Only students of this course can submit answers.")
    try:
        item = session_item(session)
    except ItemGone:
        return item_gone_page(request, wants_json)
    allowed = ItemLtiSettings.for_item(item).max_attempts
    try:
        with transaction.atomic():
            user = LtiUser.objects.select_for_update().get(pk=session.user_id)
            used = LtiSubmission.objects.filter(
                resource_link_id=session.resource_link_id, lti_user_id=user.pk
            ).count()
            if allowed and used >= allowed:
                raise ValidationError(f"You have used all {allowed} attempt(s) for this item.")
            submission = submit_answer(
                item,
                request.POST.get("answer", ""),
                client_reference=f"lti:{session.registration_id}:{user.sub}",
            )
            LtiSubmission.objects.create(
                submission=submission,
                context_id=session.context_id,
                resource_link_id=session.resource_link_id,
                lti_user_id=user.pk,
                attempt=used + 1,
                line_item_url=session.line_item_url,
                line_items_url=session.line_items_url,
                ags_scopes=session.ags_scopes,
            )
    except ValidationError as exc:
        if wants_json:
            return JsonResponse({"error": " ".join(exc.messages)}, status=400)
        return render(
            request,
            "lti/answer.html",
            {
                "session": session,
                "item": item,
                "state": learner_state(session, item),
                "error": " ".join(exc.messages),
                "answer": request.POST.get("answer", ""),
            },
            status=400,
        )
    if wants_json:
        return JsonResponse({"id": str(submission.pk), "status": submission.status}, status=201)
    return HttpResponseRedirect(reverse("lti:page", kwargs={"token": session.token}))


@launch_page("POST")
def request_review(
    request: HttpRequest, session: sessions.LaunchSession, submission_id: uuid.UUID
) -> HttpResponse:
    """A student asks for a human review of their own scored answer: it goes into the
    instructor's queue (the *Review requested* filter). Asking twice changes nothing."""
    wants_json = "application/json" in request.headers.get("Accept", "")
    if session.resource_link_id is None or not session.is_learner:
        raise PermissionDenied("Only the student who answered can ask for a review.")
    link = get_object_or_404(
        LtiSubmission.objects.select_related("submission__item"),
        pk=submission_id,
        context_id=session.context_id,
        resource_link_id=session.resource_link_id,
        lti_user_id=session.user_id,
    )
    submission = link.submission
    if submission.status != Submission.Status.SCORED or submission.reviewed_score is not None:
        message = _("This answer cannot be sent for review.")
        if wants_json:
            return JsonResponse({"error": message}, status=409)
        raise PermissionDenied(message)
    Submission.objects.filter(pk=submission.pk, review_requested=False).update(
        review_requested=True, review_requested_at=timezone.now()
    )
    if wants_json:
        link.submission.refresh_from_db()
        return JsonResponse(answer_feedback(link, session.token))
    return HttpResponseRedirect(
        reverse("lti:page", kwargs={"token": session.token}) + "#answers-heading"
    )
