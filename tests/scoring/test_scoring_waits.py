"""Issue 12, finding 3: an answer never fails for lack of a worker or of an active model.

Real worker processes on the embedded broker: answers wait (``waiting_for`` says for what,
admin and ``/metrics`` show it) through any number of sweeps, and are scored once a worker
starts or a version is activated. A scoring attempt is counted when a worker takes an answer.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from scoring_plugin.models import Item, Submission
from tests.factories import ItemFactory
from tests.scoring.conftest import add_scored_answers, train_active_version
from tests.scoring.realworker import (
    broker,
    parse_metrics,
    post_batch,
    wait_for,
    wait_until_finished,
    worker_process,
)
from workers import tasks

SWEEPS = 12  # far more than SCOREBRIDGE_MAX_SCORING_ATTEMPTS (5)


METRICS_TOKEN = "waits-metrics-token"


@pytest.fixture(autouse=True)
def _metrics_token(settings):  # type: ignore[no-untyped-def]
    settings.SCOREBRIDGE_METRICS_TOKEN = METRICS_TOKEN


def waiting_metric(client, reason: str) -> float:  # type: ignore[no-untyped-def]
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {METRICS_TOKEN}")
    assert response.status_code == 200
    return parse_metrics(response.content.decode())[
        f'scorebridge_submissions_waiting{{reason="{reason}"}}'
    ]


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_answers_wait_through_a_worker_outage_and_a_started_worker_scores_them(
    trained_item: Item, api_client, client, tiny_backbone: Path, tmp_path: Path, settings
) -> None:  # type: ignore[no-untyped-def]
    settings.SCOREBRIDGE_REQUEUE_AFTER_SECONDS = 0  # every sweep re-sends every waiting answer
    assert settings.SCOREBRIDGE_MAX_SCORING_ATTEMPTS < SWEEPS
    url = "filesystem://"
    log = tmp_path / "worker.log"
    with broker(url):
        # No worker is alive: the answers are queued and the sweeper re-sends them many times.
        ids = post_batch(api_client, trained_item.key, ["tcp udp", "udp", "no data"])
        for _ in range(SWEEPS):
            assert tasks.sweep_stuck_submissions() == len(ids)
        rows = list(Submission.objects.filter(pk__in=ids))
        assert {r.status for r in rows} == {"queued"}, [r.error for r in rows]
        assert {r.waiting_for for r in rows} == {"worker"}
        assert {r.error for r in rows} == {"waiting for a scoring worker"}
        assert {r.attempts for r in rows} == {0}, "re-sending counted as a scoring attempt"
        assert waiting_metric(client, "worker") == len(ids)

        # A worker started afterwards scores them (each taken once, whatever was re-sent).
        with worker_process(url, tiny_backbone, log):
            rows = wait_until_finished(ids, 120, log)
    assert {r.status for r in rows} == {"scored"}, [r.error for r in rows]
    assert {r.waiting_for for r in rows} == {""}
    assert {r.attempts for r in rows} == {1}
    assert waiting_metric(client, "worker") == 0


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_an_answer_to_an_item_without_model_waits_and_is_scored_once_one_is_activated(
    scoring_settings, api_client, client, tiny_backbone: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    scoring_settings.SCOREBRIDGE_REQUEUE_AFTER_SECONDS = 0
    item = ItemFactory(key="not-trained-yet")
    add_scored_answers(item)
    url = "filesystem://"
    log = tmp_path / "worker.log"
    with broker(url), worker_process(url, tiny_backbone, log):
        ids = post_batch(api_client, item.key, ["tcp udp", "udp"])

        def looked_at() -> bool:  # the worker took the messages and decided
            return not Submission.objects.filter(pk__in=ids, status="queued").exists()

        wait_for(looked_at, 120, "the worker to take the answers", log)
        for _ in range(SWEEPS):
            tasks.sweep_stuck_submissions()  # nothing to send while the item has no model
        rows = list(Submission.objects.filter(pk__in=ids))
        assert {r.status for r in rows} == {"received"}, [r.error for r in rows]
        assert {r.waiting_for for r in rows} == {"model"}
        assert all("waiting for an active model" in r.error for r in rows)
        assert {r.attempts for r in rows} == {0}
        assert waiting_metric(client, "model") == len(ids)

        version = train_active_version(item)  # activating it sends the waiting answers
        rows = wait_until_finished(ids, 120, log)
    assert {r.status for r in rows} == {"scored"}, [r.error for r in rows]
    assert {r.model_version_id for r in rows} == {version.pk}
    assert waiting_metric(client, "model") == 0
