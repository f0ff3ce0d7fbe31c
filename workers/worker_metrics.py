"""Prometheus metrics of one worker, served by the worker itself on ``SCORING_METRICS_PORT``.

Answers are scored in the pool processes; each batch returns a plain summary to the worker's
main process (see ``workers.batching``), which counts it here and serves these metrics over
HTTP. No shared files between processes: what the main process saw is what it serves. A worker
that does not answer the scrape is down (Prometheus's own ``up`` metric for the target).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping

from celery.signals import worker_ready, worker_shutdown
from django.conf import settings
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from queueing.app import app
from workers.batching import AdaptiveBatches

logger = logging.getLogger(__name__)

REGISTRY = CollectorRegistry(auto_describe=True)

ANSWERS = Counter(
    "scorebridge_worker_answers",
    "Answers this worker finished, by outcome: scored, failed, or deferred (left queued for "
    "the sweeper after the database stayed away).",
    ["outcome"],
    registry=REGISTRY,
)
LATENCY = Histogram(
    "scorebridge_worker_scoring_latency_seconds",
    "Submit-to-scored time of the answers this worker scored.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0),
    registry=REGISTRY,
)
BATCH_SIZE = Histogram(
    "scorebridge_worker_batch_size",
    "Answers per scoring batch.",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128),
    registry=REGISTRY,
)
BATCH_SECONDS = Histogram(
    "scorebridge_worker_batch_seconds",
    "Time a scoring batch took in its pool process (database and engine).",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
    registry=REGISTRY,
)
BATCH_ERRORS = Counter(
    "scorebridge_worker_batch_errors",
    "Scoring batches that raised or whose pool process died (their answers wait for the sweeper).",
    registry=REGISTRY,
)
LAST_BATCH = Gauge(
    "scorebridge_worker_last_batch_timestamp_seconds",
    "When this worker last finished a scoring batch (Unix time; 0 before the first).",
    registry=REGISTRY,
)
UP = Gauge(
    "scorebridge_worker_up",
    "1 while this worker is consuming; its start time is scorebridge_worker_start_time_seconds.",
    registry=REGISTRY,
)
STARTED = Gauge(
    "scorebridge_worker_start_time_seconds",
    "When this worker became ready (Unix time).",
    registry=REGISTRY,
)
BUFFERED = Gauge(
    "scorebridge_worker_buffered_answers",
    "Answers received from the broker and waiting for the next batch.",
    registry=REGISTRY,
)
IN_FLIGHT = Gauge(
    "scorebridge_worker_batches_in_flight",
    "Scoring batches handed to the pool and not yet returned.",
    registry=REGISTRY,
)


def record_batch(summary: object) -> None:
    """Count one batch from the summary ``workers.tasks.score_submission`` returned."""
    if not isinstance(summary, Mapping):  # the task body raised (celery-batches logged it)
        BATCH_ERRORS.inc()
        return
    latencies = summary.get("latencies") or []
    for latency in latencies:
        LATENCY.observe(float(latency))
    ANSWERS.labels("scored").inc(len(latencies))
    ANSWERS.labels("failed").inc(int(summary.get("failed", 0)))
    ANSWERS.labels("deferred").inc(int(summary.get("deferred", 0)))
    BATCH_SIZE.observe(int(summary.get("answers", 0)))
    BATCH_SECONDS.observe(float(summary.get("seconds", 0.0)))
    LAST_BATCH.set(time.time())


def record_batch_error(error: object) -> None:
    logger.error("scoring batch did not return: %s", error)
    BATCH_ERRORS.inc()


def _watch_batches() -> None:
    """Read the batching tasks' buffers and in-flight counts on every scrape.

    The tasks are found in the app's registry, so this module does not import the task module
    that reports to it (``workers.tasks`` calls :func:`record_batch`).
    """
    batched = [task for task in app.tasks.values() if isinstance(task, AdaptiveBatches)]
    BUFFERED.set_function(lambda: float(sum(task.buffered() for task in batched)))
    IN_FLIGHT.set_function(lambda: float(sum(task.in_flight() for task in batched)))


def start_exporter(port: int, addr: str) -> bool:
    """Serve ``REGISTRY`` over HTTP; False (logged) when the port is taken."""
    try:
        start_http_server(port, addr=addr, registry=REGISTRY)
    except OSError as exc:
        logger.error("worker metrics not served: cannot listen on %s:%d: %s", addr, port, exc)
        return False
    logger.info("worker metrics on http://%s:%d/metrics", addr, port)
    return True


@worker_ready.connect
def _serve_metrics(sender: object = None, **kwargs: object) -> None:
    for outcome in ("scored", "failed", "deferred"):
        ANSWERS.labels(outcome)  # every series exists from the start, at 0
    UP.set(1)
    STARTED.set(time.time())
    _watch_batches()
    if settings.SCORING_METRICS_PORT:
        start_exporter(settings.SCORING_METRICS_PORT, settings.SCORING_METRICS_ADDR)


@worker_shutdown.connect
def _going_down(sender: object = None, **kwargs: object) -> None:
    UP.set(0)
