"""The whole flow: OIDC login, launch, answer in the frame, scoring, score in the gradebook."""

from __future__ import annotations

import re

import pytest

from lti import tasks
from lti.models import ItemLtiSettings, LtiSubmission
from scoring_plugin.models import Submission
from tests.lti.lti_platform import INSTRUCTOR, LEARNER
from tests.lti.lti_scoring import finish

pytestmark = pytest.mark.django_db


def token_of(url: str) -> str:
    match = re.search(r"/lti/s/([^/]+)/", url)
    assert match
    return match.group(1)


def submit(browser, url: str, answer: str = "To put segments in order."):  # type: ignore[no-untyped-def]
    token = token_of(url)
    return browser.post(
        f"/lti/s/{token}/answer/", {"answer": answer}, HTTP_ACCEPT="application/json"
    )


def status(browser, url: str) -> dict:  # type: ignore[no-untyped-def,type-arg]
    response = browser.get(f"/lti/s/{token_of(url)}/status/")
    assert response.status_code == 200
    return response.json()


def test_student_answers_and_the_score_reaches_the_gradebook(
    platform, item, browser, captured
) -> None:
    url = browser.open(platform)
    page = browser.get(url)
    assert page.status_code == 200 and "answer-form" in page.content.decode()

    response = submit(browser, url)
    assert response.status_code == 201
    submission_id = response.json()["id"]
    assert status(browser, url)["submissions"][0]["done"] is False

    finish(submission_id, score=2, confidence=0.95)
    assert [args for args, _ in captured.calls] == [[submission_id]]
    assert captured.run_all() == ["posted"]

    (score,) = platform.scores_for("student-1")
    assert score["scoreGiven"] == 2.0
    assert score["scoreMaximum"] == 3.0
    assert score["activityProgress"] == "Completed"
    assert score["gradingProgress"] == "FullyGraded"
    link = LtiSubmission.objects.get(pk=submission_id)
    assert link.passback_status == LtiSubmission.Passback.POSTED

    state = status(browser, url)
    assert state["submissions"][0]["score"] == 2.0
    assert "Score: 2 of 3" in state["submissions"][0]["feedback"]
    # The access token was fetched once and signed with the tool's published key.
    assert len(platform.token_requests) == 1


def test_running_the_task_twice_posts_once(platform, item, browser, captured) -> None:
    url = browser.open(platform)
    submission_id = submit(browser, url).json()["id"]
    finish(submission_id, score=3)
    captured.run_all()
    assert tasks.post_score.apply(args=[submission_id]).get() == "already posted"
    assert len(platform.scores) == 1


def test_low_confidence_is_pending_manual_until_reviewed(
    platform, item, browser, make_browser, captured, django_capture_on_commit_callbacks
) -> None:
    url = browser.open(platform)
    submission_id = submit(browser, url).json()["id"]
    finish(submission_id, score=1, confidence=0.3)
    captured.run_all()
    (pending,) = platform.scores_for("student-1")
    assert pending["gradingProgress"] == "PendingManual"
    assert "scoreGiven" not in pending
    assert "reviewed by your instructor" in status(browser, url)["submissions"][0]["feedback"]

    teacher = make_browser()
    review_url = teacher.open(platform, sub="teacher-1", roles=[INSTRUCTOR])
    token = token_of(review_url)
    with django_capture_on_commit_callbacks(execute=True):
        response = teacher.post(
            f"/lti/s/{token}/review/{submission_id}/", {"score": "2", "comment": "Good."}
        )
    assert response.status_code == 302
    captured.run_all()
    final = platform.scores_for("student-1")[-1]
    assert final["gradingProgress"] == "FullyGraded"
    assert final["scoreGiven"] == 2.0
    assert final["timestamp"] > pending["timestamp"]
    assert (
        "Score: 2 of 3. Reviewed by your instructor."
        in (status(browser, url)["submissions"][0]["feedback"])
    )


def test_post_now_mode_sends_low_confidence_scores_fully_graded(
    platform, item, browser, captured
) -> None:
    ItemLtiSettings.objects.create(item=item, post_mode=ItemLtiSettings.PostMode.NOW)
    url = browser.open(platform)
    submission_id = submit(browser, url).json()["id"]
    finish(submission_id, score=1, confidence=0.3)
    captured.run_all()
    (score,) = platform.scores_for("student-1")
    assert score["gradingProgress"] == "FullyGraded" and score["scoreGiven"] == 1.0


def test_failed_scoring_is_sent_as_pending_manual(platform, item, browser, captured) -> None:
    url = browser.open(platform)
    submission_id = submit(browser, url).json()["id"]
    finish(submission_id, score=None)
    captured.run_all()
    (score,) = platform.scores_for("student-1")
    assert score["gradingProgress"] == "PendingManual" and "scoreGiven" not in score
    assert "Automatic scoring failed" in status(browser, url)["submissions"][0]["feedback"]


def test_missing_line_item_is_created_with_the_items_maximum(
    platform, item, browser, captured
) -> None:
    url = browser.open(platform, line_item=None)
    submission_id = submit(browser, url).json()["id"]
    finish(submission_id, score=3)
    assert captured.run_all() == ["posted"]
    (line_item,) = platform.line_items.values()
    assert line_item["scoreMaximum"] == 3
    assert line_item["resourceLinkId"] == "link-1"
    assert platform.scores[0].line_item_id == line_item["id"]


