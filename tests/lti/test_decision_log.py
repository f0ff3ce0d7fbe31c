"""The decision log an auditor exports: per scored answer of a course and date range, the model
version, probabilities, threshold, human review and final score; no text, no student."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from lti.models import ItemLtiSettings
from scoring_plugin.models import Submission
from tests.factories import UserFactory
from tests.lti.lti_platform import INSTRUCTOR
from tests.lti.lti_scoring import finish
from tests.lti.test_lti_flow import submit, token_of

pytestmark = pytest.mark.django_db


@pytest.fixture
def decisions(platform, item, make_browser, monkeypatch):  # type: ignore[no-untyped-def]
    """Course 1: a confident answer and a reviewed one; course 2: one answer; plus one answer
    scored 40 days ago in course 1."""
    from lti import tasks

    monkeypatch.setattr(tasks.post_score, "apply_async", lambda *a, **k: None)
    ItemLtiSettings.objects.create(item=item, max_attempts=0)
    ids: dict[str, str] = {}
    for name, course, score, confidence in (
        ("confident", "course-1", 2, 0.93),
        ("reviewed", "course-1", 1, 0.41),
        ("other-course", "course-2", 3, 0.88),
        ("old", "course-1", 0, 0.9),
    ):
        browser = make_browser()
        url = browser.open(platform, sub=f"student-{name}", context_id=course)
        ids[name] = submit(browser, url, f"secret answer text {name}").json()["id"]
        finish(ids[name], score=score, confidence=confidence)
    Submission.objects.filter(pk=ids["confident"]).update(review_threshold=0.5)
    Submission.objects.filter(pk=ids["old"]).update(scored_at=timezone.now() - timedelta(days=40))
    teacher = make_browser()
    token = token_of(teacher.open(platform, sub="teacher-1", roles=[INSTRUCTOR]))
    response = teacher.post(f"/lti/s/{token}/review/{ids['reviewed']}/", {"score": "2"})
    assert response.status_code == 302
    return ids


def auditor():  # type: ignore[no-untyped-def]
    user = UserFactory(username="auditor", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="export_decision_log"))
    return user


def test_api_exports_a_courses_decisions_in_a_date_range(decisions) -> None:
    client = APIClient()
    client.force_authenticate(auditor())
    today = timezone.now().date()
    response = client.get(
        "/api/v1/audit/decisions/",
        {"start": str(today - timedelta(days=7)), "end": str(today), "course": "course-1"},
    )
    assert response.status_code == 200, response.content
    body = json.loads(response.content)
    rows = {r["submission_id"]: r for r in body["decisions"]}
    assert set(rows) == {decisions["confident"], decisions["reviewed"]}
    confident, reviewed = rows[decisions["confident"]], rows[decisions["reviewed"]]
    assert confident["model_version"] == "item-1@v1"
    assert confident["course"] == "course-1"
    assert (confident["review_threshold"], confident["threshold_source"]) == (0.5, "recorded")
    assert confident["needs_review"] is False and confident["human_reviewed"] is False
    assert confident["final_score"] == confident["auto_score"] == 2
    assert (reviewed["review_threshold"], reviewed["threshold_source"]) == (0.6, "current")
    assert reviewed["needs_review"] is True and reviewed["human_reviewed"] is True
    assert (reviewed["auto_score"], reviewed["final_score"]) == (1, 2)
    assert reviewed["reviewed_by"].startswith("lti:")
    assert "secret answer text" not in response.content.decode()
    assert "student-" not in response.content.decode()

    # 40 days back includes the old answer; the whole range without a course, all four.
    wide = client.get(
        "/api/v1/audit/decisions/",
        {"start": str(today - timedelta(days=45)), "end": str(today)},
    )
    assert len(wide.json()["decisions"]) == 4
    bad = client.get("/api/v1/audit/decisions/", {"start": str(today), "end": "2000-01-01"})
    assert bad.status_code == 400


def test_command_and_admin_page_export_csv(decisions) -> None:
    today = timezone.now().date().isoformat()
    out = io.StringIO()
    call_command("decision_log", "--from", today, "--to", today, "--course", "course-2", stdout=out)
    (row,) = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert row["submission_id"] == decisions["other-course"]
    assert json.loads(row["probabilities"]) == []
    assert (row["auto_score"], row["final_score"], row["human_reviewed"]) == ("3", "3", "False")

    web = Client()
    web.force_login(auditor())
    page = web.post(
        "/admin/scoring_plugin/auditlog/decision-log/",
        {"start": today, "end": today, "course": "", "format": "csv"},
    )
    assert page.status_code == 200
    assert page["Content-Type"].startswith("text/csv")
    assert len(list(csv.DictReader(io.StringIO(page.content.decode())))) == 3


def test_decision_log_needs_its_permission(decisions) -> None:
    staff = UserFactory(username="helpdesk", is_staff=True)
    client = APIClient()
    client.force_authenticate(staff)
    today = str(timezone.now().date())
    assert client.get("/api/v1/audit/decisions/", {"start": today, "end": today}).status_code == 403
    web = Client()
    web.force_login(staff)
    assert web.get("/admin/scoring_plugin/auditlog/decision-log/").status_code == 403
