"""The gradebook policy per item (latest, highest or first attempt), seen in the test
platform's gradebook: which score it holds after several attempts, and that an attempt held for
review never blanks a score already there."""

from __future__ import annotations

import pytest

from lti.models import ItemLtiSettings, LtiSubmission
from tests.lti.lti_platform import INSTRUCTOR
from tests.lti.lti_scoring import finish
from tests.lti.test_lti_flow import submit, token_of

pytestmark = pytest.mark.django_db


def gradebook(platform, user: str = "student-1") -> dict[str, object]:  # type: ignore[no-untyped-def]
    """What the platform's gradebook shows now: the newest score it accepted."""
    return platform.scores_for(user)[-1]


def attempt(browser, url, captured, *, score, confidence=0.95) -> str:  # type: ignore[no-untyped-def]
    submission_id = submit(browser, url).json()["id"]
    finish(submission_id, score=score, confidence=confidence)
    captured.run_all()
    return str(submission_id)


@pytest.fixture
def several_attempts(item):  # type: ignore[no-untyped-def]
    def with_policy(policy: str) -> ItemLtiSettings:
        return ItemLtiSettings.objects.create(item=item, max_attempts=0, gradebook_policy=policy)

    return with_policy


def test_default_policy_is_latest(item) -> None:
    assert ItemLtiSettings.for_item(item).gradebook_policy == "latest"


def test_latest_a_later_attempt_held_for_review_keeps_the_posted_zero(
    platform,
    item,
    browser,
    make_browser,
    captured,
    several_attempts,
    django_capture_on_commit_callbacks,
) -> None:
    several_attempts("latest")
    url = browser.open(platform)
    first = attempt(browser, url, captured, score=0)
    assert gradebook(platform)["scoreGiven"] == 0.0
    held = attempt(browser, url, captured, score=3, confidence=0.2)  # held for review
    assert len(platform.scores) == 1  # nothing sent: no PendingManual over the posted 0
    assert gradebook(platform)["scoreGiven"] == 0.0
    assert LtiSubmission.objects.get(pk=first).passback_status == "posted"
    assert LtiSubmission.objects.get(pk=held).passback_status == "other"

    teacher = make_browser()
    token = token_of(teacher.open(platform, sub="teacher-1", roles=[INSTRUCTOR]))
    with django_capture_on_commit_callbacks(execute=True):
        teacher.post(f"/lti/s/{token}/review/{held}/", {"score": "2"})
    captured.run_all()
    assert gradebook(platform)["scoreGiven"] == 2.0
    assert gradebook(platform)["gradingProgress"] == "FullyGraded"
    assert LtiSubmission.objects.get(pk=held).passback_status == "posted"
    assert LtiSubmission.objects.get(pk=first).passback_status == "other"


def test_latest_a_lower_later_score_replaces_the_earlier(
    platform, item, browser, captured, several_attempts
) -> None:
    several_attempts("latest")
    url = browser.open(platform)
    attempt(browser, url, captured, score=3)
    attempt(browser, url, captured, score=1)
    assert [s["scoreGiven"] for s in platform.scores_for("student-1")] == [3.0, 1.0]


def test_latest_first_attempt_held_is_pending_manual(
    platform, item, browser, captured, several_attempts
) -> None:
    several_attempts("latest")
    url = browser.open(platform)
    attempt(browser, url, captured, score=2, confidence=0.1)
    assert gradebook(platform)["gradingProgress"] == "PendingManual"
    assert "scoreGiven" not in gradebook(platform)


def test_latest_a_failed_later_attempt_keeps_the_posted_score(
    platform, item, browser, captured, several_attempts
) -> None:
    several_attempts("latest")
    url = browser.open(platform)
    attempt(browser, url, captured, score=2)
    attempt(browser, url, captured, score=None)
    assert [s["scoreGiven"] for s in platform.scores_for("student-1")] == [2.0]


def test_highest_keeps_the_best_attempt(
    platform, item, browser, captured, several_attempts
) -> None:
    several_attempts("highest")
    url = browser.open(platform)
    attempt(browser, url, captured, score=2)
    attempt(browser, url, captured, score=1)
    assert gradebook(platform)["scoreGiven"] == 2.0
    attempt(browser, url, captured, score=3, confidence=0.1)  # held: not counted until reviewed
    assert gradebook(platform)["scoreGiven"] == 2.0
    attempt(browser, url, captured, score=3)
    assert gradebook(platform)["scoreGiven"] == 3.0
    assert [s["scoreGiven"] for s in platform.scores_for("student-1")] == [2.0, 3.0]


def test_first_ignores_later_attempts(platform, item, browser, captured, several_attempts) -> None:
    several_attempts("first")
    url = browser.open(platform)
    attempt(browser, url, captured, score=1)
    later = attempt(browser, url, captured, score=3)
    assert [s["scoreGiven"] for s in platform.scores_for("student-1")] == [1.0]
    assert LtiSubmission.objects.get(pk=later).passback_status == "other"


def test_first_held_first_attempt_stays_pending_until_reviewed(
    platform,
    item,
    browser,
    make_browser,
    captured,
    several_attempts,
    django_capture_on_commit_callbacks,
) -> None:
    several_attempts("first")
    url = browser.open(platform)
    first = attempt(browser, url, captured, score=1, confidence=0.1)
    attempt(browser, url, captured, score=3)
    assert gradebook(platform)["gradingProgress"] == "PendingManual"
    teacher = make_browser()
    token = token_of(teacher.open(platform, sub="teacher-1", roles=[INSTRUCTOR]))
    with django_capture_on_commit_callbacks(execute=True):
        teacher.post(f"/lti/s/{token}/review/{first}/", {"score": "2"})
    captured.run_all()
    assert gradebook(platform)["scoreGiven"] == 2.0


def test_policies_are_per_item_and_per_student(
    platform, item, browser, make_browser, captured, several_attempts
) -> None:
    several_attempts("highest")
    url = browser.open(platform)
    other = make_browser()
    other_url = other.open(platform, sub="student-2")
    attempt(browser, url, captured, score=3)
    attempt(other, other_url, captured, score=1)
    attempt(browser, url, captured, score=0)
    assert gradebook(platform)["scoreGiven"] == 3.0
    assert gradebook(platform, "student-2")["scoreGiven"] == 1.0
