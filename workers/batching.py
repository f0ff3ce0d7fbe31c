"""Micro-batching that adds no waiting at low load.

celery-batches flushes a buffer when it holds ``flush_every`` answers or on a timer; Celery's
timer thread only notices a new timer after its current sleep (up to two seconds), so a lone
answer waited about a second. Here a batch is sent to the pool at once whenever the pool is
idle, and answers arriving while a batch runs are gathered and sent together when it returns:
one answer alone goes straight through, a burst is scored in batches as large as the load makes
them (still capped by ``flush_every``, with the timer as a safety net).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection
from typing import Any

from celery.worker.request import Request
from celery_batches import Batches, SimpleRequest
from celery_batches.trace import apply_batches_task


class AdaptiveBatches(Batches):
    def __init__(self) -> None:
        super().__init__()
        self._in_flight = 0
        self._flight_lock = threading.Lock()

    def Strategy(self, task: Batches, app: Any, consumer: Any) -> Callable[..., None]:  # noqa: N802
        buffer_message = super().Strategy(task, app, consumer)

        def on_message(*args: Any, **kwargs: Any) -> None:
            buffer_message(*args, **kwargs)
            if self._in_flight == 0:
                self._do_flush()

        return on_message

    def flush(self, requests: Collection[Request]) -> Any:
        acks_late = [r for r in requests if r.task.acks_late]
        acks_early = [r for r in requests if not r.task.acks_late]
        # The prefork pool pickles its arguments; plain requests travel, Celery's do not.
        batch = ([SimpleRequest.from_request(r) for r in requests],)
        with self._flight_lock:
            self._in_flight += 1

        def on_accepted(pid: int, time_accepted: float) -> None:
            for request in acks_early:
                request.acknowledge()

        def on_return(result: object) -> None:
            # Acknowledged only now: a worker dying mid-batch leaves the messages unacked.
            for request in acks_late:
                request.acknowledge()
            with self._flight_lock:
                self._in_flight -= 1
            if not self._buffer.empty():
                self._do_flush()

        return self._pool.apply_async(
            apply_batches_task,
            (self, batch, 0, None),
            accept_callback=on_accepted,
            callback=on_return,
        )
