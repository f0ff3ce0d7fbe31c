"""Issue 15, item 3: one reviewed score on the submission, given by one function, and the LMS
gradebook follows wherever it was given (LTI review page, Django admin, API)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from rest_framework.test import APIClient

from lti.models import LtiSubmission
from scoring_plugin.models import AuditLog, Submission
from scoring_plugin.tokens import ApiToken
from tests.factories import UserFactory
from tests.lti.lti_platform import INSTRUCTOR
from tests.lti.lti_scoring import finish
from tests.lti.test_lti_flow import submit, token_of

pytestmark = pytest.mark.django_db


@pytest.fixture
def on_commit(django_capture_on_commit_callbacks):  # type: ignore[no-untyped-def]
    """Runs what a request leaves for after its commit (the signal to the gradebook)."""
    return django_capture_on_commit_callbacks


def held_for_review(platform, browser, captured) -> str:  # type: ignore[no-untyped-def]
    """A student's answer scored 1 with low confidence: the gradebook holds PendingManual."""
    url = browser.open(platform)
    submission_id = submit(browser, url).json()["id"]
    finish(submission_id, score=1, confidence=0.3)
    assert captured.run_all() == ["posted"]
    (pending,) = platform.scores_for("student-1")
    assert pending["gradingProgress"] == "PendingManual" and "scoreGiven" not in pending
    return submission_id


def staff_client(client, *, permissions: bool = True):  # type: ignore[no-untyped-def]
    user = UserFactory(username="teacher", is_staff=True, is_superuser=permissions)
    client.force_login(user)
    return client


def api_client_for(user) -> APIClient:  # type: ignore[no-untyped-def]
    client = APIClient()
    _, key = ApiToken.create_for(user, "tests")
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def test_an_override_on_the_lti_review_page_reaches_the_gradebook(
    platform, item, browser, make_browser, captured, on_commit
) -> None:
    submission_id = held_for_review(platform, browser, captured)
    teacher = make_browser()
    token = token_of(teacher.open(platform, sub="teacher-1", roles=[INSTRUCTOR]))
    with on_commit(execute=True):
        response = teacher.post(
            f"/lti/s/{token}/review/{submission_id}/", {"score": "3", "comment": "All there."}
        )
    assert response.status_code == 302
    assert captured.run_all() == ["posted"]
    graded = platform.scores_for("student-1")[-1]
    assert (graded["scoreGiven"], graded["gradingProgress"]) == (3.0, "FullyGraded")
    assert graded["comment"] == "All there."
    submission = Submission.objects.get(pk=submission_id)
    assert (submission.reviewed_score, submission.reviewed_via) == (3, "lti")
    assert submission.reviewed_by == "lti:Name of teacher-1"


def test_an_override_in_django_admin_reaches_the_gradebook(
    platform, item, browser, captured, client, on_commit
) -> None:
    submission_id = held_for_review(platform, browser, captured)
    admin = staff_client(client)
    with on_commit(execute=True):
        response = admin.post(
            f"/admin/scoring_plugin/submission/{submission_id}/change/",
            {"reviewed_score": "2", "review_comment": "Half of it."},
        )
    assert response.status_code == 302, response.content.decode()[-2000:]
    assert captured.run_all() == ["posted"]
    graded = platform.scores_for("student-1")[-1]
    assert (graded["scoreGiven"], graded["comment"]) == (2.0, "Half of it.")
    entry = AuditLog.objects.get(action="override", submission_id=submission_id)
    assert entry.actor == "admin:teacher" and entry.details["via"] == "admin"


def test_removing_a_review_in_admin_sends_the_automatic_outcome_again(
    platform, item, browser, captured, client, on_commit
) -> None:
    submission_id = held_for_review(platform, browser, captured)
    admin = staff_client(client)
    url = f"/admin/scoring_plugin/submission/{submission_id}/change/"
    with on_commit(execute=True):
        admin.post(url, {"reviewed_score": "2", "review_comment": ""})
    captured.run_all()
    with on_commit(execute=True):
        admin.post(url, {"reviewed_score": "", "review_comment": ""})
    assert captured.run_all() == ["posted"]
    assert platform.scores_for("student-1")[-1]["gradingProgress"] == "PendingManual"
    assert AuditLog.objects.filter(action="override", submission_id=submission_id).count() == 2


def test_an_override_through_the_api_reaches_the_gradebook_and_shows_in_the_api(
    platform, item, browser, captured, on_commit
) -> None:
    submission_id = held_for_review(platform, browser, captured)
    reviewer = UserFactory(username="api-reviewer", is_staff=True, is_superuser=True)
    api = api_client_for(reviewer)
    with on_commit(execute=True):
        response = api.post(
            f"/api/v1/submissions/{submission_id}/review/",
            {"score": 3, "comment": "Both named."},
            format="json",
        )
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["reviewed_score"], body["final_score"], body["score"]) == (3, 3, 1)
    assert body["reviewed_via"] == "api" and body["reviewed_by"] == "api:api-reviewer"
    assert captured.run_all() == ["posted"]
    assert platform.scores_for("student-1")[-1]["scoreGiven"] == 3.0
    shown = api.get(f"/api/v1/submissions/{submission_id}/").json()
    assert (shown["reviewed_score"], shown["review_comment"]) == (3, "Both named.")


