"""The model version admin: the version page with its report, live progress, activation
(with a confirmation when it measured worse), distillation, merging, cancel and archive."""

from __future__ import annotations

from pathlib import Path

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

from scoring_plugin import admin_trust, audit, model_cards
from scoring_plugin.admin.reports import (
    merge_report,
    metric_text,
    progress_bar,
    progress_payload,
    version_report,
)
from scoring_plugin.admin.shared import ModelPermissions, admin_actor, merge_page
from scoring_plugin.artifact_store import version_folder_or_none
from scoring_plugin.models import ModelVersion
from scoring_plugin.services import activation_warnings, start_distillation


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
        "review_threshold",
        "status",
        "training",
        "error",
        "note",
        "is_active",
        "num_labels",
        "active_at_start",
        "created_at",
        "trained_at",
    ]
    # The metrics and progress JSON are shown for people (the report below, the bar), not edited.
    exclude = ["metrics", "progress"]
    actions = ["activate", "cancel", "distill", "merge_gw", "archive"]
    list_select_related = ["item"]
    change_form_template = "admin/scoring_plugin/modelversion/change_form.html"

    @admin.display(description="QWK")
    def qwk(self, version: ModelVersion) -> str:
        return metric_text(version, "qwk")

    @admin.display(description="accuracy")
    def accuracy(self, version: ModelVersion) -> str:
        return metric_text(version, "accuracy")

    @admin.display(description="progress")
    def training(self, version: ModelVersion) -> str:
        return progress_bar(version)

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
            audit.activate(version, admin_actor(request))
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
                audit.activate(version, admin_actor(request))
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
