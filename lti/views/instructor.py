"""The instructor's pages: the course's answers, reviewing one answer (also the platform's
submission review message), and reviewing answers in groups."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from urllib.parse import urlencode

from django.conf import settings
from django.core.cache import caches
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
    QueryDict,
)
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils.translation import gettext as _
from lti_tool.lti_core.constants import ContextRole
from lti_tool.lti_core.utils import normalize_role

from lti import platform_services, sessions
from lti.models import LtiSubmission
from lti.people import display_name
from lti.views.common import (
    answer_feedback,
    criterion_scores,
    launch_page,
    require_instructor,
)
from scoring_plugin import answer_groups, charts, cold_start
from scoring_plugin import review as scoring_review
from scoring_plugin.audit import record
from scoring_plugin.models import AuditLog, Item, Submission, UnscoredAnswer
from scoring_plugin.overrides import apply_override, criterion_override

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
    """One answer with the override form; an override is sent to the gradebook. An analytic
    item's form has one score per criterion (the total is their sum)."""
    link = get_object_or_404(_context_links(session), pk=submission_id)
    error = ""
    given = posted_criteria(request, link.submission.item)
    if request.method == "POST":
        score = posted_total(request, given)
        lti_user = session.user
        try:
            apply_override(
                link.submission,
                score,
                request.POST.get("comment", ""),
                f"lti:{lti_user.name or lti_user.sub}",
                via=Submission.ReviewedVia.LTI,
                criteria=given,
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
            "criteria": criterion_scores(link.submission),
            "criterion_fields": criterion_fields(link.submission, given if error else None),
            "similar": scored_like_these(link.submission),
        },
        status=400 if error else 200,
    )


CRITERION_FIELD = "criterion:"


def posted_criteria(request: HttpRequest, item: Item) -> dict[str, str] | None:
    """The criterion scores a form posted (fields ``criterion:<name>``), as text for
    :func:`apply_override` to check; None when it posted none (a total, or a holistic item)."""
    if request.method != "POST":
        return None
    given = {
        key[len(CRITERION_FIELD) :]: value[:20]
        for key, value in request.POST.items()
        if key.startswith(CRITERION_FIELD)
    }
    return given or None


def posted_total(request: HttpRequest, given: dict[str, str] | None) -> int | None:
    """The total score a form posted when it gave no criterion scores (``given`` None); -1,
    which :func:`apply_override` refuses with its range message, when it is not a number."""
    if given is not None:
        return None
    try:
        return int(request.POST.get("score", ""))
    except ValueError:
        return -1


def criterion_fields(
    submission: Submission, entered: dict[str, str] | None = None
) -> list[dict[str, object]]:
    """An analytic item's override inputs in rubric order, each filled with what the
    instructor just entered (a refused form), else their earlier score, else the automatic
    one ([] for a holistic item)."""
    sources = [
        entered or {},
        submission.reviewed_criterion_scores if submission.reviewed_score is not None else {},
        submission.criterion_scores,
    ]
    fields = []
    for c in submission.item.criteria.all():
        value = next((str(s[c.name]) for s in sources if isinstance(s, dict) and c.name in s), "")
        fields.append({"name": c.name, "max_score": c.max_score, "value": value})
    return fields


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


MAX_GROUP_EDITS = 50  # split and moved groups kept in one page's address


@dataclass(frozen=True)
class GroupEdits:
    """How the instructor reshaped the page's groups, carried in its address (no JavaScript,
    nothing stored): groups to cut tighter (``split``: :func:`answer_groups.group_anchor`) and
    answers moved to a group of their own (``apart``: comma-separated answer ids per group)."""

    split: tuple[str, ...] = ()
    apart: tuple[str, ...] = ()

    @classmethod
    def from_query(cls, params: QueryDict) -> GroupEdits:
        return cls(
            tuple(v[:60] for v in params.getlist("split")[:MAX_GROUP_EDITS]),
            tuple(v[:8000] for v in params.getlist("apart")[:MAX_GROUP_EDITS]),
        )

    def pairs(self) -> list[tuple[str, str]]:
        return [("split", v) for v in self.split] + [("apart", v) for v in self.apart]


