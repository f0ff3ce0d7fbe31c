"""Cookies for pages inside the LMS iframe."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse


class LtiCookieMiddleware:
    """Session and CSRF cookies set on responses under ``/lti/`` become ``SameSite=None;
    Secure``: the LMS shows the tool in a cross-site iframe, where a Lax cookie is not sent."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if not request.path.startswith("/lti/"):
            return response
        for name in (settings.SESSION_COOKIE_NAME, settings.CSRF_COOKIE_NAME):
            morsel = response.cookies.get(name)
            if morsel is not None:
                morsel["samesite"] = "None"
                morsel["secure"] = True
        return response
