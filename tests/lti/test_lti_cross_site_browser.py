"""The tool on another site than the LMS, in headless Chromium that blocks third-party cookies.

The test platform serves the course page on ``127.0.0.1`` and Django's live server the tool on
``localhost``: two sites, so the tool in the course page's iframe is third-party. The first test
checks that this browser really blocks third-party cookies; the others launch the student page,
submission review and deep linking in the frame:

* with a partitioned state cookie (``Partitioned; Secure; SameSite=None``);
* with the platform's client-side postMessage storage (``lti_storage_target``), no cookie;
* with every cookie of the tool blocked in the frame (as Safari and strict settings do): the
  teacher opens Scorebridge in a new window and the item still reaches the course page.
"""

from __future__ import annotations

from urllib.parse import quote

import jwt
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from scoring_plugin.models import Submission
from tests.factories import LtiItemFactory
from tests.lti.lti_platform import INSTRUCTOR, TestPlatform
from tests.lti.test_lti_pages import answer
from tests.pages.conftest import start_chrome

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

BLOCK_THIRD_PARTY_COOKIES = {
    "profile.block_third_party_cookies": True,
    "profile.cookie_controls_mode": 1,  # the settings page's "Block third-party cookies"
}


def wait(driver, seconds: float = 20):  # type: ignore[no-untyped-def]
    return WebDriverWait(driver, seconds)


@pytest.fixture
def chrome():  # type: ignore[no-untyped-def]
    driver = start_chrome(BLOCK_THIRD_PARTY_COOKIES)
    yield driver
    driver.quit()


@pytest.fixture
def chrome_without_frame_cookies(live_server, platform):  # type: ignore[no-untyped-def]
    """Also no cookies at all, partitioned or not, for the tool inside the platform's page."""
    exception = {f"{live_server.url},{platform.url}": {"setting": 2}}
    driver = start_chrome(
        {**BLOCK_THIRD_PARTY_COOKIES, "profile.content_settings.exceptions.cookies": exception}
    )
    yield driver
    driver.quit()


def login_url(live_server) -> str:  # type: ignore[no-untyped-def]
    assert live_server.url.startswith("http://localhost:")
    return live_server.url + "/lti/login/"


def open_course(chrome, platform: TestPlatform, live_server, hint: str, **kwargs) -> None:  # type: ignore[no-untyped-def]
    assert platform.url.startswith("http://127.0.0.1:")  # another site than the tool
    chrome.get(platform.course_url(login_url(live_server), hint, **kwargs))
    wait(chrome).until(ec.frame_to_be_available_and_switch_to_it("tool"))


def test_this_browser_blocks_third_party_cookies(chrome, platform) -> None:
    other_site = platform.url.replace("127.0.0.1", "localhost")
    chrome.get(other_site + "/set-cookie")
    chrome.get(other_site + "/echo-cookies")
    assert "sb_plain=1" in chrome.find_element(By.ID, "cookies").text  # first-party: sent
    chrome.get(f"{platform.url}/frame?src={quote(other_site + '/echo-cookies')}")
    wait(chrome).until(ec.frame_to_be_available_and_switch_to_it("probe"))
    assert chrome.find_element(By.ID, "cookies").text == ""  # the same cookie, third-party


def test_student_answers_in_the_frame_with_a_partitioned_state_cookie(
    chrome, live_server, platform, item
) -> None:
    platform.prepare("student-1", sub="student-1")
    open_course(chrome, platform, live_server, "student-1")
    box = wait(chrome).until(ec.element_to_be_clickable((By.ID, "answer")))
    assert item.prompt in chrome.find_element(By.ID, "prompt").text
    box.send_keys("To put the segments in order.")
    chrome.find_element(By.ID, "submit-answer").click()
    wait(chrome).until(lambda d: Submission.objects.exists())
    wait(chrome).until(lambda d: "scoring" in d.find_element(By.ID, "submissions").text.lower())
    assert Submission.objects.get().text == "To put the segments in order."
    assert not platform.storage_log  # this platform offers no client-side storage


