"""Answer groups: time grouping 1,000 SAF answers of one item (``scoring_plugin.answer_groups``).

The largest SAF item has about 300 answers; the 1,000 answers are its answers repeated in order
(a class of 1,000 repeats answers too: exact and near copies are what groups are for). Prints
the time to build the vectors, to cluster, and in all, best and median of ``--repeat`` runs,
with the number and sizes of the groups. Figures hold for this machine and run only.

``--compare`` also groups the item's distinct answers with the encoder's vectors (the packaged
backbone's mean-pooled vectors, L2-normalised and stored as float16, as a scoring worker would
keep them) and prints the **purity of the groups against the human scores** for both vectors:
the share of answers in shared groups (size >= 2) whose human score is their group's majority
score, at each method's own cut and with both cut to the same number of groups. It also times
clustering 1,000 stored encoder vectors and embedding 1,000 answers (a worker's cost).

    .venv/bin/python benchmarks/grouping.py --responses ../shared/datasets/saf/responses.csv
    .venv/bin/python benchmarks/grouping.py --compare --encoder-distance 0.15
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
from scipy.cluster.hierarchy import fcluster, linkage  # noqa: E402

from scoring_plugin.answer_groups import (  # noqa: E402
    DEFAULT_DISTANCE,
    answer_vectors,
    group_indices,
)


def purity(groups: list[list[int]], scores: list[str]) -> tuple[float, int]:
    """Share of answers in groups of two or more whose score is their group's majority score;
    and how many answers are in such groups."""
    shared = [g for g in groups if len(g) >= 2]
    members = sum(len(g) for g in shared)
    agreeing = sum(Counter(scores[i] for i in g).most_common(1)[0][1] for g in shared)
    return (agreeing / members if members else float("nan")), members


def cut_to(similarity: np.ndarray, count: int) -> list[list[int]]:
    """Average-linkage groups cut to ``count`` groups."""
    n = similarity.shape[0]
    distances = np.clip(1.0 - similarity[np.triu_indices(n, k=1)], 0.0, 2.0)
    labels = fcluster(linkage(distances, method="average"), t=count, criterion="maxclust")
    out: dict[int, list[int]] = {}
    for index, label in enumerate(labels):
        out.setdefault(int(label), []).append(index)
    return list(out.values())


def similarity_of(vectors: object) -> np.ndarray:
    product = vectors @ vectors.T  # type: ignore[operator]
    return np.asarray(product.toarray() if hasattr(product, "toarray") else product)


def compare(texts: list[str], scores: list[str], args: argparse.Namespace) -> None:
    """Group purity against human scores: TF-IDF vectors vs the encoder's stored vectors."""
    from ml_core.embeddings import frozen_embedder

    embed = frozen_embedder(args.backbone or None)
    start = time.perf_counter()
    raw = embed(texts)
    embed_seconds = time.perf_counter() - start
    encoder = (raw / np.linalg.norm(raw, axis=1, keepdims=True)).astype(np.float16)
    stored = encoder.astype(np.float32)  # what a review page reads back
    tfidf = answer_vectors(texts)
    methods = {
        "TF-IDF": (tfidf, args.distance),
        "encoder": (stored, args.encoder_distance),
    }
    print(f"\n{len(texts)} distinct answers of the item, human scores {dict(Counter(scores))}")
    own: dict[str, list[list[int]]] = {}
    for name, (vectors, distance) in methods.items():
        own[name] = group_indices(vectors, distance)
        value, members = purity(own[name], scores)
        print(
            f"{name:8s} cut at {distance}: {len(own[name])} groups, {members} answers in shared "
            f"groups, purity {value:.3f}"
        )
    for count in sorted({len(g) for g in own.values()}):
        line = [f"both cut to {count} groups:"]
        for name, (vectors, _) in methods.items():
            value, members = purity(cut_to(similarity_of(vectors), count), scores)
            line.append(f"{name} purity {value:.3f} ({members} answers shared)")
        print(" ".join(line))
    repeated = np.stack([stored[i % len(texts)] for i in range(args.count)])
    times = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        group_indices(repeated, args.encoder_distance)
        times.append(time.perf_counter() - start)
    print(
        f"grouping {args.count} stored encoder vectors: best {min(times):.3f} s, median "
        f"{statistics.median(times):.3f} s; embedding the {len(texts)} answers once (a worker's "
        f"cost, not the page's): {embed_seconds:.2f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--responses", default="../shared/datasets/saf/responses.csv")
    parser.add_argument("--item", default="", help="item_id (default: the one with most answers)")
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--distance", type=float, default=DEFAULT_DISTANCE)
    parser.add_argument("--compare", action="store_true", help="TF-IDF vs encoder purity")
    parser.add_argument("--encoder-distance", type=float, default=0.15)
    parser.add_argument("--backbone", default="", help="default: the packaged backbone")
    args = parser.parse_args()

    with open(args.responses, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    item = args.item or Counter(r["item_id"] for r in rows).most_common(1)[0][0]
    texts = [r["text"] for r in rows if r["item_id"] == item]
    human = [r["score"] for r in rows if r["item_id"] == item]
    distinct, scores = texts[:], human[:]
    unique = len(texts)
    texts = [texts[i % unique] for i in range(args.count)]

    vector_times, cluster_times = [], []
    groups: list[list[int]] = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        vectors = answer_vectors(texts)
        middle = time.perf_counter()
        groups = group_indices(vectors, args.distance)
        end = time.perf_counter()
        vector_times.append(middle - start)
        cluster_times.append(end - middle)
    totals = [v + c for v, c in zip(vector_times, cluster_times, strict=True)]
    print(f"item {item}: {len(texts)} answers ({unique} distinct SAF answers, repeated)")
    print(
        f"vectors (TF-IDF): best {min(vector_times):.3f} s, median {statistics.median(vector_times):.3f} s"
    )
    print(
        f"clustering:       best {min(cluster_times):.3f} s, median {statistics.median(cluster_times):.3f} s"
    )
    print(f"grouping in all:  best {min(totals):.3f} s, median {statistics.median(totals):.3f} s")
    sizes = sorted((len(g) for g in groups), reverse=True)
    print(f"{len(groups)} groups at cosine distance {args.distance}; largest {sizes[:10]}")
    if args.compare:
        compare(distinct, scores, args)


if __name__ == "__main__":
    main()
