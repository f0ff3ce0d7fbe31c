"""The REST API additions: batch submit, self-hosted docs, per-client rate limits."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from scoring_plugin.models import Submission
from scoring_plugin.tokens import ApiToken
from tests.factories import ItemFactory, UserFactory

BATCH_URL = "/api/v1/submissions/batch/"


@pytest.fixture
def api(db) -> APIClient:  # type: ignore[no-untyped-def]
    client = APIClient()
    _, key = ApiToken.create_for(UserFactory(username="integration"))
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def test_batch_stores_all_answers_and_returns_them(api, django_capture_on_commit_callbacks) -> None:
    ItemFactory(key="a")
    ItemFactory(key="b")
    answers = [
        {"item": "a", "text": "tcp", "client_reference": "x1"},
        {"item": "b", "text": "udp"},
    ]
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = api.post(BATCH_URL, {"answers": answers}, format="json")
    assert response.status_code == 202, response.content
    body = response.json()["submissions"]
    assert [s["item"] for s in body] == ["a", "b"] and body[0]["client_reference"] == "x1"
    assert Submission.objects.count() == 2
    assert len(callbacks) == 2  # each answer is enqueued after the commit


def test_batch_with_one_bad_answer_stores_nothing_and_names_it(api) -> None:
    ItemFactory(key="a")
    answers = [
        {"item": "a", "text": "fine"},
        {"item": "a", "text": "   "},
        {"item": "nope", "text": "x"},
    ]
    response = api.post(BATCH_URL, {"answers": answers}, format="json")
    assert response.status_code == 400
    errors = response.json()["answers"]
    assert set(errors) == {"1", "2"}
    assert "empty" in errors["1"]["text"][0] and "Unknown item" in errors["2"]["item"][0]
    assert Submission.objects.count() == 0


def test_batch_accepts_at_most_100_answers(api) -> None:
    ItemFactory(key="a")
    answers = [{"item": "a", "text": "tcp"}] * 101
    response = api.post(BATCH_URL, {"answers": answers}, format="json")
    assert response.status_code == 400 and "at most 100" in str(response.json())
    assert Submission.objects.count() == 0
    assert api.post(BATCH_URL, {"answers": []}, format="json").status_code == 400


def test_batch_needs_authentication(db) -> None:
    response = APIClient().post(BATCH_URL, {"answers": []}, format="json")
    assert response.status_code == 401


def test_api_docs_page_uses_no_cdn(client, db) -> None:
    response = client.get("/api/docs/")
    html = response.content.decode()
    assert response.status_code == 200
    assert "swagger-ui" in html and "/static/drf_spectacular_sidecar/" in html
    assert "cdn." not in html and "unpkg" not in html and "jsdelivr" not in html
    schema = client.get("/api/schema/")
    assert schema.status_code == 200 and b"/api/v1/submissions/batch/" in schema.content


def test_each_client_has_its_own_rate_limit(settings, db) -> None:
    from rest_framework.settings import api_settings
    from rest_framework.throttling import SimpleRateThrottle

    rates = {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "batch": "2/minute"}
    original = SimpleRateThrottle.THROTTLE_RATES
    SimpleRateThrottle.THROTTLE_RATES = rates
    try:
        ItemFactory(key="a")
        clients = []
        for name in ("one", "two"):
            c = APIClient()
            _, key = ApiToken.create_for(UserFactory(username=name))
            c.credentials(HTTP_AUTHORIZATION=f"Token {key}")
            clients.append(c)
        body = {"answers": [{"item": "a", "text": "tcp"}]}
        codes = [clients[0].post(BATCH_URL, body, format="json").status_code for _ in range(3)]
        assert codes == [202, 202, 429]
        assert clients[1].post(BATCH_URL, body, format="json").status_code == 202
    finally:
        SimpleRateThrottle.THROTTLE_RATES = original
    assert api_settings.DEFAULT_THROTTLE_CLASSES
