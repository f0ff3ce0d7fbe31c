"""Deep linking, instructor review with the roster, submission review, frames and cookies."""

from __future__ import annotations

import json
import re

import jwt
import pytest
from jwt.algorithms import RSAAlgorithm

from tests.factories import LtiItemFactory
from tests.lti.lti_platform import INSTRUCTOR, LEARNER
from tests.lti.lti_scoring import finish

pytestmark = pytest.mark.django_db

DL = "https://purl.imsglobal.org/spec/lti-dl/claim/"


def token_of(url: str) -> str:
    match = re.search(r"/lti/s/([^/]+)/", url)
    assert match
    return match.group(1)


def answer(browser, platform, sub: str, **claims) -> str:  # type: ignore[no-untyped-def]
    url = browser.open(platform, sub=sub, **claims)
    response = browser.post(
        f"/lti/s/{token_of(url)}/answer/",
        {"answer": f"answer of {sub}"},
        HTTP_ACCEPT="application/json",
    )
    assert response.status_code == 201
    return str(response.json()["id"])


def test_deep_linking_returns_a_resource_link_with_the_items_line_item(platform, browser) -> None:
    item = LtiItemFactory(key="tcp-seq", max_score=4)
    url = browser.open(
        platform, sub="teacher-1", roles=[INSTRUCTOR], message_type="LtiDeepLinkingRequest"
    )
    page = browser.get(url).content.decode()
    assert "tcp-seq" in page
    response = browser.post(f"/lti/s/{token_of(url)}/deep-link/", {"item_id": str(item.pk)})
    html = response.content.decode()
    assert f'action="{platform.url}/deep-link-return"' in html
    token = re.search(r'name="JWT" value="([^"]+)"', html).group(1)  # type: ignore[union-attr]
    header = jwt.get_unverified_header(token)
    (key,) = [k for k in browser.get("/lti/jwks/").json()["keys"] if k["kid"] == header["kid"]]
    claims = jwt.decode(
        token,
        RSAAlgorithm.from_jwk(json.dumps(key)),
        algorithms=["RS256"],
        audience=platform.issuer,
    )
    assert claims["iss"] == platform.client_id
    assert claims[DL + "data"] == "opaque-data"
    assert (
        claims["https://purl.imsglobal.org/spec/lti/claim/message_type"] == "LtiDeepLinkingResponse"
    )
    (content,) = claims[DL + "content_items"]
    assert content["type"] == "ltiResourceLink"
    assert content["lineItem"]["scoreMaximum"] == 4
    # The stable id names the item; the key is kept for reading.
    assert content["custom"] == {"scorebridge_item": "tcp-seq", "scorebridge_item_id": str(item.pk)}
    assert content["url"].endswith("/lti/launch/")


def test_instructor_review_lists_scores_and_who_has_not_answered(
    platform, item, make_browser
) -> None:
    platform.members = [
        {"user_id": "student-1", "name": "Ada", "roles": [LEARNER], "status": "Active"},
        {"user_id": "student-2", "name": "Brendan", "roles": [LEARNER], "status": "Active"},
        {"user_id": "teacher-1", "name": "Teacher", "roles": [INSTRUCTOR], "status": "Active"},
    ]
    submission_id = answer(make_browser(), platform, "student-1")
    finish(submission_id, score=2, confidence=0.42)
    teacher = make_browser()
    url = teacher.open(platform, sub="teacher-1", roles=[INSTRUCTOR])
    review = teacher.get(url, follow=True)
    html = review.content.decode()
    assert review.status_code == 200
    assert submission_id in html
    assert "2 / 3" in html and "0.42" in html and "item-1@v1" in html
    not_answered = html.split('id="not-answered"')[1]
    assert "Brendan" in not_answered and "Ada" not in not_answered
    assert "Teacher" not in not_answered


def test_override_must_be_within_the_items_range(platform, item, make_browser) -> None:
    submission_id = answer(make_browser(), platform, "student-1")
    teacher = make_browser()
    token = token_of(teacher.open(platform, sub="teacher-1", roles=[INSTRUCTOR]))
    response = teacher.post(f"/lti/s/{token}/review/{submission_id}/", {"score": "9"})
    assert response.status_code == 400
    assert "from 0 to 3" in response.content.decode()


def test_submission_review_launch_opens_that_students_answer(platform, item, make_browser) -> None:
    first = answer(make_browser(), platform, "student-1")
    second = answer(make_browser(), platform, "student-2")
    teacher = make_browser()
    url = teacher.open(
        platform,
        sub="teacher-1",
        roles=[INSTRUCTOR],
        message_type="LtiSubmissionReviewRequest",
        **{"https://purl.imsglobal.org/spec/lti/claim/for_user": {"user_id": "student-2"}},
    )
    html = teacher.get(url).content.decode()
    assert "answer of student-2" in html and second in html
    assert "answer of student-1" not in html and first not in html


def test_student_submission_review_of_someone_else_is_refused(platform, item, browser) -> None:
    response = browser.launch(
        platform,
        sub="student-1",
        message_type="LtiSubmissionReviewRequest",
        **{"https://purl.imsglobal.org/spec/lti/claim/for_user": {"user_id": "student-2"}},
    )
    assert 'data-code="forbidden"' in response.content.decode()


