"""Analytic rubrics (issue 16): items with named criteria import from the CSVs (errors name the
file, row and column; nothing is half-imported), train one head per criterion and store the
criterion scores of each answer beside its total."""

from __future__ import annotations

import json
import random

import pytest
from django.core.exceptions import ValidationError

from scoring_plugin.admin.reports import metric_rows
from scoring_plugin.artifact_store import version_folder
from scoring_plugin.models import Criterion, Item, ModelVersion, ScoredAnswer
from scoring_plugin.services import (
    ImportError_,
    create_model_version,
    import_item_bank,
    start_training,
    training_examples,
    training_kind,
)
from tests.factories import ItemFactory, ScoredAnswerFactory
from tests.scoring.conftest import WORDS

ITEMS = (
    "item_id,language,prompt,reference_answer,max_score,criterion:content,"
    "criterion:content:feedback_0,criterion:content:feedback_2,criterion:language\n"
    "rubric,en,Name the transport protocols.,tcp and udp,3,2,Name a protocol.,Both named.,1\n"
    "plain,en,Why does ice float?,Less dense,2,,,,\n"
)
RESPONSES = (
    "item_id,response_id,text,score,split,score:content,score:language\n"
    "rubric,r1,tcp and udp,3,train,2,1\n"
    "rubric,r2,tcp,,train,1,0\n"
    "plain,p1,less dense,2,,,\n"
    "rubric,r3,,,,,\n"
)


@pytest.mark.django_db
def test_criteria_and_criterion_scores_are_imported() -> None:
    summary = import_item_bank(ITEMS.encode(), RESPONSES.encode())
    assert (summary.items_created, summary.answers_created, summary.unscored_created) == (2, 3, 1)
    rubric = Item.objects.get(key="rubric")
    criteria = list(rubric.criteria.all())
    assert [(c.name, c.max_score, c.order) for c in criteria] == [
        ("content", 2, 0),
        ("language", 1, 1),
    ]
    assert criteria[0].feedback_for(2) == "Both named." and criteria[1].feedback == {}
    assert ScoredAnswer.objects.get(response_key="r1").criterion_scores == {
        "content": 2,
        "language": 1,
    }
    # a blank total is the sum of the criterion scores
    assert ScoredAnswer.objects.get(response_key="r2").score == 1
    assert not Item.objects.get(key="plain").criteria.exists()
    assert ScoredAnswer.objects.get(response_key="p1").criterion_scores == {}


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("items", "row", "column"),
    [
        (ITEMS.replace("rubric,en,Name the transport protocols.,tcp and udp,3", "rubric,en,"
         "Name the transport protocols.,tcp and udp,4"), 2, "max_score"),
        (ITEMS.replace(",2,Name a protocol.,Both named.,1", ",2,Name a protocol.,Both named.,"),
         2, "criterion:content"),
        (ITEMS.replace("criterion:language\n", "criterion:Lang uage\n"), 1, "criterion:Lang uage"),
        (ITEMS.replace("criterion:content:feedback_2", "criterion:content:feedback_3"), 2,
         "criterion:content:feedback_3"),
        (ITEMS.replace("plain,en,Why does ice float?,Less dense,2,,,,",
                       "plain,en,Why does ice float?,Less dense,2,,Hint,,"), 3,
         "criterion:content:feedback_0"),
    ],
)  # fmt: skip
def test_a_bad_items_row_is_named_and_nothing_is_imported(
    items: str, row: int, column: str
) -> None:
    with pytest.raises(ImportError_) as caught:
        import_item_bank(items.encode(), RESPONSES.encode())
    assert caught.value.file == "items.csv"
    assert (caught.value.error.row, caught.value.error.column) == (row, column)
    assert not Item.objects.exists() and not Criterion.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("responses", "row", "column"),
    [
        (RESPONSES + "rubric,r4,udp,2,,1,0\n", 6, "score"),  # total is not the sum
        (RESPONSES + "rubric,r4,udp,,,3,0\n", 6, "score:content"),  # above the criterion
        (RESPONSES + "rubric,r4,udp,1,,1,\n", 6, "score:language"),  # one criterion missing
        (RESPONSES + "rubric,r4,udp,1,,,\n", 6, "score:content"),  # a total alone
        (RESPONSES + "plain,p2,ice,,,1,\n", 6, "score:content"),  # a holistic item
        (RESPONSES.replace("score:language", "score:style"), 2, "score:style"),
    ],
)
def test_a_bad_responses_row_is_named_and_nothing_is_imported(
    responses: str, row: int, column: str
) -> None:
    with pytest.raises(ImportError_) as caught:
        import_item_bank(ITEMS.encode(), responses.encode())
    assert caught.value.file == "responses.csv"
    assert (caught.value.error.row, caught.value.error.column) == (row, column)
    assert not Item.objects.exists() and not ScoredAnswer.objects.exists()


@pytest.mark.django_db
def test_responses_for_a_stored_analytic_item_are_checked_against_its_criteria() -> None:
    import_item_bank(ITEMS.encode(), None)
    with pytest.raises(ImportError_) as caught:
        import_item_bank(None, (RESPONSES + "rubric,r4,udp,,,3,0\n").encode())
    assert (caught.value.error.row, caught.value.error.column) == (6, "score:content")


