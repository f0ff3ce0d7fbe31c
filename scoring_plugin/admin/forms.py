"""The admin's forms: the CSV import, a merge job's settings, an answer's review."""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError

from ml_core.merge.plans import PlanError, parse_plan_text
from scoring_plugin.models import Submission
from scoring_plugin.overrides import criterion_override
from scoring_plugin.services import MERGE_METHODS, MergeOptions

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


CRITERION_FIELD = "criterion:"


class SubmissionReviewForm(forms.ModelForm):
    """An answer's review: a total, or for an analytic item a score per criterion
    (:func:`review_form_for` adds the fields). ``criteria`` is what the admin gives
    :func:`scoring_plugin.overrides.apply_override`: the criterion scores, or None for a total."""

    criteria: dict[str, str] | None = None

    class Meta:
        model = Submission
        fields = ["reviewed_score", "review_comment"]

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        given = self.instance.reviewed_criterion_scores if self.instance.pk else {}
        if self.instance.pk and self.instance.reviewed_score is not None:
            for name in self._criterion_fields():
                value = given.get(name[len(CRITERION_FIELD) :]) if isinstance(given, dict) else None
                self.initial.setdefault(name, "" if value is None else str(value))

    def _criterion_fields(self) -> list[str]:
        return [name for name in self.fields if name.startswith(CRITERION_FIELD)]

    def clean_reviewed_score(self) -> int | None:
        score = self.cleaned_data.get("reviewed_score")
        if score is not None and score > self.instance.item.max_score:
            raise ValidationError(f"Enter a score from 0 to {self.instance.item.max_score}.")
        return score

    def clean(self) -> dict[str, object]:
        """Criterion scores, when given, are checked by the override's own check and make the
        total; a new total with the criteria left as they were replaces them."""
        data = super().clean() or {}
        names = self._criterion_fields()
        given = {n[len(CRITERION_FIELD) :]: str(data.get(n) or "").strip() for n in names}
        changed = set(self.changed_data)
        total_changed = "reviewed_score" in changed
        if not any(given.values()) or (total_changed and not changed & set(names)):
            self.criteria = None
            return data
        try:
            total = sum(criterion_override(self.instance.item, given).values())
        except ValidationError as exc:
            self.add_error(None, exc)
            return data
        if total_changed and data.get("reviewed_score") not in (None, total):
            self.add_error(
                "reviewed_score",
                f"The criterion scores add up to {total}: leave the total or make them match.",
            )
        data["reviewed_score"] = total
        self.criteria = given
        return data


def review_form_for(submission: Submission | None) -> type[SubmissionReviewForm]:
    """The review form of ``submission``: for an analytic item, one field per criterion."""
    criteria = list(submission.item.criteria.all()) if submission is not None else []
    if not criteria:
        return SubmissionReviewForm
    fields = {
        f"{CRITERION_FIELD}{c.name}": forms.CharField(
            required=False,
            max_length=20,
            label=f"Reviewed score: {c.name}",
            help_text=f"0 to {c.max_score}. Give every criterion: the total is their sum.",
        )
        for c in criteria
    }
    return type("AnalyticSubmissionReviewForm", (SubmissionReviewForm,), fields)
