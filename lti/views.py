"""Tool endpoints: OIDC login, launch, JWKS, and the pages shown in the LMS frame.

Pages after the launch are addressed by a launch token (``lti.sessions``) and read only rows of
the launch's own platform, deployment and context. They are CSRF-exempt because the unguessable
token in the URL does what the CSRF cookie would, and that cookie is often blocked in the frame.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Mapping
from urllib.parse import parse_qs, urlencode, urlsplit

from django.conf import settings
from django.core.cache import caches
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Q
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
    JsonResponse,
)
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.decorators import method_decorator
from django.utils.translation import gettext as _
from django.views import View
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from lti_tool.lti_core.constants import ContextRole
from lti_tool.lti_core.utils import normalize_role
from lti_tool.models import LtiLaunch, LtiUser
from lti_tool.utils import sync_data_from_launch
from lti_tool.views import OIDCLoginInitView
from pylti1p3.contrib.django import DjangoOIDCLogin
from pylti1p3.deep_link import DeepLink
from pylti1p3.deep_link_resource import DeepLinkResource
from pylti1p3.exception import LtiException, OIDCException
from pylti1p3.lineitem import LineItem

from lti import client_storage, keys, platform_services, sessions
from lti.frames import framed, origin
from lti.launch import (
    CLAIM,
    LaunchError,
    NeedsClientStorage,
    ToolConfig,
    bind_state_to_nonce,
    launch_storage,
    validate_launch,
)
from lti.models import ItemLtiSettings, LtiSubmission
from lti.passback import grade_for
from lti.people import display_name
from lti.states import SCORED, STUDENT_LABELS, answer_state
from scoring_plugin import answer_groups, charts
from scoring_plugin import review as scoring_review
from scoring_plugin.models import Item, Submission
from scoring_plugin.overrides import apply_override
from scoring_plugin.services import submit_answer

logger = logging.getLogger(__name__)

ITEM_CUSTOM_PARAM = "scorebridge_item"
ITEM_ID_CUSTOM_PARAM = "scorebridge_item_id"
"""Links name the item by its stable id (renaming a key keeps them working) and by key (links
placed before issue 12 have only the key)."""
_STAFF_ROLES = {ContextRole.INSTRUCTOR, ContextRole.ADMINISTRATOR, ContextRole.CONTENT_DEVELOPER}


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


# --- OIDC login, launch, JWKS ---------------------------------------------------------------


class StateBoundOIDCLogin(DjangoOIDCLogin):
    """pylti1p3's login, storing the state and nonce it issues together: the launch must bring
    back the nonce issued for its own state."""

    def _prepare_redirect_url(self, launch_url: str) -> str:
        url = super()._prepare_redirect_url(launch_url)
        params = parse_qs(urlsplit(url).query)
        state, nonce = params.get("state", [""])[0], params.get("nonce", [""])[0]
        if not state or not nonce:
            raise OIDCException("login produced no state or nonce")
        bind_state_to_nonce(state, nonce)
        return url


#: Login parameters carried to the cookie check's continuation and to a new window.
_LOGIN_PARAMS = (
    "iss",
    "login_hint",
    "target_link_uri",
    "lti_message_hint",
    "lti_deployment_id",
    "client_id",
    "lti_storage_target",
)
_COOKIE_CHECKED = "sb_cookies"
_NEW_WINDOW = "lti1p3_new_window"


def _login_url(request: HttpRequest, params: Mapping[str, str], **extra: str) -> str:
    query = {k: params[k] for k in _LOGIN_PARAMS if params.get(k)}
    query.update(extra)
    if _NEW_WINDOW in extra:
        query.pop("lti_storage_target", None)  # a top-level window keeps its own cookies
    return request.path + "?" + urlencode(query)


@method_decorator(framed, name="dispatch")
class OidcLoginView(OIDCLoginInitView):
    """Third-party initiated login (GET or POST), in the LMS frame or a new window.

    The state that binds the launch to this browser is kept, in this order of preference:

    1. in the platform's client-side storage when the platform offers it
       (``lti_storage_target``; ``lti.client_storage``): no cookie is needed;
    2. in a cookie (``SameSite=None; Secure; Partitioned``): a first page checks that the
       browser keeps a partitioned cookie in the frame, then continues the login;
    3. when it does not, the page offers to open Scorebridge in a new window, where cookies are
       first-party; a deep linking response made there comes back to this frame, which posts
       it to the platform (Moodle expects it from its own frame).
    """

    def get_oidc_response(self, request, registration_uuid, params):  # type: ignore[no-untyped-def]
        keys.signing_key()
        if not params.get("target_link_uri"):
            return error_page(
                request, LaunchError("bad_login", "The login request has no target_link_uri.")
            )
        storage_target = str(params.get("lti_storage_target") or "")[:200]
        in_new_window = bool(params.get(_NEW_WINDOW))
        if not storage_target and not in_new_window and not params.get(_COOKIE_CHECKED):
            return render(
                request,
                "lti/login_check.html",
                {
                    "continue_url": _login_url(request, params, **{_COOKIE_CHECKED: "1"}),
                    "new_window_url": _login_url(request, params, **{_NEW_WINDOW: "1"}),
                },
            )
        oidc_login = StateBoundOIDCLogin(
            request,
            ToolConfig(registration_uuid),
            launch_data_storage=launch_storage(),
        )
        try:
            if storage_target and not in_new_window:
                # No cookie: pylti1p3's queued state cookie is never applied to this response.
                auth_url = oidc_login.get_redirect_object(tool_url(request, "launch"))
                auth_url = auth_url.get_redirect_url()
                state = parse_qs(urlsplit(auth_url).query)["state"][0]
                platform_origin = origin(auth_url)
                secret = client_storage.remember(state, storage_target, platform_origin)
                return render(
                    request,
                    "lti/storage_login.html",
                    {
                        "auth_url": auth_url,
                        "storage": {
                            "target": storage_target,
                            "origin": platform_origin,
                            "key": client_storage.storage_key(state),
                            "value": secret,
                        },
                        "fallback_url": _login_url(
                            request,
                            {k: v for k, v in params.items() if k != "lti_storage_target"},
                        ),
                    },
                )
            return oidc_login.redirect(tool_url(request, "launch"))
        except (OIDCException, LtiException) as exc:
            return error_page(
                request,
                LaunchError(
                    "bad_login",
                    f"This login cannot start: {exc}. Check that the platform is registered "
                    "in Scorebridge with this issuer and client id.",
                ),
            )


@method_decorator([csrf_exempt, framed], name="dispatch")
class LaunchView(View):
    """The launch (redirect_uri): validate, record the platform's rows, open the right page."""

    http_method_names = ["post"]

    def post(self, request: HttpRequest) -> HttpResponse:
        keys.signing_key()
        try:
            message_launch = validate_launch(request)
        except NeedsClientStorage as needed:
            return render(
                request,
                "lti/storage_launch.html",
                {
                    "launch_url": reverse("lti:launch"),
                    "id_token": request.POST.get("id_token", ""),
                    "state": needed.state,
                    "secret_field": client_storage.SECRET_FIELD,
                    "storage": {
                        "target": needed.record.target,
                        "origin": needed.record.platform_origin,
                        "key": client_storage.storage_key(needed.state),
                    },
                },
            )
        except LaunchError as error:
            return error_page(
                request,
                error,
                new_window_url=tool_url(request, "login") if error.code == "bad_state" else "",
            )
        lti_launch = LtiLaunch(message_launch)
        sync_data_from_launch(lti_launch)
        try:
            session = build_session(lti_launch)
        except LaunchError as error:
            return error_page(
                request,
                error,
                return_url=lti_launch.get_return_url(lti_errormsg=error.message) or "",
            )
        token = sessions.save(session)
        remember_locale(token, lti_launch.launch_presentation_claim, lti_launch.get_launch_data())
        return HttpResponseRedirect(reverse("lti:page", kwargs={"token": token}))


