"""Admin pages for trust duties, mounted under the audit log: a student's data (export, erase)
and, later in this module, the decision log. Each page checks its own permission."""

from __future__ import annotations

import json

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path

from scoring_plugin import decision_log, model_cards, privacy
from scoring_plugin.models import ModelVersion


def _actor(request: HttpRequest) -> str:
    return f"admin:{request.user.get_username()}"


class StudentDataForm(forms.Form):
    lms_user_id = forms.CharField(
        max_length=255, label="LMS user id", help_text="The LTI 'sub' of the student."
    )
    issuer = forms.CharField(
        max_length=255,
        required=False,
        help_text="The platform's issuer; needed when two platforms know the same id.",
    )
    operation = forms.ChoiceField(
        choices=[
            ("export_json", "Export as JSON"),
            ("export_csv", "Export as CSV"),
            ("pseudonymise", "Pseudonymise (keep scores under a pseudonym, remove text and ids)"),
            ("erase", "Erase (delete answers, reviews, identity)"),
        ]
    )
    confirm = forms.BooleanField(
        required=False,
        help_text="Required to erase or pseudonymise: it cannot be undone.",
    )

    def clean(self) -> dict[str, object]:
        data = super().clean() or {}
        if data.get("operation") in privacy.MODES and not data.get("confirm"):
            self.add_error("confirm", "Tick to confirm: erasure cannot be undone.")
        return data


def student_data_view(model_admin: admin.ModelAdmin, request: HttpRequest) -> HttpResponse:
    """Find a student by LMS user id; export their data or erase it."""
    if not request.user.has_perm("scoring_plugin.manage_student_data"):
        return HttpResponse("You may not export or erase students' data.", status=403)
    form = StudentDataForm(request.POST or None)
    report: dict[str, object] | None = None
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        handle = privacy.StudentHandle(data["lms_user_id"], data.get("issuer") or "")
        try:
            records = privacy.collect(handle)
        except ValidationError as exc:
            form.add_error("lms_user_id", exc)
        else:
            operation = data["operation"]
            if operation.startswith("export_"):
                fmt = operation.removeprefix("export_")
                exported = privacy.export_data(records)
                privacy.record_export(records, _actor(request), fmt)
                body = (
                    privacy.export_csv(exported)
                    if fmt == "csv"
                    else json.dumps(exported, indent=2, ensure_ascii=False)
                )
                response = HttpResponse(
                    body,
                    content_type="text/csv; charset=utf-8" if fmt == "csv" else "application/json",
                )
                response["Content-Disposition"] = f'attachment; filename="student-data.{fmt}"'
                response["Cache-Control"] = "no-store"
                return response
            result = privacy.erase(records, _actor(request), mode=operation)
            report = result.to_json()
            model_admin.message_user(
                request,
                f"{operation}: {result.counts.get('answers', 0)} answer(s) of the student done.",
                messages.SUCCESS,
            )
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.model._meta,
        "title": "A student's data: export or erase",
        "form": form,
        "report": json.dumps(report, indent=2) if report else "",
    }
    return TemplateResponse(request, "admin/scoring_plugin/auditlog/student_data.html", context)


class DecisionLogForm(forms.Form):
    start = forms.DateField(label="From", help_text="First day (YYYY-MM-DD), by scoring time.")
    end = forms.DateField(label="To", help_text="Last day, inclusive.")
    course = forms.CharField(
        required=False, help_text="LTI course (context) id or title; empty = all answers."
    )
    format = forms.ChoiceField(choices=[("csv", "CSV"), ("json", "JSON")])

    def clean(self) -> dict[str, object]:
        data = super().clean() or {}
        if data.get("start") and data.get("end") and data["end"] < data["start"]:
            self.add_error("end", "The last day is before the first.")
        return data


def decision_log_view(model_admin: admin.ModelAdmin, request: HttpRequest) -> HttpResponse:
    """Download the decision log for a date range and course."""
    if not request.user.has_perm("scoring_plugin.export_decision_log"):
        return HttpResponse("You may not export the decision log.", status=403)
    form = DecisionLogForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        body, content_type = decision_log.render(
            decision_log.DecisionQuery(data["start"], data["end"], data["course"]), data["format"]
        )
        response = HttpResponse(body, content_type=content_type)
        response["Content-Disposition"] = f'attachment; filename="decision-log.{data["format"]}"'
        return response
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.model._meta,
        "title": "Decision log: export for an auditor",
        "form": form,
    }
    return TemplateResponse(request, "admin/scoring_plugin/auditlog/decision_log.html", context)


def urls(model_admin: admin.ModelAdmin) -> list[URLPattern]:
    """The trust pages, for ``AuditLogAdmin.get_urls``."""
    site = model_admin.admin_site
    return [
        path(
            "student-data/",
            site.admin_view(lambda request: student_data_view(model_admin, request)),
            name="scoring_plugin_auditlog_student_data",
        ),
        path(
            "decision-log/",
            site.admin_view(lambda request: decision_log_view(model_admin, request)),
            name="scoring_plugin_auditlog_decision_log",
        ),
    ]


def model_card_view(
    model_admin: admin.ModelAdmin, request: HttpRequest, version_id: int, fmt: str
) -> HttpResponse:
    """A version's model card as a Markdown or JSON download."""
    version = get_object_or_404(ModelVersion.objects.select_related("item"), pk=version_id)
    if not model_admin.has_view_permission(request, version):
        return HttpResponse("You may not view models.", status=403)
    card = model_cards.build_card(version)
    if fmt == "json":
        body, content_type = json.dumps(card, indent=2, sort_keys=True), "application/json"
    elif fmt == "md":
        body, content_type = model_cards.card_markdown(card), "text/markdown; charset=utf-8"
    else:
        raise Http404("Model cards are .md or .json.")
    response = HttpResponse(body, content_type=content_type)
    name = f"{version.item.key}-v{version.number}-model-card.{fmt}"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


def model_card_urls(model_admin: admin.ModelAdmin) -> list[URLPattern]:
    """The card downloads, for ``ModelVersionAdmin.get_urls``."""
    return [
        path(
            "<int:version_id>/model-card.<str:fmt>",
            model_admin.admin_site.admin_view(
                lambda request, version_id, fmt: model_card_view(
                    model_admin, request, version_id, fmt
                )
            ),
            name="scoring_plugin_modelversion_card",
        )
    ]
