"""Issue 15, "Done when": the whole review loop in headless Chromium, through the LTI test
platform's course page and real worker processes.

A student answers in the course page's frame; a real ``celery worker`` scores the answer with a
tiny model trained for the item and posts the grade; the student asks for a human review. Nineteen
classmates answered alike, five otherwise. The instructor opens the answer groups in the frame,
reads why one answer got its score ("scored like these") and scores the group of 20 in one
action; the real worker's ``lms`` queue posts the 20 grades to the platform's gradebook; the
student launches again and reads the reviewed score with the feedback written for it.

Screenshots go to ``SCOREBRIDGE_SCREENSHOTS_DIR`` (docs/screenshots/ holds the committed ones).
"""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec

from scoring_plugin.models import AuditLog, Item, Submission
from tests.lti.lti_platform import INSTRUCTOR, TestPlatform
from tests.lti.test_lti_flow import submit
from tests.pages.conftest import start_chrome
from tests.pages.test_browser import screenshot, wait
from tests.pages.test_student_review_browser import serious_axe_violations

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

# The tiny backbone's vocabulary holds these words (tests/scoring/conftest.py WORDS). Its random
# weights put every sentence close together; the twenty are 0.03 apart at most (cosine), the
# five others 0.24 or more on average from them: the groups come from the stored vectors.
SIMILAR = [
    f"{start}tcp and udp is the data layer{end}"
    for start in ("", "the ", "a ", "yes ", "and ")
    for end in ("", ".", "!", " because")
]
DIFFERENT = ["no", "because", "no because", "to", "has"]
FEEDBACK = {
    "0": "Name a protocol of the transport layer.",
    "1": "One protocol named; which is the other one?",
    "2": "Both named; say how they differ.",
    "3": "Both protocols and how they differ: well done.",
}


@pytest.fixture
def chrome():  # type: ignore[no-untyped-def]
    driver = start_chrome()
    driver.set_window_size(1000, 900)  # the LMS frame's width
    yield driver
    driver.quit()


def in_course(chrome, platform: TestPlatform, live_server, sub: str, **claims: object) -> None:  # type: ignore[no-untyped-def]
    """Open the platform's course page for ``sub`` and switch into the tool's frame."""
    platform.prepare(sub, sub=sub, **claims)
    chrome.switch_to.default_content()
    chrome.get(platform.course_url(live_server.url + "/lti/login/", sub))
    wait(chrome, 30).until(ec.frame_to_be_available_and_switch_to_it("tool"))


