"""Admin pages: import with preview, training progress, charts, activation, rollback, audit."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from scoring_plugin import audit
from scoring_plugin.models import AuditLog, Item, ModelVersion, ScoredAnswer, Submission
from tests.factories import (
    ItemFactory,
    ModelVersionFactory,
    ScoredAnswerFactory,
    SubmissionFactory,
    UserFactory,
)

IMPORT_URL = "/admin/scoring_plugin/item/import/"
ITEMS_CSV = (
    "item_id,language,prompt,reference_answer,max_score\n"
    "proto,en,Name the transport protocols.,TCP and UDP,2\n"
    "photo,de,Was braucht Photosynthese?,Licht,1\n"
)
RESPONSES_CSV = (
    "item_id,response_id,text,score,split\n"
    "proto,r1,tcp and udp,2,\n"
    "proto,r2,tcp,1,\n"
    "proto,r3,no idea,0,\n"
    "photo,p1,Licht und Wasser,1,\n"
)


def upload(name: str, text: str, content_type: str = "text/csv") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, text.encode(), content_type=content_type)


def test_import_preview_shows_counts_and_stores_nothing(staff_client) -> None:
    response = staff_client.post(
        IMPORT_URL,
        {
            "preview": "1",
            "items_file": upload("items.csv", ITEMS_CSV),
            "responses_file": upload("responses.csv", RESPONSES_CSV),
        },
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert "2 item(s) and 4 scored answer(s) are ready to import" in html
    counts = html.split('id="preview-counts"')[1].split("</table>")[0]
    assert "proto</td><td>3</td>" in counts and "photo</td><td>1</td>" in counts
    assert "<svg" in counts  # score distribution per item
    assert 'id="preview-rows"' in html and "tcp and udp" in html
    assert Item.objects.count() == 0 and ScoredAnswer.objects.count() == 0


def test_confirming_the_preview_imports_the_previewed_files(staff_client) -> None:
    preview = staff_client.post(
        IMPORT_URL,
        {
            "preview": "1",
            "items_file": upload("items.csv", ITEMS_CSV),
            "responses_file": upload("responses.csv", RESPONSES_CSV),
        },
    )
    token = preview.context["token"]
    response = staff_client.post(IMPORT_URL, {"confirm": "1", "token": token})
    assert response.status_code == 302
    assert set(Item.objects.values_list("key", flat=True)) == {"proto", "photo"}
    assert ScoredAnswer.objects.filter(item__key="proto").count() == 3
    # The staged files are gone: confirming twice does not import again.
    again = staff_client.post(IMPORT_URL, {"confirm": "1", "token": token}, follow=True)
    assert "expired" in again.content.decode()


def test_confirm_with_another_users_token_is_refused(staff_client, client, db) -> None:
    preview = staff_client.post(
        IMPORT_URL, {"preview": "1", "items_file": upload("items.csv", ITEMS_CSV)}
    )
    other = UserFactory(username="other-admin", is_staff=True, is_superuser=True)
    client.force_login(other)
    response = client.post(
        IMPORT_URL, {"confirm": "1", "token": preview.context["token"]}, follow=True
    )
    assert "expired" in response.content.decode()
    assert Item.objects.count() == 0


def test_preview_names_every_bad_row(staff_client) -> None:
    bad = (
        "item_id,response_id,text,score,split\n"
        "proto,r1,tcp and udp,7,\n"
        "proto,r2,tcp,1,\n"
        "nosuch,r3,text,0,\n"
    )
    response = staff_client.post(
        IMPORT_URL,
        {
            "preview": "1",
            "items_file": upload("items.csv", ITEMS_CSV),
            "responses_file": upload("responses.csv", bad),
        },
    )
    html = response.content.decode()
    errors = html.split('id="import-errors"')[1].split("</table>")[0]
    assert "<td>2</td>" in errors and "<td>4</td>" in errors
    assert "<td>3</td>" not in errors
    assert 'id="confirm-form"' not in html
    assert Item.objects.count() == 0


def test_upload_must_be_a_small_csv(staff_client, monkeypatch) -> None:
    from scoring_plugin.admin import forms as scoring_admin

    wrong_type = staff_client.post(
        IMPORT_URL, {"items_file": upload("items.xlsx", ITEMS_CSV, "application/zip")}
    )
    assert "Upload a .csv file." in wrong_type.content.decode()
    disguised = staff_client.post(
        IMPORT_URL, {"items_file": upload("items.csv", ITEMS_CSV, "image/png")}
    )
    assert "is not a CSV file" in disguised.content.decode()
    monkeypatch.setattr(scoring_admin, "MAX_UPLOAD_BYTES", 10)
    too_big = staff_client.post(IMPORT_URL, {"items_file": upload("items.csv", ITEMS_CSV)})
    assert "larger than 20 MB" in too_big.content.decode()
    assert Item.objects.count() == 0


def test_non_staff_cannot_open_the_admin_or_the_import(client, db) -> None:
    client.force_login(UserFactory(username="student", is_staff=False))
    response = client.get(IMPORT_URL)
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_progress_endpoint_reports_percent_epoch_and_metric(staff_client, db) -> None:
    version = ModelVersionFactory(
        status=ModelVersion.Status.TRAINING,
        progress={"percent": 42.5, "epoch": 2, "epochs": 5, "train_loss": 0.61},
    )
    url = reverse("admin:scoring_plugin_modelversion_progress", args=[version.pk])
    body = staff_client.get(url).json()
    assert body["percent"] == 42.5 and body["epoch"] == 2 and body["epochs"] == 5
    assert body["metric"] == {"train_loss": 0.61}
    assert body["done"] is False
    page = staff_client.get(reverse("admin:scoring_plugin_item_change", args=[version.item.pk]))
    assert f'data-progress-url="{url}"'.encode() in page.content
    assert b"scoring_plugin/progress.js" in page.content


def _version_with_artifact(item: Item, tmp_path: Path, number: int, **metrics: object):  # type: ignore[no-untyped-def]
    key = f"{item.key}/v{number}-{uuid.uuid4().hex}"  # var/test outlives a run: a fresh key
    folder = Path(settings.ARTIFACTS_DIR) / key
    folder.mkdir(parents=True)
    history = [
        {"epoch": 1.0, "train_loss": 1.1, "val_loss": 1.0},
        {"epoch": 2.0, "train_loss": 0.7, "val_loss": 0.8},
        {"epoch": 3.0, "train_loss": 0.5, "val_loss": 0.75},
    ]
    (folder / "manifest.json").write_text(json.dumps({"training": {"history": history}}))
    return ModelVersionFactory(
        item=item,
        number=number,
        artifact_key=key,
        metrics={"qwk": 0.812, "accuracy": 0.75, "macro_f1": 0.7, "micro_f1": 0.75, **metrics},
    )


def test_item_page_shows_metrics_confusion_matrix_and_training_curve(
    staff_client, db, tmp_path
) -> None:
    item = ItemFactory(max_score=2)
    _version_with_artifact(item, tmp_path, 1, confusion=[[5, 1, 0], [1, 4, 1], [0, 0, 6]])
    html = staff_client.get(reverse("admin:scoring_plugin_item_change", args=[item.pk])).content
    html = html.decode()
    report = html.split('id="model-versions"')[1]
    assert "0.812" in report and "0.750" in report
    assert "sb-confusion" in report and "human 0, predicted 1: 1" in report
    assert "sb-curve" in report and "train_loss" in report and "val_loss" in report


def test_confusion_matrix_is_computed_from_reviewed_submissions(staff_client, db, tmp_path) -> None:
    item = ItemFactory(max_score=2)
    version = _version_with_artifact(item, tmp_path, 1)
    for auto, human in [(2, 2), (1, 2), (0, 0)]:
        SubmissionFactory(
            item=item, status="scored", score=auto, reviewed_score=human, model_version=version
        )
    page = staff_client.get(reverse("admin:scoring_plugin_modelversion_change", args=[version.pk]))
    html = page.content.decode()
    assert "human 2, predicted 1: 1" in html and "human 0, predicted 0: 1" in html
    assert "3 answers scored by humans" in html


def _activate_action(client, version: ModelVersion):  # type: ignore[no-untyped-def]
    return client.post(
        reverse("admin:scoring_plugin_modelversion_changelist"),
        {"action": "activate", "_selected_action": [version.pk]},
    )


def test_activation_is_logged_and_rollback_restores_the_previous_version(staff_client, db) -> None:
    item = ItemFactory()
    first = ModelVersionFactory(item=item, number=1)
    second = ModelVersionFactory(item=item, number=2)
    _activate_action(staff_client, first)
    _activate_action(staff_client, second)
    assert item.active_version == second
    entries = list(AuditLog.objects.filter(action="activate").order_by("pk"))
    assert [e.model_version for e in entries] == [first, second]
    assert entries[1].details["replaced"] == first.label and entries[1].actor == "admin:admin"
    response = staff_client.post(reverse("admin:scoring_plugin_item_rollback", args=[item.pk]))
    assert response.status_code == 302
    assert item.active_version == first
    assert AuditLog.objects.filter(action="rollback", model_version=first).exists()


def test_rollback_without_an_earlier_version_says_so(staff_client, db) -> None:
    item = ItemFactory()
    audit.activate(ModelVersionFactory(item=item, number=1), "admin:x")
    response = staff_client.post(
        reverse("admin:scoring_plugin_item_rollback", args=[item.pk]), follow=True
    )
    assert "no earlier ready version" in response.content.decode()


def test_rollback_needs_post(staff_client, db) -> None:
    item = ItemFactory()
    assert (
        staff_client.get(reverse("admin:scoring_plugin_item_rollback", args=[item.pk])).status_code
        == 405
    )


def test_audit_log_is_read_only_in_admin(staff_client, db) -> None:
    entry = audit.record(AuditLog.Action.OVERRIDE, "lti:teacher", item=ItemFactory())
    assert staff_client.get("/admin/scoring_plugin/auditlog/").status_code == 200
    change = staff_client.get(f"/admin/scoring_plugin/auditlog/{entry.pk}/change/")
    assert change.status_code == 200 and b'name="_save"' not in change.content
    assert staff_client.get("/admin/scoring_plugin/auditlog/add/").status_code == 403
    deleted = staff_client.post(
        f"/admin/scoring_plugin/auditlog/{entry.pk}/delete/", {"post": "yes"}
    )
    assert deleted.status_code == 403 and AuditLog.objects.filter(pk=entry.pk).exists()


def test_admin_override_on_a_submission_is_audited(staff_client, db) -> None:
    submission = SubmissionFactory(status="scored", score=0, confidence=0.3)
    url = reverse("admin:scoring_plugin_submission_change", args=[submission.pk])
    response = staff_client.post(url, {"reviewed_score": "2", "review_comment": "both named"})
    assert response.status_code == 302
    submission.refresh_from_db()
    assert submission.reviewed_score == 2 and submission.reviewed_by == "admin:admin"
    entry = AuditLog.objects.get(action="override")
    assert entry.submission == submission and entry.details["auto_score"] == 0


@pytest.mark.django_db(transaction=False)
def test_retrain_with_reviewed_answers_copies_them_once_and_starts_training(
    staff_client, django_capture_on_commit_callbacks
) -> None:
    item = ItemFactory(max_score=2)
    for i in range(10):
        ScoredAnswerFactory(item=item, response_key=f"csv-{i}", score=i % 3)
    reviewed = SubmissionFactory(item=item, status="scored", score=0, reviewed_score=2)
    SubmissionFactory(item=item, status="scored", score=1)  # not reviewed: not copied
    for _ in range(2):
        with django_capture_on_commit_callbacks(execute=False):
            staff_client.post(
                reverse("admin:scoring_plugin_item_changelist"),
                {"action": "retrain_with_reviewed", "_selected_action": [item.pk]},
            )
    copied = ScoredAnswer.objects.filter(item=item, source="review")
    assert [(a.response_key, a.score) for a in copied] == [(f"review:{reviewed.pk}", 2)]
    assert item.model_versions.filter(status=ModelVersion.Status.PENDING).count() == 2
    assert AuditLog.objects.filter(action="retrain").count() == 2


def test_submission_list_escapes_student_text(staff_client, db) -> None:
    submission = SubmissionFactory(text="<script>alert('x')</script>")
    html = staff_client.get(
        reverse("admin:scoring_plugin_submission_change", args=[submission.pk])
    ).content.decode()
    assert "<script>alert(" not in html and "&lt;script&gt;alert(" in html
    assert Submission.objects.count() == 1


def test_admin_posts_need_a_csrf_token(admin_user, db) -> None:
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    item = ItemFactory()
    assert (
        client.post(reverse("admin:scoring_plugin_item_rollback", args=[item.pk])).status_code
        == 403
    )
    assert client.post(IMPORT_URL, {"confirm": "1", "token": "0" * 32}).status_code == 403


def test_progress_endpoint_is_for_staff_only(client, db) -> None:
    version = ModelVersionFactory(status=ModelVersion.Status.TRAINING)
    url = reverse("admin:scoring_plugin_modelversion_progress", args=[version.pk])
    assert client.get(url).status_code == 302  # to the admin login
    client.force_login(UserFactory(username="student"))
    assert client.get(url).status_code == 302


def test_import_without_preview_imports_at_once(staff_client) -> None:
    response = staff_client.post(IMPORT_URL, {"items_file": upload("items.csv", ITEMS_CSV)})
    assert response.status_code == 302
    assert Item.objects.count() == 2


def test_activate_button_on_the_item_page_activates_and_logs(staff_client, db) -> None:
    item = ItemFactory()
    old = ModelVersionFactory(item=item, number=1, is_active=True)
    new = ModelVersionFactory(item=item, number=2)
    page = staff_client.get(reverse("admin:scoring_plugin_item_change", args=[item.pk]))
    url = reverse("admin:scoring_plugin_modelversion_activate", args=[new.pk])
    assert url in page.content.decode()
    response = staff_client.post(url, {"next": "https://evil.example/"})
    assert response["Location"] == reverse("admin:scoring_plugin_item_change", args=[item.pk])
    assert item.active_version == new
    entry = AuditLog.objects.get(action="activate")
    assert entry.details == {"version": new.label, "replaced": old.label}


def test_submission_list_filters_needs_review_and_exports_csv(staff_client, db) -> None:
    item = ItemFactory(review_threshold=0.6)
    unsure = SubmissionFactory(item=item, status="scored", score=1, confidence=0.3)
    SubmissionFactory(item=item, status="scored", score=2, confidence=0.9)
    done = SubmissionFactory(item=item, status="scored", score=0, confidence=0.2, reviewed_score=1)
    url = reverse("admin:scoring_plugin_submission_changelist")
    listed = staff_client.get(url, {"review": "needs"}).context["cl"].queryset
    assert list(listed) == [unsure]
    assert list(staff_client.get(url, {"review": "reviewed"}).context["cl"].queryset) == [done]
    export = staff_client.post(
        url, {"action": "export_csv", "_selected_action": [unsure.pk, done.pk]}
    )
    lines = export.content.decode().splitlines()
    assert lines[0].startswith("submission_id,item,") and len(lines) == 3
