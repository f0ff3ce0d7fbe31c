"""Simulated cold start on SAF (issue 16): every item starts from 0 scored answers.

For each item and repeat, a stratified 30% of its answers is held out (fixed for the repeat);
the rest is the pool an instructor would score. Four conditions score the pool in batches
(5 answers up to 50, then 10), the human scores of the data standing in for the instructor:

- ``suggested+bank``: :func:`ml_core.cold_start.suggest_batch` picks each batch; the model is
  the item's own model blended with the bank prior (reference answer + prompt features, fitted
  on the OTHER 29 items: leave-one-item-out);
- ``random+bank``: the same model, answers scored in a random order;
- ``suggested`` / ``random``: the item's own model only (no reference answer, no other items).

After every batch the model is refitted and scored (QWK) on the held-out answers, and on the
pool's answers not yet scored. The learning curve (:func:`ml_core.cold_start.learning_curve`)
is computed on the ``suggested+bank`` answers scored at ``--estimate-at``; its "answers needed"
for the item's target (95% of the held-out QWK the same condition reaches with the whole pool,
mean over repeats) is compared with the first size at which the mean held-out QWK curve reaches
that target.

    nice -n 10 .venv/bin/python benchmarks/cold_start.py [--data ../shared/datasets/saf] \\
        [--repeats 5] [--items saf-en-10.1_TC,...] [--out benchmarks/issue16-cold-start.md]

Vectors are cached under ``var/cold-start/embeddings`` (one backbone pass over SAF, once).
Writes the Markdown report and ``docs/cold-start-curve-<language>.svg``; prints the report.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # tiny matrices: more threads only contend
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import multiprocessing  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ml_core.backbone import backbone_fingerprint  # noqa: E402
from ml_core.cold_start import (  # noqa: E402
    BankPrior,
    ColdStartConfig,
    decode,
    fit_power_law,
    learning_curve,
    normalise_rows,
    predict_probabilities,
    reference_features,
    suggest_batch,
)
from ml_core.crossval import paired_comparison  # noqa: E402
from ml_core.data import ItemRecord, ResponseRecord, read_items_csv, read_responses_csv  # noqa: E402
from ml_core.embeddings import EmbeddingCache, frozen_embedder  # noqa: E402
from ml_core.metrics import quadratic_weighted_kappa  # noqa: E402

CONDITIONS = ("suggested+bank", "random+bank", "suggested", "random")
REPORT_SIZES = (10, 25, 50, 100)
CURVE_WITH_PRIOR = True  # the curve of the model the instructor gets (as the plugin computes it)
ROOT = Path(__file__).resolve().parents[1]
CEILING_NOTE = (
    "How much any order of 50 answers could gain over a random one (the held-out QWK with the "
    "whole pool scored): `benchmarks/issue16-ceiling.md` (`benchmarks/cold_start_ceiling.py`)."
)


@dataclass
class ItemData:
    record: ItemRecord
    vectors: np.ndarray
    labels: np.ndarray
    prior: np.ndarray  # [n, K] from the leave-one-item-out bank prior
    features: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0))

    @property
    def num_labels(self) -> int:
        return self.record.max_score + 1


def load(data: Path) -> tuple[dict[str, ItemRecord], list[ResponseRecord], EmbeddingCache]:
    bank = {i.item_id: i for i in read_items_csv(data / "items.csv")}
    responses = read_responses_csv(data / "responses.csv", bank)
    texts = sorted(
        {r.text for r in responses}
        | {i.reference_answer for i in bank.values()}
        | {i.prompt for i in bank.values()}
    )
    folder = ROOT / "var/cold-start/embeddings" / f"{backbone_fingerprint(None)[:16]}-mean"
    cache = EmbeddingCache(None, folder)
    try:
        cache.preload(texts)
    except KeyError:  # first run: one backbone pass, kept on disk
        cache = EmbeddingCache(frozen_embedder(None, "mean", 2), folder)
        cache.preload(texts)
    return bank, responses, cache


def build_items(
    bank: dict[str, ItemRecord], responses: list[ResponseRecord], cache: EmbeddingCache
) -> dict[str, ItemData]:
    by_item: dict[str, list[ResponseRecord]] = {}
    for r in responses:
        by_item.setdefault(r.item_id, []).append(r)
    features: dict[str, np.ndarray] = {}
    for key, rows in by_item.items():
        record = bank[key]
        features[key] = reference_features(
            [r.text for r in rows],
            cache([r.text for r in rows]),
            [record.reference_answer],
            cache([record.reference_answer]),
            cache([record.prompt])[0],
        )
    items: dict[str, ItemData] = {}
    for key, rows in by_item.items():
        record = bank[key]
        others = [k for k in by_item if k != key]
        x = np.vstack([features[k] for k in others])
        y = np.concatenate(
            [np.array([r.score / bank[k].max_score for r in by_item[k]]) for k in others]
        )
        prior = BankPrior().fit(x, y)
        items[key] = ItemData(
            record=record,
            vectors=normalise_rows(cache([r.text for r in rows])),
            labels=np.array([r.score for r in rows], dtype=np.int64),
            prior=prior.class_probabilities(features[key], record.max_score + 1),
            features=features[key],
        )
    return items


def holdout_split(
    labels: np.ndarray, seed: int, share: float = 0.3
) -> tuple[np.ndarray, np.ndarray]:
    """(pool, held-out) positions, stratified by score."""
    rng = np.random.default_rng(seed)
    held: list[int] = []
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        held.extend(members[: int(round(share * len(members)))].tolist())
    mask = np.zeros(len(labels), dtype=bool)
    mask[held] = True
    return np.flatnonzero(~mask), np.flatnonzero(mask)


def checkpoints(pool_size: int, cap: int) -> list[int]:
    sizes = list(range(0, 51, 5)) + list(range(60, cap + 1, 10))
    return [s for s in sizes if s <= min(pool_size, cap)]


def simulate(
    item: ItemData, condition: str, repeat: int, cap: int, config: ColdStartConfig
) -> tuple[dict[int, float], dict[int, float], list[int]]:
    """Held-out QWK and not-yet-scored QWK per checkpoint, and the scoring order."""
    pool, held = holdout_split(item.labels, seed=1000 + repeat)
    prior = item.prior if condition.endswith("+bank") else None
    rng = np.random.default_rng(2000 + repeat)
    random_order = rng.permutation(pool).tolist()
    order: list[int] = []
    held_qwk: dict[int, float] = {}
    rest_qwk: dict[int, float] = {}
    sizes = checkpoints(len(pool), cap)
    run_config = ColdStartConfig(**{**config.__dict__, "seed": config.seed + repeat})
    for position, size in enumerate(sizes):
        y = item.labels[order]
        probabilities = predict_probabilities(
            item.vectors, order, y, item.num_labels, prior=prior, config=run_config
        )
        predicted = decode(probabilities)
        held_qwk[size] = quadratic_weighted_kappa(
            item.labels[held], predicted[held], item.num_labels
        )
        rest = np.setdiff1d(pool, order)
        if len(rest):
            rest_qwk[size] = quadratic_weighted_kappa(
                item.labels[rest], predicted[rest], item.num_labels
            )
        if position + 1 == len(sizes):
            break
        batch = sizes[position + 1] - size
        if condition.startswith("suggested"):
            order += suggest_batch(
                item.vectors, order, y, item.num_labels, batch,
                prior=prior, config=run_config, candidates=pool.tolist(),
                probabilities=probabilities,
            )  # fmt: skip
        else:
            order += random_order[size : size + batch]
    return held_qwk, rest_qwk, order


def actually_needed(curve: dict[int, float], target: float) -> int | None:
    """The first checkpoint (>= 5 scored answers) where the mean held-out curve, smoothed over
    that checkpoint and its neighbours, reaches ``target``; None: not within the pool."""
    sizes = sorted(curve)
    values = np.array([curve[s] for s in sizes])
    for i, size in enumerate(sizes):
        if size >= 5 and values[max(i - 1, 0) : i + 2].mean() >= target:
            return size
    return None


@dataclass
class ItemResult:
    key: str
    language: str
    held: dict[str, list[dict[int, float]]] = field(default_factory=dict)
    rest: dict[str, list[dict[int, float]]] = field(default_factory=dict)
    orders: list[list[int]] = field(default_factory=list)
    target: float = 0.0
    actual: int | None = None
    estimates: list[float | None] = field(default_factory=list)
    intervals: list[tuple[float | None, float | None]] = field(default_factory=list)

    def mean_curve(self, condition: str, which: str = "held") -> dict[int, float]:
        runs = (self.held if which == "held" else self.rest)[condition]
        sizes = sorted(set.intersection(*(set(r) for r in runs)))
        return {s: float(np.mean([r[s] for r in runs])) for s in sizes}


def estimate(
    result: ItemResult,
    item: ItemData,
    estimate_at: int,
    config: ColdStartConfig,
    prior: bool,
    exponent: float | None = None,
) -> None:
    """The curve's "answers needed" after ``estimate_at`` suggested answers, per repeat
    (``exponent``: the curve's exponent fixed to it, e.g. :func:`bank_exponents`)."""
    result.estimates, result.intervals = [], []
    for repeat, order in enumerate(result.orders):
        scored = order[:estimate_at]
        # the interval (bootstrap) of the first repeat only: it is the slow part (every repeat
        # when the estimate itself needs it)
        needs_bootstrap = (
            config.curve_point_weight == "inverse_variance"
            or config.curve_estimate == "bootstrap_median"
        )
        curve_config = ColdStartConfig(
            **{
                **config.__dict__,
                "curve_bootstrap": 0 if repeat and not needs_bootstrap else 100,
                "curve_exponent": exponent if exponent is not None else config.curve_exponent,
            }
        )
        curve = learning_curve(
            item.vectors, scored, item.labels[scored], item.num_labels, result.target,
            prior=item.prior if prior else None, config=curve_config,
        )  # fmt: skip
        result.estimates.append(curve.needed)
        result.intervals.append((curve.needed_low, curve.needed_high))


def load_results(path: Path) -> list[ItemResult]:
    """The simulations a previous run saved (``--reuse``): only the estimates are redone."""
    results = []
    for raw in json.loads(path.read_text(encoding="utf-8")):
        result = ItemResult(raw["key"], raw["language"], orders=raw["orders"])
        for name in ("held", "rest"):
            getattr(result, name).update(
                {
                    c: [{int(k): v for k, v in run.items()} for run in runs]
                    for c, runs in raw[name].items()
                }
            )
        results.append(result)
    return results


def set_target(result: ItemResult, target: float) -> None:
    result.target = target
    result.actual = actually_needed(result.mean_curve(CONDITIONS[0]), target)


def run_item(
    item: ItemData,
    repeats: int,
    cap: int,
    estimate_at: int,
    config: ColdStartConfig,
    target: float,
) -> ItemResult:
    result = ItemResult(item.record.item_id, item.record.language)
    for condition in CONDITIONS:
        result.held[condition], result.rest[condition] = [], []
        for repeat in range(repeats):
            held, rest, order = simulate(item, condition, repeat, cap, config)
            result.held[condition].append(held)
            result.rest[condition].append(rest)
            if condition == CONDITIONS[0]:
                result.orders.append(order)
    set_target(result, target)
    estimate(result, item, estimate_at, config, prior=CURVE_WITH_PRIOR)
    return result


def bank_exponents(results: list[ItemResult]) -> dict[str, float]:
    """Per item, a prior for its curve's shape from the OTHER items of the bank: the median
    exponent ``c`` of the power law fitted to their mean held-out curves (suggested+bank, from
    5 scored answers on), as a bank whose items have many scored answers would know it."""
    own: dict[str, float] = {}
    for result in results:
        curve = result.mean_curve(CONDITIONS[0])
        sizes = [s for s in sorted(curve) if s >= 5]
        params = fit_power_law(sizes, [curve[s] for s in sizes])
        if params is not None:
            own[result.key] = params[2]
    return {r.key: float(np.median([c for key, c in own.items() if key != r.key])) for r in results}


def _estimate_job(
    job: tuple[ItemResult, ItemData, int, ColdStartConfig, float, float | None],
) -> ItemResult:
    result, item, estimate_at, config, target, exponent = job
    set_target(result, target)
    estimate(result, item, estimate_at, config, CURVE_WITH_PRIOR, exponent)
    return result


def _run_item_job(job: tuple[ItemData, int, int, int, ColdStartConfig, float]) -> ItemResult:
    return run_item(*job)


def _at(result: ItemResult, condition: str, size: int, which: str = "held") -> float | None:
    return result.mean_curve(condition, which).get(size)


def _comparison_row(
    label: str, results: list[ItemResult], a: str, b: str, size: int, which: str = "held"
) -> str:
    pairs = [(_at(r, a, size, which), _at(r, b, size, which)) for r in results]
    kept = [(x, y) for x, y in pairs if x is not None and y is not None]
    if len(kept) < 2:
        return f"| {label} | {size} | - | - | - | - | - |"
    first, second = [x for x, _ in kept], [y for _, y in kept]
    test = paired_comparison(first, second)
    return (
        f"| {label} | {size} | {len(kept)} | {np.mean(first):.3f} | {np.mean(second):.3f} | "
        f"{test.mean_difference:+.3f} [{test.ci_low:+.3f}, {test.ci_high:+.3f}] | "
        f"{test.wins}/{test.losses} (t p={test.t_p_value:.3f}) |"
    )


def _judge(result: ItemResult, estimate: float | None, limit: int) -> tuple[bool, str]:
    """Whether the estimate is right (within 30%, or both say: not within the data)."""
    if result.actual is None:
        right = estimate is None or estimate > limit
        return right, "both: not within the data" if right else "target never reached"
    if estimate is None or estimate > limit:
        return False, "said not within the data"
    relative = abs(estimate - result.actual) / result.actual
    return relative <= 0.3, f"{100 * relative:.0f}%"


def estimate_rows(results: list[ItemResult], estimate_at: int) -> tuple[list[str], str]:
    lines = [
        "| item | target QWK | actually needed | estimated (median of repeats) | "
        "10-90% (first repeat) | error |",
        "|---|---|---|---|---|---|",
    ]
    right = unreached = said_never = 0
    errors: list[float] = []  # relative, over the items that reached the target
    for r in results:
        limit = max(r.mean_curve(CONDITIONS[0]))
        finite = [e for e in r.estimates if e is not None and e <= limit]
        estimate = float(np.median(finite)) if len(finite) > len(r.estimates) / 2 else None
        low, high = r.intervals[0]
        span = "-" if low is None or high is None else f"{low:.0f}-{high:.0f}"
        good, error = _judge(r, estimate, limit)
        if r.actual is not None:
            reached = estimate is not None and estimate <= limit
            errors.append(abs(estimate - r.actual) / r.actual if reached else 1.0)  # type: ignore[operator]
        right += good
        unreached += r.actual is None
        said_never += estimate is None
        shown = f"not within {limit}" if estimate is None else f"{estimate:.0f}"
        actual = f"not within {limit}" if r.actual is None else str(r.actual)
        lines.append(f"| {r.key} | {r.target:.2f} | {actual} | {shown} | {span} | {error} |")
    summary = (
        f"Estimate made after {estimate_at} suggested answers. Right (within 30% of what was "
        f"actually needed, or both saying the target is not within the data): {right} of "
        f"{len(results)} items. {unreached} item(s) never reached the target within the data; "
        f"the estimate said 'not within the data' for {said_never}. Median relative error "
        f"over the {len(errors)} items that reached it: "
        f"{100 * float(np.median(errors)) if errors else float('nan'):.0f}% (an estimate 'not "
        "within the data' counts as 100%)."
    )
    return lines, summary


COLOURS = {"suggested+bank": "#1b6ca8", "random+bank": "#7fb3d5", "suggested": "#c0392b",
           "random": "#f1948a"}  # fmt: skip


def svg_curves(language: str, results: list[ItemResult], path: Path) -> None:
    """Mean held-out QWK over the language's items against scored answers, one line each."""
    width, height, left, bottom, top, right = 640, 400, 60, 50, 30, 170
    curves = {}
    for condition in CONDITIONS:
        per_item = [r.mean_curve(condition) for r in results]
        sizes = sorted(set.intersection(*(set(c) for c in per_item)))
        curves[condition] = [(s, float(np.mean([c[s] for c in per_item]))) for s in sizes]
    x_max = max(s for points in curves.values() for s, _ in points) or 1
    low = min(0.0, min(q for points in curves.values() for _, q in points))

    def x(size: float) -> float:
        return left + (width - left - right) * size / x_max

    def y(qwk: float) -> float:
        return top + (height - top - bottom) * (1 - (qwk - low) / (1 - low))

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'font-family="sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{left}" y="18">SAF {language}: held-out QWK against scored answers '
        f"(mean of {len(results)} items x repeats)</text>",
    ]
    for tick in np.linspace(low, 1.0, 6):
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y(tick):.1f}" '
                     f'y2="{y(tick):.1f}" stroke="#ddd"/>')  # fmt: skip
        parts.append(
            f'<text x="{left - 8}" y="{y(tick) + 4:.1f}" text-anchor="end">{tick:.1f}</text>'
        )
    for tick in range(0, x_max + 1, 25 if x_max <= 100 else 50):
        parts.append(
            f'<text x="{x(tick):.1f}" y="{height - bottom + 18}" text-anchor="middle">{tick}</text>'
        )
    parts.append(f'<text x="{(left + width - right) / 2}" y="{height - 10}" '
                 f'text-anchor="middle">scored answers</text>')  # fmt: skip
    for row, (condition, points) in enumerate(curves.items()):
        line = " ".join(f"{x(s):.1f},{y(q):.1f}" for s, q in points)
        colour = COLOURS[condition]
        parts.append(f'<polyline points="{line}" fill="none" stroke="{colour}" stroke-width="2"/>')
        legend_y = top + 20 * row + 10
        parts.append(f'<line x1="{width - right + 10}" x2="{width - right + 30}" y1="{legend_y}" '
                     f'y2="{legend_y}" stroke="{colour}" stroke-width="2"/>')  # fmt: skip
        parts.append(f'<text x="{width - right + 35}" y="{legend_y + 4}">{condition}</text>')
    parts.append("</svg>")
    path.write_text("\n".join(parts) + "\n", encoding="utf-8")


