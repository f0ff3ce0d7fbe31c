"""Data is scoped by platform, deployment and context: nobody sees another course's answers,
even when two platforms use the same course, link and user ids."""

from __future__ import annotations

import re

import pytest

from tests.lti.lti_platform import INSTRUCTOR

pytestmark = pytest.mark.django_db


def token_of(url: str) -> str:
    match = re.search(r"/lti/s/([^/]+)/", url)
    assert match
    return match.group(1)


def answer(browser, platform, **claims) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    url = browser.open(platform, **claims)
    response = browser.post(
        f"/lti/s/{token_of(url)}/answer/",
        {"answer": f"answer on {platform.name} {claims}"},
        HTTP_ACCEPT="application/json",
    )
    assert response.status_code == 201
    return url, str(response.json()["id"])


def test_same_ids_on_another_platform_see_nothing_of_the_first(
    platform, other_platform, item, make_browser
) -> None:
    _, moodle_submission = answer(make_browser(), platform)
    student_b = make_browser()
    url_b = student_b.open(other_platform)  # same sub, course and link ids
    state = student_b.get(f"/lti/s/{token_of(url_b)}/status/").json()
    assert state["submissions"] == [] and state["can_submit"] is True

    teacher_b = make_browser()
    token_b = token_of(teacher_b.open(other_platform, sub="teacher-1", roles=[INSTRUCTOR]))
    review = teacher_b.get(f"/lti/s/{token_b}/review/").content.decode()
    assert moodle_submission not in review
    assert teacher_b.get(f"/lti/s/{token_b}/review/{moodle_submission}/").status_code == 404
    response = teacher_b.post(f"/lti/s/{token_b}/review/{moodle_submission}/", {"score": "0"})
    assert response.status_code == 404


def test_another_course_on_the_same_platform_sees_nothing(platform, item, make_browser) -> None:
    _, course_1_submission = answer(make_browser(), platform, context_id="course-1")
    teacher = make_browser()
    token = token_of(
        teacher.open(platform, sub="teacher-1", roles=[INSTRUCTOR], context_id="course-2")
    )
    assert course_1_submission not in teacher.get(f"/lti/s/{token}/review/").content.decode()
    assert teacher.get(f"/lti/s/{token}/review/{course_1_submission}/").status_code == 404


def test_students_see_only_their_own_answers(platform, item, make_browser) -> None:
    url_1, first = answer(make_browser(), platform, sub="student-1")
    other = make_browser()
    url_2 = other.open(platform, sub="student-2")
    ids = [s["id"] for s in other.get(f"/lti/s/{token_of(url_2)}/status/").json()["submissions"]]
    assert ids == []
    assert other.get(f"/lti/s/{token_of(url_2)}/review/{first}/").status_code == 403


def test_same_platform_another_deployment_is_another_scope(platform, item, make_browser) -> None:
    from lti_tool.models import LtiDeployment, LtiRegistration

    _, first = answer(make_browser(), platform)
    LtiDeployment.objects.create(
        registration=LtiRegistration.objects.get(issuer=platform.issuer),
        deployment_id="deployment-2",
        is_active=True,
    )
    platform.deployment_id = "deployment-2"
    teacher = make_browser()
    token = token_of(teacher.open(platform, sub="teacher-1", roles=[INSTRUCTOR]))
    assert first not in teacher.get(f"/lti/s/{token}/review/").content.decode()
