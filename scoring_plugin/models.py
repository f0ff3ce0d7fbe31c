"""The database is the source of truth: every answer and every model version is a row here."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class Item(models.Model):
    """A short constructed-response question with its rubric."""

    class Language(models.TextChoices):
        ENGLISH = "en", "English"
        GERMAN = "de", "Deutsch"

    key = models.CharField(
        max_length=200,
        unique=True,
        help_text="Stable identifier, e.g. the item_id of the imported CSV.",
    )
    prompt = models.TextField(help_text="The question shown to students.")
    reference_answer = models.TextField(blank=True, help_text="Rubric or model answer.")
    language = models.CharField(max_length=2, choices=Language.choices, default=Language.ENGLISH)
    max_score = models.PositiveSmallIntegerField(help_text="Highest score; scores run 0..max.")
    review_threshold = models.FloatField(
        null=True,
        blank=True,
        default=None,
        help_text="Auto-scores with a confidence below this are flagged for an instructor. "
        "Empty: the threshold the scoring model chose for the target agreement "
        "(SCOREBRIDGE_TARGET_AGREEMENT), or SCOREBRIDGE_REVIEW_THRESHOLD for models without one.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["key"]

    def __str__(self) -> str:
        return self.key

    @property
    def active_version(self) -> ModelVersion | None:
        return self.model_versions.filter(is_active=True).first()


class ScoredAnswer(models.Model):
    """A human-scored answer: training and evaluation data for the item's models."""

    class Split(models.TextChoices):
        NONE = "", "(tool decides)"
        TRAIN = "train", "train"
        VAL = "val", "validation"
        TEST = "test", "test"

    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="scored_answers")
    response_key = models.CharField(max_length=200, help_text="response_id of the imported CSV.")
    text = models.TextField(blank=True)
    score = models.PositiveSmallIntegerField()
    split = models.CharField(max_length=5, choices=Split.choices, blank=True, default="")
    source = models.CharField(
        max_length=10,
        choices=[("import", "imported"), ("review", "reviewed submission")],
        default="import",
        help_text="Where the human score comes from: a CSV import or an instructor's review.",
    )
    imported_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["item", "response_key"]
        constraints = [
            models.UniqueConstraint(
                fields=["item", "response_key"], name="unique_response_per_item"
            )
        ]

    def __str__(self) -> str:
        return f"{self.item.key}/{self.response_key}"


class ModelVersion(models.Model):
    """A trained model that can score one item; at most one version per item is active."""

    class Kind(models.TextChoices):
        HEAD = "head", "frozen backbone + head"
        LORA = "lora", "frozen backbone + LoRA adapter + head"
        FULL = "full", "fully fine-tuned"
        MERGED = "merged", "merged group (shared layers + this item's head)"
        DISTILLED = "distilled", "distilled student (tiny BiLSTM, ONNX)"
        AUTO = "auto", "auto: lexical + frozen backbone, stacked and calibrated (default)"

    class Status(models.TextChoices):
        PENDING = "pending", "pending"
        TRAINING = "training", "training"
        READY = "ready", "ready"
        FAILED = "failed", "failed"
        CANCELLED = "cancelled", "cancelled"

    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="model_versions")
    number = models.PositiveIntegerField(help_text="1, 2, ... per item.")
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.HEAD)
    parent = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="derived_versions",
        help_text="The teacher of a distilled version.",
    )
    backbone = models.CharField(max_length=300, blank=True)
    artifact_path = models.CharField(max_length=500, blank=True)
    metrics = models.JSONField(default=dict, blank=True)
    review_threshold = models.FloatField(
        null=True,
        blank=True,
        help_text="The confidence below which this version's scores go to review, chosen at "
        "training for the target agreement; empty for kinds that do not choose one.",
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    progress = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    is_active = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    trained_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["item", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["item", "number"], name="unique_version_number"),
            models.UniqueConstraint(
                fields=["item"], condition=Q(is_active=True), name="one_active_version_per_item"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.item.key} v{self.number} ({self.kind})"

    @property
    def label(self) -> str:
        """What the engine reports as the model version of a score."""
        return f"{self.item.key}@v{self.number}"


class Submission(models.Model):
    """One student's answer. It moves received -> queued -> scored or failed."""

    class Status(models.TextChoices):
        RECEIVED = "received", "received"
        QUEUED = "queued", "queued"
        SCORED = "scored", "scored"
        FAILED = "failed", "failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    item = models.ForeignKey(Item, on_delete=models.PROTECT, related_name="submissions")
    text = models.TextField()
    submitted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    client_reference = models.CharField(
        max_length=200, blank=True, help_text="The caller's own id for this answer, if any."
    )
    status = models.CharField(
        max_length=10, choices=Status.choices, default=Status.RECEIVED, db_index=True
    )
    score = models.PositiveSmallIntegerField(null=True, blank=True)
    probabilities = models.JSONField(default=list, blank=True)
    confidence = models.FloatField(null=True, blank=True)
    truncated = models.BooleanField(
        default=False, help_text="The answer was longer than the model reads; its end was cut."
    )
    model_version = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="submissions"
    )
    error = models.TextField(blank=True)
    reviewed_score = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        help_text="The score an instructor gave after reviewing; it wins over the automatic one.",
    )
    review_comment = models.TextField(blank=True)
    reviewed_by = models.CharField(max_length=200, blank=True)
    reviewed_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0, help_text="Times it was enqueued.")
    created_at = models.DateTimeField(auto_now_add=True)
    queued_at = models.DateTimeField(null=True, blank=True)
    scored_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status", "queued_at"], name="submission_status_queued")]

    def __str__(self) -> str:
        return f"{self.item.key}: {self.id}"

    @property
    def review_threshold(self) -> float:
        """The confidence below which this answer goes to review: the item's own threshold if
        an admin set one, else the one its scoring model chose, else SCOREBRIDGE_REVIEW_THRESHOLD."""
        if self.item.review_threshold is not None:
            return self.item.review_threshold
        version = self.model_version
        if version is not None and version.review_threshold is not None:
            return version.review_threshold
        return float(settings.SCOREBRIDGE_REVIEW_THRESHOLD)

    @property
    def needs_review(self) -> bool:
        return (
            self.status == self.Status.SCORED
            and self.confidence is not None
            and self.confidence < self.review_threshold
        )

    @property
    def latency_seconds(self) -> float | None:
        if self.scored_at is None:
            return None
        return (self.scored_at - self.created_at).total_seconds()

    def mark_failed(self, reason: str) -> None:
        self.status = self.Status.FAILED
        self.error = reason
        self.scored_at = timezone.now()


class AuditLog(models.Model):
    """Who changed a score or which model scores an item, and when. Rows are never edited."""

    class Action(models.TextChoices):
        OVERRIDE = "override", "score overridden"
        ACTIVATE = "activate", "model version activated"
        ROLLBACK = "rollback", "rolled back to the previous version"
        RETRAIN = "retrain", "retraining with reviewed answers"

    action = models.CharField(max_length=10, choices=Action.choices, db_index=True)
    actor = models.CharField(max_length=200, help_text="Admin username or LTI user.")
    item = models.ForeignKey(
        Item, null=True, blank=True, on_delete=models.SET_NULL, related_name="audit_entries"
    )
    model_version = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    submission = models.ForeignKey(
        Submission, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    details = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.actor}: {self.get_action_display()}"
