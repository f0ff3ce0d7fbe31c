"""Registering the tool with a platform: LTI Dynamic Registration (Moodle 4.x, Canvas) and the
Canvas developer-key JSON configuration.

Dynamic registration works only through a one-time link an administrator makes in Scorebridge
admin (*LTI registration links*): ``/lti/register/<token>/``. The platform opens it with
``?openid_configuration=...&registration_token=...``; the tool reads the platform's OpenID
configuration, posts its own client registration to the platform's registration endpoint (the
configuration's own origin, never another), and stores the returned client id (and deployment
id, when given) as a new django-lti registration. It never changes an existing registration.
The new registration and deployment stay inactive until an administrator approves them, unless
the link was made with *auto activate*. Outbound requests go only to public addresses unless
``SCOREBRIDGE_LTI_ALLOW_PRIVATE_REGISTRATION_HOSTS`` is on (``lti.outbound``). The caller sees
one generic error for every failure; the reason goes to the server log and to the link's row.
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from django.conf import settings
from django.db import IntegrityError, transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET
from lti_tool.models import LtiDeployment, LtiRegistration

from lti import keys, outbound
from lti.frames import forget_platform_origins, framed
from lti.launch import MessageType
from lti.models import RegistrationInvite
from lti.platform_services import (
    LINEITEM_SCOPE,
    NRPS_SCOPE,
    RESULT_SCOPE,
    SCORE_SCOPE,
)

logger = logging.getLogger(__name__)

TOOL_SCOPES = [SCORE_SCOPE, LINEITEM_SCOPE, RESULT_SCOPE, NRPS_SCOPE]
TOOL_CONFIGURATION = "https://purl.imsglobal.org/spec/lti-tool-configuration"
PLATFORM_CONFIGURATION = "https://purl.imsglobal.org/spec/lti-platform-configuration"
_REQUIRED = ("issuer", "authorization_endpoint", "token_endpoint", "jwks_uri")


class RegistrationError(Exception):
    pass


def _urls(request: HttpRequest) -> dict[str, str]:
    from lti.views.common import tool_url

    return {
        "login": tool_url(request, "login"),
        "launch": tool_url(request, "launch"),
        "jwks": tool_url(request, "jwks"),
    }


@require_GET
def canvas_configuration(request: HttpRequest) -> JsonResponse:
    """Paste this URL into Canvas: Developer Keys > + LTI Key > Method: Enter URL."""
    urls = _urls(request)
    host = urlsplit(urls["launch"]).hostname or ""
    placement = {"message_type": MessageType.DEEP_LINKING, "target_link_uri": urls["launch"]}
    return JsonResponse(
        {
            "title": settings.LTI_TOOL_TITLE,
            "description": "Automatic scoring of short written answers.",
            "oidc_initiation_url": urls["login"],
            "target_link_uri": urls["launch"],
            "public_jwk_url": urls["jwks"],
            "scopes": TOOL_SCOPES,
            "extensions": [
                {
                    "domain": host,
                    "tool_id": "scorebridge",
                    "platform": "canvas.instructure.com",
                    "privacy_level": "public",
                    "settings": {
                        "text": settings.LTI_TOOL_TITLE,
                        "placements": [
                            {"placement": "assignment_selection", **placement},
                            {"placement": "link_selection", **placement},
                            {
                                "placement": "course_navigation",
                                "message_type": MessageType.RESOURCE_LINK,
                                "target_link_uri": urls["launch"],
                                "text": f"{settings.LTI_TOOL_TITLE} review",
                                "visibility": "admins",
                                "default": "disabled",
                            },
                        ],
                    },
                }
            ],
            "custom_fields": {},
        }
    )


def client_registration(request: HttpRequest, platform: dict[str, object]) -> dict[str, object]:
    """The tool's registration request (IMS LTI Dynamic Registration, section 3.5)."""
    urls = _urls(request)
    messages: list[dict[str, object]] = [
        {
            "type": MessageType.DEEP_LINKING,
            "target_link_uri": urls["launch"],
            "label": f"{settings.LTI_TOOL_TITLE} item",
            "placements": ["assignment_selection", "link_selection", "ContentArea"],
        },
        {"type": MessageType.RESOURCE_LINK, "target_link_uri": urls["launch"]},
    ]
    return {
        "application_type": "web",
        "response_types": ["id_token"],
        "grant_types": ["implicit", "client_credentials"],
        "initiate_login_uri": urls["login"],
        "redirect_uris": [urls["launch"]],
        "client_name": settings.LTI_TOOL_TITLE,
        "jwks_uri": urls["jwks"],
        "token_endpoint_auth_method": "private_key_jwt",
        "scope": " ".join(TOOL_SCOPES),
        TOOL_CONFIGURATION: {
            "domain": urlsplit(urls["launch"]).netloc,
            "target_link_uri": urls["launch"],
            "claims": ["iss", "sub", "name", "given_name", "family_name", "email"],
            "messages": messages,
            "https://canvas.instructure.com/lti/privacy_level": "public",
        },
    }