def _group_query(
    item: Item | None, filters: scoring_review.ReviewFilter, reviewed: bool, edits: GroupEdits
) -> str:
    """The page's address query: the item, the filters and the group edits."""
    pairs = [
        (k, str(v))
        for k, v in (
            ("item_id", item.pk if item else ""),
            ("needs_review", "1" if filters.needs_review else ""),
            ("review_requested", "1" if filters.review_requested else ""),
            ("low_confidence", filters.low_confidence or ""),
            ("reviewed", "1" if reviewed else ""),
        )
        if v
    ]
    return urlencode(pairs + edits.pairs())


def _score_group(
    request: HttpRequest,
    item: Item,
    links: list[LtiSubmission],
    picked: set[str],
    actor: str,
) -> str:
    """Score the group's answers except the ``picked`` ones (outliers left out), each through
    the one override function (an analytic item's per criterion when the form gives criterion
    scores); returns an error ("" when scored)."""
    given = posted_criteria(request, item)
    score = posted_total(request, given)
    chosen = [link for link in links if str(link.pk) not in picked]
    if not chosen:
        return _("No answers were chosen.")
    if given is not None:
        try:  # checked once for the group: every answer is scored, or none
            criterion_override(item, given)
        except ValidationError as exc:
            return " ".join(exc.messages)
    elif score is None or not 0 <= score <= item.max_score:
        return _("Enter a whole number from 0 to %(max)s.") % {"max": item.max_score}
    with transaction.atomic():
        if picked:
            record(
                AuditLog.Action.GROUP,
                actor,
                item=item,
                details={"change": "left out", "left_out": sorted(picked), "scored": len(chosen)},
            )
        for link in chosen:
            apply_override(
                link.submission,
                score,
                request.POST.get("comment", ""),
                actor,
                via=Submission.ReviewedVia.GROUP,
                criteria=given,
            )
    return ""


def _edit_groups(
    request: HttpRequest, item: Item, links: list[LtiSubmission], picked: set[str], actor: str
) -> tuple[str, str]:
    """Split the group or move the picked answers to a group of their own, with an audit
    entry; returns (the address parameter to add, an error)."""
    action = request.POST.get("action", "")
    if action == "split":
        if len(links) < 2:
            return "", _("A group of one answer cannot be split.")
        anchor = answer_groups.group_anchor([str(link.pk) for link in links])
        record(
            AuditLog.Action.GROUP, actor, item=item, details={"change": "split", "group": anchor}
        )
        return urlencode({"split": anchor}), ""
    moved = sorted(str(link.pk) for link in links if str(link.pk) in picked)
    if not moved:
        return "", _("Select the answers to move to a group of their own.")
    record(
        AuditLog.Action.GROUP,
        actor,
        item=item,
        details={"change": "moved to a new group", "answers": moved},
    )
    return urlencode({"apart": ",".join(moved)}), ""


def _group_post(
    request: HttpRequest, session: sessions.LaunchSession, item: Item
) -> HttpResponse | str:
    """A group's form: score it (the picked answers left out), split it, or move the picked
    answers out; a redirect to the page, or an error."""
    ids = request.POST.getlist("submission_ids")
    links = list(_context_links(session).filter(pk__in=ids[:2000], submission__item=item))
    picked = set(request.POST.getlist("picked")) & {str(link.pk) for link in links}
    lti_user = session.user
    actor = f"lti:{lti_user.name or lti_user.sub}"
    query = request.POST.get("query", "")
    page = reverse("lti:review-groups", kwargs={"token": session.token})
    if not links:
        return _("No answers were chosen.")
    if request.POST.get("action", "score") == "score":
        error = _score_group(request, item, links, picked, actor)
        added = f"scored={len(links) - len(picked)}"
    else:
        added, error = _edit_groups(request, item, links, picked, actor)
    if error:
        return error
    return HttpResponseRedirect(f"{page}?{query}{'&' if query else ''}{added}")


def _group_links(
    session: sessions.LaunchSession,
    item: Item,
    filters: scoring_review.ReviewFilter,
    show_reviewed: bool,
) -> dict[str, LtiSubmission]:
    """The item's answers in this course that the page groups: scored, or waiting for a human
    score (no model yet), as filtered."""
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
    return {str(link.pk): link for link in scoped.order_by("pk")[:2000]}


MAX_IMPORTED = 2000  # imported answers without a score grouped on one page


