"""``auto`` served on int8 ONNX vectors against fp32 torch vectors (issue 13).

Per fold of each item, ``auto`` is trained once on the fp32 frozen vectors (what the workers'
training computes) and its artifact then scores the test answers twice: with fp32 vectors and
with the vectors of the CPU serving path (``ScoringEngine(backend="onnx-int8").embed``). Prints
the QWK of both per item and the mean difference with a 95% t-interval over items::

    .venv/bin/python benchmarks/auto_int8.py [--items-only a,b] [--repeats 1]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ml_core.auto import AutoConfig, AutoModel, train_auto  # noqa: E402
from ml_core.backbone import backbone_fingerprint, default_threads  # noqa: E402
from ml_core.crossval import folds_for, t_interval  # noqa: E402
from ml_core.data import read_items_csv, read_responses_csv  # noqa: E402
from ml_core.embeddings import EmbeddingCache, frozen_embedder  # noqa: E402
from ml_core.engine import ScoringEngine  # noqa: E402
from ml_core.evaluation import examples_by_item  # noqa: E402
from ml_core.metrics import quadratic_weighted_kappa  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=Path("../shared/datasets/saf"))
    parser.add_argument("--items-only", default="")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--cache", type=Path, default=Path("var/embeddings"))
    args = parser.parse_args()
    bank = {i.item_id: i for i in read_items_csv(args.data / "items.csv")}
    grouped = examples_by_item(read_responses_csv(args.data / "responses.csv", bank))
    ids = [i for i in args.items_only.split(",") if i] or sorted(grouped)
    key = backbone_fingerprint(None).replace("@sha256:", "-").replace("/", "_")
    lazy: list[object] = []

    def embed_fp32(texts: Sequence[str]) -> np.ndarray:
        if not lazy:
            lazy.append(frozen_embedder(None))
        return lazy[0](texts)  # type: ignore[operator]

    fp32 = EmbeddingCache(embed_fp32, args.cache / f"{key}-mean")
    engine = ScoringEngine(None, backend="onnx-int8", threads=default_threads())
    int8 = EmbeddingCache(engine.embed)
    print(f"load average at start: {os.getloadavg()[0]:.1f}")
    print("| item | answers | QWK fp32 | QWK int8 | int8 - fp32 | cosine fp32~int8 (min) |")
    print("|---|---|---|---|---|---|")
    differences = []
    for item_id in ids:
        record = bank[item_id]
        examples = grouped[item_id]
        texts = [e.text for e in examples]
        fp32.preload(texts)
        a, b = fp32(texts), int8(texts)
        cosine = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
        labels = np.array([e.label for e in examples])
        qwk: dict[str, list[float]] = {"fp32": [], "int8": []}
        for fold in folds_for(examples, "cv", folds=5, repeats=args.repeats, seed=13):
            train = [examples[i] for i in fold.train]
            test = [texts[i] for i in fold.test]
            with tempfile.TemporaryDirectory() as tmp:
                train_auto(
                    train,
                    record.max_score + 1,
                    Path(tmp),
                    config=AutoConfig(),
                    reference_answers=(record.reference_answer,),
                    embed=fp32,
                )
                model = AutoModel.load(Path(tmp))
            for name, cache in (("fp32", fp32), ("int8", int8)):
                vectors = cache(test) if model.needs_embeddings else None
                scores = model.decode(model.probabilities(test, vectors))
                qwk[name].append(
                    quadratic_weighted_kappa(labels[list(fold.test)], scores, record.max_score + 1)
                )
        f, q = float(np.mean(qwk["fp32"])), float(np.mean(qwk["int8"]))
        differences.append(q - f)
        print(
            f"| {item_id} | {len(examples)} | {f:.3f} | {q:.3f} | {q - f:+.3f} | "
            f"{cosine.min():.4f} |",
            flush=True,
        )
    interval = t_interval(differences)
    print(
        f"\nmean int8 - fp32 over {len(ids)} items: {interval.mean:+.4f} "
        f"[{interval.low:+.4f}, {interval.high:+.4f}]; largest |difference| on an item: "
        f"{max(abs(d) for d in differences):.3f}; load average at end: {os.getloadavg()[0]:.1f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
