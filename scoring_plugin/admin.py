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

from ml_core.confidence import CURVE_KEY, CURVE_SOURCE_KEY, ECE_KEY
from ml_core.merge.plans import PlanError, parse_plan_text
from scoring_plugin import admin_trust, audit, charts, importing, model_cards, review
from scoring_plugin.artifact_store import version_folder_or_none
from scoring_plugin.models import AuditLog, Item, ModelVersion, ScoredAnswer, Submission
from scoring_plugin.overrides import apply_override
from scoring_plugin.services import (
    MERGE_METHODS,
    ImportError_,
    MergeOptions,
    activation_warnings,
    import_item_bank,
    merge_sources,
    rescore_submissions,
    start_distillation,
    start_merge,
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


class MergeForm(forms.Form):
    """Settings of a merge job started from the item list (``Merge (GW plan)``)."""

    group_size = forms.IntegerField(
        min_value=2,
        max_value=8,
        initial=3,
        help_text="Largest group: 2 = pairs, 3 = trios. Groups differ in size by at most one.",
    )
    method = forms.ChoiceField(
        choices=[("", "default (TIES for full models, SVD for LoRA)")]
        + [(m, m) for methods in MERGE_METHODS.values() for m in methods],
        required=False,
    )
    plan_text = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 6, "cols": 60}),
        label="Human plan (optional)",
        help_text='Instead of the GW plan: JSON {"groups": [["item-a", "item-b"], ...]} or CSV '
        "with the columns item_id,group.",
    )
    plan_file = forms.FileField(
        required=False, label="or a plan file", help_text=".json or .csv, as above."
    )
    feature_answers = forms.IntegerField(
        min_value=8,
        max_value=2000,
        initial=64,
        help_text="Training answers per item embedded for the distances.",
    )

    def __init__(self, *args: object, item_keys: list[str], **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.item_keys = item_keys

    def clean(self) -> dict[str, object]:
        data = super().clean() or {}
        upload = data.get("plan_file")
        text = str(data.get("plan_text") or "").strip()
        if upload is not None:
            if upload.size > 1024 * 1024:  # type: ignore[union-attr]
                self.add_error("plan_file", "A plan file is at most 1 MB.")
                return data
            try:
                text = upload.read().decode("utf-8-sig").strip()  # type: ignore[union-attr]
            except UnicodeDecodeError:
                self.add_error("plan_file", "The plan file is not UTF-8 text.")
                return data
        data["plan"] = None
        if text and data.get("group_size"):
            try:
                plan = parse_plan_text(text, self.item_keys, int(data["group_size"]))  # type: ignore[call-overload]
            except PlanError as exc:
                self.add_error("plan_file" if upload is not None else "plan_text", str(exc))
            else:
                data["plan"] = [list(g) for g in plan.groups]
        return data

    def options(self, kind: str) -> MergeOptions:
        data = self.cleaned_data
        return MergeOptions(
            group_size=int(data["group_size"]),
            method=str(data.get("method") or MERGE_METHODS[kind][0]),
            plan=data.get("plan"),
            feature_answers=int(data["feature_answers"]),
        )


TRAIN_PERMISSION = "scoring_plugin.train_item"
ACTIVATE_PERMISSION = "scoring_plugin.activate_modelversion"
RESCORE_PERMISSION = "scoring_plugin.rescore_submission"


class ModelPermissions:
    """``has_train_permission`` and ``has_activate_permission`` for the actions that declare
    ``permissions=["train"]`` or ``["activate"]``: training, distilling, merging and cancelling
    need ``train_item``; activating, rolling back and archiving need ``activate_modelversion``.
    A view-only staff user has neither, so Django admin neither offers nor runs them."""

    def has_train_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.has_perm(TRAIN_PERMISSION))

    def has_activate_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.has_perm(ACTIVATE_PERMISSION))


def _actor(request: HttpRequest) -> str:
    user = request.user
    return f"admin:{user.get_username()}" if user.is_authenticated else "admin:?"


def _metric(version: ModelVersion, key: str) -> str:
    value = version.metrics.get(key) if isinstance(version.metrics, dict) else None
    return f"{value:.3f}" if isinstance(value, (int, float)) else "-"


