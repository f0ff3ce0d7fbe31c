"""How much any order of 50 scored answers could gain over a random order (issue 16, target (a)).

Target (a) asks the suggested order to reach, after 50 scored answers, a held-out QWK at least
0.05 above a random order's. No order of 50 answers can plausibly teach the model more than ALL
the answers of the item's pool: this script measures, on the benchmark's own held-out splits
and random orders (:mod:`benchmarks.cold_start`: 30% held out per repeat, seeds 1000 + repeat
and 2000 + repeat), the held-out QWK of the few-answers model with the bank prior trained on

- the first 50 answers of the random order (the benchmark's ``random+bank`` at 50), and
- every answer of the pool (the ceiling),

and, with ``--record``, the suggested order's QWK at 50 from a benchmark run's ``.json``. The
gap "whole pool - random 50" per item is the most target (a) could get on that item.

    nice -n 19 .venv/bin/python benchmarks/cold_start_ceiling.py \\
        [--record benchmarks/issue16-cold-start.json] [--out benchmarks/issue16-ceiling.md]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cold_start import ItemData, build_items, holdout_split, load  # noqa: E402

from ml_core.cold_start import ColdStartConfig, decode, predict_probabilities  # noqa: E402
from ml_core.crossval import paired_comparison  # noqa: E402
from ml_core.metrics import quadratic_weighted_kappa  # noqa: E402

SIZE = 50
ROOT = Path(__file__).resolve().parents[1]


def held_out_qwk(item: ItemData, scored: np.ndarray, held: np.ndarray, seed: int) -> float:
    config = ColdStartConfig(seed=ColdStartConfig().seed + seed)
    probabilities = predict_probabilities(
        item.vectors, scored, item.labels[scored], item.num_labels, prior=item.prior,
        config=config,
    )  # fmt: skip
    predicted = decode(probabilities)
    return quadratic_weighted_kappa(item.labels[held], predicted[held], item.num_labels)


def ceiling(item: ItemData, repeats: int) -> dict[str, float]:
    """Mean over repeats of the held-out QWK with 50 random answers and with the whole pool."""
    random_50, whole, pool_sizes = [], [], []
    for repeat in range(repeats):
        pool, held = holdout_split(item.labels, seed=1000 + repeat)
        order = np.random.default_rng(2000 + repeat).permutation(pool)
        random_50.append(held_out_qwk(item, order[:SIZE], held, repeat))
        whole.append(held_out_qwk(item, pool, held, repeat))
        pool_sizes.append(len(pool))
    return {
        "random_50": float(np.mean(random_50)),
        "whole_pool": float(np.mean(whole)),
        "pool": float(np.mean(pool_sizes)),
    }


def suggested_at_50(record: Path | None) -> dict[str, float]:
    if record is None:
        return {}
    result = {}
    for raw in json.loads(record.read_text(encoding="utf-8")):
        runs = raw["held"]["suggested+bank"]
        values = [run[str(SIZE)] for run in runs if str(SIZE) in run]
        if values:
            result[raw["key"]] = float(np.mean(values))
    return result


def summary_row(label: str, rows: list[dict[str, object]]) -> str:
    whole = [float(r["whole_pool"]) for r in rows]
    random_50 = [float(r["random_50"]) for r in rows]
    test = paired_comparison(whole, random_50)
    room = sum(w - r >= 0.05 for w, r in zip(whole, random_50, strict=True))
    pools = sorted({int(r["pool"]) for r in rows})
    suggested = [float(r["suggested_50"]) for r in rows if r.get("suggested_50") is not None]
    shown = f"{np.mean(suggested):.3f}" if len(suggested) == len(rows) else "-"
    return (
        f"| {label} | {len(rows)} | {'/'.join(map(str, pools))} | {np.mean(random_50):.3f} | "
        f"{shown} | {np.mean(whole):.3f} | {test.mean_difference:+.3f} "
        f"[{test.ci_low:+.3f}, {test.ci_high:+.3f}] | {room} of {len(rows)} |"
    )


def report(rows: list[dict[str, object]], repeats: int, command: str) -> str:
    lines = [
        "# Issue 16: the ceiling of target (a) on SAF",
        "",
        f"Held-out QWK of the few-answers model with the bank prior, mean over {repeats} repeats "
        "(the benchmark's held-out splits and random orders): 50 answers in a random order, 50 "
        "in the suggested order (the record's run), and ALL the answers of the pool. 'Room': "
        "items where the whole pool is at least 0.05 above random 50 (the most target (a) "
        "could get there). Command:",
        "",
        f"    {command}",
        "",
        "| items | n | pool | random 50 | suggested 50 | whole pool | whole - random 50 [95% CI] "
        "| room >= 0.05 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for language in sorted({str(r["language"]) for r in rows}):
        lines.append(summary_row(language, [r for r in rows if r["language"] == language]))
    lines.append(summary_row("all", rows))
    lines += [
        "",
        "| item | pool | random 50 | suggested 50 | whole pool | whole - random 50 |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        suggested = r.get("suggested_50")
        shown = "-" if suggested is None else f"{suggested:.3f}"
        lines.append(
            f"| {r['key']} | {r['pool']:.0f} | {r['random_50']:.3f} | {shown} | "
            f"{r['whole_pool']:.3f} | {float(r['whole_pool']) - float(r['random_50']):+.3f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=Path("../shared/datasets/saf"))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--record", type=Path, help="a benchmark run's .json (suggested at 50)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/issue16-ceiling.md")
    args = parser.parse_args()
    bank, responses, cache = load(args.data)
    items = build_items(bank, responses, cache)
    suggested = suggested_at_50(args.record)
    rows: list[dict[str, object]] = []
    for key in sorted(items):
        row: dict[str, object] = {"key": key, "language": items[key].record.language}
        row.update(ceiling(items[key], args.repeats))
        row["suggested_50"] = suggested.get(key)
        rows.append(row)
    command = " ".join(
        ["nice -n 19 .venv/bin/python benchmarks/cold_start_ceiling.py", *sys.argv[1:]]
    )
    text = report(rows, args.repeats, command)
    args.out.write_text(text, encoding="utf-8")
    args.out.with_suffix(".json").write_text(json.dumps(rows, indent=1), encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
