"""Sending work to the queues by task name, without importing the tasks.

The web process enqueues but never runs tasks; importing ``workers.tasks`` would load torch and
the ML code into every web worker (seconds of start-up and hundreds of MB each).
"""

from __future__ import annotations

import os
import threading
import time

from kombu import Producer

from queueing import catalog
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
    sweeper. Each thread keeps its connection and producer between answers (the queue is
    declared once per connection, not per message).
    """
    global _broker_down_until
    if time.monotonic() < _broker_down_until:
        raise BrokerUnavailable("the broker failed a send moments ago")
    # A held connection the broker dropped since (a restart) gets one fresh connection first.
    for fresh in (getattr(_held, "producer", None) is None, True):
        try:
            app.send_task(
                catalog.SCORE.name,
                args=[submission_id],
                queue=catalog.SCORE.queue,
                retry=False,
                producer=_producer(),
            )
            return
        except Exception:
            _drop_producer()
            if fresh:
                with _broker_lock:
                    _broker_down_until = time.monotonic() + BROKER_RETRY_AFTER_SECONDS
                raise


_held = threading.local()


def _producer() -> Producer:
    """This thread's producer on its own broker connection, made on first use (and again in a
    forked child, which must not share its parent's socket)."""
    producer: Producer | None = getattr(_held, "producer", None)
    if producer is None or _held.pid != os.getpid():
        connection = app.connection_for_write()
        connection.ensure_connection(max_retries=1, interval_start=0, interval_step=0)
        producer = app.amqp.Producer(connection, auto_declare=False)
        _held.producer, _held.pid = producer, os.getpid()
    return producer


def _drop_producer() -> None:
    """Close this thread's connection after a failed send; the next send opens a new one."""
    producer: Producer | None = getattr(_held, "producer", None)
    _held.producer = None
    if producer is not None and _held.pid == os.getpid():
        try:
            producer.connection.release()
        except Exception:  # already broken: nothing to close cleanly
            pass


def forget_broker_failures() -> None:
    """Offer the next answer to the broker at once (tests; a process that switched brokers)."""
    global _broker_down_until
    with _broker_lock:
        _broker_down_until = 0.0
    _drop_producer()


def send_training(version_id: int, activate: bool) -> None:
    app.send_task(catalog.TRAIN.name, args=[version_id, activate], queue=catalog.TRAIN.queue)


def send_cold_start(item_id: int) -> None:
    """An item's "what to score next" and learning curve (issue 16) to the training queue."""
    app.send_task(catalog.COLD_START.name, args=[item_id], queue=catalog.COLD_START.queue)


def send_distillation(version_id: int, activate: bool) -> None:
    app.send_task(catalog.DISTILL.name, args=[version_id, activate], queue=catalog.DISTILL.queue)


def send_merge(version_ids: list[int], options: dict[str, object]) -> None:
    """A merge job (one pending ``merged`` version per item) to the training queue."""
    app.send_task(catalog.MERGE.name, args=[version_ids, options], queue=catalog.MERGE.queue)