def report(results: list[ItemResult], args: argparse.Namespace, seconds: float) -> str:
    lines = [
        "# Issue 16: cold start on SAF (simulated)",
        "",
        f"{len(results)} items, {args.repeats} repeats, 30% of each item held out per repeat; "
        f"batches of 5 up to 50 scored answers, then 10 (up to {args.cap}). QWK is the mean over "
        "repeats per item, then compared over items (paired: mean difference with 95% t "
        "interval, items better/worse). Command:",
        "",
        "    " + " ".join(["nice -n 10 .venv/bin/python benchmarks/cold_start.py", *sys.argv[1:]]),
        "",
        f"Run time {seconds / 60:.1f} min (load average at the end {os.getloadavg()[0]:.1f}).",
        "",
        "## Suggested order against a random order (held-out QWK)",
        "",
        "| model | scored | items | suggested | random | difference [95% CI] | better/worse |",
        "|---|---|---|---|---|---|---|",
    ]
    for size in (10, 25, 50):
        lines.append(_comparison_row("bank prior", results, "suggested+bank", "random+bank", size))
        lines.append(_comparison_row("own model only", results, "suggested", "random", size))
    lines += [
        "",
        "On the pool's answers not yet scored (what the model would score for this class):",
        "",
        "| model | scored | items | suggested | random | difference [95% CI] | better/worse |",
        "|---|---|---|---|---|---|---|",
    ]
    for size in (25, 50):
        lines.append(
            _comparison_row("bank prior", results, "suggested+bank", "random+bank", size, "rest")
        )
    lines += [
        "",
        CEILING_NOTE,
        "",
        "## Reference answer and other items against the item's own answers only",
        "",
        "Held-out QWK, random order (and suggested order). 100 scored answers: German items only "
        "(the English ones have 96 answers, 67 in the pool).",
        "",
        "| order | scored | items | with bank prior | own only | difference [95% CI] | better/worse |",
        "|---|---|---|---|---|---|---|",
    ]
    for size in (0, *REPORT_SIZES):
        lines.append(_comparison_row("random", results, "random+bank", "random", size))
    for size in REPORT_SIZES:
        lines.append(_comparison_row("suggested", results, "suggested+bank", "suggested", size))
    rows, summary = estimate_rows(results, args.estimate_at)
    lines += [
        "",
        "## Answers needed: the learning curve's estimate against what was needed",
        "",
        f"Target: QWK {args.target} for every item (the plugin's default target). 'Actually "
        "needed': the first checkpoint (>= 5) where the mean held-out curve of suggested+bank "
        "(5 repeats), smoothed over the checkpoint and its neighbours, reaches the target; "
        "'not within N': it never does up to the N answers simulated. The estimate: "
        ":func:`ml_core.cold_start.learning_curve` on the first "
        f"{args.estimate_at} suggested answers with the bank prior, as the plugin computes it "
        "(inverse power law fitted to the pooled out-of-fold QWK, each point weighted by its "
        "training size; 'not within N' when it "
        "levels off below the target or passes it only beyond N; median over repeats; the "
        "interval from bootstrap resamples of the scored answers).",
        "",
        summary,
        "",
        *rows,
        "",
        "Plots: "
        + ", ".join(
            f"`docs/cold-start-curve-{lang}.svg`" for lang in sorted({r.language for r in results})
        ),
        "",
    ]
    return "\n".join(lines)


