"""Secrets never reach a log: launch page tokens, registration links and tokens, OIDC values.

Tool pages inside the LMS frame are addressed by a launch token in their path
(``/lti/s/<token>/...``, valid for hours; an instructor's allows overrides), a registration
link carries its one-time token (``/lti/register/<token>/``), and the platform adds
``registration_token`` to it. Access logs (gunicorn), Django's request warnings ("Not Found:
/lti/s/...") and referrers would write them down. :func:`redact` replaces them with
``[redacted]``; :class:`RedactingGunicornLogger` applies it to every access-log field and
:class:`RedactFilter` to Django's log records.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from gunicorn.glogging import Logger as GunicornLogger

REDACTED = "[redacted]"
# Path segments that are secrets: the launch token of tool pages, a registration link's token.
_PATH_SECRETS = re.compile(r"(/lti/(?:s|register)/)[^/?#\s\"']+")
# Query (or form) parameters that carry secrets.
SECRET_PARAMETERS = (
    "registration_token",
    "token",
    "id_token",
    "access_token",
    "refresh_token",
    "code",
    "state",
    "nonce",
    "key",
    "password",
    "client_secret",
)
_QUERY_SECRETS = re.compile(
    r"((?:^|[?&;\s])(?:" + "|".join(SECRET_PARAMETERS) + r")=)[^&;#\s\"']*", re.IGNORECASE
)
_SECRET_HEADERS = ("{authorization}i", "{cookie}i", "{set-cookie}o", "{x-csrftoken}i")


def redact(text: str) -> str:
    if "/lti/" not in text and "=" not in text:
        return text
    text = _PATH_SECRETS.sub(lambda m: m.group(1) + REDACTED, text)
    return _QUERY_SECRETS.sub(lambda m: m.group(1) + REDACTED, text)


class RedactingGunicornLogger(GunicornLogger):
    """gunicorn's logger; every access-log atom (request line, path, query, referrer, headers)
    passes through :func:`redact`, and credentials headers are never written."""

    def atoms(self, resp: Any, req: Any, environ: Any, request_time: Any) -> dict[str, Any]:
        atoms = super().atoms(resp, req, environ, request_time)
        for name, value in atoms.items():
            if isinstance(value, str):
                atoms[name] = redact(value)
        for name in _SECRET_HEADERS:
            if name in atoms:
                atoms[name] = REDACTED
        return atoms


class RedactFilter(logging.Filter):
    """Redacts a record's formatted message (e.g. django.request's "Not Found: <path>")."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken record is logging's problem, not ours
            return True
        cleaned = redact(message)
        if cleaned != message:
            record.msg = cleaned
            record.args = None
        return True
