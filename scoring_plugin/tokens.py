"""API tokens, stored hashed.

A token is shown once, when it is made (``manage.py ensure_admin``, or admin > API tokens >
Add); the database keeps only its SHA-256 and its first characters (to tell tokens apart).
Clients send it as before: ``Authorization: Token <key>``.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import models
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
        if not key or len(key) > 200:
            return None
        return cls.objects.select_related("user").filter(key_hash=hash_key(key)).first()


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
        return token.user, token