def _platform_configuration(url: str, token: str) -> dict[str, object]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        config = outbound.request_json("GET", url, headers=headers)
    except outbound.OutboundError as exc:
        raise RegistrationError(f"cannot read the platform configuration: {exc}") from exc
    if not isinstance(config, dict):
        raise RegistrationError("the platform configuration is not a JSON object")
    missing = [name for name in (*_REQUIRED, "registration_endpoint") if not config.get(name)]
    if missing:
        raise RegistrationError(f"the platform configuration lacks {', '.join(missing)}")
    for name in (*_REQUIRED, "registration_endpoint"):
        if not isinstance(config[name], str) or len(config[name]) > 200:
            raise RegistrationError(f"the platform configuration's {name} is not a short string")
    # The registration request goes to the configuration's own origin, nowhere else.
    config_origin = outbound.parse(url).origin
    try:
        endpoint_origin = outbound.parse(str(config["registration_endpoint"])).origin
    except outbound.OutboundError as exc:
        raise RegistrationError(f"bad registration_endpoint: {exc}") from exc
    if endpoint_origin != config_origin:
        raise RegistrationError(
            f"registration_endpoint origin {endpoint_origin} is not the configuration's "
            f"origin {config_origin}"
        )
    # URLs the tool stores and calls later (keys, tokens) must not point inside either.
    for name in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
        try:
            outbound.check_url(str(config[name]))
        except outbound.OutboundError as exc:
            raise RegistrationError(f"bad {name}: {exc}") from exc
    if not str(config["issuer"]).startswith(("https://", "http://")):
        raise RegistrationError("the issuer is not an http(s) URL")
    return config


