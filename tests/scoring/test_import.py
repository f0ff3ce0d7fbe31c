"""Importing item banks: whole files or nothing, errors that name the row and column."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from scoring_plugin.models import Item, ScoredAnswer
from scoring_plugin.services import ImportError_, import_item_bank
from tests.factories import UserFactory

DEMO = Path(__file__).resolve().parents[2] / "scoring_plugin" / "demo"
ITEMS = (
    "item_id,language,prompt,reference_answer,max_score\n"
    'q1,en,"Why does ice float?",Less dense,2\n'
    "q2,de,Warum rostet Eisen?,Wasser und Sauerstoff,2\n"
)
RESPONSES = (
    "item_id,response_id,text,score,split\n"
    "q1,a1,It is less dense,2,train\n"
    'q1,a2,"It is\nlighter",1,\n'
    "q2,b1,Wegen Wasser,1,test\n"
)


@pytest.mark.django_db
def test_import_creates_items_and_answers_and_is_idempotent() -> None:
    summary = import_item_bank(ITEMS.encode(), RESPONSES.encode())
    assert (summary.items_created, summary.answers_created) == (2, 3)
    assert Item.objects.get(key="q2").language == "de"
    assert ScoredAnswer.objects.get(response_key="a2").text == "It is\nlighter"
    again = import_item_bank(ITEMS.encode(), RESPONSES.encode())
    assert (again.items_created, again.answers_created, again.answers_updated) == (0, 0, 3)
    assert ScoredAnswer.objects.count() == 3


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("responses", "row", "column"),
    [
        (RESPONSES + "q1,a9,Too good,3,train\n", 5, "score"),
        (RESPONSES + "q9,a9,Who am I,1,\n", 5, "item_id"),
        (RESPONSES + "q1,a1,Twice,1,\n", 5, "response_id"),
        (RESPONSES + "q1,a8,Odd split,1,later\n", 5, "split"),
        (RESPONSES.replace("score,split", "points,split"), 1, "score"),
    ],
)
def test_bad_row_is_named_and_nothing_is_imported(responses: str, row: int, column: str) -> None:
    with pytest.raises(ImportError_) as caught:
        import_item_bank(ITEMS.encode(), responses.encode())
    assert caught.value.file == "responses.csv"
    assert (caught.value.error.row, caught.value.error.column) == (row, column)
    assert f"row {row}" in str(caught.value)
    assert Item.objects.count() == 0 and ScoredAnswer.objects.count() == 0


@pytest.mark.django_db
def test_undecodable_file_is_refused() -> None:
    with pytest.raises(ImportError_, match="not UTF-8"):
        import_item_bank(b"item_id,language\n\xff\xfe,en\n", None)


@pytest.mark.django_db
def test_command_imports_the_shipped_demo_bank() -> None:
    call_command("import_items", str(DEMO))
    assert Item.objects.count() == 5
    assert ScoredAnswer.objects.count() == 360
    assert set(Item.objects.values_list("language", flat=True)) == {"en", "de"}


@pytest.mark.django_db
def test_command_reports_errors(tmp_path: Path) -> None:
    bad = tmp_path / "responses.csv"
    bad.write_text("item_id,response_id,text,score,split\nnope,1,x,1,\n")
    with pytest.raises(CommandError, match="row 2, column 'item_id'"):
        call_command("import_items", responses=str(bad))


@pytest.mark.django_db
def test_admin_upload_shows_row_error_then_imports(client) -> None:  # type: ignore[no-untyped-def]
    admin = UserFactory(username="boss", is_staff=True, is_superuser=True)
    client.force_login(admin)
    url = reverse("admin:scoring_plugin_item_import")
    from django.core.files.uploadedfile import SimpleUploadedFile

    bad = client.post(
        url,
        {
            "items_file": SimpleUploadedFile("items.csv", ITEMS.encode()),
            "responses_file": SimpleUploadedFile(
                "responses.csv", (RESPONSES + "q1,a7,x,5,\n").encode()
            ),
        },
    )
    assert bad.status_code == 200
    assert "Nothing was imported" in bad.content.decode()
    assert "row 5, column &#x27;score&#x27;" in bad.content.decode()
    assert Item.objects.count() == 0

    good = client.post(
        url,
        {
            "items_file": SimpleUploadedFile("items.csv", ITEMS.encode()),
            "responses_file": SimpleUploadedFile("responses.csv", RESPONSES.encode()),
        },
    )
    assert good.status_code == 302
    assert ScoredAnswer.objects.count() == 3