def _override(text: str) -> tuple[str, object]:
    """``FIELD=VALUE`` of ``--set``, the value converted to the field's default's type."""
    name, _, raw = text.partition("=")
    defaults = ColdStartConfig().__dict__
    if name not in defaults:
        raise SystemExit(f"--set: no ColdStartConfig field {name!r}")
    default = defaults[name]
    if isinstance(default, str):
        return name, raw
    if raw.lower() == "none":
        return name, None
    if isinstance(default, bool):
        return name, raw.lower() in ("1", "true", "yes")
    if isinstance(default, (int, float)) and not isinstance(default, bool):
        return name, type(default)(raw)
    if default is None:  # an optional number (curve_exponent, coverage_from)
        return name, float(raw) if "." in raw else int(raw)
    return name, raw


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=Path("../shared/datasets/saf"))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--items", default="", help="comma-separated item ids (default: all)")
    parser.add_argument("--cap", type=int, default=100, help="largest number of scored answers")
    parser.add_argument("--estimate-at", type=int, default=30)
    parser.add_argument("--target", type=float, default=0.7, help="the items' target QWK")
    parser.add_argument("--jobs", type=int, default=1, help="items simulated in parallel")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/issue16-cold-start.md")
    parser.add_argument("--plots", type=Path, default=ROOT / "docs")
    parser.add_argument(
        "--reuse", type=Path, help="a previous run's .json: redo only the answers-needed estimates"
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="a ColdStartConfig field for this run (repeatable), e.g. curve_point_weight=sqrt",
    )
    parser.add_argument(
        "--bank-exponent",
        action="store_true",
        help="with --reuse: each item's curve exponent fixed to the median of the other items' "
        "held-out curves (a bank prior for the curve's shape)",
    )
    args = parser.parse_args()
    started = time.perf_counter()
    bank, responses, cache = load(args.data)
    items = build_items(bank, responses, cache)
    chosen = [k for k in args.items.split(",") if k] or sorted(items)
    config = ColdStartConfig(**dict(_override(field) for field in args.set))
    results = []
    if args.reuse:
        loaded = [r for r in load_results(args.reuse) if r.key in chosen]
        exponents = bank_exponents(loaded) if args.bank_exponent else {}
        redo = [
            (r, items[r.key], args.estimate_at, config, args.target, exponents.get(r.key))
            for r in loaded
        ]
        with multiprocessing.Pool(args.jobs) as pool:
            results = pool.map(_estimate_job, redo)
    else:
        jobs = [
            (items[key], args.repeats, args.cap, args.estimate_at, config, args.target)
            for key in chosen
        ]
        with multiprocessing.Pool(args.jobs) as pool:
            for result in pool.imap(_run_item_job, jobs):
                results.append(result)
                print(f"{result.key}: done after {time.perf_counter() - started:.0f} s",
                      file=sys.stderr)  # fmt: skip
    args.plots.mkdir(parents=True, exist_ok=True)  # a missing folder must not lose the run
    for language in sorted({r.language for r in results}):
        svg_curves(language, [r for r in results if r.language == language],
                   args.plots / f"cold-start-curve-{language}.svg")  # fmt: skip
    text = report(results, args, time.perf_counter() - started)
    args.out.write_text(text, encoding="utf-8")
    raw = args.out.with_suffix(".json")
    raw.write_text(
        json.dumps([r.__dict__ for r in results], default=str, indent=1), encoding="utf-8"
    )
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