_LOCALE_PREFIX = "scorebridge-lti-locale-"


def remember_locale(token: str, presentation: object, body: object) -> None:
    """Keep the launch's ``locale`` (e.g. "de-DE") for the pages this launch opens."""
    locale = ""
    if isinstance(presentation, dict):
        locale = str(presentation.get("locale", "") or "")
    if not locale and isinstance(body, dict):
        locale = str(body.get("locale", "") or body.get(CLAIM + "locale", "") or "")
    if not locale:
        return
    try:
        language = translation.get_supported_language_variant(
            locale.replace("_", "-").lower(), strict=False
        )
    except LookupError:
        return
    if language:
        caches[settings.LTI_CACHE_ALIAS].set(
            _LOCALE_PREFIX + token, language, settings.LTI_LAUNCH_TTL_SECONDS
        )


def build_session(lti_launch: LtiLaunch) -> sessions.LaunchSession:
    """What the pages need from a validated launch."""
    body = lti_launch.get_launch_data()
    message_type = body[CLAIM + "message_type"]
    roles = {normalize_role(role) for role in lti_launch.roles_claim or []}
    context = lti_launch.context
    ags = lti_launch.ags_claim or {}
    nrps = lti_launch.nrps_claim or {}
    presentation = lti_launch.launch_presentation_claim or {}
    platform = lti_launch.platform_instance_claim or {}
    session = sessions.LaunchSession(
        message_type=message_type,
        registration_id=lti_launch.registration.pk,
        deployment_id=lti_launch.deployment.pk,
        context_id=context.pk,
        user_id=lti_launch.user.pk,
        is_instructor=bool(roles & _STAFF_ROLES),
        is_learner=ContextRole.LEARNER in roles,
        user_name=display_name(lti_launch.user),
        line_item_url=ags.get("lineitem", ""),
        line_items_url=ags.get("lineitems", ""),
        ags_scopes=list(ags.get("scope", [])),
        memberships_url=nrps.get("context_memberships_url", ""),
        return_url=presentation.get("return_url", ""),
        frame_origins=[
            o
            for o in (origin(presentation.get("return_url", "")), origin(platform.get("url", "")))
            if o
        ],
    )
    if message_type == "LtiDeepLinkingRequest":
        if not session.is_instructor:
            raise LaunchError("forbidden", "Only instructors can add Scorebridge items.", 403)
        session.deep_link_settings = dict(
            body["https://purl.imsglobal.org/spec/lti-dl/claim/deep_linking_settings"]
        )
        return session
    session.resource_link_id = lti_launch.resource_link.pk
    item = linked_item(
        lti_launch.get_custom_claim(ITEM_ID_CUSTOM_PARAM),
        lti_launch.get_custom_claim(ITEM_CUSTOM_PARAM),
    )
    session.item_key = (
        item.key if item else str(lti_launch.get_custom_claim(ITEM_CUSTOM_PARAM) or "")
    )
    session.item_id = item.pk if item else None
    if not session.is_instructor and item is None:
        raise LaunchError(
            "unknown_item",
            "This link does not name a Scorebridge item. An instructor can add the activity "
            "again through the Scorebridge item picker (deep linking).",
            404,
        )
    if message_type == "LtiSubmissionReviewRequest":
        # Without for_user (Moodle's gradebook column action "View External tool results") an
        # instructor sees the class's results for this link, a student their own.
        for_user = body.get(CLAIM + "for_user")
        for_user_sub = str(for_user.get("user_id", "")) if isinstance(for_user, dict) else ""
        if not for_user_sub and not session.is_instructor:
            for_user_sub = lti_launch.user.sub
        session.for_user_sub = for_user_sub
        if not session.is_instructor and session.for_user_sub != lti_launch.user.sub:
            raise LaunchError("forbidden", "You can only review your own answers.", 403)
    return session


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


