"""The teacher: any trained model version of the item, served by the scoring engine.

Only its class probabilities are used, so the student never depends on how the teacher was
trained (``lora``, ``head``, ...) and tests can pass probabilities from a fake teacher instead.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from ml_core.artifact import read_manifest
from ml_core.distill.speed import timed
from ml_core.engine import ScoreRequest, ScoreResult, ScoringEngine

TEACHER_KEY = "teacher"


def load_teacher(
    artifact_dir: Path | str,
    *,
    version: str = "",
    backbone: str | None = None,
    threads: int | None = None,
    engine: ScoringEngine | None = None,
) -> tuple[ScoringEngine, str]:
    """An engine serving the item artifact at ``artifact_dir`` under key ``teacher``; (engine, version).

    ``backbone`` defaults to the one named in the artifact's manifest. Pass ``engine`` to load the
    teacher into an engine that already runs (it must use the artifact's backbone).
    """
    manifest = read_manifest(Path(artifact_dir))
    if engine is None:
        engine = ScoringEngine(
            backbone or str(manifest.get("backbone") or "") or None, threads=threads
        )
    version = (
        version
        or f"{manifest.get('item_id', 'item')}:{manifest.get('kind', '')}:{Path(artifact_dir).name}"
    )
    engine.load_item(TEACHER_KEY, Path(artifact_dir), version)
    return engine, version


class ScoresRequests(Protocol):
    """Anything scoring in the engine's shape: the engine, a merged group, an ``auto`` model."""

    def score(self, requests: Sequence[ScoreRequest]) -> list[ScoreResult]: ...


def teacher_probabilities(
    engine: ScoresRequests, texts: Sequence[str], item_key: str = TEACHER_KEY
) -> np.ndarray:
    """``[len(texts), classes]`` class probabilities of the teacher; uniform where it gave none.

    A blank answer has no teacher score (the engine reports an error); a uniform row keeps the
    rows aligned and teaches the student nothing about that answer.
    """
    results = engine.score([ScoreRequest(item_key, text) for text in texts])
    width = max((len(r.probabilities) for r in results), default=0)
    if width == 0:
        raise ValueError(
            f"the teacher scored none of {len(texts)} answers: {results[0].error if results else 'no answers'}"
        )
    out = np.full((len(texts), width), 1.0 / width, dtype=np.float32)
    for row, result in enumerate(results):
        if result.error is None and len(result.probabilities) == width:
            out[row] = result.probabilities
    return out


def teacher_seconds_per_answer(
    engine: ScoringEngine,
    texts: Sequence[str],
    item_key: str = TEACHER_KEY,
    *,
    min_seconds: float = 1.0,
    singles: int = 32,
) -> dict[str, float]:
    """Teacher timings on ``texts``: batched (all texts in one ``score`` call) and one at a time.

    ``seconds_per_answer`` is the batched wall time divided by the answers (throughput view);
    ``cpu_seconds_per_answer`` the same in CPU time of this process (robust to a busy machine
    when the engine runs one thread); ``single_seconds_per_answer`` is the mean latency of
    one-answer calls (the first ``singles`` texts).
    """
    texts = [t for t in texts if t.strip()]
    requests = [ScoreRequest(item_key, t) for t in texts]
    engine.score(requests[:4])  # warm-up
    per_wall, per_cpu = timed(lambda: engine.score(requests), len(requests), min_seconds)
    one_by_one = requests[: min(len(requests), singles)]
    started = time.perf_counter()
    for request in one_by_one:
        engine.score([request])
    single = (time.perf_counter() - started) / max(1, len(one_by_one))
    return {
        "seconds_per_answer": 1.0 / per_wall,
        "cpu_seconds_per_answer": 1.0 / per_cpu if per_cpu else 0.0,
        "single_seconds_per_answer": single,
    }
