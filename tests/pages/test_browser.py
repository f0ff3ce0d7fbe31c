"""The three pages in a real browser (headless Chromium) against Django's live server.

Screenshots go to ``SCOREBRIDGE_SCREENSHOTS_DIR`` when it is set (docs/screenshots/ holds the
committed ones), else to the test's temporary folder.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from lti.models import LtiSubmission
from scoring_plugin.models import Item, ModelVersion, Submission
from tests.factories import ItemFactory
from tests.pages.conftest import Course
from tests.pages.test_admin_pages import ITEMS_CSV, RESPONSES_CSV
from tests.scoring.conftest import add_scored_answers, train_active_version
from workers.tasks import score_submissions

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def screenshot(driver, tmp_path: Path, name: str, element=None) -> Path:  # type: ignore[no-untyped-def]
    """Save the window (or one element) as PNG."""
    folder = Path(os.environ.get("SCOREBRIDGE_SCREENSHOTS_DIR") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    if element is None:
        driver.save_screenshot(str(path))
    else:
        element.screenshot(str(path))
    assert path.stat().st_size > 1000
    return path


def wait(driver, seconds: float = 20):  # type: ignore[no-untyped-def]
    return WebDriverWait(driver, seconds)


def test_admin_uploads_csv_previews_imports_and_sees_items(
    chrome, live_server, admin_user, tmp_path
) -> None:
    items = tmp_path / "items.csv"
    responses = tmp_path / "responses.csv"
    items.write_text(ITEMS_CSV)
    responses.write_text(RESPONSES_CSV)
    chrome.get(live_server.url + "/admin/login/?next=/admin/scoring_plugin/item/import/")
    chrome.find_element(By.NAME, "username").send_keys("admin")
    chrome.find_element(By.NAME, "password").send_keys("admin-password-1", Keys.ENTER)
    wait(chrome).until(ec.presence_of_element_located((By.ID, "import-form")))
    chrome.find_element(By.NAME, "items_file").send_keys(str(items))
    chrome.find_element(By.NAME, "responses_file").send_keys(str(responses))
    chrome.find_element(By.ID, "preview-button").click()
    summary = wait(chrome).until(ec.presence_of_element_located((By.ID, "import-summary")))
    assert "2 item(s) and 4 scored answer(s)" in summary.text
    assert "proto" in chrome.find_element(By.ID, "preview-counts").text
    assert chrome.find_elements(By.CSS_SELECTOR, "#preview-counts svg")
    assert not Item.objects.exists()
    screenshot(chrome, tmp_path, "admin-import-preview")
    chrome.find_element(By.ID, "confirm-import").click()
    wait(chrome).until(ec.presence_of_element_located((By.ID, "result_list")))
    listing = chrome.find_element(By.ID, "result_list").text
    assert "proto" in listing and "photo" in listing
    assert "Imported:" in chrome.find_element(By.CSS_SELECTOR, ".messagelist").text


def test_item_page_shows_charts_and_live_progress(
    chrome, live_server, admin_user, scoring_settings, tmp_path
) -> None:
    item = ItemFactory(key="transport", max_score=2)
    add_scored_answers(item)
    trained = train_active_version(item)
    # Answers the model scored whose text humans scored too: the confusion matrix's data.
    scored = [
        Submission.objects.create(item=item, text=a.text)
        for a in item.scored_answers.order_by("pk")[:12]
    ]
    score_submissions([str(s.pk) for s in scored])
    running = ModelVersion.objects.create(
        item=item,
        number=trained.number + 1,
        status=ModelVersion.Status.TRAINING,
        progress={"percent": 10.0, "epoch": 1, "epochs": 3},
    )
    chrome.get(live_server.url + "/admin/login/")
    chrome.find_element(By.NAME, "username").send_keys("admin")
    chrome.find_element(By.NAME, "password").send_keys("admin-password-1", Keys.ENTER)
    wait(chrome).until(ec.presence_of_element_located((By.ID, "user-tools")))
    chrome.get(f"{live_server.url}/admin/scoring_plugin/item/{item.pk}/change/")
    report = chrome.find_element(By.ID, f"version-{trained.pk}")
    assert report.find_elements(By.CSS_SELECTOR, "svg.sb-curve")
    assert report.find_elements(By.CSS_SELECTOR, "svg.sb-confusion")
    text = chrome.find_element(By.CSS_SELECTOR, f"#version-{running.pk} .sb-progress-text")
    ModelVersion.objects.filter(pk=running.pk).update(
        progress={"percent": 55.0, "epoch": 2, "epochs": 3, "train_loss": 0.4321}
    )
    wait(chrome).until(lambda d: "epoch 2 of 3" in text.text)
    assert "55.0%" in text.text and "train_loss 0.4321" in text.text
    screenshot(
        chrome, tmp_path, "admin-item-versions", chrome.find_element(By.ID, "model-versions")
    )


def test_student_submits_and_hears_the_score(
    chrome, live_server, scoring_settings, passback, tmp_path
) -> None:
    # Threshold 0: the tiny model's score goes to the student without waiting for review.
    item = ItemFactory(
        key="transport", max_score=2, prompt="Name the transport protocols.", review_threshold=0
    )
    add_scored_answers(item)
    train_active_version(item)
    course = Course(item)
    token = course.launch("student-1", name="Ada", locale="de-DE")
    chrome.get(f"{live_server.url}/lti/s/{token}/")
    assert chrome.find_element(By.TAG_NAME, "html").get_attribute("lang") == "de"
    # Keyboard only: the label's field takes focus, the button submits.
    chrome.find_element(By.CSS_SELECTOR, "label[for=answer]").click()
    active = chrome.switch_to.active_element
    assert active.get_attribute("id") == "answer"
    active.send_keys("tcp udp <script>alert(1)</script>")
    active.send_keys(Keys.TAB)
    chrome.switch_to.active_element.send_keys(Keys.ENTER)
    wait(chrome).until(lambda d: Submission.objects.exists())
    submission = Submission.objects.get()
    score_submissions([str(submission.pk)])  # what the scoring worker does
    live = chrome.find_element(By.ID, "score-live")
    wait(chrome).until(lambda d: "Punkte:" in live.get_attribute("textContent"))
    submission.refresh_from_db()
    assert f"Punkte: {submission.score} von 2." in live.get_attribute("textContent")
    assert chrome.find_elements(By.CSS_SELECTOR, "script") and not chrome.execute_script(
        "return Array.from(document.querySelectorAll('#submissions script')).length"
    )
    screenshot(chrome, tmp_path, "student-answer")


def test_instructor_overrides_and_the_gradebook_receives_it(
    chrome, live_server, passback, tmp_path
) -> None:
    item = ItemFactory(key="transport", max_score=2, review_threshold=0.6)
    course = Course(item)
    version = ModelVersion.objects.create(item=item, number=1, status="ready", is_active=True)
    for sub, name, text, score, confidence in [
        ("s1", "Ada", "tcp and udp", 2, 0.93),
        ("s2", "Brendan", "<script>alert('x')</script> tcp", 1, 0.41),
    ]:
        submission = Submission.objects.create(
            item=item,
            text=text,
            status="scored",
            score=score,
            confidence=confidence,
            model_version=version,
        )
        LtiSubmission.objects.create(
            submission=submission,
            context=course.context,
            resource_link=course.link,
            lti_user=course.user(sub, name),
            line_item_url="https://course.example/lineitems/1",
        )
    token = course.launch("teacher", instructor=True, name="Teacher")
    chrome.get(f"{live_server.url}/lti/s/{token}/")
    chrome.find_element(By.NAME, "needs_review").click()
    chrome.find_element(By.CSS_SELECTOR, "#review-filters button").click()
    rows = wait(chrome).until(
        lambda d: (
            (r := d.find_elements(By.CSS_SELECTOR, "#submissions tr[data-id]"))
            and len(r) == 1
            and r
        )
    )
    assert "Brendan" in rows[0].text
    screenshot(chrome, tmp_path, "instructor-review")
    rows[0].find_element(By.LINK_TEXT, "Review").click()
    answer = wait(chrome).until(ec.presence_of_element_located((By.ID, "answer")))
    assert "<script>alert('x')</script>" in answer.text  # shown as text, not run
    score = chrome.find_element(By.NAME, "score")
    score.clear()
    score.send_keys("2")
    chrome.find_element(By.NAME, "comment").send_keys("UDP is named too")
    chrome.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    wait(chrome).until(lambda d: passback)
    overridden = LtiSubmission.objects.get(lti_user__sub="s2")
    assert passback == [str(overridden.pk)]
    assert Submission.objects.get(pk=overridden.pk).reviewed_score == 2