@pytest.mark.django_db
def test_criteria_of_an_item_with_scores_cannot_change() -> None:
    import_item_bank(ITEMS.encode(), RESPONSES.encode())
    renamed = ITEMS.replace("criterion:language", "criterion:style")
    with pytest.raises(ImportError_) as caught:
        import_item_bank(renamed.encode(), None)
    assert (caught.value.error.row, caught.value.error.column) == (2, "criterion:style")
    assert list(Criterion.objects.values_list("name", flat=True)) == ["content", "language"]


@pytest.mark.django_db
def test_an_analytic_item_trains_head_on_answers_scored_per_criterion() -> None:
    item = ItemFactory(key="rubric", max_score=3)
    Criterion.objects.create(item=item, name="content", max_score=2, order=0)
    Criterion.objects.create(item=item, name="language", max_score=1, order=1)
    for i in range(12):
        content, language = i % 3, i % 2
        ScoredAnswerFactory(
            item=item,
            score=content + language,
            criterion_scores={"content": content, "language": language},
        )
    ScoredAnswerFactory(item=item, score=2, source="review")  # an instructor's total alone
    examples = training_examples(item)
    assert len(examples) == 12
    assert [e.criteria_labels for e in examples[:3]] == [(0, 0), (1, 1), (2, 0)]
    kind, note = training_kind(item, ModelVersion.Kind.AUTO)
    assert kind == ModelVersion.Kind.HEAD and "analytic" in note
    version = start_training(item, ModelVersion.Kind.AUTO)
    assert version.kind == ModelVersion.Kind.HEAD


@pytest.mark.django_db
def test_an_analytic_item_needs_ten_answers_scored_per_criterion() -> None:
    item = ItemFactory(key="rubric", max_score=3)
    Criterion.objects.create(item=item, name="content", max_score=2, order=0)
    Criterion.objects.create(item=item, name="language", max_score=1, order=1)
    for _ in range(12):
        ScoredAnswerFactory(item=item, score=1)
    with pytest.raises(ValidationError, match="scored on every criterion"):
        start_training(item, ModelVersion.Kind.HEAD)
    assert not ModelVersion.objects.exists()


@pytest.mark.django_db
def test_criterion_feedback_is_edited_on_the_item_page_and_checked(admin_client) -> None:  # type: ignore[no-untyped-def]
    import_item_bank(ITEMS.encode(), None)
    item = Item.objects.get(key="rubric")
    content, language = item.criteria.all()
    url = f"/admin/scoring_plugin/item/{item.pk}/change/"
    form = {
        "key": item.key,
        "title": "",
        "prompt": item.prompt,
        "reference_answer": item.reference_answer,
        "language": "en",
        "max_score": "3",
        "review_threshold": "",
        "feedback": "{}",
        "model_versions-TOTAL_FORMS": "0",
        "model_versions-INITIAL_FORMS": "0",
        "criteria-TOTAL_FORMS": "2",
        "criteria-INITIAL_FORMS": "2",
        "criteria-0-id": str(content.pk),
        "criteria-0-item": str(item.pk),
        "criteria-0-feedback": json.dumps({"1": "One of two."}),
        "criteria-1-id": str(language.pk),
        "criteria-1-item": str(item.pk),
        "criteria-1-feedback": json.dumps({"2": "Above the range."}),
    }
    page = admin_client.get(url).content.decode()
    assert "content" in page and "active model on this criterion" in page.lower()
    response = admin_client.post(url, form)
    assert response.status_code == 200
    assert "is not a score from 0 to 1 with text" in response.content.decode()
    response = admin_client.post(url, {**form, "criteria-1-feedback": "{}"})
    assert response.status_code == 302
    content.refresh_from_db()
    assert content.feedback == {"1": "One of two."} and content.max_score == 2


@pytest.mark.django_db
def test_an_analytic_version_trains_with_its_checks_and_criterion_metrics(scoring_settings) -> None:  # type: ignore[no-untyped-def]
    from workers.tasks import run_training

    item = ItemFactory(key="rubric", max_score=3)
    Criterion.objects.create(item=item, name="content", max_score=2, order=0)
    Criterion.objects.create(item=item, name="reasoning", max_score=1, order=1)
    rng = random.Random(3)
    fillers = [w for w in WORDS if w not in ("tcp", "udp", "because")]
    for i in range(40):
        content, reasoning = i % 3, (i // 3) % 2
        words = rng.sample(fillers, 4) + ["tcp", "udp"][:content] + ["because"] * reasoning
        ScoredAnswerFactory(
            item=item,
            text=" ".join(words),
            score=content + reasoning,
            criterion_scores={"content": content, "reasoning": reasoning},
        )
    version = create_model_version(item, ModelVersion.Kind.HEAD)
    assert run_training(version, activate=True, examples=training_examples(item)) == "ready"
    version.refresh_from_db()
    metrics = version.metrics
    for key in ("exact_match", "qwk/content", "accuracy/reasoning", "macro_f1/reasoning"):
        assert -1.0 <= metrics[key] <= 1.0, key  # QWK may be below 0
    assert metrics["gaming"]["attacks"] and metrics["agreement_curve_source"]
    card = json.loads((version_folder(version) / "model_card.json").read_text())
    assert card["model_version"] == "rubric@v1"
    labels = [row.label for row in metric_rows(version)]
    assert "exact match (every criterion right)" in labels
    assert "QWK: criterion content" in labels and "macro F1: criterion reasoning" in labels
