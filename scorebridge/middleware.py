"""Content-Security-Policy from ``SCOREBRIDGE_CSP`` (or the production profile's default)."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

HEADER = "Content-Security-Policy"


def merge(policy: str, existing: str) -> str:
    """``policy`` with the directives ``existing`` sets (e.g. an LTI page's frame-ancestors)
    taken from ``existing``."""
    own = {d.split()[0].lower() for d in existing.split(";") if d.strip()}
    kept = [d.strip() for d in policy.split(";") if d.strip() and d.split()[0].lower() not in own]
    return "; ".join([*kept, existing.strip()])


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        policy = settings.CONTENT_SECURITY_POLICY
        if policy:
            existing = response.get(HEADER, "")
            response[HEADER] = merge(policy, existing) if existing else policy
        return response
