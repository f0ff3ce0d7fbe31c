"""A validated launch, as the tool pages in the LMS frame use it afterwards.

After a launch passes validation the tool stores the few facts its pages need under a random
token in the shared LTI cache and puts the token in the page URLs. Pages therefore work when the
browser blocks third-party cookies in the LMS iframe, and every page is scoped to exactly one
platform, deployment, context, resource link and user: the ids come from the cache, never from
the request.
"""

from __future__ import annotations

import secrets
from dataclasses import asdict, dataclass, field

from django.conf import settings
from django.core.cache import caches
from django.http import Http404
from lti_tool.models import LtiContext, LtiDeployment, LtiRegistration, LtiResourceLink, LtiUser

_PREFIX = "scorebridge-lti-session-"


@dataclass
class LaunchSession:
    """What a tool page knows about the launch that opened it."""

    message_type: str
    registration_id: int
    deployment_id: int
    context_id: int
    user_id: int
    is_instructor: bool
    is_learner: bool
    user_name: str = ""
    resource_link_id: int | None = None
    item_key: str = ""
    item_id: int | None = None
    """The item by its stable id (sessions stored before issue 12 have only the key)."""
    line_item_url: str = ""
    line_items_url: str = ""
    ags_scopes: list[str] = field(default_factory=list)
    memberships_url: str = ""
    for_user_sub: str = ""
    return_url: str = ""
    deep_link_settings: dict[str, object] = field(default_factory=dict)
    frame_origins: list[str] = field(default_factory=list)
    token: str = ""

    # --- rows, re-read on each request ----------------------------------------------------
    @property
    def registration(self) -> LtiRegistration:
        return LtiRegistration.objects.get(pk=self.registration_id)

    @property
    def deployment(self) -> LtiDeployment:
        return LtiDeployment.objects.select_related("registration").get(pk=self.deployment_id)

    @property
    def context(self) -> LtiContext:
        return LtiContext.objects.get(pk=self.context_id, deployment_id=self.deployment_id)

    @property
    def user(self) -> LtiUser:
        return LtiUser.objects.get(pk=self.user_id, registration_id=self.registration_id)

    @property
    def resource_link(self) -> LtiResourceLink | None:
        if self.resource_link_id is None:
            return None
        return LtiResourceLink.objects.get(pk=self.resource_link_id, context_id=self.context_id)


def save(session: LaunchSession) -> str:
    """Store ``session`` under a new token and return the token."""
    session.token = secrets.token_urlsafe(32)
    caches[settings.LTI_CACHE_ALIAS].set(
        _PREFIX + session.token, asdict(session), settings.LTI_LAUNCH_TTL_SECONDS
    )
    return session.token


def load(token: str) -> LaunchSession:
    """The session for ``token``; 404 when unknown or expired (the page says to relaunch)."""
    if not token or len(token) > 100:
        raise Http404("unknown launch")
    data = caches[settings.LTI_CACHE_ALIAS].get(_PREFIX + token)
    if not isinstance(data, dict):
        raise Http404("This launch has expired. Open the activity again from the course.")
    return LaunchSession(**data)
