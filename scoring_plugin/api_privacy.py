"""Admin-only API for trust duties: a student's data (export, erase) and the decision log."""

from __future__ import annotations

import json

from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import HttpResponse
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.exceptions import ValidationError as ApiValidationError
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from scoring_plugin import decision_log, privacy


class StaffWith(BasePermission):
    """Staff users holding ``perm`` (superusers hold every permission)."""

    perm = ""

    def has_permission(self, request: Request, view: object) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and user.is_staff and user.has_perm(self.perm))


class ManagesStudentData(StaffWith):
    perm = "scoring_plugin.manage_student_data"


class StudentSerializer(serializers.Serializer):
    lms_user_id = serializers.CharField(max_length=255)
    issuer = serializers.CharField(max_length=255, required=False, allow_blank=True)


class ExportSerializer(StudentSerializer):
    format = serializers.ChoiceField(choices=["json", "csv"], default="json")


class EraseSerializer(StudentSerializer):
    mode = serializers.ChoiceField(choices=list(privacy.MODES), default="erase")


def _actor(request: Request) -> str:
    return f"api:{request.user.get_username()}"


def _records(data: dict[str, object]) -> privacy.StudentRecords:
    handle = privacy.StudentHandle(str(data["lms_user_id"]), str(data.get("issuer") or ""))
    try:
        return privacy.collect(handle)
    except DjangoValidationError as exc:
        raise ApiValidationError({"lms_user_id": exc.messages}) from exc


class StudentDataExport(APIView):
    permission_classes = [ManagesStudentData]

    @extend_schema(request=ExportSerializer, responses={200: dict})
    def post(self, request: Request) -> HttpResponse:
        """Everything held about one LMS user, as JSON or CSV."""
        body = ExportSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        records = _records(body.validated_data)
        data = privacy.export_data(records)
        fmt = body.validated_data["format"]
        privacy.record_export(records, _actor(request), fmt)
        if fmt == "csv":
            response = HttpResponse(
                privacy.export_csv(data), content_type="text/csv; charset=utf-8"
            )
        else:
            response = HttpResponse(
                json.dumps(data, ensure_ascii=False), content_type="application/json"
            )
        response["Content-Disposition"] = f'attachment; filename="student-data.{fmt}"'
        response["Cache-Control"] = "no-store"
        return response


class StudentDataErase(APIView):
    permission_classes = [ManagesStudentData]

    @extend_schema(request=EraseSerializer, responses={200: dict})
    def post(self, request: Request) -> Response:
        """Erase (delete) or pseudonymise everything held about one LMS user."""
        body = EraseSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        records = _records(body.validated_data)
        try:
            report = privacy.erase(records, _actor(request), mode=body.validated_data["mode"])
        except DjangoValidationError as exc:
            raise ApiValidationError({"mode": exc.messages}) from exc
        return Response(report.to_json())


# --- Decision log ---------------------------------------------------------------------------


class ExportsDecisionLog(StaffWith):
    perm = "scoring_plugin.export_decision_log"


class DecisionLogQuery(serializers.Serializer):
    start = serializers.DateField(help_text="first day (YYYY-MM-DD), by when it was scored")
    end = serializers.DateField(help_text="last day, inclusive")
    course = serializers.CharField(required=False, allow_blank=True, default="")
    # not "format": REST framework reads that query parameter to pick a renderer
    output = serializers.ChoiceField(choices=["json", "csv"], default="json")

    def validate(self, data: dict[str, object]) -> dict[str, object]:
        if data["end"] < data["start"]:  # type: ignore[operator]
            raise serializers.ValidationError({"end": "The last day is before the first."})
        return data


class DecisionLogExport(APIView):
    permission_classes = [ExportsDecisionLog]

    @extend_schema(parameters=[DecisionLogQuery], responses={200: dict})
    def get(self, request: Request) -> HttpResponse:
        """The decision log for a date range (``start``, ``end``) and optionally a course."""
        query = DecisionLogQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        data = query.validated_data
        body, content_type = decision_log.render(
            decision_log.DecisionQuery(data["start"], data["end"], data["course"]),
            data["output"],
        )
        response = HttpResponse(body, content_type=content_type)
        response["Content-Disposition"] = f'attachment; filename="decision-log.{data["output"]}"'
        return response
