"""The LTI app's rows about LMS users, as providers for privacy and retention
(``scoring_plugin.lms_user_data``), registered from ``LtiConfig.ready``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from lti_tool.models import LtiUser

from lti.models import LtiSubmission, UsedNonce
from scoring_plugin.lms_user_data import register_answer_links, register_expiry_purge


def _iso(value: object) -> str | None:
    return value.isoformat() if hasattr(value, "isoformat") else None  # type: ignore[union-attr]


class GradeLinks:
    """Each LTI answer's course, resource link, attempt and grade passback."""

    name = "lti"

    def find(self, users: Sequence[LtiUser]) -> Mapping[str, object]:
        rows = LtiSubmission.objects.select_related("context", "resource_link")
        return {str(link.submission_id): link for link in rows.filter(lti_user__in=users)}

    def export(self, link: object | None) -> dict[str, object] | None:
        if not isinstance(link, LtiSubmission):
            return None
        return {
            "course": link.context.title or link.context.id_on_platform,
            "resource_link": link.resource_link.id_on_platform,
            "attempt": link.attempt,
            "final_score": link.final_score,
            "grade_sent": link.posted_grade,
            "passback_status": link.passback_status,
            "posted_at": _iso(link.posted_at),
        }

    def pseudonymise(self, submission_ids: Sequence[object]) -> None:
        for link in LtiSubmission.objects.filter(pk__in=submission_ids):
            grade = link.posted_grade if isinstance(link.posted_grade, dict) else {}
            link.passback_error = ""
            link.posted_grade = {k: v for k, v in grade.items() if k != "comment"}
            link.save(update_fields=["passback_error", "posted_grade"])


def _purge_nonces() -> dict[str, int]:
    return {"expired_nonces": UsedNonce.purge_expired()}


def register() -> None:
    register_answer_links(GradeLinks())
    register_expiry_purge("lti.nonces", _purge_nonces)
