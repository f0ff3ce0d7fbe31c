"""The database is the source of truth: every answer and every model version is a row here."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Max, Q
from django.db.models.signals import pre_delete
from django.dispatch import receiver
from django.utils import timezone

from ml_core.data import ITEM_ID_PATTERN as ITEM_KEY_PATTERN

validate_item_key = RegexValidator(
    ITEM_KEY_PATTERN,
    "An item key starts with a letter or digit and holds only letters, digits, '.', '_' and "
    "'-' (no spaces or '/').",
    code="invalid_item_key",
)


class Item(models.Model):
    """A short constructed-response question with its rubric."""

    class Language(models.TextChoices):
        ENGLISH = "en", "English"
        GERMAN = "de", "Deutsch"

    key = models.CharField(
        max_length=200,
        unique=True,
        validators=[validate_item_key],
        help_text="Identifier, e.g. the item_id of the imported CSV: letters, digits, '.', '_', "
        "'-'. Links and pages refer to the item by its numeric id, so a key can be renamed.",
    )
    legacy_key = models.CharField(
        max_length=200,
        blank=True,
        db_index=True,
        editable=False,
        help_text="The key before migration 0004 made it a slug; LMS links placed before then "
        "still name it.",
    )
    title = models.CharField(
        max_length=200,
        blank=True,
        help_text="The heading students see (items CSV column 'title'); empty: the prompt's "
        "beginning. The key is never shown to students.",
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
    feedback = models.JSONField(
        default=dict,
        blank=True,
        help_text='What a student reads with each score, e.g. {"0": "Name both protocols.", '
        '"2": "Both named."} (items CSV columns feedback_0, feedback_1, ...).',
    )
    target_qwk = models.FloatField(
        null=True,
        blank=True,
        default=None,
        validators=[MinValueValidator(0.01), MaxValueValidator(0.99)],
        help_text="Cross-validated QWK a model that trained by itself from instructors' scores "
        "must reach to be activated (until then answers go to the instructor). Empty: "
        "SCOREBRIDGE_COLD_START_TARGET_QWK.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["key"]
        permissions = [
            ("train_item", "Can train, retrain, distill, merge and cancel item models"),
        ]

    def __str__(self) -> str:
        return self.key

    @property
    def active_version(self) -> ModelVersion | None:
        return self.model_versions.filter(is_active=True).first()

    @property
    def effective_target_qwk(self) -> float:
        """The QWK a self-trained model must reach: the item's own, else the setting's."""
        if self.target_qwk is not None:
            return float(self.target_qwk)
        return float(settings.SCOREBRIDGE_COLD_START_TARGET_QWK)

    def lowest_max_score(self) -> int:
        """The smallest ``max_score`` this item can have: its human scores, stored automatic
        scores and the classes of its active model must all stay within 0..max_score."""
        if self.pk is None:
            return 0
        floors = [
            self.scored_answers.aggregate(m=Max("score"))["m"],
            self.submissions.aggregate(m=Max("score"))["m"],
            self.submissions.aggregate(m=Max("reviewed_score"))["m"],
        ]
        active = self.active_version
        if active is not None and active.num_labels:
            floors.append(active.num_labels - 1)
        return max((f for f in floors if f is not None), default=0)

    @property
    def display_title(self) -> str:
        """The heading for students: the title, else the prompt's first line (shortened)."""
        if self.title:
            return self.title
        first = (self.prompt or "").strip().splitlines()[0] if self.prompt.strip() else ""
        return first if len(first) <= 80 else first[:77].rstrip() + "..."

    def feedback_for(self, score: int | None) -> str:
        """The authored feedback text for ``score`` ("" when none)."""
        if score is None or not isinstance(self.feedback, dict):
            return ""
        text = self.feedback.get(str(score), "")
        return text if isinstance(text, str) else ""

    def clean(self) -> None:
        super().clean()
        self._check_max_score()
        self._check_feedback()

    def _check_feedback(self) -> None:
        if not self.feedback:
            return
        if not isinstance(self.feedback, dict):
            raise ValidationError({"feedback": 'Enter an object like {"0": "text", "1": "text"}.'})
        for key, text in self.feedback.items():
            if not str(key).isdigit() or self.max_score is None or int(key) > self.max_score:
                raise ValidationError(
                    {"feedback": f"'{key}' is not a score from 0 to {self.max_score}."}
                )
            if not isinstance(text, str):
                raise ValidationError({"feedback": f"The feedback for score {key} is not text."})

    def _check_max_score(self) -> None:
        if self.pk is None or self.max_score is None:
            return
        floor = self.lowest_max_score()
        if self.max_score < floor:
            raise ValidationError(
                {
                    "max_score": f"Item '{self.key}' has scores up to {floor} (human scores, "
                    f"automatic scores or its active model's classes); max_score cannot be "
                    f"{self.max_score}."
                }
            )

    def save(self, *args: object, **kwargs: object) -> None:
        # Integrity rules hold for every writer (admin, import, shell), not only forms.
        validate_item_key(self.key)
        self._check_max_score()
        super().save(*args, **kwargs)  # type: ignore[arg-type]


