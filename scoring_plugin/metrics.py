"""Prometheus metrics served at ``/metrics``: from the database, the broker and the workers.

``scorebridge_queue_depth`` is what waits in the database (the source of truth): it counts the
same on every broker, and includes answers whose message was lost and wait for the sweeper.
``scorebridge_broker_queue_messages`` is what each broker queue holds, and
``scorebridge_workers_responding`` how many workers answered a ping; both are asked with short
timeouts, and a broker that does not answer sets ``scorebridge_broker_up`` to 0 instead of
failing the scrape. Each worker also serves its own metrics (``workers.worker_metrics``).
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Iterator
from datetime import timedelta

from django.conf import settings
from django.db.models import Count, Min
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric, SummaryMetricFamily

from queueing import monitoring
from queueing.catalog import QUEUES
from scoring_plugin.models import ModelVersion, Submission

logger = logging.getLogger(__name__)

LATENCY_WINDOW = timedelta(minutes=5)
BROKER_TIMEOUT_SECONDS = 1.0
PING_TIMEOUT_SECONDS = 0.5


class DatabaseCollector:
    """Collects on every scrape; a few indexed aggregate queries."""

    def collect(self) -> Iterator[Metric]:
        now = timezone.now()
        by_status = dict(
            Submission.objects.values_list("status").annotate(n=Count("pk")).order_by()
        )
        submissions = GaugeMetricFamily(
            "scorebridge_submissions", "Submissions by status.", labels=["status"]
        )
        for status in Submission.Status.values:
            submissions.add_metric([status], by_status.get(status, 0))
        yield submissions

        waiting = Submission.objects.filter(
            status__in=[Submission.Status.RECEIVED, Submission.Status.QUEUED]
        )
        yield GaugeMetricFamily(
            "scorebridge_queue_depth",
            "Answers received or queued and not yet scored.",
            value=by_status.get("received", 0) + by_status.get("queued", 0),
        )
        by_reason = dict(
            waiting.exclude(waiting_for="")
            .values_list("waiting_for")
            .annotate(n=Count("pk"))
            .order_by()
        )
        reasons = GaugeMetricFamily(
            "scorebridge_submissions_waiting",
            "Answers not yet scored by what they wait for: broker (the scoring queue), worker "
            "(no scoring worker took them in time), model (their item has no active model).",
            labels=["reason"],
        )
        for reason in Submission.WaitingFor.values:
            if reason:
                reasons.add_metric([reason], by_reason.get(reason, 0))
        yield reasons
        oldest = waiting.aggregate(t=Min("created_at"))["t"]
        yield GaugeMetricFamily(
            "scorebridge_oldest_waiting_seconds",
            "Age of the oldest answer not yet scored (0 when none).",
            value=(now - oldest).total_seconds() if oldest else 0.0,
        )

        recent = list(
            Submission.objects.filter(
                status=Submission.Status.SCORED, scored_at__gte=now - LATENCY_WINDOW
            ).values_list("created_at", "scored_at")[:10000]
        )
        latencies = sorted((done - created).total_seconds() for created, done in recent)
        summary = SummaryMetricFamily(
            "scorebridge_scoring_latency_seconds",
            "Submit-to-scored time of answers scored in the last 5 minutes.",
            count_value=len(latencies),
            sum_value=sum(latencies),
        )
        yield summary
        quantiles = GaugeMetricFamily(
            "scorebridge_scoring_latency_quantile_seconds",
            "Submit-to-scored time quantiles over the last 5 minutes.",
            labels=["quantile"],
        )
        for q in (0.5, 0.95, 0.99):
            value = latencies[min(len(latencies) - 1, int(q * len(latencies)))] if latencies else 0
            quantiles.add_metric([str(q)], value)
        yield quantiles

        versions = GaugeMetricFamily(
            "scorebridge_model_versions", "Model versions by status.", labels=["status"]
        )
        version_counts = dict(
            ModelVersion.objects.values_list("status").annotate(n=Count("pk")).order_by()
        )
        for status in ModelVersion.Status.values:
            versions.add_metric([status], version_counts.get(status, 0))
        yield versions


class BrokerCollector:
    """Asks the broker for its queue depths and pings the workers, on every scrape."""

    def collect(self) -> Iterator[Metric]:
        started = time.monotonic()
        try:
            found: monitoring.BrokerProbe | None = monitoring.probe(
                BROKER_TIMEOUT_SECONDS, PING_TIMEOUT_SECONDS
            )
        except Exception as exc:  # kombu raises several types for a broker that is away
            logger.warning("metrics: broker unavailable: %s", exc)
            found = None
        yield GaugeMetricFamily(
            "scorebridge_broker_up",
            "1 when the broker answered this scrape; 0 when it did not (no queue depths then).",
            value=1.0 if found else 0.0,
        )
        yield GaugeMetricFamily(
            "scorebridge_broker_probe_seconds",
            "How long asking the broker and pinging the workers took.",
            value=time.monotonic() - started,
        )
        depth = GaugeMetricFamily(
            "scorebridge_broker_queue_messages",
            "Messages waiting in each broker queue (not yet delivered to a worker).",
            labels=["queue"],
        )
        if found is not None:
            for queue in QUEUES:
                depth.add_metric([queue], found.queue_sizes.get(queue, 0))
        yield depth
        yield GaugeMetricFamily(
            "scorebridge_workers_responding",
            f"Workers that answered a ping within {PING_TIMEOUT_SECONDS} s (0 when the broker "
            "is away).",
            value=len(found.workers) if found else 0,
        )


def metrics_view(request: HttpRequest) -> HttpResponse:
    """Closed unless ``SCOREBRIDGE_METRICS_TOKEN`` is sent as a bearer token, or
    ``SCOREBRIDGE_METRICS_PUBLIC`` explicitly opens it."""
    token = settings.SCOREBRIDGE_METRICS_TOKEN
    if token:
        sent = request.headers.get("Authorization", "")
        if not hmac.compare_digest(sent.encode(), f"Bearer {token}".encode()):
            return HttpResponse("metrics need the bearer token\n", status=401)
    elif not settings.SCOREBRIDGE_METRICS_PUBLIC:
        return HttpResponse(
            "metrics are closed: set SCOREBRIDGE_METRICS_TOKEN (or SCOREBRIDGE_METRICS_PUBLIC=1)\n",
            status=403,
        )
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DatabaseCollector())  # type: ignore[arg-type]
    registry.register(BrokerCollector())  # type: ignore[arg-type]
    return HttpResponse(generate_latest(registry), content_type="text/plain; version=0.0.4")