@require_GET
def jwks(request: HttpRequest) -> JsonResponse:
    """The tool's public keys: the signing key and superseded keys still in their grace period."""
    response = JsonResponse(keys.jwks())
    response["Cache-Control"] = "public, max-age=300"
    return response


# --- Pages in the LMS frame -----------------------------------------------------------------


def _session(request: HttpRequest, token: str) -> sessions.LaunchSession:
    session = sessions.load(token)
    language = caches[settings.LTI_CACHE_ALIAS].get(_LOCALE_PREFIX + token)
    if isinstance(language, str) and language:
        translation.activate(language)
        request.LANGUAGE_CODE = language  # type: ignore[attr-defined]
    request.lti_frame_origins = session.frame_origins  # type: ignore[attr-defined]
    return session


def _require_instructor(session: sessions.LaunchSession) -> None:
    if not session.is_instructor:
        raise PermissionDenied("Only instructors of this course can see this page.")


@csrf_exempt
@framed
@require_GET
def page(request: HttpRequest, token: str) -> HttpResponse:
    session = _session(request, token)
    if session.message_type == "LtiDeepLinkingRequest":
        return render(
            request,
            "lti/deep_link.html",
            {"session": session, "items": Item.objects.order_by("key")},
        )
    if session.message_type == "LtiSubmissionReviewRequest":
        return _render_submission_review(request, session)
    if session.is_instructor:
        return HttpResponseRedirect(reverse("lti:review", kwargs={"token": token}))
    try:
        item = session_item(session)
    except ItemGone:
        return item_gone_page(request)
    return render(
        request,
        "lti/answer.html",
        {"session": session, "item": item, "state": _learner_state(session, item)},
    )


