"""The item admin: the item list and page, CSV import with a preview, training actions,
roll back, merging."""

from __future__ import annotations

from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.views.decorators.http import require_POST

from scoring_plugin import audit, charts, cold_start, importing, review
from scoring_plugin.admin.forms import ImportForm
from scoring_plugin.admin.reports import (
    criterion_metric_rows,
    item_glance,
    progress_bar,
    qwk_summary,
    version_report,
    waiting_for_review,
)
from scoring_plugin.admin.shared import ModelPermissions, admin_actor, merge_page
from scoring_plugin.models import AuditLog, Criterion, Item, ModelVersion, Submission
from scoring_plugin.services import (
    ImportError_,
    import_item_bank,
    start_training,
    training_kind,
)

_STAGING_SESSION_KEY = "scorebridge_import_token"


class ModelVersionInline(admin.TabularInline):
    model = ModelVersion
    extra = 0
    can_delete = False
    fields = ["number", "kind", "status", "is_active", "quality", "training", "trained_at"]
    readonly_fields = fields
    show_change_link = True

    @admin.display(description="quality")
    def quality(self, version: ModelVersion) -> str:
        return qwk_summary(version)

    @admin.display(description="progress")
    def training(self, version: ModelVersion) -> str:
        return progress_bar(version)

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


