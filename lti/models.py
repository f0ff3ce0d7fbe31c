"""What the LTI tool keeps besides django-lti's platform rows: per-item settings, the link from
a submission to the launch it came through (and its grade passback), used nonces, and the
one-time links for dynamic registration."""

from __future__ import annotations

import hashlib
import secrets

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext
from lti_tool.models import LtiContext, LtiRegistration, LtiResourceLink, LtiUser

from scoring_plugin.models import Item, Submission


class ItemLtiSettings(models.Model):
    """How an item behaves when it is used through an LMS."""

    class PostMode(models.TextChoices):
        WHEN_REVIEWED = "when_reviewed", "post low-confidence scores when reviewed"
        NOW = "now", "post now, overwrite after review"

    class GradebookPolicy(models.TextChoices):
        LATEST = "latest", "latest graded attempt"
        HIGHEST = "highest", "highest graded attempt"
        FIRST = "first", "first attempt"

    item = models.OneToOneField(Item, on_delete=models.CASCADE, related_name="lti_settings")
    max_attempts = models.PositiveSmallIntegerField(
        default=1, help_text="Answers a student may submit through one resource link (0 = any)."
    )
    post_mode = models.CharField(
        max_length=16,
        choices=PostMode.choices,
        default=PostMode.WHEN_REVIEWED,
        help_text=(
            "A score under the item's review threshold is sent as PendingManual (no grade) until "
            "an instructor reviews it, or sent now as FullyGraded and overwritten by the review. "
            "Moodle clears the grade for anything but FullyGraded."
        ),
    )

    gradebook_policy = models.CharField(
        max_length=8,
        choices=GradebookPolicy.choices,
        default=GradebookPolicy.LATEST,
        help_text=(
            "Which attempt's grade the LMS gradebook holds when a student answers more than once: "
            "the latest graded attempt (default), the highest, or the first. An attempt without "
            "a score yet (held for review, failed) never replaces a grade already sent; it is "
            "sent as PendingManual only while no attempt has a score."
        ),
    )

    class Meta:
        verbose_name = "item LTI settings"
        verbose_name_plural = "item LTI settings"

    def __str__(self) -> str:
        return f"{self.item.key}: {self.get_post_mode_display()}"

    @classmethod
    def for_item(cls, item: Item) -> ItemLtiSettings:
        """The stored settings, or unsaved defaults."""
        try:
            return item.lti_settings  # type: ignore[attr-defined,no-any-return]
        except cls.DoesNotExist:
            return cls(item=item)


class LtiSubmission(models.Model):
    """A submission made through an LTI launch, with where and how its grade goes back."""

    class Passback(models.TextChoices):
        NOT_SCORED = "not_scored", "waiting for the score"
        QUEUED = "queued", "queued"
        POSTED = "posted", "posted"
        RETRYING = "retrying", "retrying"
        FAILED = "failed", "failed"
        OTHER_ATTEMPT = "other", "not sent: the gradebook holds another attempt"
        UNAVAILABLE = "unavailable", "no grade service in the launch"

    submission = models.OneToOneField(
        Submission, on_delete=models.CASCADE, primary_key=True, related_name="lti"
    )
    context = models.ForeignKey(LtiContext, on_delete=models.CASCADE, related_name="submissions")
    resource_link = models.ForeignKey(
        LtiResourceLink, on_delete=models.CASCADE, related_name="submissions"
    )
    lti_user = models.ForeignKey(LtiUser, on_delete=models.CASCADE, related_name="submissions")
    attempt = models.PositiveSmallIntegerField(default=1)
    line_item_url = models.URLField(max_length=500, blank=True)
    line_items_url = models.URLField(max_length=500, blank=True)
    ags_scopes = models.JSONField(default=list, blank=True)
    passback_status = models.CharField(
        max_length=12, choices=Passback.choices, default=Passback.NOT_SCORED, db_index=True
    )
    passback_error = models.TextField(blank=True)
    passback_tries = models.PositiveIntegerField(default=0)
    posted_grade = models.JSONField(
        default=dict, blank=True, help_text="The last score sent and accepted (without timestamp)."
    )
    last_timestamp = models.DateTimeField(
        null=True, blank=True, help_text="Timestamp of the last score sent; the next is later."
    )
    posted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "LTI submission"
        ordering = ["-submission__created_at"]
        indexes = [models.Index(fields=["resource_link", "lti_user"], name="lti_sub_link_user")]

    def __str__(self) -> str:
        return f"{self.lti_user} / {self.resource_link}: {self.submission_id}"

    @property
    def final_score(self) -> int | None:
        """The instructor's score when there is one, else the automatic one."""
        return self.submission.final_score

    @property
    def answer_state(self) -> tuple[str, str]:
        """(code, words) of the answer's one state, as the instructor's list shows it."""
        from lti.states import INSTRUCTOR_LABELS, WAITING_FOR_REVIEW, answer_state

        code = answer_state(self.submission)
        if code == WAITING_FOR_REVIEW and self.submission.review_requested:
            return code, gettext("review requested by the student")
        if (
            code == WAITING_FOR_REVIEW
            and self.submission.waiting_for == Submission.WaitingFor.MODEL
        ):
            return code, gettext("needs a human score (no model yet)")
        return code, INSTRUCTOR_LABELS[code]

    def _held_grade(self) -> str:
        """What the last accepted post put in the gradebook ("" when nothing was accepted)."""
        grade = self.posted_grade if isinstance(self.posted_grade, dict) else {}
        if not grade:
            return ""
        given = grade.get("score_given")
        if given is None:
            return "no grade, pending review"
        maximum = grade.get("score_maximum")
        return f"{given:g} / {maximum:g}" if maximum else f"{given:g}"

    @property
    def gradebook_state(self) -> tuple[str, str]:
        """(code, words) for what the LMS gradebook really holds from this attempt: a posted
        score, a grade pending review (PendingManual: no score), or why nothing is there."""
        held = self._held_grade()
        status = self.passback_status
        if status == self.Passback.POSTED:
            if held.startswith("no grade"):
                return "pending", gettext("pending review (the LMS holds no grade yet)")
            return "posted", gettext("posted: %(grade)s") % {"grade": held}
        if status in (self.Passback.FAILED, self.Passback.RETRYING):
            reason = (self.passback_error or gettext("no reason recorded"))[:300]
            still = (
                (" " + gettext("(the LMS still holds %(grade)s)") % {"grade": held}) if held else ""
            )
            return str(status), f"{gettext(self.get_passback_status_display())}: {reason}{still}"
        if status == self.Passback.QUEUED:
            if held:
                return "queued", gettext("sending (the LMS holds %(grade)s)") % {"grade": held}
            return "queued", gettext("sending")
        return str(status), gettext(self.get_passback_status_display())


