"""Issue 15, item 4: the instructor's list tells the truth about an answer's state and about
what the LMS gradebook really holds."""

from __future__ import annotations

import re

import pytest

from lti.models import LtiSubmission
from tests.lti.lti_platform import INSTRUCTOR
from tests.lti.lti_scoring import finish
from tests.lti.test_lti_flow import submit, token_of

pytestmark = pytest.mark.django_db


def row(html: str, submission_id: str) -> str:
    match = re.search(rf'<tr data-id="{submission_id}">(.*?)</tr>', html, re.S)
    assert match, html
    return match.group(1)


def cell(row_html: str, css_class: str) -> tuple[str, str]:
    """(data attribute, text) of the row's cell with ``css_class``."""
    match = re.search(rf'<td class="{css_class}" data-\w+="([^"]*)">(.*?)</td>', row_html, re.S)
    assert match, row_html
    return match.group(1), match.group(2).strip()


def test_after_an_override_the_row_says_reviewed_and_needs_review_no_longer_matches(
    platform, item, browser, make_browser, captured, django_capture_on_commit_callbacks
) -> None:
    submission_id = submit(browser, browser.open(platform)).json()["id"]
    finish(submission_id, score=1, confidence=0.3)
    captured.run_all()
    teacher = make_browser()
    token = token_of(teacher.open(platform, sub="teacher-1", roles=[INSTRUCTOR]))
    review = f"/lti/s/{token}/review/"

    before = teacher.get(review).content.decode()
    assert cell(row(before, submission_id), "state") == ("waiting_for_review", "needs review")
    assert cell(row(before, submission_id), "gradebook") == (
        "pending",
        "pending review (the LMS holds no grade yet)",
    )
    assert submission_id in teacher.get(review, data={"needs_review": "1"}).content.decode()

    with django_capture_on_commit_callbacks(execute=True):
        teacher.post(f"/lti/s/{token}/review/{submission_id}/", {"score": "3"})
    queued = teacher.get(review).content.decode()
    assert cell(row(queued, submission_id), "state") == ("reviewed", "reviewed")
    assert cell(row(queued, submission_id), "gradebook")[0] == "queued"
    assert submission_id not in teacher.get(review, data={"needs_review": "1"}).content.decode()

    captured.run_all()
    after = teacher.get(review).content.decode()
    assert cell(row(after, submission_id), "gradebook") == ("posted", "posted: 3 / 3")


def test_a_failed_passback_shows_its_reason_and_what_the_lms_still_holds(
    platform, item, browser, make_browser, captured, django_capture_on_commit_callbacks
) -> None:
    submission_id = submit(browser, browser.open(platform)).json()["id"]
    finish(submission_id, score=2, confidence=0.95)
    captured.run_all()
    teacher = make_browser()
    token = token_of(teacher.open(platform, sub="teacher-1", roles=[INSTRUCTOR]))
    platform.score_failures = [400]
    with django_capture_on_commit_callbacks(execute=True):
        teacher.post(f"/lti/s/{token}/review/{submission_id}/", {"score": "1"})
    assert captured.run_all() == ["failed"]
    html = teacher.get(f"/lti/s/{token}/review/").content.decode()
    code, words = cell(row(html, submission_id), "gradebook")
    assert code == "failed"
    assert words.startswith("failed: HTTP 400") and "(the LMS still holds 2 / 3)" in words
    one = teacher.get(f"/lti/s/{token}/review/{submission_id}/").content.decode()
    assert 'data-gradebook="failed"' in one and 'data-state="reviewed"' in one
    assert LtiSubmission.objects.get(pk=submission_id).posted_grade["score_given"] == 2.0


def test_an_answer_that_could_not_be_scored_says_failed_and_pending_in_the_gradebook(
    platform, item, browser, make_browser, captured
) -> None:
    submission_id = submit(browser, browser.open(platform)).json()["id"]
    finish(submission_id, score=None)
    captured.run_all()
    teacher = make_browser()
    token = token_of(teacher.open(platform, sub="teacher-1", roles=[INSTRUCTOR]))
    html = teacher.get(f"/lti/s/{token}/review/").content.decode()
    assert cell(row(html, submission_id), "state") == ("failed", "failed")
    assert cell(row(html, submission_id), "gradebook")[0] == "pending"
