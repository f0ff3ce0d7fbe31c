"""The item's "what to score next" and learning curve (issue 16), on the training queue.

The backbone is loaded on the first task of a worker process (never in the parent) and its
vectors are kept per text for the process's life: a report embeds the item's answers and the
bank's, and the next report of the same bank reuses them.
"""

from __future__ import annotations

from django.conf import settings

from ml_core.embeddings import EmbeddingCache
from queueing import catalog
from queueing.tasks import task

_CACHE: EmbeddingCache | None = None


def _embedder() -> EmbeddingCache:
    global _CACHE
    if _CACHE is None:
        from ml_core.embeddings import frozen_embedder

        _CACHE = EmbeddingCache(frozen_embedder(settings.SCORING_BACKBONE or None, "mean"))
    return _CACHE


@task(catalog.COLD_START)
def compute_cold_start(item_id: int) -> str:
    """Compute and store the item's pending cold-start report, and start training when its
    curve clears the baseline (once per new evidence); returns the report's status, with
    ``+training vN`` when it started one."""
    from scoring_plugin.cold_start import run_report, start_training_if_due
    from scoring_plugin.models import ColdStartReport

    if not ColdStartReport.objects.filter(item_id=item_id).exists():
        return "no report requested"
    report = run_report(item_id, _embedder())
    version = start_training_if_due(report)
    return report.status + (f"+training v{version.number}" if version is not None else "")