def _imported_groups(
    item: Item, filters: scoring_review.ReviewFilter, show_reviewed: bool
) -> list[tuple[answer_groups.AnswerGroup, list[tuple[answer_groups.Member, UnscoredAnswer]]]]:
    """The item's answers imported without a score (issue 16), grouped by their text: no
    student and no gradebook; a score makes them training data. Left out when the filters ask
    for what they cannot be (reviewed, asked for by a student, below a confidence)."""
    if show_reviewed or filters.review_requested or filters.low_confidence is not None:
        return []
    answers = {
        str(a.pk): a for a in UnscoredAnswer.objects.filter(item=item).order_by("pk")[:MAX_IMPORTED]
    }
    groups = answer_groups.build_groups(
        [
            answer_groups.Member(key=key, text=a.text, score=None, confidence=None)
            for key, a in answers.items()
        ]
    )
    return [(g, [(m, answers[m.key]) for m in g.members]) for g in groups]


def _score_imported(
    request: HttpRequest, session: sessions.LaunchSession, item: Item
) -> HttpResponse | str:
    """Score a group of imported answers, the picked ones left out: each becomes training data
    with who scored it (:func:`cold_start.score_unscored_answer`, per criterion for an analytic
    item); all of them or none. A redirect to the page, or an error."""
    ids = [i for i in request.POST.getlist("unscored_ids")[:MAX_IMPORTED] if i.isdigit()]
    answers = list(UnscoredAnswer.objects.filter(item=item, pk__in=ids).order_by("pk"))
    picked = set(request.POST.getlist("picked")) & {str(a.pk) for a in answers}
    chosen = [a for a in answers if str(a.pk) not in picked]
    if not chosen:
        return _("No imported answers were chosen (another instructor may have scored them).")
    given = posted_criteria(request, item)
    score = posted_total(request, given)
    lti_user = session.user
    actor = f"lti:{lti_user.name or lti_user.sub}"
    try:
        with transaction.atomic():
            if picked:
                record(
                    AuditLog.Action.GROUP,
                    actor,
                    item=item,
                    details={
                        "change": "left out",
                        "left_out_imported": sorted(
                            a.response_key for a in answers if str(a.pk) in picked
                        ),
                        "scored": len(chosen),
                    },
                )
            for answer in chosen:
                cold_start.score_unscored_answer(
                    answer, score, actor, criteria=given, via="lti group"
                )
    except ValidationError as exc:
        return " ".join(dict.fromkeys(exc.messages))
    query = request.POST.get("query", "")
    page = reverse("lti:review-groups", kwargs={"token": session.token})
    return HttpResponseRedirect(f"{page}?{query}{'&' if query else ''}imported={len(chosen)}")


@launch_page("GET", "POST", instructor=True)
def review_groups(request: HttpRequest, session: sessions.LaunchSession) -> HttpResponse:
    """One item's answers in this course, grouped by similarity (``scoring_plugin.answer_groups``)
    with their size and score spread, least confident first, then the item's answers imported
    without a score, grouped too (scored here they become training data). POST scores a whole
    group, each answer through the one override function (its audit entry, its grade to the
    gradebook), leaving out the answers the instructor picked (outliers); or splits the group
    by a tighter cut, or moves the picked answers to a group of their own (both kept in the
    address and audited); or scores a group of imported answers (:func:`_score_imported`)."""
    params = request.POST if request.method == "POST" else request.GET
    item = _group_item(session, str(params.get("item_id", "")))
    error = ""
    if request.method == "POST" and item is not None:
        if request.POST.get("action") == "score_imported":
            outcome = _score_imported(request, session, item)
        else:
            outcome = _group_post(request, session, item)
        if not isinstance(outcome, str):
            return outcome
        error = outcome
    filters = scoring_review.ReviewFilter.from_query(params)
    show_reviewed = params.get("reviewed", "") in ("1", "on", "true")
    edits = GroupEdits.from_query(request.GET)
    groups: list[answer_groups.AnswerGroup] = []
    links_by_id: dict[str, LtiSubmission] = {}
    if item is not None:
        links_by_id = _group_links(session, item, filters, show_reviewed)
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
            ],
            apart=[v.split(",") for v in edits.apart],
            split=edits.split,
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
            "criteria": list(item.criteria.all()) if item is not None else [],
            "filters": filters,
            "show_reviewed": show_reviewed,
            "edited": bool(edits.pairs()),
            "error": error,
            "scored": request.GET.get("scored", ""),
            "imported_groups": _imported_groups(item, filters, show_reviewed) if item else [],
            "imported": request.GET.get("imported", ""),
            "query": _group_query(item, filters, show_reviewed, edits),
            "unedited_query": _group_query(item, filters, show_reviewed, GroupEdits()),
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
