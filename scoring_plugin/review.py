"""Reviewing automatic scores: filters, overrides, agreement with instructors, CSV export, and
turning reviewed answers into training data. Used by the admin and by the LTI review pages."""

from __future__ import annotations

import csv
import io
import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from django.conf import settings
from django.db import transaction
from django.db.models import F, FloatField, Q, QuerySet, Value
from django.db.models.functions import Coalesce

from ml_core.metrics import accuracy, confusion_matrix, quadratic_weighted_kappa
from scoring_plugin.artifact_store import version_folder_or_none
from scoring_plugin.models import Item, ModelVersion, ScoredAnswer, Submission

logger = logging.getLogger(__name__)

REVIEW_SOURCE = "review"
REVIEW_KEY_PREFIX = "review:"


# --- Filters --------------------------------------------------------------------------------


@dataclass
class ReviewFilter:
    """What an instructor asked to see. ``apply(queryset, prefix)`` filters Submissions, or
    rows of another model that reach a Submission through ``prefix`` (``"submission__"``)."""

    needs_review: bool = False
    low_confidence: float | None = None
    item_key: str = ""
    unreviewed: bool = False
    review_requested: bool = False

    @classmethod
    def from_query(cls, params: object) -> ReviewFilter:
        get = getattr(params, "get", lambda _k, _d=None: None)
        low: float | None = None
        raw = str(get("low_confidence", "") or "").strip()
        if raw:
            try:
                low = min(max(float(raw), 0.0), 1.0)
            except ValueError:
                low = None  # a malformed filter shows everything rather than an error
            if low is not None and low != low:  # NaN
                low = None
        return cls(
            needs_review=get("needs_review", "") in ("1", "on", "true"),
            low_confidence=low,
            item_key=str(get("item", "") or "")[:200],
            unreviewed=get("unreviewed", "") in ("1", "on", "true"),
            review_requested=get("review_requested", "") in ("1", "on", "true"),
        )

    def apply(self, queryset: QuerySet, prefix: str = "") -> QuerySet:  # type: ignore[type-arg]
        p = prefix
        if self.needs_review:
            # The threshold recorded when it was scored, else the item's, else its model's,
            # else the setting; or a gaming flag. Annotated, not filtered on directly: a filter
            # would inner-join the model version and drop answers without one.
            queryset = queryset.annotate(
                review_threshold_in_force=Coalesce(
                    F(f"{p}review_threshold"),
                    F(f"{p}item__review_threshold"),
                    F(f"{p}model_version__review_threshold"),
                    Value(float(settings.SCOREBRIDGE_REVIEW_THRESHOLD), output_field=FloatField()),
                )
            ).filter(
                (
                    Q(**{f"{p}confidence__lt": F("review_threshold_in_force")})
                    | ~Q(**{f"{p}flags": []})
                )
                & Q(**{f"{p}status": Submission.Status.SCORED})
                # no model for the item yet: the answer needs a human score (issue 16)
                | Q(**{f"{p}waiting_for": Submission.WaitingFor.MODEL})
            )
        if self.low_confidence is not None:
            queryset = queryset.filter(**{f"{p}confidence__lt": self.low_confidence})
        if self.item_key:
            queryset = queryset.filter(**{f"{p}item__key": self.item_key})
        if self.unreviewed or self.needs_review:
            # A reviewed answer needs no more review, whatever its confidence.
            queryset = queryset.filter(**{f"{p}reviewed_score__isnull": True})
        if self.review_requested:
            queryset = queryset.filter(**{f"{p}review_requested": True})
        return queryset


# --- Agreement ------------------------------------------------------------------------------


@dataclass
class Agreement:
    """How auto-scores compare with human scores for one item."""

    item_key: str
    max_score: int
    n: int = 0
    qwk: float | None = None
    accuracy: float | None = None
    confusion: list[list[int]] = field(default_factory=list)


def agreement(item: Item, pairs: Sequence[tuple[int, int]]) -> Agreement:
    """``pairs`` are (human score, auto score)."""
    result = Agreement(item_key=item.key, max_score=item.max_score, n=len(pairs))
    if not pairs:
        return result
    labels = item.max_score + 1
    human = [h for h, _ in pairs]
    auto = [a for _, a in pairs]
    result.confusion = confusion_matrix(human, auto, labels).astype(int).tolist()
    result.accuracy = float(accuracy(human, auto))
    result.qwk = float(quadratic_weighted_kappa(human, auto, labels)) if len(pairs) > 1 else None
    return result


def reviewed_pairs(submissions: Iterable[Submission]) -> dict[int, list[tuple[int, int]]]:
    """(reviewed score, auto score) per item id, from submissions that have both."""
    out: dict[int, list[tuple[int, int]]] = {}
    for s in submissions:
        if s.reviewed_score is not None and s.score is not None:
            out.setdefault(s.item_id, []).append((s.reviewed_score, s.score))
    return out


