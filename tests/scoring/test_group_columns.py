"""Group columns (``group:<name>`` in responses.csv): validated like the other columns, stored
with each scored answer, and reported per value in the model card from the answers the model
was not trained on (out-of-fold for ``auto``, held-out test answers for other kinds)."""

from __future__ import annotations

import json

import pytest

from scoring_plugin import importing
from scoring_plugin.artifact_store import version_folder
from scoring_plugin.model_cards import build_card, card_markdown
from scoring_plugin.models import Item, ModelVersion, ScoredAnswer
from scoring_plugin.services import ImportError_, create_model_version, import_item_bank
from tests.factories import ItemFactory
from tests.scoring.conftest import add_scored_answers
from workers import tasks

ITEMS = (
    "item_id,language,prompt,reference_answer,max_score\nq1,en,Why does ice float?,Less dense,2\n"
)
HEADER = "item_id,response_id,text,score,split,group:school,group:gender\n"


@pytest.mark.django_db
def test_group_columns_are_stored_with_each_answer_and_blank_means_none() -> None:
    rows = "q1,a1,It is less dense,2,,North,f\nq1,a2,lighter,1,,South,\n"
    import_item_bank(ITEMS.encode(), (HEADER + rows).encode())
    assert ScoredAnswer.objects.get(response_key="a1").groups == {"school": "North", "gender": "f"}
    assert ScoredAnswer.objects.get(response_key="a2").groups == {"school": "South"}
    # importing again with other values replaces them
    import_item_bank(None, (HEADER + "q1,a1,It is less dense,2,,East,m\n").encode())
    assert ScoredAnswer.objects.get(response_key="a1").groups == {"school": "East", "gender": "m"}


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("responses", "row", "column"),
    [
        (HEADER.replace("group:gender", "group:") + "q1,a1,ok,1,,N,f\n", 1, "group:"),
        (HEADER.replace("group:gender", "group:a b") + "q1,a1,ok,1,,N,f\n", 1, "group:a b"),
        (HEADER + "q1,a1,ok,1,,North,f\nq1,a2,ok,1,," + "x" * 101 + ",f\n", 3, "group:school"),
    ],
)
def test_a_bad_group_column_is_named_and_nothing_is_imported(
    responses: str, row: int, column: str
) -> None:
    with pytest.raises(ImportError_) as caught:
        import_item_bank(ITEMS.encode(), responses.encode())
    assert caught.value.file == "responses.csv"
    assert (caught.value.error.row, caught.value.error.column) == (row, column)
    assert Item.objects.count() == 0 and ScoredAnswer.objects.count() == 0


@pytest.mark.django_db
def test_the_admin_preview_names_file_row_and_column_of_a_bad_group_value() -> None:
    long = "y" * 101
    bad = HEADER + f"q1,a1,ok,1,,North,f\nq1,a2,ok,1,,{long},f\nq1,a3,ok,1,,N,{long}\n"
    preview = importing.preview(ITEMS.encode(), bad.encode())
    assert [(e.file, e.row, e.column) for e in preview.errors] == [
        ("responses.csv", 3, "group:school"),
        ("responses.csv", 4, "group:gender"),
    ]
    no_name = HEADER.replace("group:school", "group:") + "q1,a1,ok,1,,N,f\nq1,a2,ok,1,,N,f\n"
    header = importing.preview(ITEMS.encode(), no_name.encode())
    assert [(e.row, e.column) for e in header.errors] == [(1, "group:")]


def _grouped_item(key: str) -> Item:
    """45 answers: 30 from school 'big', 15 from 'small'; only the first 40 name a gender."""
    item = ItemFactory(key=key)
    add_scored_answers(item, 45)
    for i, answer in enumerate(item.scored_answers.order_by("pk")):
        answer.groups = {"school": "big" if i < 30 else "small"}
        if i < 40:
            answer.groups["gender"] = "f" if i % 2 else "m"
        answer.save()
    return item


def _train(item: Item, kind: str) -> ModelVersion:
    from scoring_plugin.services import training_data

    version = create_model_version(item, kind)
    examples, groups = training_data(item)
    outcome = tasks.run_training(version, activate=True, examples=examples, groups=groups)
    assert outcome == "ready", ModelVersion.objects.get(pk=version.pk).error
    version.refresh_from_db()
    return version


@pytest.mark.django_db
def test_an_auto_card_reports_each_group_from_out_of_fold_predictions(scoring_settings) -> None:  # type: ignore[no-untyped-def]
    item = _grouped_item("grouped-auto")
    version = _train(item, ModelVersion.Kind.AUTO)
    card = json.loads((version_folder(version) / "model_card.json").read_text())
    groups = card["subgroups"]["by_group"]
    assert card["subgroups"]["source"] == "out-of-fold answers of the cross-validation"
    school = {r["value"]: r for r in groups["school"]}
    assert school["big"]["answers"] == 30 and school["small"]["answers"] == 15
    assert "note" in school["small"] and "accuracy" not in school["small"]  # too small
    # the big school's figures are the out-of-fold predictions of its 30 answers
    oof = json.loads((version_folder(version) / "manifest.json").read_text())["out_of_fold"]
    hits = sum(p == s for p, s in zip(oof["predicted"][:30], oof["scores"][:30], strict=True))
    assert school["big"]["accuracy"] == round(hits / 30, 4)
    low, high = school["big"]["accuracy_ci95"]
    assert low <= school["big"]["accuracy"] <= high
    gender = {r["value"]: r["answers"] for r in groups["gender"]}
    assert gender == {"f": 20, "m": 20}  # answers without a value are in no gender row
    bands = card["subgroups"]["by_length_band"]
    assert sum(b["answers"] for b in bands) == 45
    markdown = card_markdown(build_card(version))
    assert "## Per group `school`" in markdown and "fewer than 20 answers" in markdown


@pytest.mark.django_db
def test_a_head_card_reports_groups_on_its_held_out_answers(scoring_settings) -> None:  # type: ignore[no-untyped-def]
    item = _grouped_item("grouped-head")
    version = _train(item, ModelVersion.Kind.HEAD)
    card = build_card(version)
    assert card["evaluation"]["source"] == "held-out test split"
    subgroups = card["subgroups"]
    assert subgroups["source"].endswith("held-out test answers")
    counted = sum(r["answers"] for r in subgroups["by_group"]["school"])
    assert counted == card["evaluation"]["n_test"] or counted == int(subgroups["source"].split()[0])
    assert all("note" in r for r in subgroups["by_group"]["school"])  # a few test answers