def test_the_api_refuses_a_review_without_permission_or_out_of_range(
    platform, item, browser, captured, on_commit
) -> None:
    submission_id = held_for_review(platform, browser, captured)
    student_api = api_client_for(UserFactory(username="integration"))
    response = student_api.post(
        f"/api/v1/submissions/{submission_id}/review/", {"score": 3}, format="json"
    )
    assert response.status_code == 403
    api = api_client_for(UserFactory(username="boss", is_staff=True, is_superuser=True))
    with on_commit(execute=True):
        response = api.post(
            f"/api/v1/submissions/{submission_id}/review/", {"score": 4}, format="json"
        )
    assert response.status_code == 400
    assert Submission.objects.get(pk=submission_id).reviewed_score is None
    assert captured.calls == []


@pytest.mark.django_db(transaction=True)
def test_the_lti_copy_of_an_override_moves_to_the_submission() -> None:
    before = [("lti", "0003_gradebook_policy"), ("scoring_plugin", "0007_trust")]
    after = [("lti", "0004_one_override")]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    old = executor.loader.project_state(before).apps
    Item = old.get_model("scoring_plugin", "Item")
    Submission_ = old.get_model("scoring_plugin", "Submission")
    Registration = old.get_model("lti_tool", "LtiRegistration")
    Deployment = old.get_model("lti_tool", "LtiDeployment")
    Context = old.get_model("lti_tool", "LtiContext")
    Link = old.get_model("lti_tool", "LtiResourceLink")
    User = old.get_model("lti_tool", "LtiUser")
    LtiSub = old.get_model("lti", "LtiSubmission")
    item = Item.objects.create(key="q1", prompt="P", max_score=3)
    registration = Registration.objects.create(
        name="m", issuer="https://m.example", client_id="c", auth_url="https://m.example/a",
        token_url="https://m.example/t", keyset_url="https://m.example/k",
    )  # fmt: skip
    context = Context.objects.create(
        deployment=Deployment.objects.create(registration=registration, deployment_id="d"),
        id_on_platform="ctx",
    )
    link = Link.objects.create(context=context, id_on_platform="l")
    teacher = User.objects.create(registration=registration, sub="t-1", name="Ms Smith")
    student = User.objects.create(registration=registration, sub="s-1")
    reviewed = Submission_.objects.create(item=item, text="a", status="scored", score=1)
    untouched = Submission_.objects.create(item=item, text="b", status="scored", score=2)
    for submission, score in ((reviewed, 3), (untouched, None)):
        LtiSub.objects.create(
            submission=submission, context=context, resource_link=link, lti_user=student,
            override_score=score, override_comment="Good" if score else "",
            overridden_by=teacher if score else None,
        )  # fmt: skip
    try:
        executor = MigrationExecutor(connection)
        executor.migrate(after)
        new = executor.loader.project_state(after).apps
        rows = {str(s.pk): s for s in new.get_model("scoring_plugin", "Submission").objects.all()}
        lti_fields = {f.name for f in new.get_model("lti", "LtiSubmission")._meta.get_fields()}
    finally:
        MigrationExecutor(connection).migrate(executor.loader.graph.leaf_nodes())
    moved = rows[str(reviewed.pk)]
    assert (moved.reviewed_score, moved.review_comment) == (3, "Good")
    assert (moved.reviewed_by, moved.reviewed_via) == ("lti:Ms Smith", "lti")
    assert rows[str(untouched.pk)].reviewed_score is None
    assert not {"override_score", "override_comment", "overridden_by"} & lti_fields
    # The passback reads the one reviewed score.
    assert not hasattr(LtiSubmission, "override_score")


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_an_api_override_reaches_the_gradebook_through_a_real_lms_worker(
    platform, item, browser, tiny_backbone, tmp_path
) -> None:
    """No captured tasks: the passback messages go through a broker to a ``celery worker``
    process, which sends the grades to the test platform over HTTP."""
    from tests.scoring.realworker import broker, wait_for, worker_process

    log = tmp_path / "worker.log"
    url = "filesystem://"
    with broker(url):
        submission_id = submit(browser, browser.open(platform)).json()["id"]
        finish(submission_id, score=1, confidence=0.3)  # held for review: PendingManual
        with worker_process(url, tiny_backbone, log):
            wait_for(lambda: platform.scores_for("student-1"), 120, "the PendingManual score", log)
            reviewer = UserFactory(username="api-reviewer", is_staff=True, is_superuser=True)
            response = api_client_for(reviewer).post(
                f"/api/v1/submissions/{submission_id}/review/", {"score": 3}, format="json"
            )
            assert response.status_code == 200, response.content
            wait_for(
                lambda: platform.scores_for("student-1")[-1].get("scoreGiven") == 3.0,
                120,
                "the reviewed score in the gradebook",
                log,
            )
    first, last = platform.scores_for("student-1")[0], platform.scores_for("student-1")[-1]
    assert first["gradingProgress"] == "PendingManual"
    assert last["gradingProgress"] == "FullyGraded"
    link = LtiSubmission.objects.get(pk=submission_id)
    assert link.passback_status == LtiSubmission.Passback.POSTED
    assert link.posted_grade["score_given"] == 3.0