class Criterion(models.Model):
    """One named criterion of an analytic item (issue 16): scored 0..``max_score`` on its own;
    the item's score is the sum of its criteria's, so their highest scores add up to the item's
    ``max_score``. An item with criteria trains the ``head`` kind (one head per criterion)."""

    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="criteria")
    name = models.CharField(
        max_length=40,
        help_text="items CSV column criterion:<name>; letters, digits, '.', '_', '-'.",
    )
    max_score = models.PositiveSmallIntegerField(help_text="Highest score of this criterion.")
    feedback = models.JSONField(
        default=dict,
        blank=True,
        help_text='What a student reads with each score of this criterion, e.g. {"0": "...", '
        '"1": "..."} (items CSV columns criterion:<name>:feedback_<score>).',
    )
    order = models.PositiveSmallIntegerField(default=0, help_text="Position in the rubric.")

    class Meta:
        ordering = ["item", "order", "pk"]
        verbose_name_plural = "criteria"
        constraints = [
            models.UniqueConstraint(fields=["item", "name"], name="unique_criterion_per_item")
        ]

    def __str__(self) -> str:
        return f"{self.item.key}: {self.name} (0-{self.max_score})"

    def clean(self) -> None:
        super().clean()
        if not isinstance(self.feedback, dict):
            raise ValidationError({"feedback": 'Enter an object like {"0": "text", "1": "text"}.'})
        for key, text in self.feedback.items():
            if not str(key).isdigit() or int(key) > self.max_score or not isinstance(text, str):
                raise ValidationError(
                    {"feedback": f"'{key}' is not a score from 0 to {self.max_score} with text."}
                )

    def feedback_for(self, score: int | None) -> str:
        """The authored feedback text for this criterion's ``score`` ("" when none)."""
        if score is None or not isinstance(self.feedback, dict):
            return ""
        text = self.feedback.get(str(score), "")
        return text if isinstance(text, str) else ""


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
        choices=[
            ("import", "imported"),
            ("review", "reviewed submission"),
            ("scored", "imported unscored, scored here"),
        ],
        default="import",
        help_text="Where the human score comes from: a CSV import, an instructor's review, or "
        "an instructor scoring an answer imported without a score.",
    )
    scored_by = models.CharField(
        max_length=200, blank=True, help_text="Who gave the score here (empty: from a file)."
    )
    groups = models.JSONField(
        default=dict,
        blank=True,
        help_text="Group name -> value from the import's group:<name> columns (model cards "
        "report results per group).",
    )
    criterion_scores = models.JSONField(
        default=dict,
        blank=True,
        help_text="Criterion name -> human score (analytic items; responses CSV columns "
        "score:<name>); empty for holistic items and scores given as a total only.",
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


class UnscoredAnswer(models.Model):
    """An answer imported without a score (issue 16): it waits for an instructor's score, then
    becomes a :class:`ScoredAnswer` (training data) and this row goes."""

    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="unscored_answers")
    response_key = models.CharField(max_length=200, help_text="response_id of the imported CSV.")
    text = models.TextField(blank=True)
    imported_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["item", "response_key"]
        constraints = [
            models.UniqueConstraint(
                fields=["item", "response_key"], name="unique_unscored_response_per_item"
            )
        ]

    def __str__(self) -> str:
        return f"{self.item.key}/{self.response_key} (needs a score)"


class ColdStartReport(models.Model):
    """The latest "what to score next" and learning curve of an item, computed by a worker."""

    class Status(models.TextChoices):
        PENDING = "pending", "pending"
        READY = "ready", "ready"
        FAILED = "failed", "failed"

    item = models.OneToOneField(Item, on_delete=models.CASCADE, related_name="cold_start")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    batch_size = models.PositiveSmallIntegerField(default=10)
    target_qwk = models.FloatField(default=0.7)
    result = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    requested_at = models.DateTimeField(default=timezone.now)
    computed_at = models.DateTimeField(null=True, blank=True)
    trained_on = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Scored answers the last training started by the learning curve used; it "
        "starts again only with more (once per new evidence).",
    )

    def __str__(self) -> str:
        return f"{self.item.key}: cold start ({self.status})"


class ModelVersionQuerySet(models.QuerySet):
    def delete(self):  # type: ignore[no-untyped-def]
        """Refuse, before deleting anything, when the selection holds the active version of an
        item or a version that scored answers (archive those)."""
        for version in self.filter(Q(is_active=True) | Q(submissions__isnull=False)).distinct()[:1]:
            problem = version.deletion_problem()
            raise models.ProtectedError(problem, {version})
        return super().delete()


