"""A student's data on request: a student made through LTI launches answers, is reviewed, their
answers become training copies; export shows it all, erasure leaves nothing identifying in any
database table or artifact file."""

from __future__ import annotations

import csv
import io
import json
import random
from pathlib import Path

import pytest
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.db import connection
from django.test import Client
from lti_tool.models import LtiUser
from rest_framework.test import APIClient

from lti import tasks
from lti.models import ItemLtiSettings, LtiSubmission
from ml_core.artifact_store import folder_hash
from ml_core.auto import AutoModel, frozen_embedder
from scoring_plugin import review
from scoring_plugin.models import AuditLog, ModelVersion, ScoredAnswer, Submission
from scoring_plugin.privacy import handle_hash
from scoring_plugin.services import create_model_version, training_examples
from tests.factories import ScoredAnswerFactory, UserFactory
from tests.lti.lti_platform import INSTRUCTOR
from tests.lti.lti_scoring import CapturedTasks, finish
from tests.lti.test_lti_flow import submit, token_of
from tests.scoring.conftest import WORDS
from workers import engine_host
from workers import tasks as worker_tasks

pytestmark = pytest.mark.django_db

SUB = "student-zq-5521"
NAME = "Zebulon Quartermaine"
EMAIL = "zebulon.quartermaine@example.edu"
ANSWERS = [
    "Sequence numbers let the receiver of Zebulon put segments back in order",
    "Quartermaine says the numbers detect lost segments and duplicates too",
]
COMMENT = "Good point about duplicates, Zebulon; mention retransmission next time."
OTHER_ANSWER = "Ordering of bytes so the stream arrives intact for the other student"


@pytest.fixture
def captured(monkeypatch) -> CapturedTasks:  # type: ignore[no-untyped-def]
    captured = CapturedTasks()
    monkeypatch.setattr(tasks.post_score, "apply_async", captured.apply_async)
    return captured


def import_answers(item, count: int = 48) -> None:  # type: ignore[no-untyped-def]
    """Imported scored answers (no LMS user): the score is how many key words they name."""
    rng = random.Random(7)
    keys = ["tcp", "udp", "header"]
    fillers = [w for w in WORDS if w not in keys]
    for i in range(count):
        score = i % (item.max_score + 1)
        words = rng.sample(fillers, 4) + keys[:score]
        rng.shuffle(words)
        ScoredAnswerFactory(item=item, text=" ".join(words), score=score)


@pytest.fixture
def student_with_history(platform, item, make_browser, captured, settings, tmp_path):  # type: ignore[no-untyped-def]
    """Two answers, one reviewed with a comment, sent to the gradebook and copied into the
    training data; a training-data snapshot file; and another student who must not be touched."""
    settings.ARTIFACTS_DIR = tmp_path / "artifacts"
    ItemLtiSettings.objects.create(item=item, max_attempts=0)
    student = make_browser()
    url = student.open(
        platform,
        sub=SUB,
        name=NAME,
        given_name="Zebulon",
        family_name="Quartermaine",
        email=EMAIL,
    )
    ids = []
    for text in ANSWERS:
        response = submit(student, url, text)
        assert response.status_code == 201, response.content
        ids.append(response.json()["id"])
    other = make_browser()
    other_id = submit(other, other.open(platform, sub="student-other"), OTHER_ANSWER).json()["id"]
    for pk in [*ids, other_id]:
        finish(pk, score=1, confidence=0.4)
    teacher = make_browser()
    token = token_of(teacher.open(platform, sub="teacher-1", roles=[INSTRUCTOR]))
    for pk, comment in ((ids[1], COMMENT), (other_id, "Fine answer.")):
        response = teacher.post(f"/lti/s/{token}/review/{pk}/", {"score": "3", "comment": comment})
        assert response.status_code == 302, response.content
    outcomes = set(captured.run_all())
    assert "posted" in outcomes and outcomes <= {"posted", "already posted"}
    assert review.copy_reviewed_answers(item) == (2, 0)
    # A snapshot of the training data, as an admin might keep next to the models.
    snapshot = Path(settings.ARTIFACTS_DIR) / item.key / "training-snapshot.json"
    snapshot.parent.mkdir(parents=True)
    snapshot.write_text(
        json.dumps([{"text": a.text, "score": a.score} for a in ScoredAnswer.objects.all()])
    )
    return {"ids": ids, "other_id": other_id, "snapshot": snapshot}


@pytest.fixture
def trained_version(student_with_history, item, settings, tiny_backbone):  # type: ignore[no-untyped-def]
    """An ``auto`` version trained (tiny backbone) on imported answers and the training copies
    of the reviewed answers, the student's among them."""
    settings.SCORING_BACKBONE = str(tiny_backbone)
    import_answers(item)
    examples = training_examples(item)
    assert ANSWERS[1] in [e.text for e in examples]
    version = create_model_version(item, ModelVersion.Kind.AUTO)
    engine_host.reset()
    assert worker_tasks.run_training(version, activate=False, examples=examples) == "ready"
    version.refresh_from_db()
    yield version
    engine_host.reset()


