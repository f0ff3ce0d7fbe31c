"""The instructor's pages: the course's answers, reviewing one answer (also the platform's
submission review message), and reviewing answers in groups."""

from __future__ import annotations

import logging
import uuid

from django.conf import settings
from django.core.cache import caches
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
)
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from lti_tool.lti_core.constants import ContextRole
from lti_tool.lti_core.utils import normalize_role

from lti import platform_services, sessions
from lti.models import LtiSubmission
from lti.people import display_name
from lti.views.common import (
    answer_feedback,
    launch_page,
    require_instructor,
)
from scoring_plugin import answer_groups, charts
from scoring_plugin import review as scoring_review
from scoring_plugin.models import Item, Submission
from scoring_plugin.overrides import apply_override

logger = logging.getLogger(__name__)


def _context_links(session: sessions.LaunchSession):  # type: ignore[no-untyped-def]
    return LtiSubmission.objects.filter(context_id=session.context_id).select_related(
        "submission__item", "submission__model_version", "lti_user", "resource_link"
    )


def _roster(session: sessions.LaunchSession) -> list[dict[str, object]] | None:
    """Learners of the course by NRPS, cached for five minutes; None when unavailable."""
    if not session.memberships_url:
        return None
    cache = caches[settings.LTI_CACHE_ALIAS]
    key = f"scorebridge-lti-roster-{session.context_id}"
    members = cache.get(key)
    if members is None:
        try:
            members = platform_services.roster(session.registration, session.memberships_url)
        except Exception as exc:  # the page still works without the roster
            logger.warning("NRPS roster for context %s failed: %s", session.context_id, exc)
            return None
        session.context.update_memberships(members)
        cache.set(key, members, 300)
    return [
        m
        for m in members
        if m.get("status", "Active") == "Active"
        and ContextRole.LEARNER in {normalize_role(r) for r in m.get("roles", [])}
    ]


@launch_page("GET", instructor=True)
def review(request: HttpRequest, session: sessions.LaunchSession) -> HttpResponse:
    """The course's submissions, and the students who have not answered yet."""
    filters = scoring_review.ReviewFilter.from_query(request.GET)
    student = request.GET.get("student", "").strip()[:200]
    scoped = filters.apply(_context_links(session), prefix="submission__")
    if student:
        scoped = scoped.filter(
            Q(lti_user__name__icontains=student)
            | Q(lti_user__sub=student)
            | Q(lti_user__email__iexact=student)
        )
    if request.GET.get("export") == "csv":
        rows = scoped.order_by("-submission__created_at")
        response = HttpResponse(
            scoring_review.export_csv(
                (link.submission, display_name(link.lti_user)) for link in rows
            ),
            content_type="text/csv; charset=utf-8",
        )
        response["Content-Disposition"] = 'attachment; filename="scorebridge-review.csv"'
        return response
    links = list(scoped.order_by("-submission__created_at")[:1000])
    agreement = scoring_review.agreements(
        Submission.objects.filter(lti__context_id=session.context_id)
    )
    roster = _roster(session)
    not_answered = None
    if roster is not None:
        answered_query = LtiSubmission.objects.filter(context_id=session.context_id)
        if session.resource_link_id is not None:
            answered_query = answered_query.filter(resource_link_id=session.resource_link_id)
        answered = set(answered_query.values_list("lti_user__sub", flat=True))
        not_answered = [m for m in roster if m.get("user_id") not in answered]
    return render(
        request,
        "lti/review.html",
        {
            "session": session,
            "links": links,
            "not_answered": not_answered,
            "filters": filters,
            "student": student,
            "items": Item.objects.filter(
                submissions__lti__context_id=session.context_id
            ).distinct(),
            "agreement": [
                (a, charts.confusion_svg(a.confusion, title=f"{a.item_key}")) for a in agreement
            ],
            "query": request.GET.urlencode(),
        },
    )


def render_submission_review(request: HttpRequest, session: sessions.LaunchSession):  # type: ignore[no-untyped-def]
    """One student's answers for the link (``for_user``), or, for an instructor launch without
    ``for_user``, every student's answers for the link (the class's results)."""
    links = _context_links(session).filter(
        resource_link_id=session.resource_link_id,
        lti_user__registration_id=session.registration_id,
    )
    whole_class = not session.for_user_sub
    if whole_class:
        require_instructor(session)
        links = links.order_by("lti_user__name", "lti_user__sub", "-attempt")
    else:
        links = links.filter(lti_user__sub=session.for_user_sub).order_by("-attempt")
    return render(
        request,
        "lti/submission_review.html",
        {
            "session": session,
            "whole_class": whole_class,
            "entries": [(link, answer_feedback(link)) for link in links[:2000]],
        },
    )


@launch_page("GET", "POST", instructor=True)
def review_submission(
    request: HttpRequest, session: sessions.LaunchSession, submission_id: uuid.UUID
) -> HttpResponse:
    """One answer with the override form; an override is sent to the gradebook."""
    link = get_object_or_404(_context_links(session), pk=submission_id)
    error = ""
    if request.method == "POST":
        try:
            score = int(request.POST.get("score", ""))
        except ValueError:
            score = -1
        lti_user = session.user
        try:
            apply_override(
                link.submission,
                score,
                request.POST.get("comment", ""),
                f"lti:{lti_user.name or lti_user.sub}",
                via=Submission.ReviewedVia.LTI,
            )
        except ValidationError as exc:
            error = " ".join(exc.messages)
        else:
            return HttpResponseRedirect(
                reverse("lti:review-one", kwargs={"token": session.token, "submission_id": link.pk})
            )
    link.refresh_from_db()
    return render(
        request,
        "lti/review_one.html",
        {
            "session": session,
            "link": link,
            "error": error,
            "feedback": answer_feedback(link),
            "similar": scored_like_these(link.submission),
        },
        status=400 if error else 200,
    )


