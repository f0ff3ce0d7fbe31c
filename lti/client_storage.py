"""The LTI client-side postMessage storage (1EdTech "LTI Client Side postMessages"), used for the
OIDC state when the platform offers it (``lti_storage_target`` in the login request, as Canvas
and others send it) instead of a cookie, which browsers block in a cross-site frame.

At login the tool makes a random secret, keeps only its SHA-256 under the state in the shared
LTI cache, and the login page asks the platform's window to store the secret
(``lti.put_data``) before it goes on to the platform's auth URL. At launch the browser asks the
platform for it again (``lti.get_data``) and posts it with the id_token; the launch is accepted
only when it hashes to what was kept. The state travels in URLs, the secret never does: only
the browser that logged in can complete the launch, as with the state cookie.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import asdict, dataclass

from django.conf import settings
from django.core.cache import caches

_PREFIX = "scorebridge-lti-client-state-"
SECRET_FIELD = "lti_storage_secret"
LIFETIME_SECONDS = 600


@dataclass(frozen=True)
class StoredState:
    """What the tool keeps about a login whose state lives in the platform's storage."""

    secret_sha256: str
    target: str
    platform_origin: str


def storage_key(state: str) -> str:
    """The key under which the platform stores the secret: one per login, so that launches in
    several tabs do not overwrite each other."""
    return "scorebridge-" + state


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def remember(state: str, target: str, platform_origin: str) -> str:
    """Keep a new secret's hash for ``state``; return the secret for the platform to store."""
    secret = secrets.token_urlsafe(32)
    record = StoredState(_digest(secret), target, platform_origin)
    caches[settings.LTI_CACHE_ALIAS].set(_PREFIX + state, asdict(record), LIFETIME_SECONDS)
    return secret


def recall(state: str) -> StoredState | None:
    """The record for ``state`` when its login used the platform's storage, else None."""
    if not state or len(state) > 200:
        return None
    data = caches[settings.LTI_CACHE_ALIAS].get(_PREFIX + state)
    return StoredState(**data) if isinstance(data, dict) else None


def matches(record: StoredState, secret: str) -> bool:
    return hmac.compare_digest(record.secret_sha256, _digest(secret or ""))


def forget(state: str) -> None:
    caches[settings.LTI_CACHE_ALIAS].delete(_PREFIX + state)
