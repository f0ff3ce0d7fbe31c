"""Issue 16, item 2: answers students submit to an item with no model wait as *needs human
score*, the gradebook holds them as pending (no grade), and the instructor's score in the
answer groups posts the grade and becomes training data with who scored it."""

from __future__ import annotations

import re

import pytest

from scoring_plugin.models import ScoredAnswer, Submission
from scoring_plugin.review import copy_reviewed_answers
from tests.lti.lti_platform import INSTRUCTOR
from tests.lti.test_lti_flow import status, submit, token_of
from workers.tasks import score_submissions


@pytest.mark.django_db
def test_an_answer_to_an_item_without_a_model_is_pending_until_the_instructor_scores_it(
    platform, item, make_browser, captured, django_capture_on_commit_callbacks
) -> None:
    student = make_browser()
    page = student.open(platform, sub="student-1")
    submission_id = submit(student, page, answer="To put segments in order.").json()["id"]
    with django_capture_on_commit_callbacks(execute=True):
        assert score_submissions([submission_id]) == {submission_id: "waiting"}
    row = Submission.objects.get(pk=submission_id)
    assert (row.status, row.waiting_for) == ("received", "model")
    assert captured.run_all() == ["posted"]
    (pending,) = platform.scores_for("student-1")
    assert (pending["gradingProgress"], pending["activityProgress"]) == (
        "PendingManual",
        "Submitted",
    )
    assert "scoreGiven" not in pending
    (answer,) = status(student, page)["submissions"]
    assert (answer["state"], answer["done"], answer["score"]) == ("waiting_for_review", True, None)
    # a second delivery of the same answer sends nothing new
    with django_capture_on_commit_callbacks(execute=True):
        score_submissions([submission_id])
    assert captured.calls == [] and len(platform.scores_for("student-1")) == 1

    teacher = make_browser()
    token = token_of(teacher.open(platform, sub="teacher-1", roles=[INSTRUCTOR]))
    html = teacher.get(
        f"/lti/s/{token}/review/groups/", data={"needs_review": "1"}
    ).content.decode()
    assert "needs a human score" in html
    chosen = re.findall(r'name="submission_ids" value="([0-9a-f-]+)"', html)
    assert chosen == [submission_id]
    with django_capture_on_commit_callbacks(execute=True):
        response = teacher.post(
            f"/lti/s/{token}/review/groups/",
            {"submission_ids": chosen, "score": "2", "item_id": item.pk},
        )
    assert response.status_code == 302
    assert captured.run_all() == ["posted"]
    graded = platform.scores_for("student-1")[-1]
    assert (graded["scoreGiven"], graded["gradingProgress"], graded["activityProgress"]) == (
        2.0,
        "FullyGraded",
        "Completed",
    )
    (answer,) = status(student, page)["submissions"]
    assert (answer["state"], answer["score"]) == ("reviewed", 2.0)
    copy_reviewed_answers(item)
    trained = ScoredAnswer.objects.get(item=item)
    assert (trained.score, trained.source, trained.scored_by) == (
        2,
        "review",
        "lti:Name of teacher-1",
    )
