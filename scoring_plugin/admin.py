"""Django admin: items with their scored answers and model versions, submissions, CSV import
with a preview, live training progress, charts, activation and rollback, and the audit log."""

from __future__ import annotations

from pathlib import Path

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import (
    FileResponse,
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
    JsonResponse,
)
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.views.decorators.http import require_POST

from scoring_plugin import audit, charts, importing, review
from scoring_plugin.models import AuditLog, Item, ModelVersion, ScoredAnswer, Submission
from scoring_plugin.services import (
    ImportError_,
    import_item_bank,
    start_distillation,
    start_training,
)

MAX_UPLOAD_BYTES = 20 * 1024 * 1024
ALLOWED_CONTENT_TYPES = {
    "text/csv",
    "text/plain",
    "application/csv",
    "application/x-csv",
    "text/comma-separated-values",
    "application/vnd.ms-excel",  # what Windows browsers send for .csv
    "application/octet-stream",
    "",
}
_STAGING_SESSION_KEY = "scorebridge_import_token"


def _csv_file(field_name: str) -> forms.FileField:
    return forms.FileField(
        required=False,
        label=field_name,
        help_text=f"{field_name} in the SAF layout (UTF-8 CSV, at most 20 MB).",
    )


class ImportForm(forms.Form):
    items_file = _csv_file("items.csv")
    responses_file = _csv_file("responses.csv")

    def clean(self) -> dict[str, object]:
        data = super().clean() or {}
        if not data.get("items_file") and not data.get("responses_file"):
            raise ValidationError("Choose items.csv, responses.csv, or both.")
        for name in ("items_file", "responses_file"):
            upload = data.get(name)
            if upload is None:
                continue
            if upload.size > MAX_UPLOAD_BYTES:
                self.add_error(name, "The file is larger than 20 MB.")
            elif not upload.name.lower().endswith((".csv", ".txt")):
                self.add_error(name, "Upload a .csv file.")
            elif (upload.content_type or "").split(";")[0].strip() not in ALLOWED_CONTENT_TYPES:
                self.add_error(name, f"A {upload.content_type} file is not a CSV file.")
        return data


def _actor(request: HttpRequest) -> str:
    user = request.user
    return f"admin:{user.get_username()}" if user.is_authenticated else "admin:?"


def _metric(version: ModelVersion, key: str) -> str:
    value = version.metrics.get(key) if isinstance(version.metrics, dict) else None
    return f"{value:.3f}" if isinstance(value, (int, float)) else "-"


def version_report(version: ModelVersion) -> dict[str, object]:
    """What the item page shows for one version: metrics, confusion matrix, training curve."""
    matrix, matrix_source = review.version_confusion(version)
    history = review.training_history(version)
    series = {
        name: [float(h[name]) for h in history if isinstance(h.get(name), (int, float))]
        for name in ("train_loss", "val_loss")
    }
    series = {k: v for k, v in series.items() if v}
    return {
        "version": version,
        "qwk": _metric(version, "qwk"),
        "accuracy": _metric(version, "accuracy"),
        "macro_f1": _metric(version, "macro_f1"),
        "micro_f1": _metric(version, "micro_f1"),
        "n_test": version.metrics.get("n_test", "-") if isinstance(version.metrics, dict) else "-",
        "confusion_svg": charts.confusion_svg(matrix, title=f"{version.label} confusion matrix")
        if matrix
        else "",
        "confusion_source": matrix_source,
        "curve_svg": charts.line_svg(series, title=f"{version.label} training curve")
        if series
        else "",
        "in_progress": version.status
        in (ModelVersion.Status.PENDING, ModelVersion.Status.TRAINING),
    }


