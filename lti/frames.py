"""Tool pages live in the LMS's iframe: no X-Frame-Options, and a CSP ``frame-ancestors`` that
lists the registered platforms (plus the origin the launch came from)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from urllib.parse import urlsplit

from django.conf import settings
from django.core.cache import caches
from django.http import HttpRequest, HttpResponse
from lti_tool.models import LtiPlatformInstance, LtiRegistration

_CACHE_KEY = "scorebridge-lti-frame-ancestors"


def origin(url: str) -> str:
    """``https://host[:port]`` of a URL, or "" when it has none."""
    parts = urlsplit(url or "")
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return ""
    return f"{parts.scheme}://{parts.netloc}"


def platform_origins() -> list[str]:
    """Origins of active registrations (issuer, login URL) and of their platform instances."""
    cache = caches[settings.LTI_CACHE_ALIAS]
    cached = cache.get(_CACHE_KEY)
    if isinstance(cached, list):
        return cached
    found: set[str] = set()
    for issuer, auth_url in LtiRegistration.objects.active().values_list("issuer", "auth_url"):
        found.update({origin(issuer), origin(auth_url)})
    found.update(
        origin(url)
        for url in LtiPlatformInstance.objects.filter(
            deployments__registration__is_active=True
        ).values_list("url", flat=True)
    )
    result = sorted(o for o in found if o)
    cache.set(_CACHE_KEY, result, 300)
    return result


def forget_platform_origins() -> None:
    caches[settings.LTI_CACHE_ALIAS].delete(_CACHE_KEY)


def frame_ancestors(extra: Iterable[str] = ()) -> str:
    origins = [*platform_origins(), *settings.LTI_EXTRA_FRAME_ANCESTORS, *extra]
    unique = list(dict.fromkeys(o for o in origins if o))
    return "frame-ancestors 'self' " + " ".join(unique)


def framed(
    view: Callable[..., HttpResponse],
) -> Callable[..., HttpResponse]:
    """Let the LMS frame this view: drop X-Frame-Options, set the CSP frame-ancestors."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
        response = view(request, *args, **kwargs)
        extra = getattr(request, "lti_frame_origins", ())
        response["Content-Security-Policy"] = frame_ancestors(extra)
        response["Referrer-Policy"] = "same-origin"
        response.xframe_options_exempt = True  # type: ignore[attr-defined]
        return response

    return wrapper
