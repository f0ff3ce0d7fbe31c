"""Outages with real worker processes: every answer still ends scored, exactly once.

* The broker restarts mid-burst: a private ``redis-server`` (append-only, fsync always) of this
  test, killed with SIGKILL and started again on the same port with the same data folder.
* The database goes away mid-burst: PostgreSQL behind a TCP proxy that the test cuts (every
  connection reset, and each new one as it arrives) and restores; with SQLite, another process
  holds the database's write lock.

Exactly once is read from the worker's log: it writes one line per score it commits.
"""

from __future__ import annotations

import shutil
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from django.db import connection

from scoring_plugin.models import Item, Submission
from tests.scoring.realworker import (
    CuttableProxy,
    PrivateRedis,
    broker,
    database_url,
    free_port,
    parse_metrics,
    post_batch,
    scoring_writes,
    tail,
    wait_for,
    wait_until_finished,
    worker_metrics,
    worker_process,
)
from workers import tasks

REDIS_SERVER = shutil.which("redis-server")


def assert_scored_exactly_once(ids: list[str], log: Path, *, db_cut: bool = False) -> None:
    """Every answer scored, and none written a second time (one log line per committed score).

    With the database connection cut, a commit whose reply was lost is not logged (its retry
    finds the row scored): there "never twice" reads "at most one line per id".
    """
    rows = list(Submission.objects.filter(pk__in=ids))
    assert len(rows) == len(ids)
    assert {r.status for r in rows} == {"scored"}, [r.error for r in rows if r.error]
    writes = scoring_writes(log)
    twice = {pk: writes[pk] for pk in ids if writes[pk] > 1}
    assert not twice, f"scored more than once: {twice}"
    if not db_cut:
        assert all(writes[pk] == 1 for pk in ids), "a score was committed without its log line"


def sweeper(settings) -> Callable[[], None]:  # type: ignore[no-untyped-def]
    """The periodic sweeper (celery beat runs it in production), called while the test polls."""
    settings.SCOREBRIDGE_REQUEUE_AFTER_SECONDS = 5
    settings.SCOREBRIDGE_MAX_SCORING_ATTEMPTS = 50
    return tasks.sweep_stuck_submissions


METRICS_TOKEN = "metrics-test-token"


@pytest.fixture(autouse=True)
def _metrics_token(settings):  # type: ignore[no-untyped-def]
    settings.SCOREBRIDGE_METRICS_TOKEN = METRICS_TOKEN


