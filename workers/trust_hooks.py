"""What runs after a model version finished training (issue 18): the gaming check and the model
card. Called once from ``run_training``; it never fails the training (a problem is logged and
the version stays ready)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from django.conf import settings
from django.db import transaction

from ml_core.engine import ScoreRequest
from ml_core.gaming import GamingItem, GamingReport, ScoreFn, gaming_check
from scoring_plugin.artifact_store import version_folder
from scoring_plugin.models import AuditLog, ModelVersion

logger = logging.getLogger(__name__)

# High-scoring answers the check builds shuffled, padded and invisible-character answers from.
GAMING_SOURCES = 50


def after_training(version_id: int) -> None:
    """Gaming check (stored in the version's metrics) and model card files beside its artifact;
    then, if the version was activated and earns credit above
    ``SCOREBRIDGE_GAMING_MAX_CREDIT_RATE``, the previous version is activated again. Called
    for every trained version: trained, distilled and merged ones."""
    try:
        version = ModelVersion.objects.select_related("item").get(pk=version_id)
        report = run_gaming_check(version)
        ModelVersion.objects.filter(pk=version.pk).update(
            metrics={**(version.metrics or {}), "gaming": report.to_json()}
        )
        version.refresh_from_db()
        block_if_gameable(version, report)
    except Exception:  # the card then says the check did not run
        logger.exception("gaming check of version %s failed", version_id)
    try:
        from scoring_plugin.model_cards import store_card_files

        store_card_files(ModelVersion.objects.select_related("item").get(pk=version_id))
    except Exception:  # the trained version stays usable without its card
        logger.exception("model card of version %s failed", version_id)


def version_scorer(version: ModelVersion) -> tuple[ScoreFn, object]:
    """``score(texts)`` with this version, loaded apart from the item's live model (under its
    own key in this process's serving set, whatever its kind), and a function that unloads it."""
    from ml_core.merge.group import is_group_folder
    from workers import engine_host

    folder = version_folder(version)
    if is_group_folder(folder):  # a group knows its items by their keys
        from ml_core.merge.group import GroupScorer

        group = GroupScorer(
            folder,
            settings.SCORING_BACKBONE or None,
            device=settings.SCORING_DEVICE or None,
        )

        def score_group(texts: Sequence[str]) -> tuple[list[int | None], list[float | None]]:
            results = group.score_requests([ScoreRequest(version.item.key, t) for t in texts])
            return [r.score for r in results], [r.confidence for r in results]

        return score_group, lambda: None
    serving = engine_host.serving()
    key = f"gaming:{version.label}"
    serving.ensure(key, version.kind, version.label, folder)

    def score(texts: Sequence[str]) -> tuple[list[int | None], list[float | None]]:
        results = serving.score([ScoreRequest(key, t) for t in texts])
        return [r.score for r in results], [r.confidence for r in results]

    return score, lambda: serving.retire(key)


def run_gaming_check(version: ModelVersion) -> GamingReport:
    item = version.item
    high = list(
        item.scored_answers.filter(score=item.max_score)
        .order_by("pk")
        .values_list("text", flat=True)[:GAMING_SOURCES]
    )
    score, unload = version_scorer(version)
    try:
        return gaming_check(
            GamingItem(
                item.prompt,
                item.reference_answer,
                high,
                item.max_score,
                item.language,
                settings.SCORING_MAX_ANSWER_CHARS,
            ),
            score,
            n=settings.SCOREBRIDGE_GAMING_ANSWERS,
        )
    finally:
        unload()  # type: ignore[operator]


def block_if_gameable(version: ModelVersion, report: GamingReport) -> bool:
    """Undo the automatic activation of a version above the gaming limit; True if undone."""
    from scoring_plugin import audit

    limit = settings.SCOREBRIDGE_GAMING_MAX_CREDIT_RATE
    if limit is None or report.worst_credit_rate <= limit or not version.is_active:
        return False
    from scoring_plugin.services import activate_version

    with transaction.atomic():
        previous = audit.previously_active(version.item)
        if previous is not None:  # the version that scored before: no limit applies to it
            activate_version(previous)
        else:
            ModelVersion.objects.filter(pk=version.pk).update(is_active=False)
        audit.record(
            AuditLog.Action.ROLLBACK,
            "system:gaming-check",
            model_version=version,
            details={
                "blocked": version.label,
                "worst_credit_rate": report.worst_credit_rate,
                "limit": limit,
                "active_now": previous.label if previous else None,
            },
        )
    logger.warning(
        "%s earns credit for %.0f%% of one kind of gaming answers (limit %.0f%%): not active",
        version.label,
        100 * report.worst_credit_rate,
        100 * limit,
    )
    return True
