"""Analytic rubrics on SAF (issue 16): synthetic analytic items built from SAF items.

Each chosen SAF item becomes an analytic item with two criteria derived from its score
(``content`` = min(score, ceil(max/2)), ``completeness`` = score - content), written in the
documented CSV layout (``criterion:<name>`` in items.csv, ``score:<name>`` in responses.csv) and
read back through ``ml_core.data``. A ``head`` model with one head per criterion and a holistic
``head`` model train on the same answers and split; the test split gives exact match (every
criterion right), per-criterion accuracy and QWK, and the total's QWK of both models.

    .venv/bin/python benchmarks/analytic_rubric.py [--data ../shared/datasets/saf]
        [--items saf-de-1,saf-en-10.1_TC] [--out benchmarks/issue16-analytic]
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ml_core.data import ItemRecord, read_items_csv, read_responses_csv  # noqa: E402
from ml_core.evaluation import predict_artifact  # noqa: E402
from ml_core.metrics import quadratic_weighted_kappa  # noqa: E402
from ml_core.training import TrainConfig, TrainExample, train_item  # noqa: E402

CRITERIA = ("content", "completeness")


def criterion_maxima(max_score: int) -> tuple[int, int]:
    content = math.ceil(max_score / 2)
    return content, max_score - content


def write_analytic_bank(data: Path, keys: list[str], folder: Path) -> None:
    """The chosen SAF items and their answers as analytic items in the documented layout."""
    bank = {i.item_id: i for i in read_items_csv(data / "items.csv")}
    with (folder / "items.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["item_id", "language", "prompt", "reference_answer", "max_score",
                         *(f"criterion:{c}" for c in CRITERIA)])  # fmt: skip
        for key in keys:
            item = bank[key]
            writer.writerow([key, item.language, item.prompt, item.reference_answer,
                             item.max_score, *criterion_maxima(item.max_score)])  # fmt: skip
    with (folder / "responses.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["item_id", "response_id", "text", "score", "split",
                         *(f"score:{c}" for c in CRITERIA)])  # fmt: skip
        for r in read_responses_csv(data / "responses.csv", bank):
            if r.item_id in keys:
                content = min(r.score, criterion_maxima(bank[r.item_id].max_score)[0])
                writer.writerow([r.item_id, r.response_id, r.text, r.score, r.split,
                                 content, r.score - content])  # fmt: skip


def evaluate_item(item: ItemRecord, examples: list[TrainExample], work: Path) -> dict[str, float]:
    """Train the analytic and the holistic head on the same split; their test figures."""
    maxima = [c.max_score for c in item.criteria]
    started = time.perf_counter()
    analytic = train_item(examples, item_id=item.item_id, num_labels=[m + 1 for m in maxima],
                          criteria=[c.name for c in item.criteria], out_dir=work / "analytic",
                          config=TrainConfig(kind="head"))  # fmt: skip
    seconds = time.perf_counter() - started
    totals = [TrainExample(e.text, e.label, e.split) for e in examples]
    holistic = train_item(totals, item_id=item.item_id, num_labels=item.max_score + 1,
                          out_dir=work / "holistic", config=TrainConfig(kind="head"))  # fmt: skip
    test = [e for e in examples if e.split == "test"]
    truth = [e.label for e in test]
    per_criterion = predict_artifact(analytic.path, [e.text for e in test])
    holistic_pred = predict_artifact(holistic.path, [e.text for e in test])[:, 0]
    figures = {k: float(v) for k, v in analytic.metrics.items() if "/" in k or k == "exact_match"}
    figures.update(
        n_test=float(len(test)),
        total_qwk_analytic=quadratic_weighted_kappa(
            truth, per_criterion.sum(axis=1), item.max_score + 1
        ),
        total_qwk_holistic=quadratic_weighted_kappa(truth, holistic_pred, item.max_score + 1),
        train_seconds_analytic=seconds,
    )
    return figures


def markdown(results: dict[str, dict[str, float]]) -> str:
    lines = [
        "# Issue 16: analytic rubrics on synthetic SAF items",
        "",
        "Two criteria derived from each SAF item's score: content = min(score, ceil(max/2)), "
        "completeness = score - content; `head` (one head per criterion) vs a holistic `head` "
        "on the same answers, SAF's test split (`benchmarks/analytic_rubric.py`).",
        "",
        "| item | test answers | exact match | accuracy content | QWK content | "
        "accuracy completeness | QWK completeness | total QWK analytic | total QWK holistic |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for key, f in results.items():
        lines.append(
            f"| {key} | {f['n_test']:.0f} | {f['exact_match']:.3f} | {f['accuracy/content']:.3f}"
            f" | {f['qwk/content']:.3f} | {f['accuracy/completeness']:.3f}"
            f" | {f['qwk/completeness']:.3f} | {f['total_qwk_analytic']:.3f}"
            f" | {f['total_qwk_holistic']:.3f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=Path("../shared/datasets/saf"))
    parser.add_argument("--items", default="saf-de-1,saf-en-10.1_TC")
    parser.add_argument("--out", type=Path, default=None, help="write <out>.md and <out>.json")
    args = parser.parse_args()
    keys = args.items.split(",")
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write_analytic_bank(args.data, keys, folder)
        bank = {i.item_id: i for i in read_items_csv(folder / "items.csv")}
        responses = read_responses_csv(folder / "responses.csv", bank)
        for key in keys:
            examples = [
                TrainExample(r.text, r.score, r.split, tuple(s for _, s in r.criteria))
                for r in responses
                if r.item_id == key
            ]
            results[key] = evaluate_item(bank[key], examples, folder / key)
            print(json.dumps({key: results[key]}, indent=1), flush=True)
    report = markdown(results)
    print(report)
    if args.out is not None:
        args.out.with_suffix(".md").write_text(report)
        args.out.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
