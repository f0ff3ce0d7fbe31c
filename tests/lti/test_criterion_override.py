"""Issue 16: an instructor scores an analytic item's answer per criterion (LTI answer page,
Django admin): each criterion within its range, the total their sum, who scored it recorded,
the criterion scores in the audit entry, the training data and the gradebook's comment."""

from __future__ import annotations

import pytest

from scoring_plugin.models import AuditLog, Criterion, Item, ScoredAnswer, Submission
from scoring_plugin.review import copy_reviewed_answers
from scoring_plugin.services import training_data
from tests.factories import UserFactory
from tests.lti.lti_platform import INSTRUCTOR
from tests.lti.lti_scoring import finish
from tests.lti.test_lti_flow import status, submit, token_of
from tests.lti.test_one_override import api_client_for, staff_client

pytestmark = pytest.mark.django_db


@pytest.fixture
def analytic(item: Item) -> Item:
    """item-1 (0-3) with two criteria: content 0-2 and language 0-1."""
    Criterion.objects.create(item=item, name="content", max_score=2, order=0)
    Criterion.objects.create(
        item=item, name="language", max_score=1, order=1, feedback={"1": "Clear wording."}
    )
    return item


def held_for_review(platform, browser, captured) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    """A student's answer scored automatically (content 1, language 0) with low confidence:
    the gradebook holds PendingManual. Returns (submission id, the student's page URL)."""
    url = browser.open(platform)
    submission_id = submit(browser, url).json()["id"]
    Submission.objects.filter(pk=submission_id).update(
        criterion_scores={"content": 1, "language": 0}
    )
    finish(submission_id, score=1, confidence=0.3)
    assert captured.run_all() == ["posted"]
    assert platform.scores_for("student-1")[-1]["gradingProgress"] == "PendingManual"
    return submission_id, url


def teacher_page(platform, make_browser, submission_id: str):  # type: ignore[no-untyped-def]
    teacher = make_browser()
    token = token_of(teacher.open(platform, sub="teacher-1", roles=[INSTRUCTOR]))
    return teacher, f"/lti/s/{token}/review/{submission_id}/"


def test_an_instructor_scores_each_criterion_and_the_gradebook_gets_the_total_with_them(
    platform, analytic, browser, make_browser, captured, django_capture_on_commit_callbacks
) -> None:
    submission_id, student_url = held_for_review(platform, browser, captured)
    teacher, page = teacher_page(platform, make_browser, submission_id)
    form = teacher.get(page).content.decode()
    assert 'name="criterion:content"' in form and 'name="criterion:language"' in form
    assert 'name="score"' not in form  # the total is the criteria's sum, not typed

    with django_capture_on_commit_callbacks(execute=True):
        response = teacher.post(
            page, {"criterion:content": "2", "criterion:language": "1", "comment": "Both named."}
        )
    assert response.status_code == 302, response.content.decode()

    submission = Submission.objects.get(pk=submission_id)
    assert submission.reviewed_score == 3
    assert submission.reviewed_criterion_scores == {"content": 2, "language": 1}
    assert submission.criterion_scores == {"content": 1, "language": 0}  # the model's, kept
    assert (submission.reviewed_by, submission.reviewed_via) == ("lti:Name of teacher-1", "lti")
    entry = AuditLog.objects.get(action="override", submission_id=submission_id)
    assert entry.actor == "lti:Name of teacher-1"
    assert entry.details["score"] == 3
    assert entry.details["criterion_scores"] == {"content": 2, "language": 1}
    assert entry.details["auto_criterion_scores"] == {"content": 1, "language": 0}

    assert captured.run_all() == ["posted"]
    graded = platform.scores_for("student-1")[-1]
    assert (graded["scoreGiven"], graded["scoreMaximum"]) == (3.0, 3.0)
    assert graded["gradingProgress"] == "FullyGraded"
    assert graded["comment"] == "Criteria: content 2/2, language 1/1. Both named."

    shown = teacher.get(page).content.decode()
    assert "content 2/2, language 1/1" in shown  # the state line names the criterion scores
    assert 'name="criterion:content" min="0" max="2" value="2"' in shown
    (answer,) = status(browser, student_url)["submissions"]
    assert answer["score"] == 3.0
    assert [(c["name"], c["score"], c["feedback"]) for c in answer["criteria"]] == [
        ("content", 2, ""),
        ("language", 1, "Clear wording."),
    ]


