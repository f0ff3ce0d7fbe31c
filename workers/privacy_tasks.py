"""Periodic privacy work: the retention purge (beat schedule ``purge-expired-data``)."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="workers.privacy_tasks.purge_expired_data")
def purge_expired_data() -> dict[str, object]:
    """Remove what the retention settings say is kept no longer; returns what was removed."""
    from scoring_plugin.retention import purge

    return purge()
