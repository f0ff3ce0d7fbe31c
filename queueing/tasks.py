"""The one decorator every task is defined with (workers, LTI grade passback).

It gives the task its name and queue from :mod:`queueing.catalog`, acknowledges a message only
after the task ran and requeues it when the worker process dies (the work must not be lost;
every task is idempotent), and logs how long each run took.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

from queueing.app import app
from queueing.catalog import TaskSpec

logger = logging.getLogger("queueing.tasks")

F = TypeVar("F", bound=Callable[..., Any])


def task(spec: TaskSpec, **options: Any) -> Callable[[F], Any]:
    """``@task(catalog.X, bind=True, base=...)``: further ``options`` go to Celery."""

    def decorate(function: F) -> Any:
        @functools.wraps(function)
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.monotonic()
            try:
                return function(*args, **kwargs)
            finally:
                logger.info("task=%s seconds=%.3f", spec.name, time.monotonic() - started)

        return app.task(
            name=spec.name,
            queue=spec.queue,
            acks_late=True,
            reject_on_worker_lost=True,
            **options,
        )(timed)

    return decorate
