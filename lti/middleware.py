"""Cookies and window headers for the tool's pages, which live in the LMS's cross-site iframe."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

# Python's http.cookies (before 3.14) knows no Partitioned attribute; the SameSite value is
# written out verbatim, so it carries the flag.
_SAMESITE_PARTITIONED = "None; Partitioned"


class LtiCookieMiddleware:
    """Every cookie set on a response under ``/lti/`` (OIDC state, session, CSRF) becomes
    ``SameSite=None; Secure; Partitioned``: the LMS shows the tool in a cross-site iframe, where
    a Lax cookie is not sent and browsers that block third-party cookies still keep a
    partitioned one (CHIPS), scoped to the LMS's site.

    Responses under ``/lti/`` also get ``Cross-Origin-Opener-Policy: unsafe-none``: a tool page
    opened in a new window from the LMS frame must keep ``window.opener`` to send a deep linking
    response back to that frame (Django's default ``same-origin`` would cut it).
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if not request.path.startswith("/lti/"):
            return response
        for morsel in response.cookies.values():
            morsel["samesite"] = _SAMESITE_PARTITIONED
            morsel["secure"] = True
        response["Cross-Origin-Opener-Policy"] = "unsafe-none"
        return response
