"""Issue 15 in a real browser: the student reads the score with its feedback, asks for a human
review with the keyboard alone and hears that it is in the queue; the instructor finds it under
*Review requested*, scores it, and the student's page says reviewed. Screenshots go where
``tests/pages/test_browser.py`` puts them (``SCOREBRIDGE_SCREENSHOTS_DIR``: docs/screenshots/)."""

from __future__ import annotations

from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from lti.models import LtiSubmission
from scoring_plugin.models import Item, Submission
from tests.pages.conftest import Course
from tests.pages.test_browser import screenshot, wait
from tests.pages.test_review_pages import answered

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# axe-core (npm, pinned in scripts/test.sh), installed under var/node by scripts/test.sh.
AXE = (
    Path(__file__).resolve().parents[2]
    / "var"
    / "node"
    / "node_modules"
    / "axe-core"
    / "axe.min.js"
)


def serious_axe_violations(driver) -> list[str]:  # type: ignore[no-untyped-def]
    """axe-core's serious and critical violations on the page (rule id: first target)."""
    assert AXE.exists(), f"{AXE} missing: run scripts/test.sh (it installs axe-core with npm)"
    driver.execute_script(AXE.read_text(encoding="utf-8"))
    found = driver.execute_async_script(
        "var done = arguments[arguments.length - 1];"
        "axe.run(document, {resultTypes: ['violations']})"
        ".then(function (r) { done(r.violations); })"
        ".catch(function (e) { done([{id: 'axe-error: ' + e, impact: 'critical', nodes: []}]); });"
    )
    return [
        f"{v['id']}: {v['nodes'][0]['target'] if v['nodes'] else ''}"
        for v in found
        if v.get("impact") in ("serious", "critical")
    ]


def tab_to(driver, css: str, limit: int = 30):  # type: ignore[no-untyped-def]
    """Press Tab until the element matching ``css`` has focus (keyboard only)."""
    target = driver.find_element(By.CSS_SELECTOR, css)
    body = driver.find_element(By.TAG_NAME, "body")
    body.send_keys(Keys.TAB)
    for _ in range(limit):
        if driver.switch_to.active_element == target:
            return target
        driver.switch_to.active_element.send_keys(Keys.TAB)
    pytest.fail(f"{css} never took the focus by Tab")


def test_student_asks_for_review_by_keyboard_and_instructor_answers_it(
    chrome, live_server, passback, tmp_path
) -> None:
    item = Item.objects.create(
        key="demo-en-transport",
        title="Transport protocols",
        prompt="Name the two protocols of the transport layer and say how they differ.",
        max_score=2,
        review_threshold=0.6,
        feedback={
            "0": "Name a transport-layer protocol.",
            "1": "You named one protocol. Which other one is there, and how do they differ?",
            "2": "Both protocols and the difference: well done.",
        },
    )
    course = Course(item)
    submission = answered(
        course, "s1", "TCP makes sure the data arrives.", score=1, confidence=0.82, name="Ada"
    )
    chrome.set_window_size(1000, 900)  # the LMS frame's width
    chrome.get(f"{live_server.url}/lti/s/{course.launch('s1', name='Ada')}/")
    assert chrome.find_element(By.ID, "item-title").text == "Transport protocols"
    assert "demo-en-transport" not in chrome.find_element(By.TAG_NAME, "body").text
    entry = chrome.find_element(By.CSS_SELECTOR, f'li[data-id="{submission.pk}"]')
    assert entry.find_element(By.CSS_SELECTOR, ".state").text == "Scored"
    assert entry.find_element(By.CSS_SELECTOR, ".answer-text").text == (
        "TCP makes sure the data arrives."
    )
    assert "Which other one" in entry.find_element(By.CSS_SELECTOR, ".feedback-text").text
    screenshot(chrome, tmp_path, "student-feedback")
    assert serious_axe_violations(chrome) == []

    button = tab_to(chrome, ".request-review button")
    button.send_keys(Keys.ENTER)
    wait(chrome).until(
        lambda d: "review-note" in (d.switch_to.active_element.get_attribute("class") or "")
    )
    live = chrome.find_element(By.ID, "score-live")
    assert "review queue" in live.get_attribute("textContent")
    assert "Waiting for review" in live.get_attribute("textContent")
    assert not chrome.find_elements(By.CSS_SELECTOR, ".request-review")
    assert Submission.objects.get(pk=submission.pk).review_requested
    screenshot(chrome, tmp_path, "student-review-requested")
    assert serious_axe_violations(chrome) == []

    teacher = course.launch("t1", instructor=True, name="Ms Smith")
    chrome.get(f"{live_server.url}/lti/s/{teacher}/review/?review_requested=1")
    (row,) = chrome.find_elements(By.CSS_SELECTOR, "#submissions tr[data-id]")
    assert "review requested by the student" in row.text
    assert "TCP makes sure the data arrives." in row.text
    screenshot(chrome, tmp_path, "instructor-review-queue")
    row.find_element(By.LINK_TEXT, "Review").click()
    score = wait(chrome).until(lambda d: d.find_element(By.NAME, "score"))
    score.clear()
    score.send_keys("2", Keys.ENTER)
    wait(chrome).until(lambda d: passback)
    reviewed = Submission.objects.get(pk=submission.pk)
    assert (reviewed.reviewed_score, reviewed.review_requested) == (2, False)
    assert passback == [str(submission.pk)]
    assert LtiSubmission.objects.get(pk=submission.pk).final_score == 2

    chrome.get(f"{live_server.url}/lti/s/{course.launch('s1', name='Ada')}/")
    entry = chrome.find_element(By.CSS_SELECTOR, f'li[data-id="{submission.pk}"]')
    assert entry.find_element(By.CSS_SELECTOR, ".state").text == "Reviewed"
    assert "well done" in entry.find_element(By.CSS_SELECTOR, ".feedback-text").text
    assert "Your instructor scored this answer." in entry.text


