"""Issue 12, findings 4 and 5: integrity rules held by the model layer, not only by forms.

``max_score`` cannot drop below stored scores or the active model's classes (a lower
``items.csv`` is refused naming file, row and column, nothing half-imported); the active version
cannot be deleted; versions that scored answers are kept (archived); item keys are slugs; a
training run does not replace a version an admin activated while it ran; answers of only
invisible characters are refused as empty by the API and the batch API.
"""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.db.models import ProtectedError
from django.urls import reverse

from ml_core.data import DataFormatError, read_items_csv
from scoring_plugin.models import Item, ModelVersion, ScoredAnswer, Submission
from scoring_plugin.services import (
    ImportError_,
    activate_version,
    create_model_version,
    import_item_bank,
    training_examples,
)
from tests.factories import (
    ItemFactory,
    ModelVersionFactory,
    ScoredAnswerFactory,
    SubmissionFactory,
    UserFactory,
)

ITEMS = (
    "item_id,language,prompt,reference_answer,max_score\n"
    "fresh,en,A new item,Anything,2\n"
    "q1,en,Why does ice float?,Less dense,{max_score}\n"
)
INVISIBLE = "\u200b\u200c\u200d\u2060\ufeff"


@pytest.mark.django_db
def test_reimporting_items_csv_with_a_lower_max_score_is_refused_naming_row_and_column() -> None:
    item = ItemFactory(key="q1", max_score=2)
    ScoredAnswerFactory(item=item, score=2)
    with pytest.raises(ImportError_) as caught:
        import_item_bank(ITEMS.format(max_score=1).encode(), None)
    assert caught.value.file == "items.csv"
    assert (caught.value.error.row, caught.value.error.column) == (3, "max_score")
    assert "scores up to 2" in str(caught.value)
    assert not Item.objects.filter(key="fresh").exists(), "half-imported"
    item.refresh_from_db()
    assert item.max_score == 2
    import_item_bank(ITEMS.format(max_score=3).encode(), None)  # raising it is fine
    assert Item.objects.get(key="q1").max_score == 3


@pytest.mark.django_db
def test_the_admin_import_refuses_a_lower_max_score_and_imports_nothing(client) -> None:  # type: ignore[no-untyped-def]
    from django.core.files.uploadedfile import SimpleUploadedFile

    item = ItemFactory(key="q1", max_score=2)
    SubmissionFactory(item=item, status="scored", score=2)  # an automatic score of 2
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    page = client.post(
        "/admin/scoring_plugin/item/import/",
        {"items_file": SimpleUploadedFile("items.csv", ITEMS.format(max_score=1).encode())},
    )
    html = page.content.decode()
    assert "items.csv" in html and "row 3" in html and "max_score" in html
    assert not Item.objects.filter(key="fresh").exists()
    assert Item.objects.get(key="q1").max_score == 2


@pytest.mark.django_db
def test_max_score_cannot_drop_below_human_scores_or_the_active_models_classes() -> None:
    item = ItemFactory(max_score=3)
    ScoredAnswerFactory(item=item, score=1)
    version = create_model_version(item, ModelVersion.Kind.HEAD)  # trained for 0..3
    ModelVersion.objects.filter(pk=version.pk).update(status="ready")
    version.refresh_from_db()
    activate_version(version)
    item.max_score = 2
    with pytest.raises(ValidationError, match="active model"):
        item.save()
    with pytest.raises(ValidationError):
        item.full_clean()
    Item.objects.filter(pk=item.pk).update(max_score=3)
    ModelVersion.objects.filter(pk=version.pk).update(is_active=False)
    item.refresh_from_db()
    item.max_score = 1  # no active model any more; human scores reach 1
    item.save()
    item.max_score = 0
    with pytest.raises(ValidationError, match="scores up to 1"):
        item.save()


@pytest.mark.django_db
def test_the_active_version_cannot_be_deleted_in_any_way(client) -> None:  # type: ignore[no-untyped-def]
    active = ModelVersionFactory(is_active=True)
    with pytest.raises(ProtectedError):
        active.delete()
    with pytest.raises(ProtectedError):
        ModelVersion.objects.filter(pk=active.pk).delete()  # admin's "delete selected" path
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    url = reverse("admin:scoring_plugin_modelversion_delete", args=[active.pk])
    assert client.post(url, {"post": "yes"}).status_code == 403
    client.post(
        reverse("admin:scoring_plugin_modelversion_changelist"),
        {"action": "delete_selected", "_selected_action": [active.pk], "post": "yes"},
    )
    assert ModelVersion.objects.filter(pk=active.pk, is_active=True).exists()


