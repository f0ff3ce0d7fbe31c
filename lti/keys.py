"""The tool's signing keys (django-lti's ``Key`` rows).

The newest active key signs. When a newer key replaces it, the old one stays in the JWKS for a
grace period (``LTI_KEY_GRACE_DAYS``) so that platforms holding a cached copy of the JWKS, or a
token signed a moment before the rotation, still verify; after that it is dropped.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from lti_tool.models import Key


def signing_key() -> Key:
    """The key that signs now; the first one is generated on demand."""
    key = Key.objects.active().order_by("-datetime_created", "-pk").first()
    if key is not None:
        return key
    with transaction.atomic():
        return Key.objects.generate()


def published_keys(now: datetime | None = None) -> list[Key]:
    """Active keys that are the signing key or were superseded less than the grace period ago."""
    now = now or timezone.now()
    grace = timedelta(days=settings.LTI_KEY_GRACE_DAYS)
    keys = list(Key.objects.active().order_by("-datetime_created", "-pk"))
    published: list[Key] = []
    newer: Key | None = None
    for key in keys:
        if newer is None or newer.datetime_created + grace > now:
            published.append(key)
        newer = key
    return published


def jwks() -> dict[str, list[dict[str, str]]]:
    if not Key.objects.active().exists():
        signing_key()
    return {"keys": [key.as_jwk() for key in published_keys()]}


def rotate(now: datetime | None = None) -> tuple[Key, int]:
    """Make a new signing key; deactivate keys whose grace period is over. Returns (key, count)."""
    now = now or timezone.now()
    with transaction.atomic():
        new_key = Key.objects.generate()
        keep = {key.pk for key in published_keys(now)}
        retired = Key.objects.active().exclude(pk__in=keep).update(is_active=False)
    return new_key, retired