def test_an_out_of_range_or_missing_criterion_score_is_refused_and_changes_nothing(
    platform, analytic, browser, make_browser, captured, django_capture_on_commit_callbacks
) -> None:
    submission_id, _ = held_for_review(platform, browser, captured)
    teacher, page = teacher_page(platform, make_browser, submission_id)
    with django_capture_on_commit_callbacks(execute=True):
        teacher.post(page, {"criterion:content": "1", "criterion:language": "1"})
    captured.run_all()
    posted = len(platform.scores_for("student-1"))

    refused = [
        ({"criterion:content": "3", "criterion:language": "1"}, "content: enter a whole number "
         "from 0 to 2, not 3."),
        ({"criterion:content": "2", "criterion:language": "-1"}, "language: enter a whole number "
         "from 0 to 1, not -1."),
        ({"criterion:content": "two", "criterion:language": "1"}, "content: enter a whole "
         "number from 0 to 2, not two."),
        ({"criterion:content": "2"}, "language: enter a score from 0 to 1."),
        ({"criterion:content": "2", "criterion:language": "1", "criterion:style": "1"},
         "style is not a criterion of item-1."),
    ]  # fmt: skip
    for form, message in refused:
        with django_capture_on_commit_callbacks(execute=True):
            response = teacher.post(page, {**form, "comment": "changed"})
        assert response.status_code == 400
        assert message in response.content.decode(), message

    submission = Submission.objects.get(pk=submission_id)
    assert submission.reviewed_score == 2
    assert submission.reviewed_criterion_scores == {"content": 1, "language": 1}
    assert submission.review_comment == ""
    assert AuditLog.objects.filter(action="override", submission_id=submission_id).count() == 1
    assert captured.calls == []
    assert len(platform.scores_for("student-1")) == posted


def test_criterion_scores_become_training_data_with_who_scored_them(
    platform, analytic, browser, make_browser, captured, django_capture_on_commit_callbacks
) -> None:
    submission_id, _ = held_for_review(platform, browser, captured)
    teacher, page = teacher_page(platform, make_browser, submission_id)
    examples, _ = training_data(analytic)
    assert examples == []  # nothing human-scored yet
    with django_capture_on_commit_callbacks(execute=True):
        teacher.post(page, {"criterion:content": "2", "criterion:language": "0"})

    assert copy_reviewed_answers(analytic) == (1, 0)
    copied = ScoredAnswer.objects.get(item=analytic, response_key=f"review:{submission_id}")
    assert (copied.score, copied.criterion_scores) == (2, {"content": 2, "language": 0})
    assert (copied.source, copied.scored_by) == ("review", "lti:Name of teacher-1")
    (example,), _ = training_data(analytic)
    assert (example.label, example.criteria_labels) == (2, (2, 0))
    assert example.text == Submission.objects.get(pk=submission_id).text


def test_a_total_alone_replaces_earlier_criterion_scores_and_cannot_train_per_criterion(
    platform, analytic, browser, make_browser, captured, django_capture_on_commit_callbacks
) -> None:
    submission_id, _ = held_for_review(platform, browser, captured)
    teacher, page = teacher_page(platform, make_browser, submission_id)
    with django_capture_on_commit_callbacks(execute=True):
        teacher.post(page, {"criterion:content": "2", "criterion:language": "1"})
    with django_capture_on_commit_callbacks(execute=True):
        response = teacher.post(page, {"score": "1", "comment": "Only part."})  # e.g. a group
    assert response.status_code == 302
    submission = Submission.objects.get(pk=submission_id)
    assert (submission.reviewed_score, submission.reviewed_criterion_scores) == (1, {})
    latest = AuditLog.objects.filter(action="override", submission_id=submission_id).first()
    assert latest is not None
    assert latest.details["previous_criterion_scores"] == {"content": 2, "language": 1}
    assert latest.details["criterion_scores"] == {}
    captured.run_all()
    assert platform.scores_for("student-1")[-1]["comment"] == "Only part."
    copy_reviewed_answers(analytic)
    assert training_data(analytic)[0] == []  # a total says nothing about each criterion


def test_django_admin_scores_each_criterion_through_the_same_function(
    platform, analytic, browser, captured, client, django_capture_on_commit_callbacks
) -> None:
    submission_id, _ = held_for_review(platform, browser, captured)
    admin = staff_client(client)
    url = f"/admin/scoring_plugin/submission/{submission_id}/change/"
    assert 'name="criterion:content"' in admin.get(url).content.decode()

    response = admin.post(
        url, {"reviewed_score": "", "criterion:content": "3", "criterion:language": "1"}
    )
    assert response.status_code == 200  # the form again, with the message
    assert "content: enter a whole number from 0 to 2, not 3." in response.content.decode()
    assert Submission.objects.get(pk=submission_id).reviewed_score is None
    assert not AuditLog.objects.filter(action="override", submission_id=submission_id).exists()

    with django_capture_on_commit_callbacks(execute=True):
        response = admin.post(
            url,
            {
                "reviewed_score": "",
                "criterion:content": "1",
                "criterion:language": "1",
                "review_comment": "Good wording.",
            },
        )
    assert response.status_code == 302, response.content.decode()[-2000:]
    submission = Submission.objects.get(pk=submission_id)
    assert (submission.reviewed_score, submission.reviewed_via) == (2, "admin")
    assert submission.reviewed_criterion_scores == {"content": 1, "language": 1}
    entry = AuditLog.objects.get(action="override", submission_id=submission_id)
    assert entry.actor == "admin:teacher"
    assert entry.details["criterion_scores"] == {"content": 1, "language": 1}
    assert captured.run_all() == ["posted"]
    graded = platform.scores_for("student-1")[-1]
    assert (graded["scoreGiven"], graded["comment"]) == (
        2.0,
        "Criteria: content 1/2, language 1/1. Good wording.",
    )

    # Only the comment changes: the criterion scores stay.
    with django_capture_on_commit_callbacks(execute=True):
        admin.post(
            url,
            {
                "reviewed_score": "2",
                "criterion:content": "1",
                "criterion:language": "1",
                "review_comment": "Good wording, well done.",
            },
        )
    submission.refresh_from_db()
    assert submission.reviewed_criterion_scores == {"content": 1, "language": 1}
    assert submission.review_comment == "Good wording, well done."