def confidence_report(version: ModelVersion) -> dict[str, object]:
    """The version's agreement-versus-automation curve, ECE and review threshold; what is
    missing says "not available"."""
    metrics = version.metrics if isinstance(version.metrics, dict) else {}
    curve = metrics.get(CURVE_KEY)
    curve = [p for p in curve if isinstance(p, dict)] if isinstance(curve, list) else []
    stored = version.review_threshold
    threshold = stored if stored is not None else float(settings.SCOREBRIDGE_REVIEW_THRESHOLD)
    ece = metrics.get(ECE_KEY)
    return {
        "automation_svg": charts.automation_svg(
            curve, chosen=threshold, title=f"{version.label}: answers posted vs agreement"
        )
        if curve
        else "",
        "automation_source": str(metrics.get(CURVE_SOURCE_KEY) or "held-out answers"),
        "ece": f"{ece:.3f}" if isinstance(ece, (int, float)) else "not available",
        "review_threshold": f"{threshold:.2f}",
        "threshold_source": "chosen for the target agreement"
        if stored is not None
        else "SCOREBRIDGE_REVIEW_THRESHOLD (this kind stores none)",
        "item_threshold": version.item.review_threshold,
    }


def version_report(version: ModelVersion) -> dict[str, object]:
    """What the item page shows for one version: metrics, confusion matrix, training curve,
    the curve of answers posted automatically against their agreement."""
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
        "confidence": confidence_report(version),
    }


