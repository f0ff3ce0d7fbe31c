"""Every task is defined with the one decorator: its name and queue from the catalog, acks late,
requeued when its worker dies, and its run time logged."""

from __future__ import annotations

import logging

import pytest

import lti.tasks
import workers.cold_start_tasks
import workers.merge_tasks
import workers.privacy_tasks
import workers.tasks
from queueing import catalog
from queueing.app import app
from queueing.tasks import task

TASK_MODULES = (
    workers.tasks,
    workers.merge_tasks,
    workers.privacy_tasks,
    workers.cold_start_tasks,
    lti.tasks,
)


def test_every_task_is_in_the_catalog_and_routed_to_its_queue() -> None:
    ours = {name for name in app.tasks if not name.startswith(("celery.", "tests."))}
    assert ours == {spec.name for spec in catalog.TASKS}
    for spec in catalog.TASKS:
        defined = app.tasks[spec.name]
        assert (defined.queue, defined.acks_late, defined.reject_on_worker_lost) == (
            spec.queue,
            True,
            True,
        ), spec.name
        assert app.amqp.router.route({}, spec.name)["queue"].name == spec.queue


def test_a_task_logs_how_long_it_ran(caplog: pytest.LogCaptureFixture) -> None:
    spec = catalog.TaskSpec("tests.double", "lms")

    @task(spec)
    def double(value: int) -> int:
        return 2 * value

    with caplog.at_level(logging.INFO, logger="queueing.tasks"):
        assert double(21) == 42
    assert [r.getMessage().split()[0] for r in caplog.records] == ["task=tests.double"]


def test_an_unknown_queue_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown queue 'lsm'"):
        catalog.TaskSpec("tests.typo", "lsm")


def test_backoff_waits_grow_and_stay_under_the_cap() -> None:
    backoff = catalog.Backoff(5.0, 600.0)
    for retries in range(12):
        ceiling = min(600.0, 5.0 * 2**retries)
        waits = [backoff.seconds(retries) for _ in range(50)]
        assert all(0 <= w <= ceiling for w in waits)
    assert max(backoff.seconds(10) for _ in range(50)) > 5.0 * 2**3