class CriterionInline(admin.TabularInline):
    """An analytic item's rubric: named and scored by items.csv (answers and models are per
    criterion), its feedback editable here; with the active model's results per criterion."""

    model = Criterion
    extra = 0
    can_delete = False
    fields = ["name", "max_score", "feedback", "active_model_results"]
    readonly_fields = ["name", "max_score", "active_model_results"]

    @admin.display(description="active model on this criterion")
    def active_model_results(self, criterion: Criterion) -> str:
        version = criterion.item.active_version
        metrics = version.metrics if version and isinstance(version.metrics, dict) else {}
        rows = [
            r
            for r in criterion_metric_rows(metrics)
            if r.label.endswith(f"criterion {criterion.name}")
        ]
        return ", ".join(f"{r.label.split(':')[0]} {r.value}" for r in rows) or "-"

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(Item)
class ItemAdmin(ModelPermissions, admin.ModelAdmin):
    list_display = [
        "key",
        "language",
        "max_score",
        "answer_count",
        "active_model",
        "active_quality",
        "waiting",
    ]
    list_filter = ["language"]
    search_fields = ["key", "prompt"]
    fields = [
        "key",
        "title",
        "prompt",
        "reference_answer",
        "language",
        "max_score",
        "review_threshold",
        "target_qwk",
        "feedback",
    ]
    inlines = [CriterionInline, ModelVersionInline]
    actions = [
        "train_auto",
        "train_head",
        "train_lora",
        "train_full",
        "merge_gw",
        "roll_back",
        "retrain_with_reviewed",
        "suggest_next",
    ]
    change_list_template = "admin/scoring_plugin/item/change_list.html"
    change_form_template = "admin/scoring_plugin/item/change_form.html"

    @admin.display(description="scored answers")
    def answer_count(self, item: Item) -> int:
        return item.scored_answers.count()

    def has_delete_permission(self, request: HttpRequest, obj: Item | None = None) -> bool:
        # An item students answered is kept: its answers and grades refer to it.
        if obj is not None and obj.submissions.exists():
            return False
        return super().has_delete_permission(request, obj)

    @admin.display(description="active model")
    def active_model(self, item: Item) -> str:
        version = item.active_version
        return version.label if version else "-"

    @admin.display(description="active model quality")
    def active_quality(self, item: Item) -> str:
        version = item.active_version
        return qwk_summary(version) if version else "-"

    @admin.display(description="waiting for review")
    def waiting(self, item: Item) -> int:
        return waiting_for_review(item)

    def get_urls(self):  # type: ignore[no-untyped-def]
        custom = [
            path(
                "import/",
                self.admin_site.admin_view(self.import_view),
                name="scoring_plugin_item_import",
            ),
            path(
                "<int:item_id>/score-next/",
                self.admin_site.admin_view(require_POST(self.score_next_view)),
                name="scoring_plugin_item_score_next",
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
        if not (self.has_add_permission(request) and self.has_change_permission(request)):
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
            extra["glance"] = item_glance(item)
            extra["can_activate"] = self.has_activate_permission(request)
            extra["can_roll_back"] = (
                extra["can_activate"] and audit.previously_active(item) is not None
            )
            extra["rollback_url"] = reverse(
                "admin:scoring_plugin_item_rollback", kwargs={"item_id": item.pk}
            )
            extra["review_agreement"] = review.agreements(Submission.objects.filter(item=item))
            extra["agreement_svgs"] = [
                charts.confusion_svg(a.confusion, title=f"{a.item_key}: reviewed vs automatic")
                for a in extra["review_agreement"]
            ]
            extra["audit_entries"] = AuditLog.objects.filter(item=item)[:20]
            extra["cold_start"] = cold_start_panel(item, self.has_train_permission(request))
            extra["training_state"] = cold_start.training_state(item)
        return super().change_view(request, object_id, form_url, extra_context=extra)

    def score_next_view(self, request: HttpRequest, item_id: int) -> HttpResponse:
        """Score one suggested answer (issue 16): it becomes training data, with who scored it."""
        item = get_object_or_404(Item, pk=item_id)
        if not self.has_train_permission(request):
            return HttpResponse("You may not score training answers.", status=403)
        try:
            score = int(request.POST.get("score", ""))
            cold_start.score_waiting(
                item, request.POST.get("kind", ""), request.POST.get("key", ""), score,
                admin_actor(request),
            )  # fmt: skip
        except ValueError:
            self.message_user(request, "Choose a score.", messages.ERROR)
        except ValidationError as exc:
            self.message_user(request, " ".join(exc.messages), messages.ERROR)
        else:
            self.message_user(request, f"Scored {score}: it is training data now.")
        return HttpResponseRedirect(
            reverse("admin:scoring_plugin_item_change", kwargs={"object_id": item.pk})
        )

    def rollback_view(self, request: HttpRequest, item_id: int) -> HttpResponse:
        item = get_object_or_404(Item, pk=item_id)
        if not self.has_activate_permission(request):
            return HttpResponse("You may not roll back model versions.", status=403)
        try:
            target = audit.roll_back(item, admin_actor(request))
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
            _, note = training_kind(item, kind)  # analytic items train head
            try:
                start_training(item, kind)
                started += 1
                if note:
                    self.message_user(request, note, messages.WARNING)
            except ValidationError as exc:
                self.message_user(request, " ".join(exc.messages), messages.ERROR)
        if started:
            self.message_user(request, f"Training ({kind}) queued for {started} item(s).")

    @admin.action(
        description="Train a new model (default): auto, lexical + backbone, calibrated",
        permissions=["train"],
    )
    def train_auto(self, request: HttpRequest, queryset: QuerySet[Item]) -> None:
        self._train(request, queryset, ModelVersion.Kind.AUTO)

    @admin.action(description="Train a new model: frozen backbone + head", permissions=["train"])
    def train_head(self, request: HttpRequest, queryset: QuerySet[Item]) -> None:
        self._train(request, queryset, ModelVersion.Kind.HEAD)

    @admin.action(description="Train a new model: LoRA adapter + head", permissions=["train"])
    def train_lora(self, request: HttpRequest, queryset: QuerySet[Item]) -> None:
        self._train(request, queryset, ModelVersion.Kind.LORA)

    @admin.action(
        description="Train a new model: full fine-tuning (baseline)", permissions=["train"]
    )
    def train_full(self, request: HttpRequest, queryset: QuerySet[Item]) -> None:
        self._train(request, queryset, ModelVersion.Kind.FULL)

    @admin.action(
        description="Merge (GW plan): merge the selected items' models into groups",
        permissions=["train"],
    )
    def merge_gw(self, request: HttpRequest, queryset: QuerySet[Item]) -> HttpResponse | None:
        return merge_page(self, request, list(queryset), [i.pk for i in queryset])

    @admin.action(
        description="Roll back to the previously active model version", permissions=["activate"]
    )
    def roll_back(self, request: HttpRequest, queryset: QuerySet[Item]) -> None:
        for item in queryset:
            try:
                target = audit.roll_back(item, admin_actor(request))
                self.message_user(request, f"{target.label} is active again.")
            except ValidationError as exc:
                self.message_user(request, " ".join(exc.messages), messages.ERROR)

    @admin.action(
        description="Suggest what to score next and the learning curve (items with few scores)",
        permissions=["train"],
    )
    def suggest_next(self, request: HttpRequest, queryset: QuerySet[Item]) -> None:
        for item in queryset:
            cold_start.request_report(item)
        self.message_user(
            request,
            f"Queued on the training queue for {queryset.count()} item(s): the item page shows "
            "the answers to score next and the learning curve when it is ready.",
        )

    @admin.action(
        description="Retrain with reviewed answers (adds them to the training data)",
        permissions=["train"],
    )
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
                admin_actor(request),
                model_version=version,
                details={"reviewed_added": created, "reviewed_updated": updated},
            )
            self.message_user(
                request,
                f"{item.key}: {created} reviewed answer(s) added, {updated} updated; "
                f"training {version.label} queued.",
            )


def cold_start_panel(item: Item, can_score: bool) -> dict[str, object] | None:
    """The item page's "what to score next" section: the report's lines and its suggested
    answers (each with a score form when the admin may train), or None without a report."""
    report = getattr(item, "cold_start", None)
    if report is None:
        return None
    ready = report.status == report.Status.READY
    return {
        "status": report.get_status_display(),
        "error": report.error,
        "lines": cold_start.describe(report.result) if ready else [],
        "suggested": report.result.get("suggested", []) if ready else [],
        "scores": list(range(item.max_score + 1)),
        "can_score": can_score,
        "url": reverse("admin:scoring_plugin_item_score_next", kwargs={"item_id": item.pk}),
    }