def test_attempts_are_limited_by_the_item_setting(platform, item, browser) -> None:
    url = browser.open(platform)
    assert submit(browser, url).status_code == 201
    second = submit(browser, url)
    assert second.status_code == 400
    assert "all 1 attempt" in second.json()["error"]

    ItemLtiSettings.objects.create(item=item, max_attempts=2)
    assert submit(browser, url).status_code == 201
    assert status(browser, url)["attempts_used"] == 2
    assert status(browser, url)["can_submit"] is False
    assert Submission.objects.count() == 2


def test_empty_answer_is_refused_with_a_message(platform, item, browser) -> None:
    url = browser.open(platform)
    response = submit(browser, url, answer="   ")
    assert response.status_code == 400
    assert response.json()["error"].startswith("The answer is empty")


def test_non_js_form_post_redirects_back_to_the_page(platform, item, browser) -> None:
    url = browser.open(platform)
    response = browser.post(f"/lti/s/{token_of(url)}/answer/", {"answer": "An answer."})
    assert response.status_code == 302 and response["Location"] == url
    assert "scoring" in browser.get(url).content.decode().lower()


def test_instructor_cannot_submit_and_learner_cannot_review(
    platform, item, browser, make_browser
) -> None:
    teacher = make_browser()
    teacher_url = teacher.open(platform, sub="teacher-1", roles=[INSTRUCTOR])
    assert submit(teacher, teacher_url).status_code == 403
    student_url = browser.open(platform, roles=[LEARNER])
    assert browser.get(f"/lti/s/{token_of(student_url)}/review/").status_code == 403


def test_a_retry_sends_a_newer_timestamp_after_a_conflict(
    platform, item, browser, captured
) -> None:
    url = browser.open(platform)
    submission_id = submit(browser, url).json()["id"]
    finish(submission_id, score=2)
    platform.score_failures = [409, 503]
    assert captured.run_all() == ["posted"]
    link = LtiSubmission.objects.get(pk=submission_id)
    assert link.passback_tries == 3
    assert link.passback_status == LtiSubmission.Passback.POSTED
    (score,) = platform.scores_for("student-1")
    assert score["timestamp"] == link.last_timestamp.isoformat(timespec="milliseconds")


def test_a_permanent_failure_is_visible_on_the_submission(
    platform, item, browser, captured
) -> None:
    url = browser.open(platform)
    submission_id = submit(browser, url).json()["id"]
    finish(submission_id, score=2)
    platform.score_failures = [400]
    assert captured.run_all() == ["failed"]
    link = LtiSubmission.objects.get(pk=submission_id)
    assert link.passback_status == LtiSubmission.Passback.FAILED
    assert "HTTP 400" in link.passback_error
    assert not platform.scores


def test_access_tokens_are_reused_from_the_shared_cache(platform, item, browser, captured) -> None:
    url = browser.open(platform)
    first = submit(browser, url).json()["id"]
    ItemLtiSettings.objects.create(item=item, max_attempts=0)
    second = submit(browser, url).json()["id"]
    finish(first, score=1)
    assert captured.run_all() == ["posted"]
    finish(second, score=3)
    assert captured.run_all() == ["posted"]
    assert len(platform.token_requests) == 1
    assert [s["scoreGiven"] for s in platform.scores_for("student-1")] == [1.0, 3.0]


def test_an_expired_access_token_is_fetched_again(platform, item, browser, captured) -> None:
    url = browser.open(platform)
    submission_id = submit(browser, url).json()["id"]
    finish(submission_id, score=1)
    platform.issued_tokens.clear()
    captured.run_all()
    # first token request happened in run_all; simulate the platform forgetting it
    assert platform.scores
    platform.issued_tokens.clear()
    Submission.objects.filter(pk=submission_id).update(reviewed_score=3)
    assert tasks.post_score.apply(args=[submission_id]).get() == "posted"
    assert len(platform.token_requests) == 2
    assert platform.scores_for("student-1")[-1]["scoreGiven"] == 3.0


def test_the_score_the_engine_gives_reaches_the_gradebook(
    platform,
    item,
    browser,
    captured,
    settings,
    tiny_backbone,
    tmp_path,
    django_capture_on_commit_callbacks,
) -> None:
    """The same flow with the real scoring code: a tiny model trained for the item scores it."""
    from tests.scoring.conftest import add_scored_answers, train_active_version
    from workers import engine_host
    from workers import tasks as worker_tasks

    settings.SCORING_BACKBONE = str(tiny_backbone)
    settings.ARTIFACTS_DIR = tmp_path / "artifacts"
    engine_host.reset()
    add_scored_answers(item)
    version = train_active_version(item)

    url = browser.open(platform)
    submission_id = submit(browser, url, answer="tcp udp the layer").json()["id"]
    with django_capture_on_commit_callbacks(execute=True):
        assert worker_tasks.score_submissions([submission_id]) == {submission_id: "scored"}
    engine_host.reset()
    scored = Submission.objects.get(pk=submission_id)
    assert scored.model_version == version
    assert [args for args, _ in captured.calls] == [[submission_id]]
    captured.run_all()

    (score,) = platform.scores_for("student-1")
    assert score["scoreMaximum"] == 3.0
    if scored.confidence >= item.review_threshold:
        assert score["scoreGiven"] == float(scored.score)
        assert score["gradingProgress"] == "FullyGraded"
    else:  # low confidence waits for an instructor (the default "post when reviewed")
        assert score["gradingProgress"] == "PendingManual"