def _group_item(session: sessions.LaunchSession, chosen: str) -> Item | None:
    """The item whose answers are grouped: the one asked for (among the course's), else the
    launch's own, else the course's first."""
    in_course = Item.objects.filter(submissions__lti__context_id=session.context_id).distinct()
    if chosen.isdigit():
        found = in_course.filter(pk=int(chosen)).first()
        if found is not None:
            return found
    if session.item_id is not None:
        found = in_course.filter(pk=session.item_id).first()
        if found is not None:
            return found
    return in_course.order_by("key").first()


@launch_page("GET", "POST", instructor=True)
def review_groups(request: HttpRequest, session: sessions.LaunchSession) -> HttpResponse:
    """One item's answers in this course, grouped by similarity (``scoring_plugin.answer_groups``)
    with their size and score spread, least confident first; POST scores a whole group, each
    answer through the one override function (its audit entry, its grade to the gradebook)."""
    params = request.POST if request.method == "POST" else request.GET
    item = _group_item(session, str(params.get("item_id", "")))
    error = ""
    if request.method == "POST" and item is not None:
        ids = request.POST.getlist("submission_ids")
        links = list(_context_links(session).filter(pk__in=ids[:2000], submission__item=item))
        lti_user = session.user
        try:
            score = int(request.POST.get("score", ""))
        except ValueError:
            score = -1
        if not links:
            error = "No answers were chosen."
        elif not 0 <= score <= item.max_score:
            error = f"Enter a whole number from 0 to {item.max_score}."
        else:
            with transaction.atomic():
                for link in links:
                    apply_override(
                        link.submission,
                        score,
                        request.POST.get("comment", ""),
                        f"lti:{lti_user.name or lti_user.sub}",
                        via=Submission.ReviewedVia.GROUP,
                    )
            query = request.POST.get("query", "")
            return HttpResponseRedirect(
                reverse("lti:review-groups", kwargs={"token": session.token})
                + f"?{query}{'&' if query else ''}scored={len(links)}"
            )
    filters = scoring_review.ReviewFilter.from_query(params)
    show_reviewed = params.get("reviewed", "") in ("1", "on", "true")
    groups: list[answer_groups.AnswerGroup] = []
    links_by_id: dict[str, LtiSubmission] = {}
    if item is not None:
        scoped = filters.apply(
            _context_links(session).filter(
                Q(submission__status=Submission.Status.SCORED)
                | Q(submission__waiting_for=Submission.WaitingFor.MODEL),  # needs a human score
                submission__item=item,
            ),
            prefix="submission__",
        )
        if show_reviewed:
            scoped = scoped.filter(submission__reviewed_score__isnull=False)
        links_by_id = {str(link.pk): link for link in scoped.order_by("pk")[:2000]}
        groups = answer_groups.build_groups(
            [
                answer_groups.Member(
                    key=key,
                    text=link.submission.text,
                    score=link.submission.score,
                    confidence=link.submission.confidence,
                    final_score=link.submission.final_score,
                    vector=link.submission.embedding,
                    space=str(link.submission.model_version_id or ""),
                )
                for key, link in links_by_id.items()
            ]
        )
    return render(
        request,
        "lti/review_groups.html",
        {
            "session": session,
            "item": item,
            "items": Item.objects.filter(submissions__lti__context_id=session.context_id)
            .distinct()
            .order_by("key"),
            "groups": [
                (group, [(m, links_by_id[m.key]) for m in group.members]) for group in groups
            ],
            "filters": filters,
            "show_reviewed": show_reviewed,
            "error": error,
            "scored": request.GET.get("scored", ""),
            "query": "&".join(
                f"{k}={v}"
                for k, v in (
                    ("item_id", item.pk if item else ""),
                    ("needs_review", "1" if filters.needs_review else ""),
                    ("review_requested", "1" if filters.review_requested else ""),
                    ("low_confidence", filters.low_confidence or ""),
                    ("reviewed", "1" if show_reviewed else ""),
                )
                if v
            ),
        },
        status=400 if error else 200,
    )


def scored_like_these(submission: Submission, count: int = 3) -> list[answer_groups.Neighbour]:
    """The human-scored answers of the item most like this one: imported training answers and
    answers an instructor reviewed (the explanation of a machine score)."""
    item = submission.item
    pool: list[tuple[str, int, str]] = [
        (text, score, "scored by a teacher (item data)")
        for text, score in item.scored_answers.order_by("-pk").values_list("text", "score")[:3000]
        if text
    ]
    pool += [
        (text, score, "reviewed by an instructor")
        for text, score in item.submissions.filter(reviewed_score__isnull=False)
        .exclude(pk=submission.pk)
        .order_by("-reviewed_at")
        .values_list("text", "reviewed_score")[:2000]
    ]
    return answer_groups.most_similar(submission.text, pool, count)
