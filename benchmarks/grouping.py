"""Answer groups: time grouping 1,000 SAF answers of one item (``scoring_plugin.answer_groups``).

The largest SAF item has about 300 answers; the 1,000 answers are its answers repeated in order
(a class of 1,000 repeats answers too: exact and near copies are what groups are for). Prints
the time to build the vectors, to cluster, and in all, best and median of ``--repeat`` runs,
with the number and sizes of the groups. Figures hold for this machine and run only.

    .venv/bin/python benchmarks/grouping.py --responses ../shared/datasets/saf/responses.csv
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

from scoring_plugin.answer_groups import (  # noqa: E402
    DEFAULT_DISTANCE,
    answer_vectors,
    group_indices,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--responses", default="../shared/datasets/saf/responses.csv")
    parser.add_argument("--item", default="", help="item_id (default: the one with most answers)")
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--distance", type=float, default=DEFAULT_DISTANCE)
    args = parser.parse_args()

    with open(args.responses, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    item = args.item or Counter(r["item_id"] for r in rows).most_common(1)[0][0]
    texts = [r["text"] for r in rows if r["item_id"] == item]
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


if __name__ == "__main__":
    main()