def test_launch_with_the_platforms_client_side_storage(
    chrome_without_frame_cookies, live_server, platform, item
) -> None:
    """No cookie at all in the frame: the state goes through lti.put_data and lti.get_data."""
    chrome = chrome_without_frame_cookies
    platform.prepare("student-1", sub="student-1")
    open_course(
        chrome, platform, live_server, "student-1", storage_target="post_message_forwarding"
    )
    # the page waits up to 10 s for each of the platform's two storage answers
    wait(chrome, 60).until(ec.element_to_be_clickable((By.ID, "answer"))).send_keys("tcp orders")
    chrome.find_element(By.ID, "submit-answer").click()
    wait(chrome).until(lambda d: Submission.objects.exists())
    wait(chrome).until(lambda d: len(platform.storage_log) >= 2)
    put, get = platform.storage_log[:2]
    assert put["subject"] == "lti.put_data" and get["subject"] == "lti.get_data"
    assert put["origin"] == live_server.url and get["found"] is True
    assert put["key"] == get["key"]


def test_instructor_sees_the_class_results_in_the_frame(
    chrome, live_server, platform, item, make_browser
) -> None:
    answer(make_browser(), platform, "student-2", name="Brendan")
    platform.prepare(
        "teacher-1",
        sub="teacher-1",
        roles=[INSTRUCTOR],
        message_type="LtiSubmissionReviewRequest",
    )
    open_course(chrome, platform, live_server, "teacher-1")
    results = wait(chrome).until(
        ec.presence_of_element_located((By.CSS_SELECTOR, "#submission-review[data-scope=class]"))
    )
    assert "answer of student-2" in results.text and "Brendan" in results.text


def test_deep_linking_in_the_frame(chrome, live_server, platform) -> None:
    item = LtiItemFactory(key="tcp-seq", max_score=4)
    platform.prepare(
        "teacher-1", sub="teacher-1", roles=[INSTRUCTOR], message_type="LtiDeepLinkingRequest"
    )
    open_course(chrome, platform, live_server, "teacher-1")
    wait(chrome).until(
        ec.element_to_be_clickable((By.CSS_SELECTOR, f"input[name=item_id][value='{item.pk}']"))
    )
    chrome.find_element(By.CSS_SELECTOR, f"input[name=item_id][value='{item.pk}']").click()
    chrome.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    chrome.switch_to.default_content()
    wait(chrome).until(lambda d: "item added" in d.find_element(By.ID, "dl-result").text)
    assert len(platform.deep_link_returns) == 1


def test_deep_linking_from_a_new_window_reaches_the_course_page(
    chrome_without_frame_cookies, live_server, platform
) -> None:
    """Moodle's return page calls its parent's processContentItemReturnData: the response made
    in the new window is posted from the frame, not from the new window."""
    chrome = chrome_without_frame_cookies
    item = LtiItemFactory(key="tcp-seq", max_score=4)
    platform.prepare(
        "teacher-1", sub="teacher-1", roles=[INSTRUCTOR], message_type="LtiDeepLinkingRequest"
    )
    open_course(chrome, platform, live_server, "teacher-1")
    course_window = chrome.current_window_handle
    wait(chrome).until(ec.element_to_be_clickable((By.ID, "lti1p3-new-tab-link"))).click()
    wait(chrome).until(lambda d: len(d.window_handles) == 2)
    (new_window,) = [h for h in chrome.window_handles if h != course_window]
    chrome.switch_to.window(new_window)
    wait(chrome).until(
        ec.element_to_be_clickable((By.CSS_SELECTOR, f"input[name=item_id][value='{item.pk}']"))
    )
    assert chrome.execute_script("return window.top === window.self")  # a real new window
    chrome.find_element(By.CSS_SELECTOR, f"input[name=item_id][value='{item.pk}']").click()
    chrome.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    chrome.switch_to.window(course_window)
    chrome.switch_to.default_content()
    wait(chrome).until(lambda d: "item added" in d.find_element(By.ID, "dl-result").text)
    (returned,) = platform.deep_link_returns
    claims = jwt.decode(returned, options={"verify_signature": False})
    assert claims["https://purl.imsglobal.org/spec/lti/claim/message_type"] == (
        "LtiDeepLinkingResponse"
    )
    (link,) = claims["https://purl.imsglobal.org/spec/lti-dl/claim/content_items"]
    assert link["custom"] == {"scorebridge_item": "tcp-seq", "scorebridge_item_id": str(item.pk)}
    wait(chrome).until(lambda d: len(d.window_handles) == 1)  # the new window closed itself