def privacy_admin(**fields: object):  # type: ignore[no-untyped-def]
    user = UserFactory(username="dpo", is_staff=True, **fields)
    user.user_permissions.add(Permission.objects.get(codename="manage_student_data"))
    return user


def api_as(user) -> APIClient:  # type: ignore[no-untyped-def]
    client = APIClient()
    client.force_authenticate(user)
    return client


def identifying_values() -> list[str]:
    return [SUB, NAME, EMAIL, "Zebulon", "Quartermaine", *ANSWERS, COMMENT]


def database_hits(needles: list[str]) -> list[str]:
    """``table.column`` of every cell in every table that contains one of ``needles`` (also as
    JSON escapes it), case-insensitively."""
    forms = {n.lower() for n in needles} | {json.dumps(n)[1:-1].lower() for n in needles}
    hits = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            columns = [
                c.name for c in connection.introspection.get_table_description(cursor, table)
            ]
            quoted = connection.ops.quote_name(table)
            cursor.execute(f"SELECT * FROM {quoted}")  # noqa: S608 (table names from the schema)
            for row in cursor.fetchall():
                for column, value in zip(columns, row, strict=True):
                    text = (
                        value.decode(errors="replace") if isinstance(value, bytes) else str(value)
                    ).lower()
                    hits += [f"{table}.{column}" for form in forms if form in text]
    return sorted(set(hits))


def file_hits(root: Path, needles: list[str]) -> list[str]:
    forms = {n.lower().encode() for n in needles} | {
        json.dumps(n)[1:-1].lower().encode() for n in needles
    }
    return sorted(
        str(path)
        for path in root.rglob("*")
        if path.is_file() and any(form in path.read_bytes().lower() for form in forms)
    )


def test_export_holds_everything_and_erasure_leaves_nothing_identifying(
    student_with_history, trained_version, platform, settings
) -> None:
    ids = student_with_history["ids"]
    version = trained_version
    artifact = Path(settings.ARTIFACTS_DIR) / version.artifact_key
    # Before: the scans do find the student (so they can fail), in the database and in the
    # admin's snapshot; the model trained on their answer holds none of it (nor the others').
    assert "scoring_plugin_submission.text" in database_hits(identifying_values())
    assert "lti_tool_ltiuser.email" in database_hits([EMAIL])
    assert file_hits(Path(settings.ARTIFACTS_DIR), ANSWERS) == [
        str(student_with_history["snapshot"])
    ]
    assert {p.name for p in artifact.iterdir()} >= {"manifest.json", "model_card.json"}
    assert file_hits(artifact, [*identifying_values(), OTHER_ANSWER]) == []
    # the card counts the students' answers the version was measured on, nothing more
    card = json.loads((artifact / "model_card.json").read_text())
    answers = ScoredAnswer.objects.filter(item=version.item).count()
    assert card["data"]["answers"] == card["evaluation"]["n_test"] == answers

    dpo = privacy_admin()
    response = api_as(dpo).post(
        "/api/v1/privacy/student-data/export/", {"lms_user_id": SUB}, format="json"
    )
    assert response.status_code == 200
    data = json.loads(response.content)
    (identity,) = data["lti_identities"]
    assert (identity["sub"], identity["name"], identity["email"]) == (SUB, NAME, EMAIL)
    assert identity["issuer"] == platform.issuer
    assert [a["answer"] for a in data["answers"]] == ANSWERS
    assert [a["auto_score"] for a in data["answers"]] == [1, 1]
    reviewed = data["answers"][1]
    assert reviewed["reviewed_score"] == 3 and reviewed["review_comment"] == COMMENT
    assert reviewed["lti"]["final_score"] == 3
    assert reviewed["lti"]["grade_sent"]["score_given"] == 3.0
    assert reviewed["model_version"] == "item-1@v1"
    assert [t["text"] for t in data["training_copies"]] == [ANSWERS[1]]
    (entry,) = data["audit_entries"]
    assert entry["action"] == "override" and entry["details"]["comment"] == COMMENT
    assert data["course_memberships"][0]["learner"] is True
    assert OTHER_ANSWER not in response.content.decode()

    out = io.StringIO()
    call_command("student_data", "export", "--lms-user", SUB, "--format", "csv", stdout=out)
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert {(r["section"], r["field"], r["value"]) for r in rows} >= {
        ("answers", "answer", ANSWERS[0]),
        ("lti_identities", "email", EMAIL),
        ("training_copies", "text", ANSWERS[1]),
    }

    # Erase from the admin page.
    web = Client()
    web.force_login(dpo)
    page = web.post(
        "/admin/scoring_plugin/auditlog/student-data/",
        {"lms_user_id": SUB, "issuer": platform.issuer, "operation": "erase", "confirm": "on"},
    )
    assert page.status_code == 200, page.content
    report = json.loads(page.context["report"])
    assert report["counts"]["answers"] == 2
    assert report["counts"]["training_copies"] == 1
    assert report["redacted_files"] == ["item-1/training-snapshot.json"]

    # Nothing identifying is left in any table or artifact file.
    assert database_hits(identifying_values()) == []
    assert file_hits(Path(settings.ARTIFACTS_DIR), identifying_values()) == []
    assert not Submission.objects.filter(pk__in=ids).exists()
    # The trained version is untouched and still loads: nothing in it needed redacting.
    assert version.artifact_hash == folder_hash(artifact)
    assert AutoModel.load(artifact).self_check(frozen_embedder(settings.SCORING_BACKBONE)) < 1e-4
    assert not LtiUser.objects.filter(sub=SUB).exists()
    # The other student's answer, review and training copy are intact.
    other = Submission.objects.get(pk=student_with_history["other_id"])
    assert other.text == OTHER_ANSWER and other.reviewed_score == 3
    assert ScoredAnswer.objects.filter(text=OTHER_ANSWER).exists()
    assert OTHER_ANSWER in student_with_history["snapshot"].read_text()
    # The erasure is audited: counts and the salted hash of the handle, no content.
    erasure = AuditLog.objects.get(action=AuditLog.Action.ERASE)
    assert erasure.actor == "admin:dpo"
    assert erasure.details["handle_hash"] == handle_hash(platform.issuer, SUB)
    assert erasure.details["counts"]["answers"] == 2
    assert AuditLog.objects.filter(action=AuditLog.Action.EXPORT).count() == 2
    # Running it again finds nothing to erase.
    again = api_as(dpo).post(
        "/api/v1/privacy/student-data/erase/", {"lms_user_id": SUB}, format="json"
    )
    assert again.status_code == 400