def register(
    request: HttpRequest, invite: RegistrationInvite, config_url: str, token: str
) -> LtiRegistration:
    """Run dynamic registration against the platform behind ``config_url``.

    It only ever creates: an existing registration with the same issuer and client id is left
    as it is and the call is refused. What it creates is inactive unless the invite says
    ``auto_activate``.
    """
    keys.signing_key()
    platform = _platform_configuration(config_url, token)
    issuer = str(platform["issuer"])
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        answer = outbound.request_json(
            "POST",
            str(platform["registration_endpoint"]),
            headers=headers,
            body=client_registration(request, platform),
        )
    except outbound.OutboundError as exc:
        raise RegistrationError(f"the platform refused the registration: {exc}") from exc
    if not isinstance(answer, dict):
        raise RegistrationError("the platform's registration answer is not a JSON object")
    client_id = str(answer.get("client_id") or "")
    if not client_id or len(client_id) > 255:
        raise RegistrationError("the platform's registration answer has no usable client_id")
    platform_info = platform.get(PLATFORM_CONFIGURATION) or {}
    product = (
        str(platform_info.get("product_family_code", ""))[:50]
        if isinstance(platform_info, dict)
        else ""
    )
    active = invite.auto_activate
    try:
        with transaction.atomic():
            if LtiRegistration.objects.filter(issuer=issuer, client_id=client_id).exists():
                raise RegistrationError(
                    f"a registration for issuer {issuer} client_id {client_id} exists already; "
                    "it was left unchanged"
                )
            registration = LtiRegistration.objects.create(
                issuer=issuer,
                client_id=client_id,
                name=f"{product or 'LTI platform'} {urlsplit(issuer).netloc}"[:255],
                auth_url=str(platform["authorization_endpoint"]),
                token_url=str(platform["token_endpoint"]),
                keyset_url=str(platform["jwks_uri"]),
                is_active=active,
            )
            tool_config = answer.get(TOOL_CONFIGURATION) or {}
            deployment_id = (
                tool_config.get("deployment_id") if isinstance(tool_config, dict) else None
            )
            if deployment_id:
                LtiDeployment.objects.create(
                    registration=registration,
                    deployment_id=str(deployment_id)[:255],
                    is_active=active or settings.LTI_AUTO_ACTIVATE_DEPLOYMENTS,
                )
    except IntegrityError as exc:  # a concurrent registration of the same client id
        raise RegistrationError(f"registration of {issuer} {client_id} collided: {exc}") from exc
    forget_platform_origins()
    logger.info(
        "dynamic registration through link %s: %s client_id=%s active=%s",
        invite.pk,
        registration.issuer,
        client_id,
        active,
    )
    return registration


GENERIC_ERROR = (
    "The registration could not be completed. Ask the Scorebridge administrator to check the "
    "server log and to make a new registration link."
)
INVALID_LINK = (
    "This registration link is not valid: it was used already, it expired, or it never "
    "existed. Ask the Scorebridge administrator for a new one."
)


def _refuse(request: HttpRequest, message: str, status: int) -> HttpResponse:
    return render(request, "lti/registered.html", {"error": message}, status=status)


@csrf_exempt
@framed
@require_GET
def registration_needs_link(request: HttpRequest) -> HttpResponse:
    """The old anonymous endpoint: registration needs a link made by an administrator."""
    return _refuse(
        request,
        "Scorebridge accepts dynamic registration only through a one-time registration link "
        "made by its administrator.",
        403,
    )


@csrf_exempt
@framed
@require_GET
def dynamic_registration(request: HttpRequest, invite_token: str) -> HttpResponse:
    config_url = request.GET.get("openid_configuration", "")
    registration_token = request.GET.get("registration_token", "")
    if not config_url:
        # Opening the link without the platform's parameters does not use it up.
        if not RegistrationInvite.is_open(invite_token):
            return _refuse(request, INVALID_LINK, 404)
        return _refuse(
            request,
            "Paste this link into the LMS as the tool's registration URL; the LMS opens it "
            "with its configuration.",
            400,
        )
    invite = RegistrationInvite.claim(invite_token)
    if invite is None:
        logger.warning("dynamic registration refused: unknown, used or expired link")
        return _refuse(request, INVALID_LINK, 404)
    try:
        registration = register(request, invite, config_url, registration_token)
    except RegistrationError as exc:
        logger.warning(
            "dynamic registration through link %s failed (configuration %s): %s",
            invite.pk,
            config_url[:300],
            exc,
        )
        RegistrationInvite.objects.filter(pk=invite.pk).update(outcome=f"failed: {exc}"[:2000])
        return _refuse(request, GENERIC_ERROR, 400)
    except Exception:
        logger.exception("dynamic registration through link %s failed", invite.pk)
        RegistrationInvite.objects.filter(pk=invite.pk).update(outcome="failed: internal error")
        return _refuse(request, GENERIC_ERROR, 400)
    RegistrationInvite.objects.filter(pk=invite.pk).update(
        registration=registration,
        outcome=(
            f"registered {registration.issuer} client_id {registration.client_id} "
            f"({'active' if registration.is_active else 'waiting for approval'})"
        ),
    )
    return render(
        request,
        "lti/registered.html",
        {
            "registration": registration,
            "deployments": registration.deployments.all(),
        },
    )