def test_a_holistic_item_keeps_the_single_score_form(
    platform, item, browser, make_browser, captured
) -> None:
    url = browser.open(platform)
    submission_id = submit(browser, url).json()["id"]
    finish(submission_id, score=1, confidence=0.3)
    teacher, page = teacher_page(platform, make_browser, submission_id)
    form = teacher.get(page).content.decode()
    assert 'name="score"' in form and "criterion:" not in form
    response = teacher.post(page, {"criterion:content": "1"})
    assert response.status_code == 400
    assert "item-1 has no criteria: give one score for the answer." in response.content.decode()
    assert Submission.objects.get(pk=submission_id).reviewed_score is None


def test_an_answer_group_of_an_analytic_item_is_scored_per_criterion(
    platform, analytic, make_browser, captured, django_capture_on_commit_callbacks
) -> None:
    ids = []
    for n in range(2):
        student = make_browser()
        url = student.open(platform, sub=f"student-{n}")
        ids.append(submit(student, url, answer="TCP and UDP are transport protocols.").json()["id"])
        finish(ids[-1], score=1, confidence=0.3)
    captured.run_all()
    teacher = make_browser()
    token = token_of(teacher.open(platform, sub="teacher-1", roles=[INSTRUCTOR]))
    page = f"/lti/s/{token}/review/groups/"
    html = teacher.get(page, data={"item_id": analytic.pk}).content.decode()
    assert 'name="criterion:content"' in html and 'name="score"' not in html

    form = {"submission_ids": ids, "item_id": analytic.pk, "comment": "Both named."}
    refused = teacher.post(page, {**form, "criterion:content": "2", "criterion:language": "4"})
    assert refused.status_code == 400
    assert "language: enter a whole number from 0 to 1, not 4." in refused.content.decode()
    assert not Submission.objects.filter(pk__in=ids, reviewed_score__isnull=False).exists()
    assert captured.calls == []

    with django_capture_on_commit_callbacks(execute=True):
        response = teacher.post(page, {**form, "criterion:content": "2", "criterion:language": "0"})
    assert response.status_code == 302 and "scored=2" in response["Location"]
    for submission in Submission.objects.filter(pk__in=ids):
        assert (submission.reviewed_score, submission.reviewed_via) == (2, "group")
        assert submission.reviewed_criterion_scores == {"content": 2, "language": 0}
    assert captured.run_all() == ["posted", "posted"]
    for n in range(2):
        graded = platform.scores_for(f"student-{n}")[-1]
        assert (graded["scoreGiven"], graded["comment"]) == (
            2.0,
            "Criteria: content 2/2, language 0/1. Both named.",
        )


def test_the_api_scores_each_criterion_through_the_same_function(
    platform, analytic, browser, captured, django_capture_on_commit_callbacks
) -> None:
    submission_id, _ = held_for_review(platform, browser, captured)
    api = api_client_for(UserFactory(username="api-reviewer", is_staff=True, is_superuser=True))
    url = f"/api/v1/submissions/{submission_id}/review/"
    refused = api.post(url, {"criteria": {"content": 3, "language": 1}}, format="json")
    assert refused.status_code == 400
    assert refused.json() == {"criteria": ["content: enter a whole number from 0 to 2, not 3."]}
    assert Submission.objects.get(pk=submission_id).reviewed_score is None

    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(
            url, {"criteria": {"content": 2, "language": 0}, "comment": "Good."}, format="json"
        )
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["reviewed_score"], body["final_score"], body["score"]) == (2, 2, 1)
    assert body["reviewed_criterion_scores"] == {"content": 2, "language": 0}
    assert captured.run_all() == ["posted"]
    assert platform.scores_for("student-1")[-1]["comment"] == (
        "Criteria: content 2/2, language 0/1. Good."
    )
