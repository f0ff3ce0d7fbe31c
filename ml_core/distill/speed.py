"""Throughput of a distilled student in ONNX Runtime, for reports and benchmarks."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from ml_core.distill.scorer import DistilledScorer


def timed(run: Callable[[], object], answers: int, min_seconds: float) -> tuple[float, float]:
    """(answers per wall second, answers per CPU second of this process) over repeated ``run``.

    On a shared machine the wall rate depends on what else runs; the CPU rate of a one-thread
    run is the per-core rate that the same code gets on an idle core.
    """
    done = 0
    wall_start, cpu_start = time.perf_counter(), time.process_time()
    while True:
        run()
        done += answers
        wall = time.perf_counter() - wall_start
        if wall >= min_seconds:
            break
    cpu = time.process_time() - cpu_start
    return done / wall, done / cpu if cpu > 0 else 0.0


def measure_speed(
    scorer: DistilledScorer, texts: Sequence[str], *, min_seconds: float = 1.0
) -> dict[str, float]:
    """Answers per second on ``texts``, repeated for at least ``min_seconds`` after a warm-up.

    ``answers_per_second`` counts the ONNX Runtime run alone (token ids prepared);
    ``answers_per_second_end_to_end`` includes the Python tokenization; the ``_cpu`` variants
    divide by CPU time instead of wall time. Per core when the scorer has ``threads=1``.
    """
    texts = [t for t in texts if t.strip()]
    if not texts:
        return {"answers_per_second": 0.0, "answers_per_second_end_to_end": 0.0}
    ids = [e.ids for e in scorer.vocabulary.encode_batch(texts)]
    scorer.predict_ids(ids)  # warm-up: first runs allocate
    out: dict[str, float] = {}
    for name, run in (
        ("answers_per_second", lambda: scorer.predict_ids(ids)),
        ("answers_per_second_end_to_end", lambda: scorer.predict_proba(texts)),
    ):
        out[name], out[f"{name}_cpu"] = timed(run, len(texts), min_seconds)
    out["mean_tokens"] = sum(len(row) for row in ids) / len(ids)
    return out