def test_pseudonymising_keeps_scores_but_nothing_identifying(
    student_with_history, platform, settings
) -> None:
    ids = student_with_history["ids"]
    Submission.objects.filter(pk__in=ids).update(embedding=b"\x00\x3c\x00\x00")  # a vector
    out = io.StringIO()
    call_command("student_data", "erase", "--lms-user", SUB, "--mode", "pseudonymise", stdout=out)
    assert json.loads(out.getvalue())["counts"]["answers"] == 2

    assert database_hits(identifying_values()) == []
    assert file_hits(Path(settings.ARTIFACTS_DIR), identifying_values()) == []
    kept = {str(s.pk): s for s in Submission.objects.filter(pk__in=ids)}
    assert [kept[pk].score for pk in ids] == [1, 1]
    assert [kept[pk].embedding for pk in ids] == [None, None]  # derived from the text
    assert kept[ids[1]].reviewed_score == 3 and kept[ids[1]].review_comment == ""
    assert LtiSubmission.objects.get(pk=ids[1]).final_score == 3
    assert not ScoredAnswer.objects.filter(response_key__in=[f"review:{pk}" for pk in ids])


def test_only_admins_with_the_permission_reach_a_students_data(
    student_with_history, platform
) -> None:
    staff = UserFactory(username="helpdesk", is_staff=True)
    response = api_as(staff).post(
        "/api/v1/privacy/student-data/export/", {"lms_user_id": SUB}, format="json"
    )
    assert response.status_code == 403
    response = api_as(staff).post(
        "/api/v1/privacy/student-data/erase/", {"lms_user_id": SUB}, format="json"
    )
    assert response.status_code == 403
    web = Client()
    web.force_login(staff)
    assert web.get("/admin/scoring_plugin/auditlog/student-data/").status_code == 403
    assert Submission.objects.filter(pk__in=student_with_history["ids"]).count() == 2
    # Erasing needs the confirmation tick.
    web.force_login(privacy_admin())
    page = web.post(
        "/admin/scoring_plugin/auditlog/student-data/",
        {"lms_user_id": SUB, "operation": "erase"},
    )
    assert page.status_code == 200 and "confirm" in page.context["form"].errors
    assert Submission.objects.filter(pk__in=student_with_history["ids"]).count() == 2


def test_artifact_scan_redacts_text_files_and_reports_binary_ones(tmp_path: Path) -> None:
    from scoring_plugin.privacy import scrub_files

    (tmp_path / "v1").mkdir()
    notes = tmp_path / "v1" / "notes.csv"
    notes.write_text(f"id,text\n1,{ANSWERS[0]}\n2,someone else's answer\n")
    escaped = tmp_path / "v1" / "data.json"
    escaped.write_text(json.dumps({"who": "Zoë Ünal", "text": "kept"}))
    weights = tmp_path / "v1" / "weights.bin"
    weights.write_bytes(b"\x00\x01" + ANSWERS[0].encode() + b"\xff")
    redacted, unredactable = scrub_files(tmp_path, [ANSWERS[0], "Zoë Ünal"])
    assert redacted == ["v1/data.json", "v1/notes.csv"]
    assert unredactable == ["v1/weights.bin"]
    assert ANSWERS[0] not in notes.read_text() and "someone else's answer" in notes.read_text()
    assert json.loads(escaped.read_text()) == {"who": "[erased]", "text": "kept"}
