"""OIDC login, launch, JWKS and deep linking: the LTI messages the platform sends."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from urllib.parse import parse_qs, urlencode, urlsplit

from django.conf import settings
from django.core.cache import caches
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
    JsonResponse,
)
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils import translation
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET
from lti_tool.lti_core.constants import ContextRole
from lti_tool.lti_core.utils import normalize_role
from lti_tool.models import LtiLaunch
from lti_tool.utils import sync_data_from_launch
from lti_tool.views import OIDCLoginInitView
from pylti1p3.contrib.django import DjangoOIDCLogin
from pylti1p3.deep_link import DeepLink
from pylti1p3.deep_link_resource import DeepLinkResource
from pylti1p3.exception import LtiException, OIDCException
from pylti1p3.lineitem import LineItem

from lti import client_storage, keys, sessions
from lti.frames import framed, origin
from lti.launch import (
    CLAIM,
    LaunchError,
    MessageType,
    NeedsClientStorage,
    ToolConfig,
    bind_state_to_nonce,
    launch_storage,
    validate_launch,
)
from lti.people import display_name
from lti.views.common import (
    ITEM_CUSTOM_PARAM,
    ITEM_ID_CUSTOM_PARAM,
    LOCALE_PREFIX,
    STAFF_ROLES,
    ItemGone,
    error_page,
    item_gone_page,
    launch_page,
    linked_item,
    session_item,
    tool_url,
)
from lti.views.instructor import render_submission_review
from lti.views.learner import learner_state
from scoring_plugin.models import Item

logger = logging.getLogger(__name__)


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
            LOCALE_PREFIX + token, language, settings.LTI_LAUNCH_TTL_SECONDS
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
        is_instructor=bool(roles & STAFF_ROLES),
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
    if message_type == MessageType.DEEP_LINKING:
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
    if message_type == MessageType.SUBMISSION_REVIEW:
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


@require_GET
def jwks(request: HttpRequest) -> JsonResponse:
    """The tool's public keys: the signing key and superseded keys still in their grace period."""
    response = JsonResponse(keys.jwks())
    response["Cache-Control"] = "public, max-age=300"
    return response


@launch_page("GET")
def page(request: HttpRequest, session: sessions.LaunchSession) -> HttpResponse:
    """The page a launch opens, by its message type: deep linking's item picker, the platform's
    submission review, the instructor's course review, or the learner's item page."""
    if session.message_type == MessageType.DEEP_LINKING:
        return render(
            request,
            "lti/deep_link.html",
            {"session": session, "items": Item.objects.order_by("key")},
        )
    if session.message_type == MessageType.SUBMISSION_REVIEW:
        return render_submission_review(request, session)
    if session.is_instructor:
        return HttpResponseRedirect(reverse("lti:review", kwargs={"token": session.token}))
    try:
        item = session_item(session)
    except ItemGone:
        return item_gone_page(request)
    return render(
        request,
        "lti/answer.html",
        {"session": session, "item": item, "state": learner_state(session, item)},
    )


@launch_page("POST", instructor=True)
def deep_link(request: HttpRequest, session: sessions.LaunchSession) -> HttpResponse:
    """Return the chosen item to the platform as a resource link with a line item."""
    if session.message_type != MessageType.DEEP_LINKING:
        raise Http404("not a deep linking launch")
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
