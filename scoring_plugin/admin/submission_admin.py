"""The submission admin: answers with their states, the review filter, one override (the
gradebook follows), CSV export and rescoring failed answers."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse

from scoring_plugin import review
from scoring_plugin.admin.forms import SubmissionReviewForm, review_form_for
from scoring_plugin.admin.shared import RESCORE_PERMISSION, admin_actor
from scoring_plugin.models import Submission
from scoring_plugin.overrides import apply_override
from scoring_plugin.services import rescore_submissions


class ReviewStateFilter(admin.SimpleListFilter):
    title = "review"
    parameter_name = "review"

    def lookups(self, request, model_admin):  # type: ignore[no-untyped-def]
        return [
            ("needs", "needs review (not reviewed yet)"),
            ("reviewed", "reviewed"),
        ]

    def queryset(self, request, queryset):  # type: ignore[no-untyped-def]
        if self.value() == "needs":
            return review.ReviewFilter(needs_review=True, unreviewed=True).apply(queryset)
        if self.value() == "reviewed":
            return queryset.filter(reviewed_score__isnull=False)
        return queryset


@admin.register(Submission)
class SubmissionAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "item",
        "status",
        "waiting_for",
        "attempts",
        "score",
        "confidence",
        "reviewed_score",
        "model_version",
        "created_at",
    ]
    list_filter = ["status", "waiting_for", ReviewStateFilter, "review_requested", "item"]
    search_fields = ["id", "text", "client_reference"]
    list_select_related = ["item", "model_version__item"]
    form = SubmissionReviewForm
    actions = ["export_csv", "rescore"]

    def has_rescore_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.has_perm(RESCORE_PERMISSION))

    @admin.action(
        description="Score the selected failed answers again (the gradebook follows)",
        permissions=["rescore"],
    )
    def rescore(self, request: HttpRequest, queryset: QuerySet[Submission]) -> None:
        count = rescore_submissions([str(pk) for pk in queryset.values_list("pk", flat=True)])
        skipped = queryset.count() - count
        self.message_user(
            request,
            f"{count} failed answer(s) sent to scoring again"
            + (f"; {skipped} not failed, left as they were." if skipped else "."),
        )

    @admin.action(description="Export the selected answers as CSV", permissions=["view"])
    def export_csv(self, request: HttpRequest, queryset: QuerySet[Submission]) -> HttpResponse:
        rows = queryset.select_related("item", "model_version__item", "submitted_by")
        response = HttpResponse(
            review.export_csv(
                (s, s.submitted_by.get_username() if s.submitted_by else s.client_reference)
                for s in rows
            ),
            content_type="text/csv; charset=utf-8",
        )
        response["Content-Disposition"] = 'attachment; filename="scorebridge-submissions.csv"'
        return response

    readonly_fields = [
        "id",
        "item",
        "text",
        "submitted_by",
        "client_reference",
        "status",
        "score",
        "criteria_summary",
        "probabilities",
        "confidence",
        "truncated",
        "model_version",
        "waiting_for",
        "review_threshold",
        "flags",
        "error",
        "attempts",
        "created_at",
        "queued_at",
        "scored_at",
        "reviewed_by",
        "reviewed_at",
        "review_requested",
        "review_requested_at",
    ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def get_form(self, request, obj=None, change=False, **kwargs):  # type: ignore[no-untyped-def]
        # An analytic item's answer is reviewed per criterion (one field each).
        kwargs.setdefault("form", review_form_for(obj))
        return super().get_form(request, obj, change, **kwargs)

    def save_model(self, request, obj, form, change):  # type: ignore[no-untyped-def]
        if change and any(
            name in ("reviewed_score", "review_comment") or name.startswith("criterion:")
            for name in form.changed_data
        ):
            # The one override function: audit entry, and the LMS gradebook follows.
            apply_override(
                obj,
                obj.reviewed_score,
                obj.review_comment,
                admin_actor(request),
                via=Submission.ReviewedVia.ADMIN,
                criteria=form.criteria,
            )
            return
        super().save_model(request, obj, form, change)
