"""Calling the platform's LTI Advantage services (AGS scores and line items, NRPS rosters).

pylti1p3's ``ServiceConnector`` signs the client-credentials JWT and makes the requests; this
subclass keeps the access tokens in the shared Django cache, one per platform registration and
set of scopes, so every worker process reuses a token until shortly before it expires.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import requests
from django.conf import settings
from django.core.cache import caches
from lti_tool.models import LtiRegistration
from pylti1p3.assignments_grades import AssignmentsGradesService
from pylti1p3.names_roles import NamesRolesProvisioningService
from pylti1p3.service_connector import ServiceConnector

from lti import keys

SCORE_SCOPE = "https://purl.imsglobal.org/spec/lti-ags/scope/score"
LINEITEM_SCOPE = "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem"
RESULT_SCOPE = "https://purl.imsglobal.org/spec/lti-ags/scope/result.readonly"
NRPS_SCOPE = "https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly"
TIMEOUT_SECONDS = 20


def token_cache_key(registration: LtiRegistration, scopes: Sequence[str]) -> str:
    digest = hashlib.sha256("|".join(sorted(scopes)).encode()).hexdigest()[:24]
    return f"scorebridge-lti-token-{registration.pk}-{digest}"


class _TimeoutSession(requests.Session):
    def request(self, *args, **kwargs):  # type: ignore[no-untyped-def,override]
        kwargs.setdefault("timeout", TIMEOUT_SECONDS)
        return super().request(*args, **kwargs)


class CachedServiceConnector(ServiceConnector):
    """A ``ServiceConnector`` whose access tokens live in the shared cache."""

    def __init__(self, registration: LtiRegistration) -> None:
        keys.signing_key()
        session = _TimeoutSession()
        session.headers["User-Agent"] = "Scorebridge-LTI"
        super().__init__(registration.to_registration(), requests_session=session)
        self.registration_row = registration

    def get_access_token(self, scopes: Sequence[str]) -> str:
        cache = caches[settings.LTI_CACHE_ALIAS]
        key = token_cache_key(self.registration_row, scopes)
        token = cache.get(key)
        if isinstance(token, str):
            return token
        return self._fetch_token(scopes)

    def _fetch_token(self, scopes: Sequence[str]) -> str:
        self._access_tokens = {}  # pylti1p3's per-instance copy: never trusted over the cache
        original_post = self._requests_session.post
        expires_in: list[int] = []

        def post(*args, **kwargs):  # type: ignore[no-untyped-def]
            response = original_post(*args, **kwargs)
            if response.ok:
                try:
                    expires_in.append(int(response.json().get("expires_in", 3600)))
                except (ValueError, TypeError, AttributeError):
                    expires_in.append(3600)
            return response

        self._requests_session.post = post  # type: ignore[method-assign]
        try:
            token = super().get_access_token(scopes)
        finally:
            self._requests_session.post = original_post  # type: ignore[method-assign]
        lifetime = (expires_in[0] if expires_in else 3600) - 60
        if lifetime > 0:
            caches[settings.LTI_CACHE_ALIAS].set(
                token_cache_key(self.registration_row, scopes), token, lifetime
            )
        return token

    def forget_token(self, scopes: Sequence[str]) -> None:
        caches[settings.LTI_CACHE_ALIAS].delete(token_cache_key(self.registration_row, scopes))


def ags_service(
    registration: LtiRegistration,
    *,
    scopes: Sequence[str],
    line_items_url: str = "",
    line_item_url: str = "",
) -> tuple[AssignmentsGradesService, CachedServiceConnector]:
    connector = CachedServiceConnector(registration)
    data: dict[str, object] = {"scope": list(scopes), "lineitems": line_items_url}
    if line_item_url:
        data["lineitem"] = line_item_url
    return AssignmentsGradesService(connector, data), connector  # type: ignore[arg-type]


def roster(registration: LtiRegistration, memberships_url: str) -> list[dict[str, object]]:
    """Every member of a context, via Names and Role Provisioning (all pages)."""
    connector = CachedServiceConnector(registration)
    service = NamesRolesProvisioningService(
        connector,
        {"context_memberships_url": memberships_url},  # type: ignore[typeddict-item]
    )
    return list(service.get_members())  # type: ignore[arg-type]
