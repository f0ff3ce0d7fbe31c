"""The 1EdTech LTI 1.3 tool certification cases: the known-bad payloads are refused with their
error code before anything is stored, and the valid teacher and student launches all work.

A launch whose roles claim is present but empty, or names only roles Scorebridge does not know,
is valid (the 1EdTech tool guide): it opens read-only, without instructor or student rights.
"""

from __future__ import annotations

import re

import jwt
import pytest
from lti_tool.models import LtiUser

from lti.models import UsedNonce
from tests.lti.lti_platform import CLAIM, INSTRUCTOR, LEARNER, TestPlatform
from tests.lti.test_lti_launch_validation import refused

pytestmark = pytest.mark.django_db

PERSONAL = ("name", "given_name", "family_name", "email", "picture")
INSTITUTION_FACULTY = "http://purl.imsglobal.org/vocab/lis/v2/institution/person#Faculty"
INSTITUTION_STUDENT = "http://purl.imsglobal.org/vocab/lis/v2/institution/person#Student"


def launch_with(browser, platform: TestPlatform, *, drop=(), header=None, **claims):  # type: ignore[no-untyped-def]
    """Log in, then post a token without the ``drop`` claims (and with ``claims`` changed)."""
    login = browser.login(platform)
    body = platform.claims(nonce=login.nonce, **claims)
    for name in drop:
        if name not in claims:
            body.pop(name, None)
    headers = {"kid": platform.kid} if header is None else header
    token = jwt.encode(body, platform.private_pem, algorithm="RS256", headers=headers)
    return browser.post_launch(token, login.state)


def nothing_stored() -> None:
    assert not LtiUser.objects.exists()
    assert not UsedNonce.objects.exists()


def token_of(url: str) -> str:
    match = re.search(r"/lti/s/([^/]+)/", url)
    assert match
    return match.group(1)


# --- Known bad payloads ------------------------------------------------------------------------


def test_no_kid_in_the_jwt_header_is_refused(platform, item, browser) -> None:
    # PyJWT adds no kid unless asked: the header is {"alg": "RS256", "typ": "JWT"}.
    refused(launch_with(browser, platform, header={}), "missing_kid", 400)
    nothing_stored()


def test_wrong_lti_version_is_refused(platform, item, browser) -> None:
    response = launch_with(browser, platform, **{CLAIM + "version": "1.2.0"})
    refused(response, "bad_version", 400)
    nothing_stored()


def test_no_lti_version_is_refused(platform, item, browser) -> None:
    refused(launch_with(browser, platform, drop=[CLAIM + "version"]), "missing_claim", 400)
    nothing_stored()


def test_no_message_type_is_refused(platform, item, browser) -> None:
    refused(launch_with(browser, platform, drop=[CLAIM + "message_type"]), "missing_claim", 400)
    nothing_stored()


def test_no_roles_claim_is_refused(platform, item, browser) -> None:
    refused(launch_with(browser, platform, drop=[CLAIM + "roles"]), "missing_claim", 400)
    nothing_stored()


def test_no_deployment_id_is_refused(platform, item, browser) -> None:
    refused(launch_with(browser, platform, drop=[CLAIM + "deployment_id"]), "missing_claim", 400)
    nothing_stored()


def test_no_resource_link_id_is_refused(platform, item, browser) -> None:
    response = launch_with(browser, platform, **{CLAIM + "resource_link": {"title": "Q1"}})
    refused(response, "missing_claim", 400)
    nothing_stored()


def test_no_resource_link_claim_is_refused(platform, item, browser) -> None:
    refused(launch_with(browser, platform, drop=[CLAIM + "resource_link"]), "missing_claim", 400)
    nothing_stored()


def test_no_sub_is_refused(platform, item, browser) -> None:
    refused(launch_with(browser, platform, drop=["sub"]), "missing_claim", 400)
    nothing_stored()


def test_empty_sub_is_refused(platform, item, browser) -> None:
    refused(launch_with(browser, platform, sub=""), "missing_claim", 400)
    nothing_stored()


# --- Valid teacher launches ---------------------------------------------------------------------


def test_teacher_with_several_roles_gets_the_review_page(platform, item, browser) -> None:
    response = launch_with(
        browser, platform, sub="teacher-1", roles=[INSTITUTION_FACULTY, INSTRUCTOR, LEARNER]
    )
    assert response.status_code == 302
    page = browser.get(response["Location"], follow=True)
    assert page.status_code == 200
    assert "Answers in this course" in page.content.decode()


def test_short_role_instructor_is_an_instructor(platform, item, browser) -> None:
    response = launch_with(browser, platform, sub="teacher-1", roles=["Instructor"])
    page = browser.get(response["Location"], follow=True)
    assert "Answers in this course" in page.content.decode()


