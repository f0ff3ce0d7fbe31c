"""A real Celery worker process on a real broker scores answers submitted over the API.

The embedded filesystem broker always runs; Redis and RabbitMQ run when REDIS_URL / AMQP_URL
name them. The database is the test database (SQLite by default, PostgreSQL with DATABASE_URL).
"""

from __future__ import annotations

import os
import signal
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone

from scoring_plugin.models import Item, Submission
from tests.factories import SubmissionFactory
from tests.scoring.realworker import broker, wait_until_finished, worker_process
from workers import tasks

BROKERS = [pytest.param("filesystem://", id="filesystem")]
for _variable, _name in (("REDIS_URL", "redis"), ("AMQP_URL", "rabbitmq")):
    if os.environ.get(_variable):
        BROKERS.append(pytest.param(os.environ[_variable], id=_name))


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("broker_url", BROKERS)
def test_worker_scores_api_submissions_and_swept_ones_exactly_once(
    broker_url: str, trained_item: Item, api_client, tiny_backbone: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    answers = ["tcp udp", "the udp", "no data", "tcp and udp layer", "network"]
    with broker(broker_url), worker_process(broker_url, tiny_backbone, tmp_path / "w.log") as w:
        ids = []
        for text in answers:
            response = api_client.post(
                f"/api/v1/items/{trained_item.key}/submissions/", {"text": text}, format="json"
            )
            assert response.status_code == 202
            ids.append(response.json()["id"])
        # An answer whose message was lost (a crash of the filesystem broker, say).
        lost = SubmissionFactory(item=trained_item, text="tcp", status="queued", attempts=1)
        stale = timezone.now() - timedelta(seconds=settings.SCOREBRIDGE_REQUEUE_AFTER_SECONDS + 5)
        Submission.objects.filter(pk=lost.pk).update(created_at=stale, queued_at=stale)
        assert tasks.sweep_stuck_submissions() == 1
        ids.append(str(lost.pk))

        rows = wait_until_finished(ids, timeout=120, log=tmp_path / "w.log")
        first_scores = {str(r.pk): (r.score, r.scored_at) for r in rows}

        # Duplicate deliveries of finished answers, then one new answer behind them.
        for submission_id in ids[:3]:
            tasks.score_submission.delay(submission_id)
        response = api_client.post(
            f"/api/v1/items/{trained_item.key}/submissions/", {"text": "udp"}, format="json"
        )
        wait_until_finished([response.json()["id"]], timeout=60, log=tmp_path / "w.log")
        assert w.poll() is None, "the worker died"

    again = {str(r.pk): (r.score, r.scored_at) for r in Submission.objects.filter(pk__in=ids)}
    assert again == first_scores, "a duplicate delivery changed a score"

    active = trained_item.active_version
    for row in rows:
        assert row.status == "scored", row.error
        assert row.score in (0, 1, 2)
        assert row.model_version_id == active.pk
        assert row.scored_at >= row.created_at
    # One attempt each: a worker took every answer once (the lost one's re-send is no attempt).
    assert {r.attempts for r in rows if r.pk != lost.pk} == {1}
    assert Submission.objects.get(pk=lost.pk).attempts == 2  # it had one before it was lost


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_answers_survive_a_worker_killed_mid_batch(
    trained_item: Item, api_client, tiny_backbone: Path, tmp_path: Path, settings
) -> None:  # type: ignore[no-untyped-def]
    url = "filesystem://"
    ids: list[str] = []
    with broker(url):
        with worker_process(url, tiny_backbone, tmp_path / "killed.log") as doomed:
            wait_until_finished(
                [
                    api_client.post(
                        f"/api/v1/items/{trained_item.key}/submissions/",
                        {"text": "tcp"},
                        format="json",
                    ).json()["id"]
                ],
                timeout=120,
                log=tmp_path / "killed.log",
            )
            for i in range(40):
                response = api_client.post(
                    f"/api/v1/items/{trained_item.key}/submissions/",
                    {"text": f"udp data {i}"},
                    format="json",
                )
                ids.append(response.json()["id"])
            # SIGKILL the whole worker, parent and pool process, while it works on the burst.
            os.killpg(doomed.pid, signal.SIGKILL)
            doomed.wait()
        unfinished = Submission.objects.filter(pk__in=ids).exclude(status="scored").count()

        # The sweeper finds what the dead worker held and a fresh worker scores it.
        settings.SCOREBRIDGE_REQUEUE_AFTER_SECONDS = 1
        time.sleep(1.5)
        with worker_process(url, tiny_backbone, tmp_path / "fresh.log"):
            tasks.sweep_stuck_submissions()
            rows = wait_until_finished(ids, timeout=120, log=tmp_path / "fresh.log")
    assert all(r.status == "scored" for r in rows), [r.error for r in rows]
    assert len({r.pk for r in rows}) == 40
    # Anything requeued was enqueued again, never scored twice (one score per row, one time).
    requeued = [r for r in rows if r.attempts > 1]
    assert len(requeued) <= unfinished