def progress_payload(version: ModelVersion) -> dict[str, object]:
    """The JSON the progress poller reads."""
    progress = version.progress if isinstance(version.progress, dict) else {}
    metric = {
        k: v
        for k, v in progress.items()
        if k not in ("percent", "epoch", "epochs") and isinstance(v, (int, float))
    }
    return {
        "id": version.pk,
        "label": version.label,
        "status": version.status,
        "done": version.status not in (ModelVersion.Status.PENDING, ModelVersion.Status.TRAINING),
        "percent": progress.get("percent", 0.0),
        "epoch": progress.get("epoch"),
        "epochs": progress.get("epochs"),
        "metric": metric,
        "error": version.error[:500],
    }


class ModelVersionInline(admin.TabularInline):
    model = ModelVersion
    extra = 0
    can_delete = False
    fields = ["number", "kind", "status", "is_active", "metrics", "progress", "trained_at"]
    readonly_fields = fields
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(Item)
class ItemAdmin(admin.ModelAdmin):
    list_display = ["key", "language", "max_score", "answer_count", "active_model"]
    list_filter = ["language"]
    search_fields = ["key", "prompt"]
    fields = ["key", "prompt", "reference_answer", "language", "max_score", "review_threshold"]
    inlines = [ModelVersionInline]
    actions = ["train_head", "train_lora", "train_full", "roll_back", "retrain_with_reviewed"]
    change_list_template = "admin/scoring_plugin/item/change_list.html"
    change_form_template = "admin/scoring_plugin/item/change_form.html"

    @admin.display(description="scored answers")
    def answer_count(self, item: Item) -> int:
        return item.scored_answers.count()

    @admin.display(description="active model")
    def active_model(self, item: Item) -> str:
        version = item.active_version
        return version.label if version else "-"

    def get_urls(self):  # type: ignore[no-untyped-def]
        custom = [
            path(
                "import/",
                self.admin_site.admin_view(self.import_view),
                name="scoring_plugin_item_import",
            ),
            path(
                "<int:item_id>/rollback/",
                self.admin_site.admin_view(require_POST(self.rollback_view)),
                name="scoring_plugin_item_rollback",
            ),
        ]
        return custom + super().get_urls()

    # --- import with preview ---------------------------------------------------------------

    def import_view(self, request: HttpRequest) -> HttpResponse:
        """Step 1 uploads and previews; step 2 (``confirm``) imports the staged files."""
        if not self.has_add_permission(request):
            return HttpResponse("You may not import items.", status=403)
        context: dict[str, object] = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Import items and scored answers",
        }
        if request.method == "POST" and request.POST.get("confirm"):
            return self._import_confirmed(request)
        form = ImportForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            items = form.cleaned_data.get("items_file")
            responses = form.cleaned_data.get("responses_file")
            files = {
                "items": items.read() if items else None,
                "responses": responses.read() if responses else None,
            }
            result = importing.preview(files["items"], files["responses"])
            if result.ok and not request.POST.get("preview"):
                # The form's "Import without preview" button, and scripts posting the files.
                return self._import(request, files)
            if result.ok:
                token = importing.stage(files)
                request.session[_STAGING_SESSION_KEY] = token
                context["token"] = token
            per_item = [
                {
                    "item_id": item_id,
                    "answers": count,
                    "chart": charts.bar_svg(
                        {str(s): n for s, n in sorted(result.scores_per_item[item_id].items())},
                        title=f"{item_id}: scores",
                        height=48,
                    ),
                }
                for item_id, count in sorted(result.answers_per_item.items())
            ]
            context.update(
                preview=result,
                per_item=per_item,
                distribution_svg=charts.bar_svg(
                    {str(s): n for s, n in sorted(result.score_distribution.items())},
                    title="All answers: scores",
                ),
                title="Preview the import",
            )
            return TemplateResponse(
                request, "admin/scoring_plugin/item/import_preview.html", context
            )
        context["form"] = form
        return TemplateResponse(request, "admin/scoring_plugin/item/import.html", context)

    def _import_confirmed(self, request: HttpRequest) -> HttpResponse:
        token = request.POST.get("token", "")
        if token != request.session.get(_STAGING_SESSION_KEY):
            self.message_user(request, "That preview has expired; upload again.", messages.ERROR)
            return HttpResponseRedirect(reverse("admin:scoring_plugin_item_import"))
        files = importing.load_staged(token)
        if files is None:
            self.message_user(request, "That preview has expired; upload again.", messages.ERROR)
            return HttpResponseRedirect(reverse("admin:scoring_plugin_item_import"))
        importing.discard(token)
        request.session.pop(_STAGING_SESSION_KEY, None)
        return self._import(request, files)

    def _import(self, request: HttpRequest, files: dict[str, bytes | None]) -> HttpResponse:
        try:
            summary = import_item_bank(files["items"], files["responses"])
        except ImportError_ as exc:  # the data changed since the check (an item was deleted)
            self.message_user(request, f"Nothing was imported. {exc.message}", messages.ERROR)
            return HttpResponseRedirect(reverse("admin:scoring_plugin_item_import"))
        self.message_user(request, f"Imported: {summary}.", messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:scoring_plugin_item_changelist"))

    # --- item page: versions, charts, progress ----------------------------------------------

    def change_view(self, request, object_id, form_url="", extra_context=None):  # type: ignore[no-untyped-def]
        extra = dict(extra_context or {})
        item = self.get_object(request, object_id)
        if item is not None:
            versions = list(item.model_versions.order_by("-number"))
            extra["version_reports"] = [version_report(v) for v in versions]
            extra["can_roll_back"] = audit.previously_active(item) is not None
            extra["rollback_url"] = reverse(
                "admin:scoring_plugin_item_rollback", kwargs={"item_id": item.pk}
            )
            extra["review_agreement"] = review.agreements(Submission.objects.filter(item=item))
            extra["agreement_svgs"] = [
                charts.confusion_svg(a.confusion, title=f"{a.item_key}: reviewed vs automatic")
                for a in extra["review_agreement"]
            ]
            extra["audit_entries"] = AuditLog.objects.filter(item=item)[:20]
        return super().change_view(request, object_id, form_url, extra_context=extra)

    def rollback_view(self, request: HttpRequest, item_id: int) -> HttpResponse:
        item = get_object_or_404(Item, pk=item_id)
        if not self.has_change_permission(request, item):
            return HttpResponse("You may not change this item.", status=403)
        try:
            target = audit.roll_back(item, _actor(request))
        except ValidationError as exc:
            self.message_user(request, " ".join(exc.messages), messages.ERROR)
        else:
            self.message_user(request, f"Rolled back: {target.label} is active again.")
        return HttpResponseRedirect(
            reverse("admin:scoring_plugin_item_change", kwargs={"object_id": item.pk})
        )

    # --- actions ---------------------------------------------------------------------------

    def _train(self, request: HttpRequest, queryset: QuerySet[Item], kind: str) -> None:
        started = 0
        for item in queryset:
            try:
                start_training(item, kind)
                started += 1
            except ValidationError as exc:
                self.message_user(request, " ".join(exc.messages), messages.ERROR)
        if started:
            self.message_user(request, f"Training ({kind}) queued for {started} item(s).")

    @admin.action(description="Train a new model: frozen backbone + head")
    def train_head(self, request: HttpRequest, queryset: QuerySet[Item]) -> None:
        self._train(request, queryset, ModelVersion.Kind.HEAD)

    @admin.action(description="Train a new model: LoRA adapter + head")
    def train_lora(self, request: HttpRequest, queryset: QuerySet[Item]) -> None:
        self._train(request, queryset, ModelVersion.Kind.LORA)

    @admin.action(description="Train a new model: full fine-tuning (baseline)")
    def train_full(self, request: HttpRequest, queryset: QuerySet[Item]) -> None:
        self._train(request, queryset, ModelVersion.Kind.FULL)

    @admin.action(description="Roll back to the previously active model version")
    def roll_back(self, request: HttpRequest, queryset: QuerySet[Item]) -> None:
        for item in queryset:
            try:
                target = audit.roll_back(item, _actor(request))
                self.message_user(request, f"{target.label} is active again.")
            except ValidationError as exc:
                self.message_user(request, " ".join(exc.messages), messages.ERROR)

    @admin.action(description="Retrain with reviewed answers (adds them to the training data)")
    def retrain_with_reviewed(self, request: HttpRequest, queryset: QuerySet[Item]) -> None:
        for item in queryset:
            created, updated = review.copy_reviewed_answers(item)
            try:
                version = start_training(item, settings.SCORING_TRAIN_KIND)
            except ValidationError as exc:
                self.message_user(request, " ".join(exc.messages), messages.ERROR)
                continue
            audit.record(
                AuditLog.Action.RETRAIN,
                _actor(request),
                model_version=version,
                details={"reviewed_added": created, "reviewed_updated": updated},
            )
            self.message_user(
                request,
                f"{item.key}: {created} reviewed answer(s) added, {updated} updated; "
                f"training {version.label} queued.",
            )


@admin.register(ScoredAnswer)
class ScoredAnswerAdmin(admin.ModelAdmin):
    list_display = ["response_key", "item", "score", "split", "source"]
    list_filter = ["split", "source", "item"]
    search_fields = ["response_key", "text"]
    list_select_related = ["item"]


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = ["__str__", "status", "is_active", "qwk", "accuracy", "trained_at"]
    list_filter = ["status", "kind", "is_active"]
    search_fields = ["item__key"]
    readonly_fields = [
        "item",
        "number",
        "kind",
        "backbone",
        "artifact_path",
        "metrics",
        "status",
        "progress",
        "error",
        "is_active",
        "created_at",
        "trained_at",
    ]
    actions = ["activate", "cancel", "distill"]
    list_select_related = ["item"]
    change_form_template = "admin/scoring_plugin/modelversion/change_form.html"

    @admin.display(description="QWK")
    def qwk(self, version: ModelVersion) -> str:
        return _metric(version, "qwk")

    @admin.display(description="accuracy")
    def accuracy(self, version: ModelVersion) -> str:
        return _metric(version, "accuracy")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # versions come from training, started on items

    def get_urls(self):  # type: ignore[no-untyped-def]
        custom = [
            path(
                "<int:version_id>/progress/",
                self.admin_site.admin_view(self.progress_view),
                name="scoring_plugin_modelversion_progress",
            ),
            path(
                "<int:version_id>/activate/",
                self.admin_site.admin_view(require_POST(self.activate_view)),
                name="scoring_plugin_modelversion_activate",
            ),
            path(
                "<int:version_id>/student.onnx",
                self.admin_site.admin_view(self.download_student_view),
                name="scoring_plugin_modelversion_student",
            ),
        ]
        return custom + super().get_urls()

    def progress_view(self, request: HttpRequest, version_id: int) -> JsonResponse:
        """Live training progress for the poller on the item and version pages."""
        if not self.has_view_permission(request):
            return JsonResponse({"error": "forbidden"}, status=403)
        version = get_object_or_404(ModelVersion.objects.select_related("item"), pk=version_id)
        response = JsonResponse(progress_payload(version))
        response["Cache-Control"] = "no-store"
        return response

    def activate_view(self, request: HttpRequest, version_id: int) -> HttpResponse:
        """The "Activate" button on the item and version pages."""
        version = get_object_or_404(ModelVersion.objects.select_related("item"), pk=version_id)
        if not self.has_change_permission(request, version):
            return HttpResponse("You may not activate model versions.", status=403)
        try:
            audit.activate(version, _actor(request))
            self.message_user(request, f"{version.label} is now active.")
        except ValidationError as exc:
            self.message_user(request, " ".join(exc.messages), messages.ERROR)
        target = request.POST.get("next", "")
        if not target.startswith("/admin/"):
            target = reverse("admin:scoring_plugin_item_change", args=[version.item_id])
        return HttpResponseRedirect(target)

    def change_view(self, request, object_id, form_url="", extra_context=None):  # type: ignore[no-untyped-def]
        extra = dict(extra_context or {})
        version = self.get_object(request, object_id)
        if version is not None:
            extra["report"] = version_report(version)
        return super().change_view(request, object_id, form_url, extra_context=extra)

    @admin.action(description="Activate (this version scores its item from now on)")
    def activate(self, request: HttpRequest, queryset: QuerySet[ModelVersion]) -> None:
        for version in queryset.select_related("item"):
            try:
                audit.activate(version, _actor(request))
                self.message_user(request, f"{version.label} is now active.")
            except ValidationError as exc:
                self.message_user(request, " ".join(exc.messages), messages.ERROR)

    def download_student_view(self, request: HttpRequest, version_id: int) -> HttpResponse:
        """A distilled student as one ONNX file, to score offline on a school laptop."""
        version = get_object_or_404(ModelVersion.objects.select_related("item"), pk=version_id)
        if not self.has_view_permission(request, version):
            return HttpResponse("You may not download models.", status=403)
        path = Path(version.artifact_path or "-") / "student.onnx"
        if version.kind != ModelVersion.Kind.DISTILLED or not path.is_file():
            raise Http404("This version has no distilled student file.")
        return FileResponse(
            path.open("rb"),
            as_attachment=True,
            filename=f"{version.item.key}-v{version.number}-student.onnx",
            content_type="application/octet-stream",
        )

    @admin.action(description="Distill into a tiny student (taught by this version)")
    def distill(self, request: HttpRequest, queryset: QuerySet[ModelVersion]) -> None:
        started = 0
        for teacher in queryset.select_related("item"):
            try:
                start_distillation(teacher)
                started += 1
            except ValidationError as exc:
                self.message_user(request, " ".join(exc.messages), messages.ERROR)
        if started:
            self.message_user(
                request,
                f"Distillation queued for {started} version(s); activate a student when it is "
                "ready.",
            )

    @admin.action(description="Cancel training")
    def cancel(self, request: HttpRequest, queryset: QuerySet[ModelVersion]) -> None:
        count = queryset.filter(
            status__in=[ModelVersion.Status.PENDING, ModelVersion.Status.TRAINING]
        ).update(status=ModelVersion.Status.CANCELLED)
        self.message_user(request, f"Cancelled {count} training job(s).")


class SubmissionReviewForm(forms.ModelForm):
    class Meta:
        model = Submission
        fields = ["reviewed_score", "review_comment"]

    def clean_reviewed_score(self) -> int | None:
        score = self.cleaned_data.get("reviewed_score")
        if score is not None and score > self.instance.item.max_score:
            raise ValidationError(f"Enter a score from 0 to {self.instance.item.max_score}.")
        return score


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
        "score",
        "confidence",
        "reviewed_score",
        "model_version",
        "created_at",
    ]
    list_filter = ["status", ReviewStateFilter, "item"]
    search_fields = ["id", "text", "client_reference"]
    list_select_related = ["item", "model_version__item"]
    form = SubmissionReviewForm
    actions = ["export_csv"]

    @admin.action(description="Export the selected answers as CSV")
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
        "probabilities",
        "confidence",
        "truncated",
        "model_version",
        "error",
        "attempts",
        "created_at",
        "queued_at",
        "scored_at",
        "reviewed_by",
        "reviewed_at",
    ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def save_model(self, request, obj, form, change):  # type: ignore[no-untyped-def]
        if change and {"reviewed_score", "review_comment"} & set(form.changed_data):
            if obj.reviewed_score is not None:
                review.override(obj, obj.reviewed_score, obj.review_comment, _actor(request))
                return
        super().save_model(request, obj, form, change)


@admin.register(AuditLog)
class AuditLogAdmin(admin.ModelAdmin):
    """Read-only: entries are written by the code that changes scores and models."""

    list_display = ["created_at", "action", "actor", "item", "model_version", "submission"]
    list_filter = ["action", "item"]
    search_fields = ["actor", "item__key"]
    list_select_related = ["item", "model_version__item"]
    readonly_fields = [
        "created_at",
        "action",
        "actor",
        "item",
        "model_version",
        "submission",
        "details",
    ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