def scrape(client) -> dict[str, float]:  # type: ignore[no-untyped-def]
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {METRICS_TOKEN}")
    assert response.status_code == 200
    return parse_metrics(response.content.decode())


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(REDIS_SERVER is None, reason="redis-server is not installed")
def test_answers_survive_a_redis_broker_restart_mid_burst(
    trained_item: Item, api_client, client, tiny_backbone: Path, tmp_path: Path, settings
) -> None:  # type: ignore[no-untyped-def]
    assert REDIS_SERVER is not None
    data = tmp_path / "redis"
    data.mkdir()
    redis = PrivateRedis(REDIS_SERVER, data, tmp_path / "redis.log")
    log = tmp_path / "worker.log"
    port = free_port()
    sweep = sweeper(settings)
    redis.start()
    try:
        with (
            broker(redis.url),
            worker_process(
                redis.url, tiny_backbone, log, env={"SCORING_METRICS_PORT": str(port)}
            ) as worker,
        ):
            wait_until_finished(post_batch(api_client, trained_item.key, ["tcp"]), 90, log)
            before = post_batch(api_client, trained_item.key, [f"udp {i}" for i in range(80)])
            redis.kill()
            unscored_at_kill = Submission.objects.filter(pk__in=before, status="queued").count()

            # The web cannot reach the broker: answers wait as received, with the reason.
            during = post_batch(api_client, trained_item.key, [f"tcp {i}" for i in range(20)])
            waiting = Submission.objects.filter(pk__in=during)
            assert {r.status for r in waiting} == {"received"}
            assert all("broker unavailable" in r.error for r in waiting)
            metrics = scrape(client)
            assert metrics["scorebridge_broker_up"] == 0
            assert metrics['scorebridge_submissions{status="received"}'] == 20

            redis.start()  # same port, same append-only file
            wait_until_finished(before + during, 60, log, between_polls=sweep)
            assert worker.poll() is None, "the worker died with its broker"
            assert scrape(client)["scorebridge_broker_up"] == 1
            # Its micro-batching did not stall on the batch whose messages it could not ack.
            wait_for(
                lambda: worker_metrics(port)["scorebridge_worker_batches_in_flight"] == 0,
                30,
                "the worker's batches to return",
                log,
            )
    finally:
        redis.kill()
    assert unscored_at_kill > 0, "the broker stopped after the burst, not during it"
    assert_scored_exactly_once(before + during, log)
    # The worker reconnected to the restarted broker (Celery logs each connection).
    assert tail(log, 10**7).count("Connected to redis://") >= 2, tail(log)


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_answers_survive_a_postgresql_outage_mid_burst(
    trained_item: Item, api_client, tiny_backbone: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    if connection.vendor != "postgresql":
        pytest.skip("the test database is SQLite; run with DATABASE_URL=postgres://... (CI does)")
    db = connection.settings_dict
    proxy = CuttableProxy((db["HOST"] or "127.0.0.1", int(db["PORT"] or 5432)))
    url = "filesystem://"
    log = tmp_path / "worker.log"
    through_proxy = database_url("127.0.0.1", proxy.port)
    try:
        with broker(url), worker_process(url, tiny_backbone, log, database=through_proxy) as w:
            wait_until_finished(post_batch(api_client, trained_item.key, ["tcp"]), 90, log)
            before = post_batch(api_client, trained_item.key, [f"udp {i}" for i in range(40)])
            proxy.cut()
            # Only the worker's database path is cut; the web stores answers as usual.
            during = post_batch(api_client, trained_item.key, [f"tcp {i}" for i in range(20)])
            wait_for(
                lambda: "database unavailable" in tail(log, 10**7),
                30,
                "the worker to run into the outage",
                log,
            )
            time.sleep(2)  # the outage lasts a while: the worker keeps backing off
            assert not Submission.objects.filter(pk__in=during, status="scored").exists()
            proxy.restore()
            wait_until_finished(before + during, 60, log)
            assert w.poll() is None, "the worker died with its database"
    finally:
        proxy.close()
    assert_scored_exactly_once(before + during, log, db_cut=True)
    # Ridden out by the worker's own retries, nothing needed the sweeper: one claim per answer,
    # or two where the cut hit an answer after its claim had committed (it is claimed again;
    # still scored once, checked above). Never a third.
    attempts = set(
        Submission.objects.filter(pk__in=before + during).values_list("attempts", flat=True)
    )
    assert 1 in attempts and attempts <= {1, 2}, attempts


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_answers_survive_a_locked_sqlite_database_mid_burst(
    trained_item: Item, api_client, tiny_backbone: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    if connection.vendor != "sqlite":
        pytest.skip("the test database is PostgreSQL: its outage test is the proxy one")
    url = "filesystem://"
    log = tmp_path / "worker.log"
    with broker(url), worker_process(url, tiny_backbone, log) as w:
        wait_until_finished(post_batch(api_client, trained_item.key, ["tcp"]), 90, log)
        # Big enough that the worker is still at it when the lock is taken (it writes a
        # scored answer in about 1 ms of CPU since issue 19)
        burst = [
            pk
            for part in range(3)
            for pk in post_batch(
                api_client, trained_item.key, [f"udp {part} {i}" for i in range(100)]
            )
        ]
        # Another process (a backup, a long admin import) holds the write lock for a while.
        holder = sqlite3.connect(connection.settings_dict["NAME"], isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            scored_at_lock = Submission.objects.filter(pk__in=burst, status="scored").count()
            time.sleep(3)  # the lock is held this long; readers go on (WAL), writers wait
            assert (
                Submission.objects.filter(pk__in=burst, status="scored").count() == scored_at_lock
            )
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        wait_until_finished(burst, 60, log)
        assert w.poll() is None
    assert scored_at_lock < len(burst), "the lock came after the burst, not during it"
    assert_scored_exactly_once(burst, log)