def test_tool_pages_can_be_framed_by_registered_platforms_only(platform, item, browser) -> None:
    url = browser.open(platform)
    response = browser.get(url)
    assert "X-Frame-Options" not in response
    csp = response["Content-Security-Policy"]
    assert csp.startswith("frame-ancestors 'self' ")
    assert platform.url in csp
    assert "*" not in csp
    # other pages keep Django's clickjacking protection
    assert browser.get("/admin/login/")["X-Frame-Options"] == "DENY"


def test_login_cookies_are_samesite_none_secure_and_partitioned(platform, browser) -> None:
    response = browser.client.get(
        "/lti/login/",
        {
            "iss": platform.issuer,
            "client_id": platform.client_id,
            "login_hint": "x",
            "target_link_uri": "https://testserver/lti/launch/",
            "lti1p3_new_window": "1",
        },
        secure=True,
    )
    state_cookies = [c for name, c in response.cookies.items() if name.startswith("lti1p3-")]
    assert state_cookies
    for cookie in state_cookies:
        assert cookie["samesite"] == "None; Partitioned" and cookie["secure"]
        assert "SameSite=None; Partitioned" in cookie.OutputString()


def test_session_and_csrf_cookies_under_lti_are_samesite_none_and_partitioned(rf, settings) -> None:
    from django.http import HttpResponse

    from lti.middleware import LtiCookieMiddleware

    def view(request):  # type: ignore[no-untyped-def]
        response = HttpResponse()
        response.set_cookie(settings.SESSION_COOKIE_NAME, "s", samesite="Lax")
        response.set_cookie(settings.CSRF_COOKIE_NAME, "c", samesite="Lax")
        return response

    middleware = LtiCookieMiddleware(view)
    inside = middleware(rf.get("/lti/s/x/"))
    for name in (settings.SESSION_COOKIE_NAME, settings.CSRF_COOKIE_NAME):
        assert inside.cookies[name]["samesite"] == "None; Partitioned"
        assert inside.cookies[name]["secure"]
    assert inside["Cross-Origin-Opener-Policy"] == "unsafe-none"  # keeps window.opener
    outside = middleware(rf.get("/admin/"))
    assert outside.cookies[settings.SESSION_COOKIE_NAME]["samesite"] == "Lax"


def test_browser_without_cookies_is_offered_a_new_window(platform, browser) -> None:
    response = browser.client.get(
        "/lti/login/",
        {
            "iss": platform.issuer,
            "client_id": platform.client_id,
            "login_hint": "x",
            "target_link_uri": "https://testserver/lti/launch/",
        },
        secure=True,
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert "Open in a new window" in html and "lti1p3_new_window" in html
    assert "sb_cookies=1" in html  # where the page continues when a partitioned cookie sticks
    assert not response.cookies  # the state cookie comes only with the continuation


def test_launch_data_lives_in_the_shared_cache_not_in_the_process(
    platform, item, browser, settings
) -> None:
    from django.core.cache import caches

    assert settings.CACHES["lti"]["BACKEND"].endswith("FileBasedCache")
    url = browser.open(platform)
    caches["lti"].close()
    # a fresh cache object (another worker process) reads the same launch
    from django.core.cache.backends.filebased import FileBasedCache

    other = FileBasedCache(settings.CACHES["lti"]["LOCATION"], {})
    assert other.get("scorebridge-lti-session-" + token_of(url))["item_key"] == "item-1"


def test_expired_or_unknown_launch_token_is_not_found(browser, db) -> None:
    assert browser.get("/lti/s/unknown-token/").status_code == 404


def test_submission_review_without_for_user_shows_the_class_results(
    platform, item, make_browser
) -> None:
    """Moodle's gradebook column action "View External tool results" sends no for_user."""
    first = answer(make_browser(), platform, "student-1", name="Ada")
    second = answer(make_browser(), platform, "student-2", name="Brendan")
    elsewhere = answer(make_browser(), platform, "student-3", resource_link_id="link-2")
    teacher = make_browser()
    response = teacher.launch(
        platform,
        sub="teacher-1",
        roles=[INSTRUCTOR],
        message_type="LtiSubmissionReviewRequest",
    )
    assert response.status_code == 302, response.content.decode()
    page = teacher.get(response["Location"])
    assert page.status_code == 200
    html = page.content.decode()
    assert 'data-scope="class"' in html
    assert "answer of student-1" in html and first in html and "Ada" in html
    assert "answer of student-2" in html and second in html and "Brendan" in html
    assert elsewhere not in html  # another resource link's answers are not this activity's


def test_student_submission_review_without_for_user_shows_their_own(
    platform, item, make_browser
) -> None:
    answer(make_browser(), platform, "student-2")
    student = make_browser()
    mine = answer(student, platform, "student-1")
    url = student.open(platform, sub="student-1", message_type="LtiSubmissionReviewRequest")
    html = student.get(url).content.decode()
    assert 'data-scope="student"' in html and mine in html
    assert "answer of student-2" not in html
