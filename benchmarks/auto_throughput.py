"""Engine throughput with ``auto`` models, tokenization included (issue 13).

Trains ``auto`` (default settings, with the item's reference answer) on all answers of a few SAF
items from cached fp32 vectors, loads them into an :class:`~ml_core.serving.AutoScorer` on one
shared engine (default: the CPU serving path, ONNX int8), then scores mixed batches of SAF
answers from every item, as the workers do (raw text in: tokenization, one forward pass per
batch, each item's model). Times ``--rounds`` passes over the same answers (this machine's
speed moves by 20% from one second to the next) and prints each round's answers per second,
their median and the load average::

    .venv/bin/python benchmarks/auto_throughput.py [--answers 1024] [--batch 32] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ml_core.auto import AutoConfig, train_auto  # noqa: E402
from ml_core.backbone import default_threads  # noqa: E402
from ml_core.data import read_items_csv, read_responses_csv  # noqa: E402
from ml_core.engine import ScoringEngine  # noqa: E402
from ml_core.evaluation import examples_by_item  # noqa: E402
from ml_core.results import ScoreRequest  # noqa: E402
from ml_core.serving import AutoScorer  # noqa: E402

ITEMS = "saf-de-1,saf-de-5,saf-en-10.1_TC,saf-en-11.2_SDN,saf-en-12.2_PE,saf-en-8.1_MM"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=Path("../shared/datasets/saf"))
    parser.add_argument("--items-only", default=ITEMS)
    parser.add_argument("--answers", type=int, default=1024)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--backend", default="onnx-int8")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--backbone", default=None, help="name or local path (default: packaged)")
    args = parser.parse_args()
    bank = {i.item_id: i for i in read_items_csv(args.data / "items.csv")}
    grouped = examples_by_item(read_responses_csv(args.data / "responses.csv", bank))
    ids = [i for i in args.items_only.split(",") if i]
    engine = ScoringEngine(args.backbone, backend=args.backend, threads=default_threads())
    scorer = AutoScorer(lambda: engine)
    with tempfile.TemporaryDirectory() as tmp:
        for item_id in ids:
            record = bank[item_id]
            folder = Path(tmp) / item_id
            train_auto(
                grouped[item_id],
                record.max_score + 1,
                folder,
                config=AutoConfig(),
                reference_answers=(record.reference_answer,),
                embed=engine.embed,
                backbone=args.backbone,
            )
            scorer.load(item_id, "v1", folder)
        rng = random.Random(13)
        pool = [(i, e.text) for i in ids for e in grouped[i]]
        requests = [ScoreRequest(*rng.choice(pool)) for _ in range(args.answers)]
        scorer.score_requests(requests[: args.batch])  # warm up
        load_start = os.getloadavg()
        rates: list[float] = []
        cpu = 0.0
        errors = 0
        for _ in range(args.rounds):
            started, cpu_start = time.perf_counter(), time.process_time()
            for start in range(0, len(requests), args.batch):
                results = scorer.score_requests(requests[start : start + args.batch])
                errors += sum(r.error is not None for r in results)
            rates.append(args.answers / (time.perf_counter() - started))
            cpu += time.process_time() - cpu_start
        # the backbone alone on the same answers and batches: what the auto models add is the rest
        backbone_cpu = time.process_time()
        for _ in range(args.rounds):
            for start in range(0, len(requests), args.batch):
                engine.embed([r.text for r in requests[start : start + args.batch]])
        backbone_cpu = time.process_time() - backbone_cpu
        tokens = [len(t.ids) for t in engine._tokenize([r.text for r in requests])]
    print(
        f"backend {args.backend}, {default_threads()} threads, {len(ids)} auto items, "
        f"batches of {args.batch}, {args.answers} answers x {args.rounds} rounds: "
        f"{' '.join(f'{r:.0f}' for r in rates)} answers/s, median "
        f"{statistics.median(rates):.0f} ({args.answers * args.rounds / cpu:.0f} per "
        f"CPU-second of this process; the backbone's forward passes alone: {backbone_cpu:.1f} "
        f"of {cpu:.1f} CPU s; mean {sum(tokens) / len(tokens):.0f} tokens per answer); "
        f"errors: {errors}; "
        f"load average 1/5/15 min at start "
        f"{'/'.join(f'{v:.1f}' for v in load_start)}, at end "
        f"{'/'.join(f'{v:.1f}' for v in os.getloadavg())}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
