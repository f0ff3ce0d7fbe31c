"""What other apps keep per LMS user, for privacy and retention to export, erase and purge.

``scoring_plugin`` owns answers; an app that links its own rows to them (the LTI app: grade
passback links and launch nonces) registers a provider from its ``AppConfig.ready``. So the
privacy and retention code reads those rows without importing the app: imports run one way,
``lti -> scoring_plugin``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from lti_tool.models import LtiUser


class AnswerLinks(Protocol):
    """An app's rows linked one-to-one to answers (``Submission``) of LMS users."""

    # the key of the app's section in each exported answer
    name: str

    def find(self, users: Sequence[LtiUser]) -> Mapping[str, object]:
        """The app's row for each answer of ``users``, by submission id (as text)."""

    def export(self, link: object | None) -> dict[str, object] | None:
        """One row as JSON-ready data (``None`` for an answer without one)."""

    def pseudonymise(self, submission_ids: Sequence[object]) -> None:
        """Remove free text and identifiers from the rows of these answers, keep the rest."""


_answer_links: dict[str, AnswerLinks] = {}
_expiry_purges: dict[str, Callable[[], dict[str, int]]] = {}


def register_answer_links(provider: AnswerLinks) -> None:
    """Called once per app from ``AppConfig.ready``; registering a name again replaces it."""
    _answer_links[provider.name] = provider


def register_expiry_purge(name: str, purge: Callable[[], dict[str, int]]) -> None:
    """A purge of rows that expire by themselves (run by retention each time, whatever the
    configured days); it returns counts by kind of row."""
    _expiry_purges[name] = purge


def answer_links() -> list[AnswerLinks]:
    return [_answer_links[name] for name in sorted(_answer_links)]


def expiry_purges() -> list[Callable[[], dict[str, int]]]:
    return [_expiry_purges[name] for name in sorted(_expiry_purges)]
