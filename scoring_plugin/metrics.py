"""Prometheus metrics, read from the database (the source of truth), served at ``/metrics``.

Queue depth is what waits in the database, not what a broker holds: it counts the same on
every broker, and includes answers whose message was lost and wait for the sweeper.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

from django.conf import settings
from django.db.models import Count, Min
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric, SummaryMetricFamily

from scoring_plugin.models import ModelVersion, Submission

LATENCY_WINDOW = timedelta(minutes=5)


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


def metrics_view(request: HttpRequest) -> HttpResponse:
    token = settings.SCOREBRIDGE_METRICS_TOKEN
    if token and request.headers.get("Authorization") != f"Bearer {token}":
        return HttpResponse("metrics need the bearer token\n", status=401)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DatabaseCollector())  # type: ignore[arg-type]
    return HttpResponse(generate_latest(registry), content_type="text/plain; version=0.0.4")
