"""Sending work to the queues by task name, without importing the tasks.

The web process enqueues but never runs tasks; importing ``workers.tasks`` would load torch and
the ML code into every web worker (seconds of start-up and hundreds of MB each).
"""

from __future__ import annotations

import threading
import time

from queueing.app import app

# After the broker failed a send, answers are not offered to it for this long: they wait as
# received for the sweeper, and a request with many answers does not wait on each in turn.
BROKER_RETRY_AFTER_SECONDS = 2.0
_broker_down_until = 0.0
_broker_lock = threading.Lock()


class BrokerUnavailable(ConnectionError):
    """The broker failed a send moments ago; this one was not tried."""


def send_score(submission_id: str) -> None:
    """One answer to the scoring queue (workers gather them into micro-batches).

    One connection attempt, no retry: raises at once when the broker is away (kombu's own
    loop would hold the request for seconds per answer); the caller leaves the answer for the
    sweeper.
    """
    global _broker_down_until
    if time.monotonic() < _broker_down_until:
        raise BrokerUnavailable("the broker failed a send moments ago")
    try:
        with app.pool.acquire(block=True) as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0)
            app.send_task(
                "workers.tasks.score_submission",
                args=[submission_id],
                queue="scoring",
                retry=False,
                connection=conn,
            )
    except Exception:
        with _broker_lock:
            _broker_down_until = time.monotonic() + BROKER_RETRY_AFTER_SECONDS
        raise


def forget_broker_failures() -> None:
    """Offer the next answer to the broker at once (tests; a process that switched brokers)."""
    global _broker_down_until
    with _broker_lock:
        _broker_down_until = 0.0


def send_training(version_id: int, activate: bool) -> None:
    app.send_task(
        "workers.tasks.train_model_version", args=[version_id, activate], queue="training"
    )


def send_cold_start(item_id: int) -> None:
    """An item's "what to score next" and learning curve (issue 16) to the training queue."""
    app.send_task("workers.cold_start_tasks.compute_cold_start", args=[item_id], queue="training")


def send_distillation(version_id: int, activate: bool) -> None:
    app.send_task(
        "workers.tasks.distill_model_version", args=[version_id, activate], queue="training"
    )


def send_merge(version_ids: list[int], options: dict[str, object]) -> None:
    """A merge job (one pending ``merged`` version per item) to the training queue."""
    app.send_task(
        "workers.merge_tasks.merge_model_versions", args=[version_ids, options], queue="training"
    )
