"""Every task's name, queue and retry policy, in one table.

The web sends by these names (:mod:`queueing.dispatch`) without importing the task modules; the
workers and the LTI app define their tasks with :func:`queueing.tasks.task` and a spec from
here; the app's routes are built from the same table. So a name or a queue is written once.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

QUEUES = ("scoring", "training", "lms")


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with full jitter: a wait drawn from 0..min(cap, base * 2**retries)."""

    base_seconds: float
    cap_seconds: float

    def seconds(self, retries: int) -> float:
        return random.uniform(0, min(self.cap_seconds, self.base_seconds * (2**retries)))


@dataclass(frozen=True)
class TaskSpec:
    name: str
    queue: str
    # tasks that retry themselves wait this long between tries (None: they do not retry)
    retry: Backoff | None = None

    def __post_init__(self) -> None:
        if self.queue not in QUEUES:
            raise ValueError(f"task {self.name}: unknown queue {self.queue!r}")


SCORE = TaskSpec("workers.tasks.score_submission", "scoring")
TRAIN = TaskSpec("workers.tasks.train_model_version", "training")
DISTILL = TaskSpec("workers.tasks.distill_model_version", "training")
MERGE = TaskSpec("workers.merge_tasks.merge_model_versions", "training")
COLD_START = TaskSpec("workers.cold_start_tasks.compute_cold_start", "training")
# periodic upkeep rides on the lms queue: light, never behind a long training job
SWEEP = TaskSpec("workers.tasks.sweep_stuck_submissions", "lms")
PURGE = TaskSpec("workers.privacy_tasks.purge_expired_data", "lms")
POST_SCORE = TaskSpec("lti.tasks.post_score", "lms", retry=Backoff(5.0, 600.0))

TASKS = (SCORE, TRAIN, DISTILL, MERGE, COLD_START, SWEEP, PURGE, POST_SCORE)


def routes() -> dict[str, dict[str, str]]:
    return {spec.name: {"queue": spec.queue, "routing_key": spec.queue} for spec in TASKS}
