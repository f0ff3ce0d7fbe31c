"""The JSON API: submit an answer, read its score; bad input gets a clear error."""

from __future__ import annotations

import pytest
from kombu.exceptions import OperationalError

from queueing import dispatch
from scoring_plugin.models import Submission
from tests.factories import ItemFactory, SubmissionFactory, UserFactory


@pytest.fixture()
def sent(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Record what would go to the broker instead of sending it."""
    calls: list[list[str]] = []
    monkeypatch.setattr(dispatch, "send_score", lambda submission_id: calls.append([submission_id]))
    return calls


@pytest.mark.django_db(transaction=True)
def test_submit_stores_then_enqueues_after_commit(api_client, sent) -> None:  # type: ignore[no-untyped-def]
    ItemFactory(key="q1")
    response = api_client.post("/api/v1/items/q1/submissions/", {"text": "tcp"}, format="json")
    assert response.status_code == 202
    submission = Submission.objects.get()
    assert response["Location"].endswith(f"/api/v1/submissions/{submission.pk}/")
    assert sent == [[str(submission.pk)]]
    assert submission.status == Submission.Status.QUEUED
    assert submission.attempts == 0  # counted when a worker takes it, not when it is sent


@pytest.mark.django_db
def test_submit_needs_a_token(client) -> None:  # type: ignore[no-untyped-def]
    ItemFactory(key="q1")
    response = client.post("/api/v1/items/q1/submissions/", {"text": "tcp"})
    assert response.status_code in (401, 403)
    assert Submission.objects.count() == 0


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("text", "message"),
    [("   \n", "empty"), ("x" * 10_001, "longer than 10000"), ("a\x00b", "Null characters")],
)
def test_bad_answers_are_refused_clearly(api_client, sent, text: str, message: str) -> None:  # type: ignore[no-untyped-def]
    ItemFactory(key="q1")
    response = api_client.post("/api/v1/items/q1/submissions/", {"text": text}, format="json")
    assert response.status_code == 400
    assert message in " ".join(response.json()["text"])
    assert Submission.objects.count() == 0 and sent == []


@pytest.mark.django_db
def test_unknown_item_is_404(api_client, sent) -> None:  # type: ignore[no-untyped-def]
    response = api_client.post("/api/v1/items/nope/submissions/", {"text": "x"}, format="json")
    assert response.status_code == 404
    assert "Unknown item 'nope'" in response.json()["detail"]


@pytest.mark.django_db(transaction=True)
def test_broker_down_keeps_the_answer_for_the_sweeper(api_client, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    def refuse(*args: object, **kwargs: object) -> None:
        raise OperationalError("Connection refused")

    monkeypatch.setattr(dispatch, "send_score", refuse)
    ItemFactory(key="q1")
    response = api_client.post("/api/v1/items/q1/submissions/", {"text": "udp"}, format="json")
    assert response.status_code == 202
    submission = Submission.objects.get()
    assert submission.status == Submission.Status.RECEIVED
    assert "broker unavailable" in submission.error


@pytest.mark.django_db
def test_a_client_reads_only_its_own_submissions(api_client, api_user) -> None:  # type: ignore[no-untyped-def]
    mine = SubmissionFactory(submitted_by=api_user)
    other = SubmissionFactory(submitted_by=UserFactory(username="someone-else"))
    assert api_client.get(f"/api/v1/submissions/{mine.pk}/").status_code == 200
    assert api_client.get(f"/api/v1/submissions/{other.pk}/").status_code == 404


@pytest.mark.django_db
def test_items_are_listed(api_client) -> None:  # type: ignore[no-untyped-def]
    ItemFactory(key="q1")
    body = api_client.get("/api/v1/items/").json()
    assert [item["key"] for item in body] == ["q1"]
    assert body[0]["active_version"] is None


@pytest.mark.django_db
def test_health_and_schema(client) -> None:  # type: ignore[no-untyped-def]
    assert client.get("/health/").json() == {"status": "ok", "database": "ok"}
    assert b"/api/v1/items/{key}/submissions/" in client.get("/api/schema/").content


@pytest.mark.django_db
def test_metrics_report_queue_depth_and_latency(client, settings) -> None:  # type: ignore[no-untyped-def]
    from datetime import timedelta

    from django.utils import timezone

    SubmissionFactory(status="queued")
    SubmissionFactory(status="received")
    done = SubmissionFactory(status="scored", score=1)
    Submission.objects.filter(pk=done.pk).update(
        scored_at=done.created_at + timedelta(milliseconds=250)
    )
    Submission.objects.filter(status="received").update(
        created_at=timezone.now() - timedelta(seconds=90)
    )
    settings.SCOREBRIDGE_METRICS_PUBLIC = True
    text = client.get("/metrics").content.decode()
    assert "scorebridge_queue_depth 2.0" in text
    assert 'scorebridge_submissions{status="scored"} 1.0' in text
    assert 'scorebridge_scoring_latency_quantile_seconds{quantile="0.5"} 0.25' in text
    oldest = [line for line in text.splitlines() if line.startswith("scorebridge_oldest_waiting")]
    assert 89 < float(oldest[0].split()[1]) < 200
    settings.SCOREBRIDGE_METRICS_TOKEN = "s3cret"
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret").status_code == 200


# --- issue 12, finding 5 ---------------------------------------------------------------------


@pytest.mark.django_db
def test_metrics_are_closed_unless_a_token_or_an_explicit_setting(client, settings) -> None:  # type: ignore[no-untyped-def]
    assert settings.SCOREBRIDGE_METRICS_TOKEN == "" and not settings.SCOREBRIDGE_METRICS_PUBLIC
    response = client.get("/metrics")
    assert response.status_code == 403
    assert b"scorebridge_" not in response.content
    settings.SCOREBRIDGE_METRICS_TOKEN = "s3cret"
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret").status_code == 200
    settings.SCOREBRIDGE_METRICS_TOKEN = ""
    settings.SCOREBRIDGE_METRICS_PUBLIC = True
    assert client.get("/metrics").status_code == 200


@pytest.mark.parametrize("path", ["/api/v1/submissions/batch/", "/api/v1/items/x/submissions/"])
@pytest.mark.parametrize("depth", [40, 100_000])
def test_deeply_nested_json_is_a_bad_request(api_client, sent, path: str, depth: int) -> None:  # type: ignore[no-untyped-def]
    ItemFactory(key="x")
    body = '{"answers": ' + "[" * depth + "]" * depth + "}"
    response = api_client.post(path, body, content_type="application/json")
    assert response.status_code == 400, response.content[:300]
    assert "nested" in response.json()["detail"]
    assert not sent


@pytest.mark.django_db
def test_the_submission_body_is_what_the_serializer_gives(api_client, api_user) -> None:  # type: ignore[no-untyped-def]
    from django.utils import timezone

    from scoring_plugin.api import SubmissionSerializer, submission_body

    queued = SubmissionFactory(submitted_by=api_user)
    scored = SubmissionFactory(
        submitted_by=api_user,
        status=Submission.Status.SCORED,
        score=2,
        criterion_scores={"names the force": 1, "explains density": 1},
        probabilities=[0.1, 0.2, 0.7],
        confidence=0.7,
        scored_at=timezone.now(),
        reviewed_score=1,
        review_comment="half of it",
        reviewed_by="teacher",
        reviewed_at=timezone.now(),
    )
    for submission in (queued, scored):
        body = submission_body(submission)
        assert body == SubmissionSerializer(submission).data
        assert api_client.get(f"/api/v1/submissions/{submission.pk}/").json() == body
    assert submission_body(scored)["final_score"] == 1
    assert submission_body(scored)["criterion_scores"] == {
        "names the force": 1,
        "explains density": 1,
    }