@pytest.mark.django_db
def test_a_version_that_scored_answers_is_archived_not_deleted(client) -> None:  # type: ignore[no-untyped-def]
    item = ItemFactory()
    old = ModelVersionFactory(item=item, number=1)
    ModelVersionFactory(item=item, number=2, is_active=True)
    scored = SubmissionFactory(item=item, status="scored", score=1, model_version=old)
    with pytest.raises(ProtectedError):
        old.delete()
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    changelist = reverse("admin:scoring_plugin_modelversion_changelist")
    client.post(
        changelist, {"action": "delete_selected", "_selected_action": [old.pk], "post": "yes"}
    )
    client.post(changelist, {"action": "archive", "_selected_action": [old.pk]})
    old.refresh_from_db()
    assert old.status == ModelVersion.Status.ARCHIVED
    scored.refresh_from_db()
    assert scored.model_version == old
    with pytest.raises(ValidationError):
        activate_version(old)  # an archived version does not score again by accident
    unused = ModelVersionFactory(item=item, number=3)
    unused.delete()  # an inactive version that scored nothing may go


@pytest.mark.django_db
def test_an_item_with_answers_cannot_be_deleted(client) -> None:  # type: ignore[no-untyped-def]
    item = ItemFactory()
    SubmissionFactory(item=item)
    with pytest.raises(ProtectedError):
        item.delete()
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    url = reverse("admin:scoring_plugin_item_delete", args=[item.pk])
    assert client.post(url, {"post": "yes"}).status_code == 403
    assert Item.objects.filter(pk=item.pk).exists()


@pytest.mark.django_db
@pytest.mark.parametrize("key", ["a/b", "has space", "../up", "-lead", "", "x?y", "ä"])
def test_item_keys_are_slugs(key: str) -> None:
    with pytest.raises(ValidationError):
        ItemFactory(key=key)
    with pytest.raises(DataFormatError) as caught:
        read_items_csv(
            f"item_id,language,prompt,reference_answer,max_score\n{key},en,P,R,1\n".encode()
        )
    assert (caught.value.row, caught.value.column) == (2, "item_id")
    assert not Item.objects.exists()


@pytest.mark.django_db
def test_the_start_page_links_items_by_id_and_works_after_a_rename(client) -> None:  # type: ignore[no-untyped-def]
    item = ItemFactory(key="saf-en-10.1_TC")
    client.force_login(UserFactory(username="someone"))
    home = client.get("/")
    assert home.status_code == 200
    link = f"/items/{item.pk}/try/"
    assert link in home.content.decode()
    item.key = "renamed.item"
    item.save()
    page = client.get(link)
    assert page.status_code == 200 and "renamed.item" in page.content.decode()


def test_training_does_not_replace_a_version_activated_while_it_ran(trained_item) -> None:  # type: ignore[no-untyped-def]
    from workers.tasks import run_training

    training = create_model_version(trained_item, ModelVersion.Kind.HEAD)  # v1 active now
    chosen = ModelVersionFactory(item=trained_item, number=9)
    activate_version(chosen)  # an admin activates another version while it trains
    assert run_training(training, activate=True, examples=training_examples(trained_item)) == (
        "ready"
    )
    training.refresh_from_db()
    assert training.status == ModelVersion.Status.READY and not training.is_active
    assert "while this version trained" in training.note
    assert trained_item.active_version == chosen

    retrain = create_model_version(trained_item, ModelVersion.Kind.HEAD)  # nobody interferes
    run_training(retrain, activate=True, examples=training_examples(trained_item))
    assert trained_item.active_version == retrain


@pytest.mark.django_db
def test_answers_of_only_invisible_characters_are_refused_by_the_api(api_client) -> None:  # type: ignore[no-untyped-def]
    item = ItemFactory(key="q1")
    single = api_client.post(
        f"/api/v1/items/{item.key}/submissions/", {"text": INVISIBLE}, format="json"
    )
    assert single.status_code == 400
    assert "The answer is empty" in single.content.decode()
    batch = api_client.post(
        "/api/v1/submissions/batch/",
        {"answers": [{"item": "q1", "text": "tcp"}, {"item": "q1", "text": " \u3164\u2800 "}]},
        format="json",
    )
    assert batch.status_code == 400
    assert "The answer is empty" in batch.content.decode()
    assert Submission.objects.count() == 0
    assert ScoredAnswer.objects.count() == 0
