"""The decision log: per automatically scored answer, what decided its score, for an auditor.

One row per scored answer in a date range (by when it was scored), optionally one course (the
LTI context's id or title): the model version that scored it, the class probabilities, the
review threshold in force, whether it was flagged or needed review, whether a human reviewed it,
and the final score. No answer text and no student identity: the log is safe to hand over.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from django.db.models import Q, QuerySet
from django.utils import timezone

from scoring_plugin.models import Submission

COLUMNS = [
    "submission_id",
    "scored_at",
    "course",
    "item",
    "model_version",
    "model_kind",
    "probabilities",
    "auto_score",
    "confidence",
    "review_threshold",
    "threshold_source",
    "flags",
    "needs_review",
    "human_reviewed",
    "reviewed_by",
    "reviewed_at",
    "final_score",
    "max_score",
]


@dataclass(frozen=True)
class DecisionQuery:
    """Answers scored from ``start`` to ``end`` (whole days, inclusive), optionally one course."""

    start: date
    end: date
    course: str = ""

    def submissions(self) -> QuerySet[Submission]:
        tz = timezone.get_current_timezone()
        since = timezone.make_aware(datetime.combine(self.start, time.min), tz)
        until = timezone.make_aware(datetime.combine(self.end + timedelta(days=1), time.min), tz)
        rows = Submission.objects.filter(
            status=Submission.Status.SCORED, scored_at__gte=since, scored_at__lt=until
        )
        if self.course:
            rows = rows.filter(
                Q(lti__context__id_on_platform=self.course) | Q(lti__context__title=self.course)
            )
        return rows.select_related("item", "model_version__item", "lti__context").order_by(
            "scored_at", "pk"
        )


def _course(submission: Submission) -> str:
    link = getattr(submission, "lti", None)
    if link is None:
        return ""
    return link.context.id_on_platform or link.context.title


def rows(query: DecisionQuery) -> Iterator[dict[str, object]]:
    for s in query.submissions().iterator(chunk_size=2000):
        recorded = s.review_threshold is not None
        reviewed = s.reviewed_score is not None
        yield {
            "submission_id": str(s.pk),
            "scored_at": s.scored_at.isoformat() if s.scored_at else None,
            "course": _course(s),
            "item": s.item.key,
            "model_version": s.model_version.label if s.model_version else None,
            "model_kind": s.model_version.kind if s.model_version else None,
            "probabilities": [round(float(p), 6) for p in s.probabilities or []],
            "auto_score": s.score,
            "confidence": s.confidence,
            "review_threshold": s.effective_review_threshold,
            # Answers scored before thresholds were recorded show the one that applies now.
            "threshold_source": "recorded" if recorded else "current",
            "flags": list(s.flags or []),
            "needs_review": s.needs_review,
            "human_reviewed": reviewed,
            "reviewed_by": s.reviewed_by if reviewed else "",
            "reviewed_at": s.reviewed_at.isoformat() if s.reviewed_at else None,
            "final_score": s.reviewed_score if reviewed else s.score,
            "max_score": s.item.max_score,
        }


def as_json(query: DecisionQuery) -> str:
    return json.dumps(
        {
            "from": query.start.isoformat(),
            "to": query.end.isoformat(),
            "course": query.course or None,
            "decisions": list(rows(query)),
        },
        indent=1,
    )


def as_csv(query: DecisionQuery) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS)
    writer.writeheader()
    for row in rows(query):
        cells = {
            k: json.dumps(v) if isinstance(v, list) else ("" if v is None else v)
            for k, v in row.items()
        }
        # A cell starting with = + - @ runs as a formula in spreadsheets.
        cells = {
            k: "'" + v if isinstance(v, str) and v[:1] in ("=", "+", "-", "@") else v
            for k, v in cells.items()
        }
        writer.writerow(cells)
    return buffer.getvalue()


def render(query: DecisionQuery, fmt: str) -> tuple[str, str]:
    """(body, content type) in ``fmt`` (``csv`` or ``json``)."""
    if fmt == "csv":
        return as_csv(query), "text/csv; charset=utf-8"
    return as_json(query), "application/json"
