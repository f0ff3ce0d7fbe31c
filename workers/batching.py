"""Micro-batching that adds no waiting at low load.

celery-batches flushes a buffer when it holds ``flush_every`` answers or on a timer; Celery's
timer thread only notices a new timer after its current sleep (up to two seconds), so a lone
answer waited about a second. Here a batch is sent to the pool at once whenever the pool is
idle, and answers arriving while a batch runs are gathered and sent together when it returns:
one answer alone goes straight through, a burst is scored in batches as large as the load makes
them (still capped by ``flush_every``, with the timer as a safety net). A batch the pool
dropped when the broker connection was lost is scored again after the reconnection.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from celery.worker.request import Request
from celery_batches import Batches, SimpleRequest
from celery_batches.trace import apply_batches_task

logger = logging.getLogger(__name__)


@dataclass
class _Batch:
    requests: Collection[Request]
    accepted: bool = False
    """Whether a pool process took it (the pool drops batches none had taken yet)."""


class AdaptiveBatches(Batches):
    def __init__(self) -> None:
        super().__init__()
        self._outstanding: dict[int, _Batch] = {}
        self._batch_numbers = itertools.count()
        self._flight_lock = threading.Lock()

    def Strategy(self, task: Batches, app: Any, consumer: Any) -> Callable[..., None]:  # noqa: N802
        # Built when the consumer starts, and again after it lost its broker connection. Then
        # Celery has cleared its timers (celery-batches' flush timer among them: arm it anew)
        # and the pool has discarded the batches no process had taken; those never return, so
        # their answers go back to the buffer and are scored on the next flush (their messages
        # cannot be acknowledged any more; a redelivery finds them scored).
        with self._flight_lock:
            dropped = [b for b in self._outstanding.values() if not b.accepted]
            self._outstanding = {k: b for k, b in self._outstanding.items() if b.accepted}
        for batch in dropped:
            for request in batch.requests:
                self._buffer.put(request)
        self._tref = None
        buffer_message = super().Strategy(task, app, consumer)
        if dropped:
            logger.warning("scoring again %d batch(es) dropped by the pool", len(dropped))
            self._tref = consumer.timer.call_repeatedly(self.flush_interval, self._do_flush)

        def on_message(*args: Any, **kwargs: Any) -> None:
            buffer_message(*args, **kwargs)
            if not self._pool_busy():
                self._do_flush()

        return on_message

    def _do_flush(self) -> None:
        # The timer (every flush_interval) and the message counter both call this. While every
        # pool process has a batch, answers wait in the buffer and go out together when a batch
        # returns (or once a full batch is waiting): flushing each tick split a burst into
        # batches of one to three answers, which cost their fixed per-batch work each time.
        if self._pool_busy() and self._buffer.qsize() < self.flush_every:
            return
        super()._do_flush()

    def _pool_busy(self) -> bool:
        return self.in_flight() >= max(1, int(getattr(self._pool, "limit", 1) or 1))

    def flush(self, requests: Collection[Request]) -> Any:
        acks_late = [r for r in requests if r.task.acks_late]
        acks_early = [r for r in requests if not r.task.acks_late]
        # The prefork pool pickles its arguments; plain requests travel, Celery's do not.
        batch = ([SimpleRequest.from_request(r) for r in requests],)
        number = next(self._batch_numbers)
        with self._flight_lock:
            self._outstanding[number] = _Batch(list(requests))

        def on_accepted(pid: int, time_accepted: float) -> None:
            with self._flight_lock:
                if number in self._outstanding:
                    self._outstanding[number].accepted = True
            _acknowledge(acks_early)

        def finished(report: Callable[[], None]) -> None:
            _acknowledge(acks_late)
            with self._flight_lock:
                self._outstanding.pop(number, None)
            try:
                report()
            finally:
                if not self._buffer.empty():
                    self._do_flush()

        def on_return(result: object) -> None:
            # Acknowledged only now: a worker dying mid-batch leaves the messages unacked.
            finished(lambda: self.batch_returned(result))

        def on_error(error: object) -> None:
            # The pool process died, or a signal handler raised outside the task body. The rows
            # stay queued: acknowledged here, they are the sweeper's to enqueue again (counted
            # against their attempts, so an answer that kills the process ends failed), and
            # the next batch is not held back by one that never returned.
            finished(lambda: self.batch_raised(error))

        return self._pool.apply_async(
            apply_batches_task,
            (self, batch, 0, None),
            accept_callback=on_accepted,
            callback=on_return,
            error_callback=on_error,
        )

    def batch_returned(self, result: object) -> None:
        """Called in the worker's main process with what the task returned for a batch."""

    def batch_raised(self, error: object) -> None:
        """Called in the worker's main process when a batch raised instead of returning."""

    def buffered(self) -> int:
        """Answers received and waiting for the next batch."""
        return self._buffer.qsize()

    def in_flight(self) -> int:
        """Batches handed to the pool and not yet returned."""
        with self._flight_lock:
            return len(self._outstanding)


def _acknowledge(requests: Collection[Request]) -> None:
    """Acknowledge each message; one that cannot be (its broker connection was lost and made
    again since) is logged and left: the broker may deliver it again, and scoring it twice
    changes nothing."""
    for request in requests:
        try:
            request.acknowledge()
        except Exception as exc:
            logger.warning("cannot acknowledge message %s: %s", request.id, exc)