def test_whole_loop_student_review_request_group_of_20_gradebook_and_feedback(
    chrome, live_server, platform, settings, tiny_backbone, tmp_path
) -> None:
    from tests.scoring.conftest import add_scored_answers, train_active_version
    from tests.scoring.realworker import broker, wait_for, wait_until_finished, worker_process
    from workers import engine_host

    settings.SCORING_BACKBONE = str(tiny_backbone)
    settings.ARTIFACTS_DIR = tmp_path / "artifacts"
    engine_host.reset()
    item = Item.objects.create(
        key="item-1",
        title="Transport protocols",
        prompt="Name the two protocols of the transport layer and say how they differ.",
        max_score=3,
        review_threshold=0.0,  # every automatic score is posted; the student asks for review
        feedback=FEEDBACK,
    )
    add_scored_answers(item)
    train_active_version(item)
    engine_host.reset()
    log = tmp_path / "worker.log"
    url = "filesystem://"
    with broker(url), worker_process(url, tiny_backbone, log):
        # The student answers in the course page's frame.
        in_course(chrome, platform, live_server, "student-0")
        wait(chrome).until(ec.element_to_be_clickable((By.ID, "answer"))).send_keys(SIMILAR[0])
        chrome.find_element(By.ID, "submit-answer").click()
        # Nineteen classmates answer alike, five otherwise (launches signed by the platform).
        from tests.lti.conftest import Browser

        for number, text in enumerate(SIMILAR[1:] + DIFFERENT, start=1):
            classmate = Browser()
            submit(classmate, classmate.open(platform, sub=f"student-{number}"), answer=text)
        wait_for(lambda: Submission.objects.count() == 25, 30, "25 answers stored", log)
        ids = [str(pk) for pk in Submission.objects.values_list("pk", flat=True)]
        wait_until_finished(ids, 240, log)
        assert set(Submission.objects.values_list("status", flat=True)) == {"scored"}
        assert all(Submission.objects.values_list("embedding", flat=True))  # vectors kept
        wait_for(
            lambda: all(platform.scores_for(f"student-{n}") for n in range(25)),
            120,
            "25 automatic grades in the gradebook",
            log,
        )
        first = Submission.objects.get(text=SIMILAR[0])
        entry = wait(chrome, 30).until(
            lambda d: d.find_element(
                By.CSS_SELECTOR, f'li[data-id="{first.pk}"][data-state="scored"]'
            )
        )
        assert entry.find_element(By.CSS_SELECTOR, ".answer-text").text == SIMILAR[0]
        automatic = FEEDBACK[str(first.score)]
        assert automatic in entry.find_element(By.CSS_SELECTOR, ".feedback-text").text
        screenshot(chrome, tmp_path, "student-feedback")

        # ... and asks for a human review.
        entry.find_element(By.CSS_SELECTOR, ".request-review button").click()
        wait(chrome).until(
            lambda d: (
                "review queue" in d.find_element(By.ID, "score-live").get_attribute("textContent")
            )
        )
        assert Submission.objects.get(pk=first.pk).review_requested
        screenshot(chrome, tmp_path, "student-review-requested")

        # The instructor opens the answer groups in the frame.
        in_course(chrome, platform, live_server, "teacher-1", roles=[INSTRUCTOR])
        wait(chrome).until(ec.element_to_be_clickable((By.ID, "answer-groups"))).click()
        big = wait(chrome).until(
            lambda d: d.find_element(By.CSS_SELECTOR, '.answer-group[data-size="20"]')
        )
        members = {
            r.get_attribute("data-id") for r in big.find_elements(By.CSS_SELECTOR, "tr[data-id]")
        }
        similar_ids = {str(s.pk) for s in Submission.objects.filter(text__in=SIMILAR)}
        assert members == similar_ids
        assert chrome.execute_script("return document.documentElement.scrollWidth") <= 1000
        screenshot(chrome, tmp_path, "instructor-answer-groups")
        assert serious_axe_violations(chrome) == []

        row = big.find_element(By.CSS_SELECTOR, f'tr[data-id="{first.pk}"]')
        assert "review requested by the student" in row.text

        # Why did the student's answer get its score? The three most similar scored answers.
        big.find_element(By.CSS_SELECTOR, f'tr[data-id="{first.pk}"] a').click()
        section = wait(chrome).until(lambda d: d.find_element(By.ID, "scored-like-these"))
        assert len(section.find_elements(By.CSS_SELECTOR, "tr.similar")) == 3
        screenshot(chrome, tmp_path, "instructor-scored-like-these")
        chrome.find_element(By.LINK_TEXT, "All answers").click()
        wait(chrome).until(ec.element_to_be_clickable((By.ID, "answer-groups"))).click()

        # One action scores the group of 20.
        big = wait(chrome).until(
            lambda d: d.find_element(By.CSS_SELECTOR, '.answer-group[data-size="20"]')
        )
        big.find_element(By.NAME, "score").send_keys("3")
        big.find_element(By.NAME, "comment").send_keys("Both protocols named.")
        big.find_element(By.CSS_SELECTOR, "form.group-score button[type=submit]").click()
        wait(chrome).until(
            lambda d: "Scored 20 answer(s)" in d.find_element(By.ID, "group-live").text
        )
        wait_for(
            lambda: all(
                platform.scores_for(f"student-{n}")[-1].get("scoreGiven") == 3.0 for n in range(20)
            ),
            120,
            "the 20 group grades in the gradebook",
            log,
        )
    for n in range(20):
        assert platform.scores_for(f"student-{n}")[-1]["gradingProgress"] == "FullyGraded"
    for n in range(20, 25):  # the five other answers keep their automatic grade
        last = platform.scores_for(f"student-{n}")[-1]
        assert last["scoreGiven"] == float(Submission.objects.get(text=DIFFERENT[n - 20]).score)
    overrides = AuditLog.objects.filter(action="override", details__via="group")
    assert {str(e.submission_id) for e in overrides} == similar_ids and overrides.count() == 20
    reviewed = Submission.objects.get(pk=first.pk)
    assert (reviewed.reviewed_score, reviewed.review_requested) == (3, False)

    # The student launches again: reviewed, the score, the feedback for it.
    in_course(chrome, platform, live_server, "student-0")
    entry = wait(chrome).until(
        lambda d: d.find_element(By.CSS_SELECTOR, f'li[data-id="{first.pk}"]')
    )
    assert entry.find_element(By.CSS_SELECTOR, ".state").text == "Reviewed"
    assert "Score: 3 of 3" in entry.find_element(By.CSS_SELECTOR, ".feedback").text
    assert entry.find_element(By.CSS_SELECTOR, ".feedback-text").text == FEEDBACK["3"]
    assert "Your instructor scored this answer." in entry.text
    screenshot(chrome, tmp_path, "student-reviewed")
    assert serious_axe_violations(chrome) == []

    # The admin's item page: how good the active model is, how many answers wait.
    admin = User.objects.create_superuser("admin", "admin@example.org", "admin-password-1")
    chrome.switch_to.default_content()
    chrome.set_window_size(1200, 1400)
    chrome.get(f"{live_server.url}/admin/login/?next=/admin/scoring_plugin/item/{item.pk}/change/")
    chrome.find_element(By.NAME, "username").send_keys(admin.username)
    chrome.find_element(By.NAME, "password").send_keys("admin-password-1\n")
    glance = wait(chrome).until(lambda d: d.find_element(By.ID, "item-glance"))
    assert f"Active model: {item.active_version.label}" in glance.text
    assert "0 of 25 answer(s) wait for review." in glance.text
    screenshot(chrome, tmp_path, "admin-item")
