"""How a person from the LMS is named on the tool's pages.

Platforms send as much or as little as their privacy settings allow: a full name, only given and
family names, only an email, or nothing at all (the 1EdTech "no personal data" launch). The
``sub`` is an opaque platform id, never shown as a name; without any personal data a person is
"Anonymous user" with a short tag derived from the id, so an instructor can still tell two
anonymous students apart.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from lti_tool.models import LtiUser

ANONYMOUS = "Anonymous user"


def _tag(sub: str) -> str:
    return hashlib.sha256(sub.encode()).hexdigest()[:6]


def name_from(claims: Mapping[str, object]) -> str:
    """A name from OIDC-style claims (``name``, ``given_name``, ``family_name``, ``email``,
    ``sub``/``user_id``): as NRPS members and launch tokens carry them."""
    full = str(claims.get("name") or "").strip()
    if full:
        return full
    parts = [str(claims.get(k) or "").strip() for k in ("given_name", "family_name")]
    joined = " ".join(p for p in parts if p)
    if joined:
        return joined
    email = str(claims.get("email") or "").strip()
    if email:
        return email
    sub = str(claims.get("sub") or claims.get("user_id") or "")
    return f"{ANONYMOUS} {_tag(sub)}" if sub else ANONYMOUS


def display_name(user: LtiUser) -> str:
    """The name of an LMS user as the tool's pages show it."""
    return name_from(
        {
            "name": user.name,
            "given_name": user.given_name,
            "family_name": user.family_name,
            "email": user.email,
            "sub": user.sub,
        }
    )