def _feedback(link: LtiSubmission, token: str = "") -> dict[str, object]:
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
        "scored_by": "",
        "review_requested": submission.review_requested,
        "can_request_review": False,
        "request_review_url": "",
        "done": submission.status in (Submission.Status.SCORED, Submission.Status.FAILED),
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


def _learner_state(session: sessions.LaunchSession, item: Item) -> dict[str, object]:
    allowed = ItemLtiSettings.for_item(item).max_attempts
    answers = [_feedback(link, session.token) for link in _learner_links(session)]
    return {
        "attempts_used": len(answers),
        "attempts_allowed": allowed,
        "can_submit": session.is_learner and (allowed == 0 or len(answers) < allowed),
        "submissions": answers,
    }


@csrf_exempt
@framed
@require_GET
def status(request: HttpRequest, token: str) -> JsonResponse:
    """The launching student's answers for this link, with scores once they are ready."""
    session = _session(request, token)
    if session.resource_link_id is None:
        raise Http404("not a resource launch")
    try:
        item = session_item(session)
    except ItemGone:
        return item_gone_page(request, wants_json=True)  # type: ignore[return-value]
    response = JsonResponse(_learner_state(session, item))
    response["Cache-Control"] = "no-store"
    return response


@csrf_exempt
@framed
@require_POST
def submit(request: HttpRequest, token: str) -> HttpResponse:
    """Store a student's answer through ``submit_answer`` (which enqueues scoring)."""
    session = _session(request, token)
    wants_json = "application/json" in request.headers.get("Accept", "")
    if session.resource_link_id is None or session.message_type != "LtiResourceLinkRequest":
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
                "state": _learner_state(session, item),
                "error": " ".join(exc.messages),
                "answer": request.POST.get("answer", ""),
            },
            status=400,
        )
    if wants_json:
        return JsonResponse({"id": str(submission.pk), "status": submission.status}, status=201)
    return HttpResponseRedirect(reverse("lti:page", kwargs={"token": token}))


@csrf_exempt
@framed
@require_POST
def request_review(request: HttpRequest, token: str, submission_id: uuid.UUID) -> HttpResponse:
    """A student asks for a human review of their own scored answer: it goes into the
    instructor's queue (the *Review requested* filter). Asking twice changes nothing."""
    session = _session(request, token)
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
        return JsonResponse(_feedback(link, token))
    return HttpResponseRedirect(reverse("lti:page", kwargs={"token": token}) + "#answers-heading")


