"""The CPU serving encoder before and after issue 13's speed-up, paired in one run.

``before``: every batch through the multi graph (unfused, int8) with zero adapters, as serving
did for ``auto`` and ``head`` items. ``after``: the batches without an adapter row through the
plain graph, fused by ONNX Runtime's transformer optimizer before int8 quantization (what
:class:`~ml_core.onnx_backend.OnnxBackend` does now). Both include tokenization, length
bucketing and padding, on random SAF answers in request batches of ``--batch``. The two
alternate ``--rounds`` times (order flipped each round) so load on a shared machine hits both;
prints answers/s per round, the after/before ratio (min and median), and how far the pooled
vectors moved (max abs difference, min cosine; against each other and against the fp32 graph)::

    .venv/bin/python benchmarks/encoder_throughput.py [--answers 512] [--batch 32] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ml_core.backbone import default_threads  # noqa: E402
from ml_core.data import read_items_csv, read_responses_csv  # noqa: E402
from ml_core.engine import ScoringEngine  # noqa: E402
from ml_core.evaluation import examples_by_item  # noqa: E402
from ml_core.onnx_backend import OnnxBackend  # noqa: E402

Encode = Callable[[np.ndarray, np.ndarray], np.ndarray]


def _routes(backend: OnnxBackend, engine: ScoringEngine) -> dict[str, Encode]:
    import onnxruntime as ort

    tables = engine._snapshot.tables
    feeds = backend._table_feeds(tables)

    def before(ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        zeros = np.zeros(len(ids), dtype=np.int64)
        run = {"input_ids": ids, "attention_mask": mask, "item_index": zeros, **feeds}
        return np.asarray(backend.multi.run(["pooled"], run)[0], dtype=np.float32)

    fp32 = ort.InferenceSession(str(backend.paths["plain"]), providers=["CPUExecutionProvider"])

    def reference(ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        run = {"input_ids": ids, "attention_mask": mask}
        return np.asarray(fp32.run(["pooled"], run)[0], dtype=np.float32)

    return {"before": before, "after": backend.encode_plain, "fp32": reference}


def _pool(engine: ScoringEngine, texts: Sequence[str], batch: int, encode: Encode) -> np.ndarray:
    """Tokenize, bucket, pad and encode ``texts`` in request batches of ``batch``, as serving does."""
    out = np.zeros((len(texts), engine.hidden_size), dtype=np.float32)
    for start in range(0, len(texts), batch):
        chunk = texts[start : start + batch]
        tokenized = engine._tokenize(chunk)
        for rows in engine._plan_batches([len(t.ids) for t in tokenized]):
            ids, mask = engine._pad([tokenized[i] for i in rows])
            out[[start + i for i in rows]] = encode(ids, mask)
    return out


def _drift(new: np.ndarray, old: np.ndarray) -> str:
    cosine = (new * old).sum(1) / np.linalg.norm(new, axis=1) / np.linalg.norm(old, axis=1)
    return f"max abs diff {np.abs(new - old).max():.4f}, min cosine {cosine.min():.4f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=Path("../shared/datasets/saf"))
    parser.add_argument("--answers", type=int, default=512)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    bank = {i.item_id: i for i in read_items_csv(args.data / "items.csv")}
    texts = [
        e.text
        for group in examples_by_item(
            read_responses_csv(args.data / "responses.csv", bank)
        ).values()
        for e in group
    ]
    rng = random.Random(13)
    sample = [rng.choice(texts) for _ in range(args.answers)]
    engine = ScoringEngine(None, backend="onnx-int8", threads=default_threads())
    backend = engine._backend
    assert isinstance(backend, OnnxBackend)
    routes = _routes(backend, engine)
    pooled = {name: _pool(engine, sample, args.batch, encode) for name, encode in routes.items()}
    print(f"after vs before: {_drift(pooled['after'], pooled['before'])}")
    for name in ("before", "after"):
        print(f"{name} vs fp32: {_drift(pooled[name], pooled['fp32'])}")
    rates: dict[str, list[float]] = {"before": [], "after": []}
    load_start = os.getloadavg()
    for round_ in range(args.rounds):
        for name in ("before", "after") if round_ % 2 == 0 else ("after", "before"):
            started = time.perf_counter()
            _pool(engine, sample, args.batch, routes[name])
            rates[name].append(args.answers / (time.perf_counter() - started))
        print(f"round {round_ + 1}: " + ", ".join(f"{n} {r[-1]:.0f}" for n, r in rates.items()))
    ratios = [a / b for a, b in zip(rates["after"], rates["before"], strict=True)]
    print(
        f"{default_threads()} threads, {args.answers} answers, request batches of {args.batch}: "
        f"before median {statistics.median(rates['before']):.0f} answers/s, after median "
        f"{statistics.median(rates['after']):.0f}; after/before min {min(ratios):.2f}, median "
        f"{statistics.median(ratios):.2f}; load average 1 min at start {load_start[0]:.1f}, "
        f"at end {os.getloadavg()[0]:.1f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
