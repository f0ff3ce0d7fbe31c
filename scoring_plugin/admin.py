"""Django admin: items with their scored answers and model versions, submissions, CSV import."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse

from scoring_plugin.models import Item, ModelVersion, ScoredAnswer, Submission
from scoring_plugin.services import ImportError_, activate_version, import_item_bank, start_training

MAX_UPLOAD_BYTES = 20 * 1024 * 1024


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
        return data


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
    inlines = [ModelVersionInline]
    actions = ["train_head", "train_lora", "train_full"]
    change_list_template = "admin/scoring_plugin/item/change_list.html"

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
            )
        ]
        return custom + super().get_urls()

    def import_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_add_permission(request):
            return HttpResponse("You may not import items.", status=403)
        form = ImportForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            items = form.cleaned_data.get("items_file")
            responses = form.cleaned_data.get("responses_file")
            try:
                summary = import_item_bank(
                    items.read() if items else None, responses.read() if responses else None
                )
            except ImportError_ as exc:
                form.add_error(None, f"Nothing was imported. {exc.message}")
            else:
                self.message_user(request, f"Imported: {summary}.", messages.SUCCESS)
                return HttpResponseRedirect(reverse("admin:scoring_plugin_item_changelist"))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "form": form,
            "title": "Import items and scored answers",
        }
        return TemplateResponse(request, "admin/scoring_plugin/item/import.html", context)

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


@admin.register(ScoredAnswer)
class ScoredAnswerAdmin(admin.ModelAdmin):
    list_display = ["response_key", "item", "score", "split"]
    list_filter = ["split", "item"]
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
    actions = ["activate", "cancel"]
    list_select_related = ["item"]

    @admin.display(description="QWK")
    def qwk(self, version: ModelVersion) -> str:
        value = version.metrics.get("qwk")
        return f"{value:.3f}" if isinstance(value, (int, float)) else "-"

    @admin.display(description="accuracy")
    def accuracy(self, version: ModelVersion) -> str:
        value = version.metrics.get("accuracy")
        return f"{value:.3f}" if isinstance(value, (int, float)) else "-"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # versions come from training, started on items

    @admin.action(description="Activate (this version scores its item from now on)")
    def activate(self, request: HttpRequest, queryset: QuerySet[ModelVersion]) -> None:
        for version in queryset:
            try:
                activate_version(version)
                self.message_user(request, f"{version.label} is now active.")
            except ValidationError as exc:
                self.message_user(request, " ".join(exc.messages), messages.ERROR)

    @admin.action(description="Cancel training")
    def cancel(self, request: HttpRequest, queryset: QuerySet[ModelVersion]) -> None:
        count = queryset.filter(
            status__in=[ModelVersion.Status.PENDING, ModelVersion.Status.TRAINING]
        ).update(status=ModelVersion.Status.CANCELLED)
        self.message_user(request, f"Cancelled {count} training job(s).")


@admin.register(Submission)
class SubmissionAdmin(admin.ModelAdmin):
    list_display = ["id", "item", "status", "score", "confidence", "model_version", "created_at"]
    list_filter = ["status", "item"]
    search_fields = ["id", "text", "client_reference"]
    list_select_related = ["item", "model_version__item"]
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
    ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
