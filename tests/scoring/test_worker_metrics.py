"""Prometheus metrics, scraped and parsed: the web's /metrics (database, broker, worker ping)
and a real worker's own exporter (answers, submit-to-scored latency histogram, batches)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.db.models import F

from queueing import dispatch, monitoring
from queueing.app import app
from scoring_plugin.models import Item, Submission
from scoring_plugin.services import enqueue_submission, submit_answer
from tests.factories import SubmissionFactory
from tests.scoring.realworker import (
    broker,
    free_port,
    parse_metrics,
    post_batch,
    wait_for,
    wait_until_finished,
    worker_metrics,
    worker_process,
)

BROKERS = [pytest.param("filesystem://", id="filesystem")]
for _variable, _name in (("REDIS_URL", "redis"), ("AMQP_URL", "rabbitmq")):
    if os.environ.get(_variable):
        BROKERS.append(pytest.param(os.environ[_variable], id=_name))


METRICS_TOKEN = "metrics-test-token"


@pytest.fixture(autouse=True)
def _metrics_token(settings):  # type: ignore[no-untyped-def]
    settings.SCOREBRIDGE_METRICS_TOKEN = METRICS_TOKEN


def web_metrics(client) -> dict[str, float]:  # type: ignore[no-untyped-def]
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {METRICS_TOKEN}")
    assert response.status_code == 200
    return parse_metrics(response.content.decode())


def exporter_answers(port: int) -> bool:
    try:
        worker_metrics(port)
    except OSError:
        return False
    return True


@contextmanager
def unreachable_broker() -> Iterator[None]:
    """This process's Celery app pointed at a Redis port nobody listens on."""
    previous = (app.conf.broker_url, app.conf.broker_transport, app.conf.broker_transport_options)
    app.conf.broker_url = f"redis://127.0.0.1:{free_port()}/0"
    app.conf.broker_transport, app.conf.broker_transport_options = None, {}
    app.close()
    app.amqp._producer_pool = None
    try:
        yield
    finally:
        app.conf.broker_url, app.conf.broker_transport, app.conf.broker_transport_options = previous
        app.close()
        app.amqp._producer_pool = None
        dispatch.forget_broker_failures()


@pytest.mark.django_db
def test_the_web_does_not_wait_on_a_broker_that_is_away() -> None:
    answer = SubmissionFactory()
    with unreachable_broker():
        assert enqueue_submission(str(answer.pk)) is False  # one attempt, refused
        # Moments later the broker is not even tried: the answer waits for the sweeper.
        with pytest.raises(dispatch.BrokerUnavailable):
            dispatch.send_score(str(answer.pk))
    answer.refresh_from_db()
    assert answer.status == "received"
    assert "broker unavailable" in answer.error
    with broker("filesystem://"):
        assert enqueue_submission(str(answer.pk)) is True
        assert monitoring.probe().queue_sizes["scoring"] == 1
        app.control.purge()


@pytest.mark.django_db
def test_metrics_say_the_broker_is_down_instead_of_failing(client) -> None:  # type: ignore[no-untyped-def]
    with unreachable_broker():
        metrics = web_metrics(client)
    assert metrics["scorebridge_broker_up"] == 0
    assert metrics["scorebridge_workers_responding"] == 0
    assert not [name for name in metrics if name.startswith("scorebridge_broker_queue_messages")]
    assert metrics["scorebridge_broker_probe_seconds"] < 5
    assert "scorebridge_queue_depth" in metrics  # the database's part is still there


@pytest.mark.integration
@pytest.mark.parametrize("broker_url", BROKERS)
def test_queue_depths_are_read_from_the_broker(broker_url: str) -> None:
    with broker(broker_url):
        assert monitoring.probe().queue_sizes == {"scoring": 0, "training": 0, "lms": 0}
        for number in range(3):
            dispatch.send_score(f"not-a-submission-{number}")
        assert monitoring.probe().queue_sizes == {"scoring": 3, "training": 0, "lms": 0}
        app.control.purge()


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_metrics_follow_answers_through_broker_and_worker(
    trained_item: Item, api_client, client, tiny_backbone: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    url = "filesystem://"
    log = tmp_path / "worker.log"
    port = free_port()
    with broker(url):
        # No worker yet: the answers wait in the broker's scoring queue.
        waiting = [str(submit_answer(trained_item, f"tcp {i}").pk) for i in range(3)]
        before = web_metrics(client)
        assert before["scorebridge_broker_up"] == 1
        assert before['scorebridge_broker_queue_messages{queue="scoring"}'] == 3
        assert before['scorebridge_broker_queue_messages{queue="training"}'] == 0
        assert before["scorebridge_workers_responding"] == 0
        assert before["scorebridge_queue_depth"] == 3

        env = {"SCORING_METRICS_PORT": str(port)}
        with worker_process(url, tiny_backbone, log, env=env):
            wait_for(lambda: exporter_answers(port), 90, "the worker's metrics exporter", log)
            wait_until_finished(waiting, 60, log)
            burst = post_batch(api_client, trained_item.key, [f"udp {i}" for i in range(12)])
            wait_until_finished(burst, 60, log)
            ids = waiting + burst
            # Its counters are updated when the batch returns to the main process, just after
            # the rows are committed.
            wait_for(
                lambda: (
                    worker_metrics(port)['scorebridge_worker_answers_total{outcome="scored"}']
                    == len(ids)
                ),
                30,
                "the worker to count its answers",
                log,
            )
            own = worker_metrics(port)
            # A ping has 0.5 s to come back; on a busy machine one may miss it.
            wait_for(
                lambda: web_metrics(client)["scorebridge_workers_responding"] == 1,
                30,
                "the worker to answer a ping",
                log,
            )
            during = web_metrics(client)

    assert own["scorebridge_worker_up"] == 1
    assert own['scorebridge_worker_answers_total{outcome="failed"}'] == 0
    assert own["scorebridge_worker_scoring_latency_seconds_count"] == len(ids)
    stored = sum(
        (row.latency).total_seconds()
        for row in Submission.objects.filter(pk__in=ids).annotate(
            latency=F("scored_at") - F("created_at")
        )
    )
    # The histogram observed each answer's submit-to-scored time, as stored.
    assert own["scorebridge_worker_scoring_latency_seconds_sum"] == pytest.approx(stored, abs=1e-3)
    assert own['scorebridge_worker_scoring_latency_seconds_bucket{le="+Inf"}'] == len(ids)
    assert own["scorebridge_worker_batch_size_sum"] == len(ids)
    assert own["scorebridge_worker_last_batch_timestamp_seconds"] > 0
    assert own["scorebridge_worker_buffered_answers"] == 0

    assert during['scorebridge_broker_queue_messages{queue="scoring"}'] == 0
    assert during["scorebridge_queue_depth"] == 0
    assert during['scorebridge_submissions{status="scored"}'] == len(ids)
    assert during["scorebridge_scoring_latency_seconds_count"] == len(ids)
