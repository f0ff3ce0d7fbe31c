"""JSON API for integrations without LTI: list items, submit an answer, read its score."""

from __future__ import annotations

import threading

from django.core.exceptions import ValidationError as DjangoValidationError
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound, PermissionDenied
from rest_framework.exceptions import ValidationError as ApiValidationError
from rest_framework.generics import ListAPIView, RetrieveAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from scoring_plugin.models import Criterion, Item, Submission
from scoring_plugin.overrides import apply_override
from scoring_plugin.services import submit_answer


class CriterionSerializer(serializers.ModelSerializer):
    class Meta:
        model = Criterion
        fields = ["name", "max_score"]


class ItemSerializer(serializers.ModelSerializer):
    active_version = serializers.SerializerMethodField()
    criteria = CriterionSerializer(
        many=True, read_only=True, help_text="An analytic item's criteria; [] when holistic."
    )

    class Meta:
        model = Item
        fields = ["key", "prompt", "language", "max_score", "criteria", "active_version"]

    def get_active_version(self, item: Item) -> str | None:
        version = item.active_version
        return version.label if version else None


class SubmissionSerializer(serializers.ModelSerializer):
    """An answer as the API shows it (every submit and every poll builds one)."""

    item = serializers.SlugRelatedField(slug_field="key", read_only=True)
    model_version = serializers.SerializerMethodField()
    needs_review = serializers.BooleanField(read_only=True)
    final_score = serializers.IntegerField(
        read_only=True, allow_null=True, help_text="The reviewed score if any, else the score."
    )

    class Meta:
        model = Submission
        fields = [
            "id",
            "item",
            "text",
            "status",
            "score",
            "criterion_scores",
            "probabilities",
            "confidence",
            "needs_review",
            "flags",
            "truncated",
            "model_version",
            "waiting_for",
            "error",
            "client_reference",
            "created_at",
            "scored_at",
            "reviewed_score",
            "reviewed_criterion_scores",
            "review_comment",
            "reviewed_by",
            "reviewed_at",
            "reviewed_via",
            "final_score",
        ]

    def get_model_version(self, submission: Submission) -> str | None:
        return submission.model_version.label if submission.model_version else None


_BOUND = threading.local()


def submission_body(submission: Submission) -> dict[str, object]:
    """What ``SubmissionSerializer(submission).data`` gives, from one serializer per thread whose
    fields are built and bound once: every submit, poll and batch builds bodies, and building
    the ~25 fields for each (ModelSerializer introspects the model) was a sixth of a
    submission's web CPU (issue 19)."""
    serializer = getattr(_BOUND, "submission", None)
    if serializer is None:
        serializer = _BOUND.submission = SubmissionSerializer()
    return dict(serializer.to_representation(submission))


class SubmitSerializer(serializers.Serializer):
    text = serializers.CharField(allow_blank=True, trim_whitespace=False)
    client_reference = serializers.CharField(required=False, allow_blank=True, max_length=200)


class ReviewSerializer(serializers.Serializer):
    score = serializers.IntegerField(
        required=False,
        allow_null=True,
        min_value=0,
        help_text="The instructor's score; null removes the review. With criteria: left out "
        "(or their sum).",
    )
    criteria = serializers.DictField(
        child=serializers.IntegerField(min_value=0),
        required=False,
        help_text="An analytic item's score per criterion, every criterion within its range, "
        'e.g. {"content": 2, "language": 1}; the score is their sum.',
    )
    comment = serializers.CharField(required=False, allow_blank=True, max_length=2000)

    def validate(self, attrs: dict[str, object]) -> dict[str, object]:
        if "score" not in attrs and "criteria" not in attrs:
            raise serializers.ValidationError({"score": ["Give a score, or criteria."]})
        return attrs


class ItemList(ListAPIView):
    serializer_class = ItemSerializer
    queryset = Item.objects.prefetch_related("criteria")


class ItemDetail(RetrieveAPIView):
    serializer_class = ItemSerializer
    queryset = Item.objects.prefetch_related("criteria")
    lookup_field = "key"


class SubmitAnswer(APIView):
    @extend_schema(request=SubmitSerializer, responses={202: SubmissionSerializer})
    def post(self, request: Request, key: str) -> Response:
        """Store an answer for the item and enqueue it; poll the returned URL for the score."""
        item = Item.objects.filter(key=key).first()
        if item is None:
            raise NotFound(f"Unknown item '{key}'.")
        data = SubmitSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            submission = submit_answer(
                item,
                data.validated_data["text"],
                user=request.user,
                client_reference=data.validated_data.get("client_reference", ""),
            )
        except DjangoValidationError as exc:
            raise ApiValidationError({"text": exc.messages}) from exc
        body = submission_body(submission)
        location = request.build_absolute_uri(f"/api/v1/submissions/{submission.pk}/")
        return Response(body, status=status.HTTP_202_ACCEPTED, headers={"Location": location})


class SubmissionDetail(RetrieveAPIView):
    serializer_class = SubmissionSerializer

    def retrieve(self, request: Request, *args: object, **kwargs: object) -> Response:
        return Response(submission_body(self.get_object()))

    def get_object(self) -> Submission:
        submission = get_object_or_404(
            Submission.objects.select_related("item", "model_version__item"), pk=self.kwargs["pk"]
        )
        user = self.request.user
        # Staff see every answer; an API client sees the answers it submitted.
        if not user.is_staff and submission.submitted_by_id != user.pk:
            raise NotFound("No such submission.")
        return submission


REVIEW_PERMISSION = "scoring_plugin.change_submission"


class ReviewSubmission(APIView):
    @extend_schema(request=ReviewSerializer, responses={200: SubmissionSerializer})
    def post(self, request: Request, pk: str) -> Response:
        """Give an answer an instructor's score (users with the change-submission permission);
        an answer that came through an LMS has its grade sent to the gradebook."""
        if not request.user.has_perm(REVIEW_PERMISSION):
            raise PermissionDenied("Reviewing answers needs the change-submission permission.")
        submission = get_object_or_404(
            Submission.objects.select_related("item", "model_version__item"), pk=pk
        )
        data = ReviewSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            apply_override(
                submission,
                data.validated_data.get("score"),
                data.validated_data.get("comment", ""),
                f"api:{request.user.get_username()}",
                via=Submission.ReviewedVia.API,
                criteria=data.validated_data.get("criteria"),
            )
        except DjangoValidationError as exc:
            field = "criteria" if "criteria" in data.validated_data else "score"
            raise ApiValidationError({field: exc.messages}) from exc
        return Response(submission_body(submission))
