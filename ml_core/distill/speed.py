"""Throughput of a distilled student in ONNX Runtime, for reports and benchmarks."""

from __future__ import annotations

import time
from collections.abc import Sequence

from ml_core.distill.scorer import DistilledScorer


def measure_speed(
    scorer: DistilledScorer, texts: Sequence[str], *, min_seconds: float = 1.0
) -> dict[str, float]:
    """Answers per second on ``texts``, repeated for at least ``min_seconds`` after a warm-up.

    ``answers_per_second`` counts the ONNX Runtime run alone (token ids prepared);
    ``answers_per_second_end_to_end`` includes the Python tokenization. Per core when the scorer
    was opened with ``threads=1``.
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
        done = 0
        started = time.perf_counter()
        while True:
            run()
            done += len(texts)
            elapsed = time.perf_counter() - started
            if elapsed >= min_seconds:
                break
        out[name] = done / elapsed
    out["mean_tokens"] = sum(len(row) for row in ids) / len(ids)
    return out