def test_short_role_learner_is_a_learner(platform, item, browser) -> None:
    response = launch_with(browser, platform, roles=["Learner"])
    page = browser.get(response["Location"]).content.decode()
    assert 'id="answer-form"' in page and 'answer-form"\n      hidden' not in page


@pytest.mark.parametrize(
    "roles",
    [
        ["http://purl.imsglobal.org/vocab/lis/v2/unknown/unknown#Unknown"],
        ["Wizard"],
        [],
    ],
    ids=["unknown-role", "unknown-short-role", "no-role"],
)
def test_unknown_or_no_role_opens_read_only(platform, item, browser, roles) -> None:
    response = launch_with(browser, platform, sub="guest-1", roles=roles)
    assert response.status_code == 302, response.content.decode()
    url = response["Location"]
    page = browser.get(url).content.decode()
    assert item.prompt in page
    assert 'id="no-rights"' in page  # says why there is no answer box
    assert browser.get(f"/lti/s/{token_of(url)}/status/").json()["can_submit"] is False
    answer = browser.post(
        f"/lti/s/{token_of(url)}/answer/", {"answer": "x"}, HTTP_ACCEPT="application/json"
    )
    assert answer.status_code == 403
    assert browser.get(f"/lti/s/{token_of(url)}/review/").status_code == 403


def test_institution_student_role_alone_has_no_rights(platform, item, browser) -> None:
    response = launch_with(browser, platform, roles=[INSTITUTION_STUDENT])
    url = response["Location"]
    assert browser.get(f"/lti/s/{token_of(url)}/status/").json()["can_submit"] is False


# --- Valid launches with more or less personal data ---------------------------------------------


@pytest.mark.parametrize("roles", [[LEARNER], [INSTRUCTOR]], ids=["student", "teacher"])
def test_email_only(platform, item, browser, roles) -> None:
    response = launch_with(
        browser, platform, sub="u-email", roles=roles, drop=PERSONAL, email="ada@school.example"
    )
    assert response.status_code == 302
    page = browser.get(response["Location"], follow=True).content.decode()
    assert "ada@school.example" in page
    assert LtiUser.objects.get(sub="u-email").email == "ada@school.example"


@pytest.mark.parametrize("roles", [[LEARNER], [INSTRUCTOR]], ids=["student", "teacher"])
def test_names_only(platform, item, browser, roles) -> None:
    response = launch_with(
        browser,
        platform,
        sub="u-names",
        roles=roles,
        drop=PERSONAL,
        given_name="Ada",
        family_name="Lovelace",
    )
    assert response.status_code == 302
    page = browser.get(response["Location"], follow=True).content.decode()
    assert "Ada Lovelace" in page


@pytest.mark.parametrize("roles", [[LEARNER], [INSTRUCTOR]], ids=["student", "teacher"])
def test_no_personal_data_shows_a_neutral_name(platform, item, browser, roles) -> None:
    sub = "a6d5c443-1f51-4783-ba1a-7686ffe3b54a"
    response = launch_with(browser, platform, sub=sub, roles=roles, drop=PERSONAL)
    assert response.status_code == 302
    page = browser.get(response["Location"], follow=True).content.decode()
    assert page.count("Anonymous user") >= 1
    assert sub not in page  # an opaque platform id is not a name


def test_answers_without_personal_data_are_listed_under_the_neutral_name(
    platform, item, browser, make_browser
) -> None:
    url = launch_with(browser, platform, sub="opaque-1", drop=PERSONAL)["Location"]
    answer = browser.post(
        f"/lti/s/{token_of(url)}/answer/", {"answer": "An answer."}, HTTP_ACCEPT="application/json"
    )
    assert answer.status_code == 201
    teacher = make_browser()
    review = teacher.open(platform, sub="teacher-1", roles=[INSTRUCTOR])
    listing = teacher.get(review, follow=True).content.decode()
    assert "Anonymous user" in listing and "opaque-1" not in listing


@pytest.mark.parametrize("roles", [[LEARNER], [INSTRUCTOR]], ids=["student", "teacher"])
def test_email_without_context(platform, item, browser, make_browser, roles) -> None:
    response = launch_with(
        browser,
        platform,
        sub="u-nocontext",
        roles=roles,
        drop=[*PERSONAL, CLAIM + "context"],
        email="grace@school.example",
    )
    assert response.status_code == 302, response.content.decode()
    page = browser.get(response["Location"], follow=True)
    assert page.status_code == 200
    assert "grace@school.example" in page.content.decode()
    if roles == [LEARNER]:
        url = response["Location"]
        answer = browser.post(
            f"/lti/s/{token_of(url)}/answer/", {"answer": "x y"}, HTTP_ACCEPT="application/json"
        )
        assert answer.status_code == 201