def test_instructor_scores_an_answer_group_with_the_keyboard(
    chrome, live_server, passback, tmp_path
) -> None:
    item = Item.objects.create(
        key="transport", title="Transport protocols", prompt="Name them.", max_score=2
    )
    item.scored_answers.create(response_key="h1", text="TCP and UDP", score=2)
    item.scored_answers.create(response_key="h2", text="Only TCP", score=1)
    item.scored_answers.create(response_key="h3", text="No idea", score=0)
    course = Course(item)
    similar = [
        answered(course, f"s{n}", f"TCP and UDP{'.' * (n % 3)}", score=2, confidence=0.4 + n / 100)
        for n in range(6)
    ]
    lone = answered(course, "x", "Light and water", score=0, confidence=0.2, name="Zed")
    chrome.set_window_size(1000, 900)  # the LMS frame's width
    chrome.get(f"{live_server.url}/lti/s/{course.launch('t1', instructor=True)}/review/groups/")
    groups = chrome.find_elements(By.CSS_SELECTOR, ".answer-group")
    assert [g.get_attribute("data-size") for g in groups] == ["1", "6"]  # least confident first
    assert chrome.execute_script("return document.documentElement.scrollWidth") <= 1000
    screenshot(chrome, tmp_path, "instructor-answer-groups")
    assert serious_axe_violations(chrome) == []
    body = chrome.find_element(By.TAG_NAME, "body")
    body.send_keys("j")
    chrome.switch_to.active_element.send_keys("j")
    assert chrome.switch_to.active_element.get_attribute("id") == groups[1].get_attribute("id")
    chrome.switch_to.active_element.send_keys("2")
    field = chrome.switch_to.active_element
    assert field.get_attribute("name") == "score" and field.get_attribute("value") == "2"
    field.send_keys(Keys.ENTER)
    live = wait(chrome).until(lambda d: d.find_element(By.ID, "group-live"))
    wait(chrome).until(lambda d: "Scored 6 answer(s)" in d.find_element(By.ID, "group-live").text)
    assert live is not None
    assert sorted(passback) == sorted(str(s.pk) for s in similar)
    assert Submission.objects.filter(reviewed_score=2, reviewed_via="group").count() == 6
    assert Submission.objects.get(pk=lone.pk).reviewed_score is None

    chrome.find_element(By.CSS_SELECTOR, f'tr[data-id="{lone.pk}"] a').click()
    section = wait(chrome).until(lambda d: d.find_element(By.ID, "scored-like-these"))
    assert len(section.find_elements(By.CSS_SELECTOR, "tr.similar")) == 3
    screenshot(chrome, tmp_path, "instructor-scored-like-these")