def agreements(queryset: QuerySet[Submission]) -> list[Agreement]:
    """Agreement per item for the reviewed, scored submissions in ``queryset``."""
    rows = queryset.filter(reviewed_score__isnull=False, score__isnull=False).only(
        "item_id", "reviewed_score", "score"
    )
    pairs = reviewed_pairs(rows)
    items = Item.objects.in_bulk(list(pairs))
    return [agreement(items[pk], pairs[pk]) for pk in sorted(pairs, key=lambda k: items[k].key)]


def version_confusion(version: ModelVersion) -> tuple[list[list[int]], str]:
    """The version's confusion matrix and where it comes from (its test set or reviews)."""
    stored = version.metrics.get("confusion") if isinstance(version.metrics, dict) else None
    if isinstance(stored, list) and stored and all(isinstance(r, list) for r in stored):
        return [[int(c) for c in row] for row in stored], "test set"
    pairs = [
        (s.reviewed_score, s.score)
        for s in version.submissions.filter(reviewed_score__isnull=False, score__isnull=False)
    ]
    if not pairs:
        # Answers scored by this version whose text a human scored in the item's data.
        human = dict(version.item.scored_answers.values_list("text", "score"))
        pairs = [
            (human[text], score)
            for text, score in version.submissions.filter(score__isnull=False).values_list(
                "text", "score"
            )
            if text in human
        ]
    if not pairs:
        return [], ""
    labels = version.item.max_score + 1
    matrix = confusion_matrix([h for h, _ in pairs], [a for _, a in pairs], labels)
    return matrix.astype(int).tolist(), f"{len(pairs)} answers scored by humans and this version"


def training_history(version: ModelVersion) -> list[dict[str, float]]:
    """Per-epoch losses from the artifact's JSON files (``training.history``); [] if none."""
    folder = version_folder_or_none(version) if version.artifact_key else None
    if folder is None or not folder.is_dir():
        return []
    for path in sorted(folder.glob("*.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            logger.warning("unreadable artifact file %s", path)
            continue
        if not isinstance(data, dict):
            continue
        training = data.get("training") if isinstance(data.get("training"), dict) else data
        history = training.get("history") if isinstance(training, dict) else None
        if isinstance(history, list):
            return [h for h in history if isinstance(h, dict)]
    return []


# --- Export ---------------------------------------------------------------------------------

CSV_COLUMNS = [
    "submission_id",
    "item",
    "student",
    "created_at",
    "status",
    "auto_score",
    "confidence",
    "needs_review",
    "model_version",
    "reviewed_score",
    "review_comment",
    "final_score",
    "answer",
]


def _cell(value: object) -> str:
    text = "" if value is None else str(value)
    # A cell starting with = + - @ runs as a formula in spreadsheets.
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def export_csv(rows: Iterable[tuple[Submission, str]]) -> str:
    """CSV of (submission, student label) rows, safe to open in a spreadsheet."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    for s, student in rows:
        final = s.reviewed_score if s.reviewed_score is not None else s.score
        writer.writerow(
            [
                _cell(v)
                for v in (
                    s.pk,
                    s.item.key,
                    student,
                    s.created_at.isoformat(),
                    s.status,
                    s.score,
                    "" if s.confidence is None else f"{s.confidence:.4f}",
                    int(s.needs_review),
                    s.model_version.label if s.model_version else "",
                    s.reviewed_score,
                    s.review_comment,
                    final,
                    s.text,
                )
            ]
        )
    return buffer.getvalue()


# --- Reviewed answers as training data ------------------------------------------------------


def copy_reviewed_answers(item: Item) -> tuple[int, int]:
    """Copy the item's reviewed submissions into ScoredAnswer rows marked ``review``, with who
    scored each (``scored_by``) and, for an analytic item scored per criterion, the
    instructor's criterion scores (so the answer can train the item's per-criterion heads; a
    total alone cannot).

    Keyed by submission id, so running it again updates rows instead of adding them.
    Returns (created, updated).
    """
    created = updated = 0
    reviewed = Submission.objects.filter(item=item, reviewed_score__isnull=False)
    with transaction.atomic():
        fields = ("pk", "text", "reviewed_score", "reviewed_criterion_scores", "reviewed_by")
        for s in reviewed.only(*fields):
            _, was_created = ScoredAnswer.objects.update_or_create(
                item=item,
                response_key=f"{REVIEW_KEY_PREFIX}{s.pk}",
                defaults={
                    "text": s.text,
                    "score": s.reviewed_score,
                    "source": REVIEW_SOURCE,
                    "scored_by": s.reviewed_by,
                    "criterion_scores": dict(s.reviewed_criterion_scores or {}),
                },
            )
            created += was_created
            updated += not was_created
    return created, updated
