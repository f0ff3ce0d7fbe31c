"""The audit log: one row per score override, model activation, rollback or retraining."""

from __future__ import annotations

from collections.abc import Mapping

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction

from scoring_plugin.models import AuditLog, Item, ModelVersion, Submission
from scoring_plugin.services import activate_version


def record(
    action: str,
    actor: str,
    *,
    item: Item | None = None,
    model_version: ModelVersion | None = None,
    submission: Submission | None = None,
    details: Mapping[str, object] | None = None,
) -> AuditLog:
    """Append an entry; the item is taken from the version or submission when not given."""
    if item is None and model_version is not None:
        item = model_version.item
    if item is None and submission is not None:
        item = submission.item
    return AuditLog.objects.create(
        action=action,
        actor=actor[:200],
        item=item,
        model_version=model_version,
        submission=submission,
        details=dict(details or {}),
    )


def activate(version: ModelVersion, actor: str) -> ModelVersion | None:
    """Activate ``version``, logging which version it replaced; returns that version.

    Refused for a version whose gaming check (issue 18) found any kind of generated answer
    earning credit more often than ``SCOREBRIDGE_GAMING_MAX_CREDIT_RATE``.
    """
    limit = settings.SCOREBRIDGE_GAMING_MAX_CREDIT_RATE
    gaming = version.metrics.get("gaming") if isinstance(version.metrics, dict) else None
    worst = gaming.get("worst_credit_rate") if isinstance(gaming, dict) else None
    if limit is not None and isinstance(worst, (int, float)) and worst > limit:
        raise ValidationError(
            f"{version.label}: generated gaming answers earn credit {worst:.0%} of the time "
            f"(limit {limit:.0%}); see its model card."
        )
    with transaction.atomic():
        previous = version.item.model_versions.filter(is_active=True).exclude(pk=version.pk).first()
        activate_version(version)
        record(
            AuditLog.Action.ACTIVATE,
            actor,
            model_version=version,
            details={"version": version.label, "replaced": previous.label if previous else None},
        )
    return previous


def previously_active(item: Item) -> ModelVersion | None:
    """The version that was active before the current one, by the activation log."""
    current = item.active_version
    entries = AuditLog.objects.filter(
        item=item,
        action__in=[AuditLog.Action.ACTIVATE, AuditLog.Action.ROLLBACK],
        model_version__isnull=False,
    ).select_related("model_version")
    for entry in entries:  # newest first
        candidate = entry.model_version
        if candidate is None or (current is not None and candidate.pk == current.pk):
            continue
        if candidate.status == ModelVersion.Status.READY:
            return candidate
    # No log yet (versions activated by training): the newest other ready version.
    older = item.model_versions.filter(status=ModelVersion.Status.READY)
    if current is not None:
        older = older.exclude(pk=current.pk).filter(number__lt=current.number)
    return older.order_by("-number").first()


def roll_back(item: Item, actor: str) -> ModelVersion:
    """Activate the previously active version of ``item`` again."""
    target = previously_active(item)
    if target is None:
        raise ValidationError(f"Item '{item.key}' has no earlier ready version to roll back to.")
    current = item.active_version
    with transaction.atomic():
        activate_version(target)
        record(
            AuditLog.Action.ROLLBACK,
            actor,
            model_version=target,
            details={"version": target.label, "replaced": current.label if current else None},
        )
    return target
