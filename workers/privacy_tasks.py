"""Periodic privacy work: the retention purge (beat schedule ``purge-expired-data``)."""

from __future__ import annotations

from queueing import catalog
from queueing.tasks import task


@task(catalog.PURGE)
def purge_expired_data() -> dict[str, object]:
    """Remove what the retention settings say is kept no longer; returns what was removed."""
    from scoring_plugin.retention import purge

    return purge()
