"""Training time per item against its number of answers (issue 13, item 5).

A synthetic item is built from SAF answers (English answers of every SAF item, with their scores
0-2, sampled with a fixed seed; repeated with a numbered suffix when more are asked for than
exist), then ``auto`` and ``head`` are trained on its first 100 / 300 / 1000 / 1500 answers, from
one backbone pass per answer (timed: "embedding"), then each kind is fitted on the cached
vectors (timed: "fit"); total = embedding + fit, what an item of that size costs from scratch.
The backbone is loaded once before timing (a worker holds it). CPU seconds (this process,
all threads) are printed beside wall seconds: on a shared machine they move less with load.

    .venv/bin/python benchmarks/training_time.py [--sizes 100,300,1000,1500] \
        [--embedder torch|onnx-int8] [--kinds auto,head] [--data ../shared/datasets/saf]

Prints a Markdown table; timings on a shared machine move with its load (printed too).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ml_core.auto import AutoConfig, train_auto  # noqa: E402
from ml_core.backbone import default_threads  # noqa: E402
from ml_core.data import read_items_csv, read_responses_csv  # noqa: E402
from ml_core.embeddings import EmbeddingCache, frozen_embedder  # noqa: E402
from ml_core.training import TrainConfig, TrainExample, train_item  # noqa: E402


def synthetic_item(data: Path, size: int, seed: int) -> list[TrainExample]:
    bank = {i.item_id: i for i in read_items_csv(data / "items.csv")}
    english = [
        r
        for r in read_responses_csv(data / "responses.csv", bank)
        if bank[r.item_id].language == "en"
    ]
    rng = random.Random(seed)
    rng.shuffle(english)
    out: list[TrainExample] = []
    round_ = 0
    while len(out) < size:
        for r in english[: size - len(out)]:
            text = r.text if round_ == 0 else f"{r.text} ({round_})"
            out.append(TrainExample(text=text, label=min(r.score, 2)))
        round_ += 1
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=Path("../shared/datasets/saf"))
    parser.add_argument("--sizes", default="100,300,1000,1500")
    parser.add_argument("--kinds", default="auto,head")
    parser.add_argument("--embedder", choices=("torch", "onnx-int8"), default="torch")
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    kinds = args.kinds.split(",")
    threads = default_threads()
    if args.embedder == "torch":
        embed = frozen_embedder(None, "mean", threads)
    else:
        from ml_core.engine import ScoringEngine

        engine = ScoringEngine(None, backend="onnx-int8", threads=threads)
        embed = engine.embed
    embed(["warm up"])
    examples = synthetic_item(args.data, max(sizes), args.seed)
    print(
        f"embedder: {args.embedder}, threads: {threads}, cores: {os.cpu_count()}, "
        f"load average at start: {os.getloadavg()[0]:.1f}\n"
    )
    # one backbone pass over the largest item, in prefix chunks: the cumulative time of the
    # chunks up to a size is the time to embed an item of that size (tokenized once per chunk)
    cache = EmbeddingCache(embed)
    embed_wall: dict[int, float] = {}
    embed_cpu: dict[int, float] = {}
    wall = cpu = 0.0
    previous = 0
    for size in sorted(sizes):
        chunk = [e.text for e in examples[previous:size]]
        started, started_cpu = time.perf_counter(), time.process_time()
        cache.preload(chunk)
        wall += time.perf_counter() - started
        cpu += time.process_time() - started_cpu
        embed_wall[size], embed_cpu[size] = wall, cpu
        previous = size
    header = ["answers", "embedding s (CPU s)"]
    for kind in kinds:
        header += [f"{kind} fit s (CPU s)", f"{kind} total s"]
    print("| " + " | ".join(header) + " | auto chose |")
    print("|" + "---|" * (len(header) + 1))
    for size in sizes:
        subset = examples[:size]
        cells = [str(size), f"{embed_wall[size]:.1f} ({embed_cpu[size]:.1f})"]
        chose = ""
        for kind in kinds:
            with tempfile.TemporaryDirectory() as tmp:
                started, started_cpu = time.perf_counter(), time.process_time()
                if kind == "auto":
                    train_auto(
                        subset, 3, Path(tmp) / "a", config=AutoConfig(seed=args.seed), embed=cache
                    )
                    manifest = json.loads((Path(tmp) / "a" / "manifest.json").read_text())
                    chose = f"{manifest['auto']['candidate']}/{manifest['auto']['decoder']}"
                else:
                    train_item(
                        subset,
                        item_id="synthetic",
                        num_labels=3,
                        out_dir=Path(tmp) / "a",
                        config=TrainConfig(kind=kind, seed=args.seed),
                        embed=cache,
                    )
                fit_wall = time.perf_counter() - started
                fit_cpu = time.process_time() - started_cpu
            cells += [f"{fit_wall:.1f} ({fit_cpu:.1f})", f"{embed_wall[size] + fit_wall:.1f}"]
        cells.append(chose)
        print("| " + " | ".join(cells) + " |", flush=True)
    print(f"\nload average at end: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