def merge_report(version: ModelVersion) -> dict[str, object] | None:
    """What a merged version's page shows: its group, plan, before/after metrics, storage."""
    metrics = version.metrics if isinstance(version.metrics, dict) else {}
    merge = metrics.get("merge")
    if version.kind != ModelVersion.Kind.MERGED or not isinstance(merge, dict):
        return None
    before = metrics.get("before") if isinstance(metrics.get("before"), dict) else {}
    summary = merge.get("job_summary") if isinstance(merge.get("job_summary"), dict) else {}
    job_before, job_after = summary.get("before") or {}, summary.get("after") or {}

    def fmt(value: object) -> str:
        return f"{value:.3f}" if isinstance(value, (int, float)) else "-"

    rows = [
        {"metric": label, "before": fmt(before.get(key)), "after": fmt(metrics.get(key))}  # type: ignore[union-attr]
        for key, label in (
            ("micro_f1", "micro F1"),
            ("macro_f1", "macro F1"),
            ("qwk", "QWK"),
            ("accuracy", "accuracy"),
        )
    ]
    job_rows = [
        {"metric": label, "before": fmt(job_before.get(key)), "after": fmt(job_after.get(key))}
        for key, label in (
            ("micro_f1_pooled", "micro F1 (all answers)"),
            ("macro_f1_item_mean", "macro F1 (item mean)"),
            ("qwk_item_mean", "QWK (item mean)"),
            ("accuracy_item_mean", "accuracy (item mean)"),
        )
    ]
    storage_before = merge.get("storage_before_bytes") or 0
    storage_after = merge.get("storage_after_bytes") or 0
    siblings = ModelVersion.objects.filter(
        kind=ModelVersion.Kind.MERGED, metrics__merge__job=merge.get("job")
    ).select_related("item")
    return {
        "info": merge,
        "rows": rows,
        "job_rows": job_rows,
        "storage_before_mb": f"{storage_before / 1e6:.1f}",
        "storage_after_mb": f"{storage_after / 1e6:.1f}",
        "storage_ratio": f"{storage_before / storage_after:.2f}x" if storage_after else "-",
        "group_versions": [v for v in siblings if v.item.key in merge.get("group_items", [])],
        "job_versions": list(siblings),
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


def merge_page(
    model_admin: admin.ModelAdmin,
    request: HttpRequest,
    items: list[Item],
    selected: list[int],
) -> HttpResponse | None:
    """The "Merge (GW plan)" action: a page with the job's settings; "Start merging" enqueues it.

    ``selected`` are the primary keys the action was called with (items or versions), posted
    back with the form.
    """
    items = sorted(set(items), key=lambda i: i.key)
    keys = [item.key for item in items]
    problem = ""
    kind = ""
    try:
        kind = next(iter(merge_sources(items).values())).kind
    except ValidationError as exc:
        problem = " ".join(exc.messages)
    if request.POST.get("apply") and not problem:
        form = MergeForm(request.POST, request.FILES, item_keys=keys)
        if form.is_valid():
            try:
                versions = start_merge(items, form.options(kind))
            except ValidationError as exc:
                form.add_error(None, exc)
            else:
                model_admin.message_user(
                    request,
                    f"Merge job {versions[0].progress.get('job')} queued for {len(versions)} "
                    "item(s); its versions appear under each item, inactive, when it is done.",
                )
                return None
    else:
        form = MergeForm(item_keys=keys)
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.model._meta,
        "title": "Merge the selected items' models (GW plan)",
        "items": [(item, item.active_version) for item in items],
        "selected": selected,
        "form": form,
        "problem": problem,
        "action_name": "merge_gw",
        "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
    }
    return TemplateResponse(request, "admin/scoring_plugin/item/merge.html", context)


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
class ItemAdmin(ModelPermissions, admin.ModelAdmin):
    list_display = ["key", "language", "max_score", "answer_count", "active_model"]
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
        "feedback",
    ]
    inlines = [ModelVersionInline]
    actions = [
        "train_auto",
        "train_head",
        "train_lora",
        "train_full",
        "merge_gw",
        "roll_back",
        "retrain_with_reviewed",
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
        return super().change_view(request, object_id, form_url, extra_context=extra)

    def rollback_view(self, request: HttpRequest, item_id: int) -> HttpResponse:
        item = get_object_or_404(Item, pk=item_id)
        if not self.has_activate_permission(request):
            return HttpResponse("You may not roll back model versions.", status=403)
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
                target = audit.roll_back(item, _actor(request))
                self.message_user(request, f"{target.label} is active again.")
            except ValidationError as exc:
                self.message_user(request, " ".join(exc.messages), messages.ERROR)

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
class ModelVersionAdmin(ModelPermissions, admin.ModelAdmin):
    list_display = ["__str__", "status", "is_active", "qwk", "accuracy", "trained_at", "note"]
    list_filter = ["status", "kind", "is_active"]
    search_fields = ["item__key"]
    readonly_fields = [
        "item",
        "number",
        "kind",
        "backbone",
        "artifact_key",
        "artifact_hash",
        "metrics",
        "review_threshold",
        "status",
        "progress",
        "error",
        "note",
        "is_active",
        "num_labels",
        "active_at_start",
        "created_at",
        "trained_at",
    ]
    actions = ["activate", "cancel", "distill", "merge_gw", "archive"]
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

    def has_delete_permission(self, request: HttpRequest, obj: ModelVersion | None = None) -> bool:
        # The active version, and versions that scored answers (archive those), are kept.
        if obj is not None and obj.deletion_problem():
            return False
        return super().has_delete_permission(request, obj)

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
            path(
                "<int:version_id>/merge-heatmap.png",
                self.admin_site.admin_view(self.merge_heatmap_view),
                name="scoring_plugin_modelversion_merge_heatmap",
            ),
            *admin_trust.model_card_urls(self),
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
        """The "Activate" button on the item and version pages; a version measured worse than
        the active one or the baseline is activated only after a confirmation step."""
        version = get_object_or_404(ModelVersion.objects.select_related("item"), pk=version_id)
        if not self.has_activate_permission(request):
            return HttpResponse("You may not activate model versions.", status=403)
        warnings = activation_warnings(version)
        if warnings and not request.POST.get("confirm"):
            return self._confirm_activation(
                request,
                [(version, warnings)],
                form_action=reverse(
                    "admin:scoring_plugin_modelversion_activate", args=[version.pk]
                ),
                next_url=next_url
                if (next_url := request.POST.get("next", "")).startswith("/admin/")
                else "",
            )
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
            extra["can_activate"] = self.has_activate_permission(request)
            extra["report"] = version_report(version)
            extra["merge"] = merge_report(version)
            extra["model_card"] = model_cards.card_markdown(model_cards.build_card(version))
        return super().change_view(request, object_id, form_url, extra_context=extra)

    def merge_heatmap_view(self, request: HttpRequest, version_id: int) -> HttpResponse:
        """The GW distance heatmap of the merge job that made a merged version."""
        version = get_object_or_404(ModelVersion, pk=version_id)
        if not self.has_view_permission(request, version):
            return HttpResponse("You may not view models.", status=403)
        merge = version.metrics.get("merge") if isinstance(version.metrics, dict) else None
        heatmap = Path(str(merge.get("heatmap", ""))) if isinstance(merge, dict) else None
        root = Path(settings.ARTIFACTS_DIR).resolve()
        if heatmap is None or not heatmap.resolve().is_relative_to(root) or not heatmap.is_file():
            raise Http404("This version has no merge heatmap.")
        return FileResponse(heatmap.open("rb"), content_type="image/png")

    def _confirm_activation(
        self,
        request: HttpRequest,
        flagged: list[tuple[ModelVersion, list[str]]],
        *,
        form_action: str = "",
        next_url: str = "",
        selected: list[int] | None = None,
    ) -> HttpResponse:
        """The confirmation step before activating versions measured worse."""
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Activate a version that scored worse?",
            "flagged": flagged,
            "form_action": form_action,
            "next_url": next_url,
            "selected": selected or [],
            "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(
            request, "admin/scoring_plugin/modelversion/activate_confirm.html", context
        )

    @admin.action(
        description="Activate (this version scores its item from now on)",
        permissions=["activate"],
    )
    def activate(
        self, request: HttpRequest, queryset: QuerySet[ModelVersion]
    ) -> HttpResponse | None:
        versions = list(queryset.select_related("item"))
        flagged = [(v, w) for v in versions if (w := activation_warnings(v))]
        if flagged and not request.POST.get("confirm"):
            return self._confirm_activation(request, flagged, selected=[v.pk for v in versions])
        for version in versions:
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
        path = (version_folder_or_none(version) or Path("-")) / "student.onnx"
        if version.kind != ModelVersion.Kind.DISTILLED or not path.is_file():
            raise Http404("This version has no distilled student file.")
        return FileResponse(
            path.open("rb"),
            as_attachment=True,
            filename=f"{version.item.key}-v{version.number}-student.onnx",
            content_type="application/octet-stream",
        )

    @admin.action(
        description="Distill into a tiny student (taught by this version)", permissions=["train"]
    )
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

    @admin.action(
        description="Merge (GW plan): merge these versions' items (their active models)",
        permissions=["train"],
    )
    def merge_gw(
        self, request: HttpRequest, queryset: QuerySet[ModelVersion]
    ) -> HttpResponse | None:
        versions = list(queryset.select_related("item"))
        return merge_page(self, request, [v.item for v in versions], [v.pk for v in versions])

    @admin.action(description="Cancel training", permissions=["train"])
    def cancel(self, request: HttpRequest, queryset: QuerySet[ModelVersion]) -> None:
        count = queryset.filter(
            status__in=[ModelVersion.Status.PENDING, ModelVersion.Status.TRAINING]
        ).update(status=ModelVersion.Status.CANCELLED)
        self.message_user(request, f"Cancelled {count} training job(s).")

    @admin.action(
        description="Archive (keep an inactive version, with the answers it scored)",
        permissions=["activate"],
    )
    def archive(self, request: HttpRequest, queryset: QuerySet[ModelVersion]) -> None:
        count = (
            queryset.filter(is_active=False)
            .exclude(status__in=[ModelVersion.Status.PENDING, ModelVersion.Status.TRAINING])
            .update(status=ModelVersion.Status.ARCHIVED)
        )
        skipped = queryset.count() - count
        self.message_user(
            request,
            f"Archived {count} version(s)"
            + (f"; {skipped} active or training version(s) left as they were." if skipped else "."),
        )


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

    def save_model(self, request, obj, form, change):  # type: ignore[no-untyped-def]
        if change and {"reviewed_score", "review_comment"} & set(form.changed_data):
            # The one override function: audit entry, and the LMS gradebook follows.
            apply_override(
                obj,
                obj.reviewed_score,
                obj.review_comment,
                _actor(request),
                via=Submission.ReviewedVia.ADMIN,
            )
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
    change_list_template = "admin/scoring_plugin/auditlog/change_list.html"

    def get_urls(self):  # type: ignore[no-untyped-def]
        return admin_trust.urls(self) + super().get_urls()

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