class ModelVersion(models.Model):
    """A trained model that can score one item; at most one version per item is active."""

    objects = ModelVersionQuerySet.as_manager()

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
        ARCHIVED = "archived", "archived (kept: it scored answers)"

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
    artifact_key = models.CharField(
        max_length=500,
        blank=True,
        help_text="Where the artifact is stored: a key relative to the artifact store "
        "(SCOREBRIDGE_ARTIFACT_STORE, else the artifacts folder), never an absolute path.",
    )
    artifact_hash = models.CharField(
        max_length=80,
        blank=True,
        help_text="sha256 of the artifact's files (names and bytes), checked when a worker "
        "fetches it.",
    )
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
    active_at_start = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The item's active version when this one was started; training activates its "
        "result only if that one is still active.",
    )
    num_labels = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="Score classes the model predicts (max_score + 1)."
    )
    note = models.TextField(blank=True, help_text="Why a finished version was not activated.")
    activation_qwk = models.FloatField(
        null=True,
        blank=True,
        help_text="Activated after training only if its cross-validated QWK reaches this (a "
        "version that trained by itself from instructors' scores: the item's target); empty: "
        "no such condition.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    trained_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["item", "-number"]
        permissions = [
            ("activate_modelversion", "Can activate, roll back and archive model versions"),
        ]
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

    def deletion_problem(self) -> str:
        """Why this version must not be deleted ("" when it may be)."""
        if self.is_active:
            return f"{self} is active; activate another version first."
        if self.pk is not None and self.submissions.exists():
            return f"{self} scored answers; archive it instead of deleting it."
        return ""

    def delete(self, *args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        problem = self.deletion_problem()
        if problem:
            raise models.ProtectedError(problem, {self})
        return super().delete(*args, **kwargs)  # type: ignore[arg-type]


@receiver(pre_delete, sender=ModelVersion, dispatch_uid="scoring_keep_used_versions")
def _refuse_deleting_used_versions(
    sender: type[ModelVersion], instance: ModelVersion, origin: object = None, **kwargs: object
) -> None:
    """The last guard, for deletes that skip ``Model.delete`` and the queryset's check (a
    cascade from another model). Deleting the whole item (its versions go with it) is decided
    by the item: its answers protect it."""
    if isinstance(origin, Item) or getattr(origin, "model", None) is Item:
        return
    problem = instance.deletion_problem()
    if problem:
        raise models.ProtectedError(problem, {instance})


class Submission(models.Model):
    """One student's answer. It moves received -> queued -> scored or failed.

    While it is not scored, ``waiting_for`` says what it waits for; an answer never fails for
    lack of a worker, a broker or an active model, it waits for them.
    """

    class Status(models.TextChoices):
        RECEIVED = "received", "received"
        QUEUED = "queued", "queued"
        SCORED = "scored", "scored"
        FAILED = "failed", "failed"

    class WaitingFor(models.TextChoices):
        NOTHING = "", "-"
        BROKER = "broker", "waiting for the scoring queue"
        WORKER = "worker", "waiting for a scoring worker"
        MODEL = "model", "waiting for an active model"

    class ReviewedVia(models.TextChoices):
        NONE = "", "-"
        LTI = "lti", "LTI review page"
        GROUP = "group", "LTI answer group"
        ADMIN = "admin", "admin"
        API = "api", "API"

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
    criterion_scores = models.JSONField(
        default=dict,
        blank=True,
        help_text="Criterion name -> automatic score (analytic items); ``score`` is their sum.",
    )
    probabilities = models.JSONField(default=list, blank=True)
    confidence = models.FloatField(null=True, blank=True)
    truncated = models.BooleanField(
        default=False, help_text="The answer was longer than the model reads; its end was cut."
    )
    embedding = models.BinaryField(
        null=True,
        blank=True,
        editable=False,
        help_text="The pooled backbone vector the model scored (L2-normalised float16) for "
        "answer groups; comparable between answers scored by the same model version.",
    )
    model_version = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="submissions"
    )
    waiting_for = models.CharField(
        max_length=10,
        choices=WaitingFor.choices,
        blank=True,
        default="",
        db_index=True,
        help_text="What an answer not yet scored is waiting for.",
    )
    error = models.TextField(blank=True)
    review_threshold = models.FloatField(
        null=True,
        blank=True,
        help_text="The item's review threshold when the answer was scored (decision log).",
    )
    flags = models.JSONField(
        default=list,
        blank=True,
        help_text="Why the answer looks like gaming (copies the prompt, key-term list, "
        "invisible characters); a flagged answer goes to review whatever its confidence.",
    )
    reviewed_score = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        help_text="The score an instructor gave after reviewing; it wins over the automatic one "
        "and is what the LMS gradebook receives (scoring_plugin.overrides.apply_override).",
    )
    reviewed_criterion_scores = models.JSONField(
        default=dict,
        blank=True,
        help_text="Criterion name -> the instructor's score (analytic items scored per "
        "criterion); ``reviewed_score`` is their sum. Empty when the instructor gave a total only.",
    )
    review_comment = models.TextField(blank=True)
    reviewed_by = models.CharField(max_length=200, blank=True)
    reviewed_at = models.DateTimeField(null=True, blank=True)
    review_requested = models.BooleanField(
        default=False,
        db_index=True,
        help_text="The student asked for a human review; an instructor's score clears it.",
    )
    review_requested_at = models.DateTimeField(null=True, blank=True)
    reviewed_via = models.CharField(
        max_length=8,
        choices=ReviewedVia.choices,
        blank=True,
        default="",
        help_text="Where the instructor's score was given.",
    )
    attempts = models.PositiveSmallIntegerField(
        default=0, help_text="Times a scoring worker took it (re-sending does not count)."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    queued_at = models.DateTimeField(null=True, blank=True)
    scored_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status", "queued_at"], name="submission_status_queued")]
        permissions = [("rescore_submission", "Can score answers again")]

    def __str__(self) -> str:
        return f"{self.item.key}: {self.id}"

    @property
    def effective_review_threshold(self) -> float:
        """The confidence below which this answer goes to review: the threshold recorded when
        it was scored, else the item's own threshold if an admin set one, else the one its
        scoring model chose, else SCOREBRIDGE_REVIEW_THRESHOLD."""
        if self.review_threshold is not None:
            return self.review_threshold
        return review_threshold_for(self.item, self.model_version)

    @property
    def needs_review(self) -> bool:
        if self.status != self.Status.SCORED:
            return False
        if self.flags:
            return True
        return self.confidence is not None and self.confidence < self.effective_review_threshold

    @property
    def latency_seconds(self) -> float | None:
        if self.scored_at is None:
            return None
        return (self.scored_at - self.created_at).total_seconds()

    @property
    def criteria_summary(self) -> str:
        """An analytic item's automatic criterion scores in rubric order, e.g. "content 2/2,
        language 0/1" ("" for a holistic item or an unscored answer)."""
        return self._summary(self.criterion_scores)

    @property
    def reviewed_criteria_summary(self) -> str:
        """The instructor's criterion scores, as :attr:`criteria_summary` ("" when the
        instructor gave a total only, or no score)."""
        if self.reviewed_score is None:
            return ""
        return self._summary(self.reviewed_criterion_scores)

    def _summary(self, scores: object) -> str:
        if not isinstance(scores, dict) or not scores:
            return ""
        return ", ".join(
            f"{c.name} {scores[c.name]}/{c.max_score}"
            for c in self.item.criteria.all()
            if c.name in scores
        )

    @property
    def final_score(self) -> int | None:
        """The instructor's score when there is one, else the automatic score."""
        return self.reviewed_score if self.reviewed_score is not None else self.score

    def mark_failed(self, reason: str) -> None:
        self.status = self.Status.FAILED
        self.waiting_for = self.WaitingFor.NOTHING
        self.error = reason
        self.scored_at = timezone.now()


class AuditLog(models.Model):
    """Who changed a score or which model scores an item, and when. Rows are never edited."""

    class Action(models.TextChoices):
        OVERRIDE = "override", "score overridden"
        ACTIVATE = "activate", "model version activated"
        ROLLBACK = "rollback", "rolled back to the previous version"
        RETRAIN = "retrain", "retraining with reviewed answers"
        EXPORT = "export", "a student's data exported"
        ERASE = "erase", "a student's data erased or pseudonymised"
        PURGE = "purge", "retention purge"
        GROUP = "group", "answer group split, or answers left out of a group"

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
        permissions = [
            ("manage_student_data", "Can export and erase a student's data"),
            ("export_decision_log", "Can export the decision log"),
        ]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.actor}: {self.get_action_display()}"


from scoring_plugin.tokens import ApiToken  # noqa: E402,F401  (API tokens, stored hashed)


def review_threshold_for(item: Item, version: ModelVersion | None) -> float:
    """The confidence below which a score goes to review: the item's own threshold if an admin
    set one, else the one the scoring model chose, else SCOREBRIDGE_REVIEW_THRESHOLD."""
    if item.review_threshold is not None:
        return item.review_threshold
    if version is not None and version.review_threshold is not None:
        return version.review_threshold
    return float(settings.SCOREBRIDGE_REVIEW_THRESHOLD)
