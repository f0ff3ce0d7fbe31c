"""Retention: remove what is older than the configured days (settings ``RETAIN_*_DAYS``).

``purge()`` is run by the ``purge_expired_data`` task on the beat schedule. It is idempotent, it
reports what it removed (returned, logged and written to the audit log as counts), and it never
touches aggregates: model versions, their metrics and model cards, and imported training data.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.contrib.sessions.models import Session
from django.db import transaction
from django.db.models import Count
from django.utils import timezone
from lti_tool.models import LtiUser

from scoring_plugin.audit import record
from scoring_plugin.lms_user_data import expiry_purges
from scoring_plugin.models import AuditLog, ScoredAnswer, Submission
from scoring_plugin.review import REVIEW_KEY_PREFIX, REVIEW_SOURCE

logger = logging.getLogger(__name__)

FINAL = (Submission.Status.SCORED, Submission.Status.FAILED)
# Keys of audit details that hold free text someone wrote about a student.
FREE_TEXT_KEYS = ("comment",)


def _cutoff(days: int | None) -> object:
    return None if days is None else timezone.now() - timedelta(days=days)


def purge_answers(days: int | None) -> dict[str, int]:
    """Finished answers submitted before the cutoff, with their LTI links (cascade) and the
    training copies made from them."""
    cutoff = _cutoff(days)
    if cutoff is None:
        return {}
    old = Submission.objects.filter(created_at__lt=cutoff, status__in=FINAL)
    ids = list(old.values_list("pk", flat=True)[:10_000])
    with transaction.atomic():
        copies = ScoredAnswer.objects.filter(
            source=REVIEW_SOURCE, response_key__in=[f"{REVIEW_KEY_PREFIX}{pk}" for pk in ids]
        ).delete()[0]
        _, deleted = Submission.objects.filter(pk__in=ids).delete()
    return {
        "answers": deleted.get("scoring_plugin.Submission", 0),
        "lti_answer_links": deleted.get("lti.LtiSubmission", 0),
        "training_copies": copies,
    }


def purge_lti_identities(days: int | None) -> dict[str, int]:
    """LTI users not seen in a launch since the cutoff and with no answers left."""
    cutoff = _cutoff(days)
    if cutoff is None:
        return {}
    stale = (
        LtiUser.objects.filter(datetime_modified__lt=cutoff)
        .annotate(answers=Count("submissions"))
        .filter(answers=0)
    )
    _, deleted = LtiUser.objects.filter(pk__in=list(stale.values_list("pk", flat=True))).delete()
    return {
        "lti_identities": deleted.get("lti_tool.LtiUser", 0),
        "lti_memberships": deleted.get("lti_tool.LtiMembership", 0),
    }


def purge_logs(days: int | None, log_dir: Path) -> dict[str, int]:
    """Expired sessions and the apps' expiring rows (LTI nonces) always; log files older than
    the cutoff."""
    counts = {
        "expired_sessions": Session.objects.filter(expire_date__lt=timezone.now()).delete()[0],
    }
    for purge_expired in expiry_purges():
        counts |= purge_expired()
    if days is not None and log_dir.is_dir():
        oldest = time.time() - days * 86400
        removed = 0
        for path in log_dir.rglob("*.log*"):
            if path.is_file() and path.stat().st_mtime < oldest:
                path.unlink(missing_ok=True)
                removed += 1
        counts["log_files"] = removed
    return counts


def purge_audit_details(days: int | None) -> dict[str, int]:
    """Drop free text (override comments) from audit entries older than the cutoff; the entry
    (who, what, when, the scores) stays."""
    cutoff = _cutoff(days)
    if cutoff is None:
        return {}
    scrubbed = 0
    for key in FREE_TEXT_KEYS:
        for entry in AuditLog.objects.filter(created_at__lt=cutoff, details__has_key=key):
            details = {k: v for k, v in entry.details.items() if k != key}
            details[f"{key}_purged"] = True
            AuditLog.objects.filter(pk=entry.pk).update(details=details)
            scrubbed += 1
    return {"audit_details_scrubbed": scrubbed}


def purge(actor: str = "system:retention") -> dict[str, object]:
    """Apply every retention setting once; returns (and logs and audits) what was removed."""
    removed: dict[str, int] = {}
    removed |= purge_answers(settings.RETAIN_ANSWERS_DAYS)
    removed |= purge_lti_identities(settings.RETAIN_LTI_IDENTITIES_DAYS)
    removed |= purge_logs(settings.RETAIN_LOGS_DAYS, Path(settings.LOG_DIR))
    removed |= purge_audit_details(settings.RETAIN_AUDIT_DETAILS_DAYS)
    report: dict[str, object] = {
        "removed": removed,
        "days": {
            "answers": settings.RETAIN_ANSWERS_DAYS,
            "lti_identities": settings.RETAIN_LTI_IDENTITIES_DAYS,
            "logs": settings.RETAIN_LOGS_DAYS,
            "audit_details": settings.RETAIN_AUDIT_DETAILS_DAYS,
        },
    }
    record(AuditLog.Action.PURGE, actor, details=report)
    logger.info(
        "retention purge removed %s",
        ", ".join(f"{k}={v}" for k, v in sorted(removed.items())) or "nothing",
    )
    return report
