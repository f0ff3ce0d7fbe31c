"""Registering the tool with a platform: LTI Dynamic Registration (Moodle 4.x, Canvas) and the
Canvas developer-key JSON configuration.

Dynamic registration: the platform opens ``/lti/register/?openid_configuration=...&
registration_token=...``; the tool reads the platform's OpenID configuration, posts its own
client registration to the platform's registration endpoint, and stores the returned client id
(and deployment id, when given) as a django-lti registration. Deployments start inactive unless
``SCOREBRIDGE_LTI_AUTO_ACTIVATE_DEPLOYMENTS`` is on; an admin activates them.
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

import requests
from django.conf import settings
from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET
from lti_tool.models import LtiDeployment, LtiRegistration

from lti import keys
from lti.frames import forget_platform_origins, framed
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
    from lti.views import tool_url

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
    placement = {"message_type": "LtiDeepLinkingRequest", "target_link_uri": urls["launch"]}
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
                                "message_type": "LtiResourceLinkRequest",
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
            "type": "LtiDeepLinkingRequest",
            "target_link_uri": urls["launch"],
            "label": f"{settings.LTI_TOOL_TITLE} item",
            "placements": ["assignment_selection", "link_selection", "ContentArea"],
        },
        {"type": "LtiResourceLinkRequest", "target_link_uri": urls["launch"]},
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


def _fetch_platform_configuration(url: str, token: str) -> dict[str, object]:
    if urlsplit(url).scheme not in ("https", "http"):
        raise RegistrationError("openid_configuration must be an http(s) URL.")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        response = requests.get(url, headers=headers, timeout=20)
        response.raise_for_status()
        config = response.json()
    except (requests.RequestException, ValueError) as exc:
        raise RegistrationError(f"Cannot read the platform's configuration: {exc}") from exc
    if not isinstance(config, dict):
        raise RegistrationError("The platform's configuration is not a JSON object.")
    missing = [name for name in (*_REQUIRED, "registration_endpoint") if not config.get(name)]
    if missing:
        raise RegistrationError(f"The platform's configuration lacks {', '.join(missing)}.")
    return config


def register(request: HttpRequest, config_url: str, token: str) -> LtiRegistration:
    """Run dynamic registration against the platform behind ``config_url``."""
    keys.signing_key()
    platform = _fetch_platform_configuration(config_url, token)
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        response = requests.post(
            str(platform["registration_endpoint"]),
            json=client_registration(request, platform),
            headers=headers,
            timeout=20,
        )
        response.raise_for_status()
        answer = response.json()
    except (requests.RequestException, ValueError) as exc:
        raise RegistrationError(f"The platform refused the registration: {exc}") from exc
    client_id = str(answer.get("client_id") or "")
    if not client_id:
        raise RegistrationError("The platform's answer has no client_id.")
    platform_info = platform.get(PLATFORM_CONFIGURATION) or {}
    product = (
        platform_info.get("product_family_code", "") if isinstance(platform_info, dict) else ""
    )
    with transaction.atomic():
        registration, _ = LtiRegistration.objects.update_or_create(
            issuer=str(platform["issuer"]),
            client_id=client_id,
            defaults={
                "name": f"{product or 'LTI platform'} {urlsplit(str(platform['issuer'])).netloc}",
                "auth_url": str(platform["authorization_endpoint"]),
                "token_url": str(platform["token_endpoint"]),
                "keyset_url": str(platform["jwks_uri"]),
                "is_active": True,
            },
        )
        tool_config = answer.get(TOOL_CONFIGURATION) or {}
        deployment_id = tool_config.get("deployment_id") if isinstance(tool_config, dict) else None
        if deployment_id:
            LtiDeployment.objects.get_or_create(
                registration=registration,
                deployment_id=str(deployment_id),
                defaults={"is_active": settings.LTI_AUTO_ACTIVATE_DEPLOYMENTS},
            )
    forget_platform_origins()
    logger.info("dynamic registration: %s client_id=%s", registration.issuer, client_id)
    return registration


@csrf_exempt
@framed
@require_GET
def dynamic_registration(request: HttpRequest) -> HttpResponse:
    config_url = request.GET.get("openid_configuration", "")
    token = request.GET.get("registration_token", "")
    if not config_url:
        return render(
            request,
            "lti/registered.html",
            {"error": "Start the registration from the platform (openid_configuration missing)."},
            status=400,
        )
    try:
        registration = register(request, config_url, token)
    except RegistrationError as exc:
        return render(request, "lti/registered.html", {"error": str(exc)}, status=400)
    return render(
        request,
        "lti/registered.html",
        {
            "registration": registration,
            "deployments": registration.deployments.all(),
        },
    )
