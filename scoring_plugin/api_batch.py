"""Batch submission for integrations: up to 100 answers in one request, all or none stored."""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError as ApiValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from scoring_plugin.api import SubmissionSerializer, submission_body
from scoring_plugin.models import Item
from scoring_plugin.services import clean_answer, submit_answer
from scoring_plugin.throttling import ScopedRateThrottle, UserRateThrottle

MAX_BATCH = 100


class BatchAnswerSerializer(serializers.Serializer):
    item = serializers.CharField(max_length=200, help_text="The item's key.")
    text = serializers.CharField(allow_blank=True, trim_whitespace=False)
    client_reference = serializers.CharField(required=False, allow_blank=True, max_length=200)


class BatchSubmitSerializer(serializers.Serializer):
    answers = BatchAnswerSerializer(many=True, help_text=f"1 to {MAX_BATCH} answers.")

    def validate_answers(self, answers: list[dict[str, str]]) -> list[dict[str, str]]:
        if not answers:
            raise serializers.ValidationError("Send at least one answer.")
        if len(answers) > MAX_BATCH:
            raise serializers.ValidationError(f"Send at most {MAX_BATCH} answers per request.")
        return answers


class BatchSubmitResponseSerializer(serializers.Serializer):
    submissions = SubmissionSerializer(many=True)


class BatchSubmit(APIView):
    """Each answer is checked first; if any is wrong nothing is stored and the errors name the
    index of each wrong answer. Stored answers are enqueued after the transaction commits."""

    throttle_classes = [UserRateThrottle, ScopedRateThrottle]
    throttle_scope = "batch"

    @extend_schema(request=BatchSubmitSerializer, responses={202: BatchSubmitResponseSerializer})
    def post(self, request: Request) -> Response:
        data = BatchSubmitSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        answers = data.validated_data["answers"]
        items = Item.objects.in_bulk({a["item"] for a in answers}, field_name="key")
        errors: dict[str, dict[str, list[str]]] = {}
        for index, answer in enumerate(answers):
            problems: dict[str, list[str]] = {}
            if answer["item"] not in items:
                problems["item"] = [f"Unknown item '{answer['item']}'."]
            try:
                clean_answer(answer["text"])
            except DjangoValidationError as exc:
                problems["text"] = exc.messages
            if problems:
                errors[str(index)] = problems
        if errors:
            raise ApiValidationError({"answers": errors})
        with transaction.atomic():
            stored = [
                submit_answer(
                    items[a["item"]],
                    a["text"],
                    user=request.user,
                    client_reference=a.get("client_reference", ""),
                )
                for a in answers
            ]
        body = {"submissions": [submission_body(s) for s in stored]}
        return Response(body, status=status.HTTP_202_ACCEPTED)