@csrf_exempt
@framed
@require_POST
def deep_link(request: HttpRequest, token: str) -> HttpResponse:
    """Return the chosen item to the platform as a resource link with a line item."""
    session = _session(request, token)
    if session.message_type != "LtiDeepLinkingRequest":
        raise Http404("not a deep linking launch")
    _require_instructor(session)
    chosen = request.POST.get("item_id", "")
    if chosen.isdigit():
        item = get_object_or_404(Item, pk=int(chosen))
    else:
        item = get_object_or_404(Item, key=request.POST.get("item", ""))
    title = item.prompt if len(item.prompt) <= 80 else item.prompt[:77] + "..."
    line_item = (
        LineItem()
        .set_score_maximum(item.max_score)
        .set_label(title)
        .set_resource_id(item.key)
        .set_tag(f"scorebridge:{item.key}")
    )
    resource = (
        DeepLinkResource()
        .set_url(tool_url(request, "launch"))
        .set_title(title)
        .set_custom_params({ITEM_ID_CUSTOM_PARAM: str(item.pk), ITEM_CUSTOM_PARAM: item.key})
        .set_lineitem(line_item)
    )
    registration = session.registration
    keys.signing_key()
    deep_link_service = DeepLink(
        registration.to_registration(),
        session.deployment.deployment_id,
        session.deep_link_settings,  # type: ignore[arg-type]
    )
    return render(
        request,
        "lti/deep_link_return.html",
        {
            "return_url": session.deep_link_settings["deep_link_return_url"],
            "jwt": deep_link_service.get_response_jwt([resource]),
        },
    )


# --- Instructor review ----------------------------------------------------------------------


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


@csrf_exempt
@framed
@require_GET
def review(request: HttpRequest, token: str) -> HttpResponse:
    """The course's submissions, and the students who have not answered yet."""
    session = _session(request, token)
    _require_instructor(session)
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


def _render_submission_review(request: HttpRequest, session: sessions.LaunchSession):  # type: ignore[no-untyped-def]
    """One student's answers for the link (``for_user``), or, for an instructor launch without
    ``for_user``, every student's answers for the link (the class's results)."""
    links = _context_links(session).filter(
        resource_link_id=session.resource_link_id,
        lti_user__registration_id=session.registration_id,
    )
    whole_class = not session.for_user_sub
    if whole_class:
        _require_instructor(session)
        links = links.order_by("lti_user__name", "lti_user__sub", "-attempt")
    else:
        links = links.filter(lti_user__sub=session.for_user_sub).order_by("-attempt")
    return render(
        request,
        "lti/submission_review.html",
        {
            "session": session,
            "whole_class": whole_class,
            "entries": [(link, _feedback(link)) for link in links[:2000]],
        },
    )


@csrf_exempt
@framed
@require_http_methods(["GET", "POST"])
def review_submission(request: HttpRequest, token: str, submission_id: uuid.UUID) -> HttpResponse:
    """One answer with the override form; an override is sent to the gradebook."""
    session = _session(request, token)
    _require_instructor(session)
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
                reverse("lti:review-one", kwargs={"token": token, "submission_id": link.pk})
            )
    link.refresh_from_db()
    return render(
        request,
        "lti/review_one.html",
        {
            "session": session,
            "link": link,
            "error": error,
            "feedback": _feedback(link),
            "similar": scored_like_these(link.submission),
        },
        status=400 if error else 200,
    )


# --- Answer groups --------------------------------------------------------------------------


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


@csrf_exempt
@framed
@require_http_methods(["GET", "POST"])
def review_groups(request: HttpRequest, token: str) -> HttpResponse:
    """One item's answers in this course, grouped by similarity (``scoring_plugin.answer_groups``)
    with their size and score spread, least confident first; POST scores a whole group, each
    answer through the one override function (its audit entry, its grade to the gradebook)."""
    session = _session(request, token)
    _require_instructor(session)
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
                reverse("lti:review-groups", kwargs={"token": token})
                + f"?{query}{'&' if query else ''}scored={len(links)}"
            )
    filters = scoring_review.ReviewFilter.from_query(params)
    show_reviewed = params.get("reviewed", "") in ("1", "on", "true")
    groups: list[answer_groups.AnswerGroup] = []
    links_by_id: dict[str, LtiSubmission] = {}
    if item is not None:
        scoped = filters.apply(
            _context_links(session).filter(
                submission__item=item, submission__status=Submission.Status.SCORED
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