class UsedNonce(models.Model):
    """An id_token nonce that was used for a launch; a second launch with it is a replay.

    A database row with a unique constraint makes the check atomic across every web process.
    """

    issuer = models.CharField(max_length=255)
    nonce = models.CharField(max_length=255)
    expires_at = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["issuer", "nonce"], name="unique_nonce_per_issuer")
        ]

    def __str__(self) -> str:
        return f"{self.issuer} {self.nonce}"

    @classmethod
    def purge_expired(cls) -> int:
        deleted, _ = cls.objects.filter(expires_at__lt=timezone.now()).delete()
        return deleted


class RegistrationInvite(models.Model):
    """A one-time link an administrator makes for LTI Dynamic Registration.

    The link carries a random token; only its SHA-256 is stored. The link works once, before it
    expires; the registration it creates stays inactive until an administrator approves it,
    unless ``auto_activate`` is set.
    """

    note = models.CharField(
        max_length=200, blank=True, help_text="For whom or which LMS this link is (for admins)."
    )
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        editable=False,
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    expires_at = models.DateTimeField(help_text="The link cannot be used after this time.")
    auto_activate = models.BooleanField(
        default=False,
        help_text=(
            "Activate the registration (and its deployment) it creates at once, without an "
            "administrator's approval. Leave off unless you trust whoever uses the link."
        ),
    )
    used_at = models.DateTimeField(null=True, blank=True, editable=False)
    registration = models.ForeignKey(
        LtiRegistration,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        editable=False,
        help_text="The registration this link created.",
    )
    outcome = models.TextField(
        blank=True, editable=False, help_text="What happened when the link was used."
    )

    class Meta:
        verbose_name = "LTI registration link"
        verbose_name_plural = "LTI registration links"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.note or f"registration link {self.pk}"

    @staticmethod
    def hash_token(token: str) -> str:
        return hashlib.sha256(token.encode()).hexdigest()

    @staticmethod
    def new_token() -> str:
        return secrets.token_urlsafe(32)

    @classmethod
    def create_with_token(cls, **fields: object) -> tuple[RegistrationInvite, str]:
        """A new invite and its token (shown once; only the hash is kept)."""
        token = cls.new_token()
        invite = cls.objects.create(token_hash=cls.hash_token(token), **fields)
        return invite, token

    @property
    def state(self) -> str:
        if self.used_at is not None:
            return "used"
        if self.expires_at <= timezone.now():
            return "expired"
        return "open"

    @classmethod
    def claim(cls, token: str) -> RegistrationInvite | None:
        """The open invite for ``token``, marked used in one atomic update; else None."""
        if not token or len(token) > 100:
            return None
        now = timezone.now()
        token_hash = cls.hash_token(token)
        claimed = cls.objects.filter(
            token_hash=token_hash, used_at__isnull=True, expires_at__gt=now
        ).update(used_at=now)
        if claimed != 1:
            return None
        return cls.objects.get(token_hash=token_hash)

    @classmethod
    def is_open(cls, token: str) -> bool:
        if not token or len(token) > 100:
            return False
        return cls.objects.filter(
            token_hash=cls.hash_token(token), used_at__isnull=True, expires_at__gt=timezone.now()
        ).exists()
