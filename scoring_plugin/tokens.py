"""API tokens, stored hashed.

A token is shown once, when it is made (``manage.py ensure_admin``, or admin > API tokens >
Add); the database keeps only its SHA-256 and its first characters (to tell tokens apart).
Clients send it as before: ``Authorization: Token <key>``.

Each web process keeps a token it checked for ``SCOREBRIDGE_API_TOKEN_CACHE_SECONDS`` (one
query and a model instantiation per request were 2.2 ms of the 7.4 ms an answer cost the web,
issue 19): a token deleted, or its user deactivated, in another process is refused within that
time, and at once in the process that did it (the save or delete signal clears its cache).
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models.signals import post_delete, post_save
from django.utils import timezone
from rest_framework.authentication import TokenAuthentication
from rest_framework.exceptions import AuthenticationFailed

PREFIX_LENGTH = 8
# last_used_at is written at most this often per token (one UPDATE, not one per request).
LAST_USED_RESOLUTION = timedelta(minutes=1)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class ApiToken(models.Model):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100, blank=True, help_text="What uses this token.")
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    prefix = models.CharField(
        max_length=PREFIX_LENGTH, editable=False, help_text="The token's first characters."
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        app_label = "scoring_plugin"
        verbose_name = "API token"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.user}{', ' + self.name if self.name else ''})"

    @classmethod
    def create_for(cls, user: Any, name: str = "") -> tuple[ApiToken, str]:
        """A new token for ``user`` and its key (the only time the key is known)."""
        key = secrets.token_hex(20)
        token = cls.objects.create(
            user=user, name=name, key_hash=hash_key(key), prefix=key[:PREFIX_LENGTH]
        )
        return token, key

    @classmethod
    def find(cls, key: str) -> ApiToken | None:
        """The token whose key this is, with its user (a copy of the cached one, if cached)."""
        if not key or len(key) > 200:
            return None
        digest = hash_key(key)
        cached = _checked.get(digest)
        if cached is not None:
            return cached
        token = cls.objects.select_related("user").filter(key_hash=digest).first()
        if token is not None:
            _checked.put(digest, token)
        return token


@dataclass(frozen=True)
class _Entry:
    token: ApiToken
    expires: float


class _CheckedTokens:
    """Tokens found in the database, by key hash, for a bounded time (this process only)."""

    MAX_ENTRIES = 1000

    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()

    def get(self, digest: str) -> ApiToken | None:
        entry = self._entries.get(digest)
        if entry is None or entry.expires <= time.monotonic():
            return None
        # The dictionary found it by hash; the stored hash is compared in constant time too.
        if not hmac.compare_digest(entry.token.key_hash, digest):
            return None
        # Copies: a request may cache permissions on its user; the next one must not see them.
        token = copy.copy(entry.token)
        token.user = copy.copy(entry.token.user)
        return token

    def put(self, digest: str, token: ApiToken) -> None:
        seconds = settings.SCOREBRIDGE_API_TOKEN_CACHE_SECONDS
        if seconds <= 0:
            return
        pristine = copy.copy(token)
        pristine.user = copy.copy(token.user)
        with self._lock:
            if len(self._entries) >= self.MAX_ENTRIES:
                self._entries.clear()
            self._entries[digest] = _Entry(pristine, time.monotonic() + seconds)

    def touch(self, digest: str, used_at: object) -> None:
        """Remember the last-use time written, so cached hits do not write it again."""
        with self._lock:
            entry = self._entries.get(digest)
            if entry is not None:
                entry.token.last_used_at = used_at

    def clear(self, **_: object) -> None:
        with self._lock:
            self._entries.clear()


_checked = _CheckedTokens()
# A token or user changed in this process is seen at once by this process.
post_save.connect(_checked.clear, sender=ApiToken, dispatch_uid="api-token-cache-save")
post_delete.connect(_checked.clear, sender=ApiToken, dispatch_uid="api-token-cache-delete")
post_save.connect(_checked.clear, sender=settings.AUTH_USER_MODEL, dispatch_uid="api-token-user")
post_delete.connect(
    _checked.clear, sender=settings.AUTH_USER_MODEL, dispatch_uid="api-token-user-delete"
)


def forget_checked_tokens() -> None:
    """Check every token in the database again on its next use (tests)."""
    _checked.clear()


class HashedTokenAuthentication(TokenAuthentication):
    """DRF's ``Authorization: Token <key>``, checked against the stored hashes."""

    def authenticate_credentials(self, key: str) -> tuple[Any, ApiToken]:
        token = ApiToken.find(key)
        if token is None:
            raise AuthenticationFailed("Invalid token.")
        if not token.user.is_active:
            raise AuthenticationFailed("User inactive or deleted.")
        now = timezone.now()
        if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
            ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
            _checked.touch(token.key_hash, now)
        return token.user, token
