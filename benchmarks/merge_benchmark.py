"""Merging per-item models guided by GW distance (GW-SMM) vs unmerged models and baseline plans.

For the chosen items: train one model per item (``--kind full`` or ``lora``), or reuse the ones in
``--models-dir``; then run the merge job the training worker runs
(:func:`ml_core.merge.job.run_merge_job`: the GW plan, trios by default, merged with TIES by
default, heads re-fitted), asked also to merge every other planner's plan and ``--random-plans``
random plans, the GW plan with the other ``--methods`` (and ``--fp16-run``), and to count the
cross-validated head accuracy (``--cv-folds``). The benchmark adds the unmerged models with
re-fitted heads, the selection signals, the GW timing on 30 synthetic items and a check that a
written group folder serves what was evaluated, and compares them on the test answers.

Planners (:mod:`ml_core.merge.planners`): ``gw`` (GW on each item's own features,
max-normalized intra-set distances: the research method), ``gw-mean`` (mean-normalized,
scale-free), ``gw-labels`` (label-aware GW: the intra-set cost mixes feature and score
differences), ``gw-pretrained`` (GW on pretrained-backbone features), ``centroid_cosine`` (own
features) and ``centroid-pretrained`` (one shared space).
``val-select`` is the structured plan whose merged models score best on the *validation* answers,
``cv-select`` the one whose re-fitted heads score best in k-fold cross-validation on the training
answers (many more answers than validation); their test figures are reported like the others (the
test answers choose nothing). The report also gives, over all plans, the rank correlation of each
selection signal (validation, cross-validation, low GW cost) with the test result.

Writes ``report.json`` and ``report.md`` to ``--out``; the job's folder ``--out/job`` gets the
heatmaps, ``plan.json``, the GW plan's groups (``groups/``) and every other run's (``merged/``).

    # 30 SAF items, trained once into a reusable folder, on a GPU if torch sees one
    .venv/bin/python benchmarks/merge_benchmark.py \
        --responses ../shared/datasets/saf/responses.csv --items ../shared/datasets/saf/items.csv \
        --out var/merge-bench-30 --models-dir var/merge-models/full --kind full --device auto \
        --random-plans 10
    # the same models, groups of six: add --group-size 6 --out var/merge-bench-30-g6
    # (train only: --train-only; results of record: docs/decisions/0005-*.md)

``--models-dir`` holds one artifact folder per item (``<models-dir>/<item_id>/manifest.json``
plus ``weights.safetensors``) and ``benchmark-data.json`` (the answer cap and seed they were
trained with: the splits are rebuilt from it, so a reuse with other data settings is refused).
Items missing there are trained into it; ``--train-only`` stops after training.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ml_core.artifact import load_artifact  # noqa: E402
from ml_core.data import ItemRecord, read_items_csv, read_responses_csv  # noqa: E402
from ml_core.merge.config import MergeConfig  # noqa: E402
from ml_core.merge.distances import cached_matrix  # noqa: E402
from ml_core.merge.group import GroupScorer  # noqa: E402
from ml_core.merge.job import MergeJobConfig, MergeJobReport, run_merge_job  # noqa: E402
from ml_core.merge.models import Encoder, item_state, weights_bytes  # noqa: E402
from ml_core.merge.pipeline import (  # noqa: E402
    ItemData,
    item_report,
    pooled_report,
    prepare_item,
    refit_own_heads,
)
from ml_core.merge.planners import PLANNERS  # noqa: E402
from ml_core.merge.runs import MergeRun  # noqa: E402
from ml_core.training import TrainConfig, TrainExample, fix_splits, train_item  # noqa: E402

STRUCTURED = tuple(PLANNERS)
DATA_FILE = "benchmark-data.json"


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--responses", type=Path, required=True)
    parser.add_argument("--items", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument(
        "--models-dir",
        type=Path,
        default=None,
        help="per-item artifacts to reuse (and to train missing ones into); "
        "default OUT/models/<kind>",
    )
    parser.add_argument(
        "--items-only", nargs="*", default=None, help="item ids to run (default: all)"
    )
    parser.add_argument("--kind", choices=("full", "lora"), default="full")
    parser.add_argument(
        "--device", default="auto", help="auto (cuda when torch sees a GPU) | cpu | cuda | cuda:N"
    )
    parser.add_argument(
        "--max-train-per-item", type=int, default=None, help="cap training answers per item"
    )
    parser.add_argument(
        "--epochs", type=int, default=None, help="training epochs (default: TrainConfig's)"
    )
    parser.add_argument(
        "--max-length", type=int, default=256, help="tokens per answer (train and score)"
    )
    parser.add_argument("--backbone", default=None)
    parser.add_argument("--group-size", type=int, default=3)
    parser.add_argument(
        "--methods",
        default=None,
        help="comma list run on the GW plan; default: average,task_arithmetic,ties (full) / "
        "svd,concat (lora)",
    )
    parser.add_argument(
        "--main-method",
        default=None,
        help="method used for every plan (default: ties / svd)",
    )
    parser.add_argument(
        "--random-plans", type=int, default=5, help="random plans (mean and std reported)"
    )
    parser.add_argument(
        "--feature-answers",
        type=int,
        default=64,
        help="training answers per item for the distances",
    )
    parser.add_argument(
        "--label-weight",
        type=float,
        default=0.5,
        help="weight of score differences in the gw-labels intra-set cost",
    )
    parser.add_argument(
        "--cv-folds",
        type=int,
        default=5,
        help="folds of the cross-validated head accuracy on training answers (0: off)",
    )
    parser.add_argument(
        "--fp16-run", action="store_true", help="also merge the GW plan with float16 shared weights"
    )
    parser.add_argument("--train-only", action="store_true", help="train the item models and stop")
    parser.add_argument("--seed", type=int, default=13)
    return parser.parse_args()


def _device(name: str) -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit(f"--device {name}: torch sees no GPU")
    return name


def _check_data_settings(models_dir: Path, args: argparse.Namespace) -> None:
    """Refuse to reuse models trained on other answers (their splits would not match)."""
    wanted = {"max_train_per_item": args.max_train_per_item, "seed": args.seed, "kind": args.kind}
    path = models_dir / DATA_FILE
    if path.is_file():
        found = json.loads(path.read_text())
        differs = {k: (found.get(k), v) for k, v in wanted.items() if found.get(k) != v}
        if differs:
            raise SystemExit(
                f"{models_dir} was trained with {found}; this run asks {wanted}. Use the same "
                "--max-train-per-item/--seed/--kind, or another --models-dir."
            )
    else:
        models_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({**wanted, "epochs": args.epochs}, indent=2) + "\n")


def _train_all(
    args: argparse.Namespace,
    models_dir: Path,
    chosen: Sequence[str],
    examples: dict[str, list[TrainExample]],
    max_scores: dict[str, int],
    device: str,
) -> dict[str, dict[str, float]]:
    info: dict[str, dict[str, float]] = {}
    for number, item_id in enumerate(chosen, 1):
        out_dir = models_dir / item_id
        if (out_dir / "manifest.json").is_file():
            info[item_id] = {"cached": 1.0}
            continue
        config = TrainConfig(
            kind=args.kind, seed=args.seed, max_length=args.max_length, device=device
        )
        if args.epochs:
            config.epochs = args.epochs
        started = time.perf_counter()
        result = train_item(
            examples[item_id],
            item_id=item_id,
            num_labels=max_scores[item_id] + 1,
            out_dir=out_dir,
            backbone=args.backbone,
            config=config,
        )
        info[item_id] = {
            "train_seconds": time.perf_counter() - started,
            "micro_f1": result.metrics.get("micro_f1", 0.0),
        }
        print(
            f"[train {number}/{len(chosen)}] {item_id}: {info[item_id]['train_seconds']:.0f}s "
            f"micro F1 {info[item_id]['micro_f1']:.3f}",
            flush=True,
        )
    return info


def _latency(
    encoder: Encoder,
    items: Sequence[ItemData],
    load_state: Callable[[ItemData], None],
    repeats: int = 3,
) -> float:
    """Seconds per answer to score every item's test answers (batched), best of ``repeats``."""
    best = float("inf")
    total = sum(len(item.split.test) for item in items)
    for _ in range(repeats):
        started = time.perf_counter()
        for item in items:
            load_state(item)
            encoder.encode([], token_ids=[item.token_ids[i] for i in item.split.test])
        best = min(best, time.perf_counter() - started)
    return best / max(1, total)


def _read_examples(
    args: argparse.Namespace,
) -> tuple[dict[str, ItemRecord], list[str], dict[str, list[TrainExample]]]:
    """The item bank, the chosen item ids and their answers with fixed splits."""
    item_bank = {item.item_id: item for item in read_items_csv(args.items)}
    responses = read_responses_csv(args.responses, item_bank)
    raw: dict[str, list[TrainExample]] = defaultdict(list)
    for response in responses:
        raw[response.item_id].append(TrainExample(response.text, response.score, response.split))
    chosen = list(args.items_only or sorted(raw))
    unknown = [i for i in chosen if i not in raw]
    if unknown:
        raise SystemExit(f"no answers for {unknown} in {args.responses}")
    examples = {item: fix_splits(raw[item], args.max_train_per_item, args.seed) for item in chosen}
    return item_bank, chosen, examples


def _load_items(
    args: argparse.Namespace,
    models_dir: Path,
    chosen: Sequence[str],
    examples: dict[str, list[TrainExample]],
    encoder: Encoder,
) -> list[ItemData]:
    items = []
    for item_id in chosen:
        artifact = load_artifact(models_dir / item_id)
        if artifact.kind != args.kind:
            raise SystemExit(f"{models_dir / item_id} is a {artifact.kind} model, not {args.kind}")
        items.append(prepare_item(artifact, examples[item_id], encoder))
    return items


def _methods(args: argparse.Namespace) -> tuple[list[str], str]:
    """The merge methods to run and the one used for every plan."""
    full = args.kind == "full"
    methods = (
        args.methods.split(",")
        if args.methods
        else (["average", "task_arithmetic", "ties"] if full else ["svd", "concat"])
    )
    main_method = args.main_method or ("ties" if full else "svd")
    if main_method not in methods:
        methods.insert(0, main_method)
    return methods, main_method


def _gw_30_items(args: argparse.Namespace, hidden_size: int) -> float:
    """Seconds of all-pairs GW on 30 synthetic items of this run's shape (the 30-item timing
    target: 60 s on 2 cores)."""
    synthetic = {
        f"s{i}": np.random.default_rng(i)
        .standard_normal((args.feature_answers, hidden_size))
        .astype(np.float32)
        for i in range(30)
    }
    gw30, _ = cached_matrix(
        "gw", synthetic, {k: k for k in synthetic}, args.out / "cache-synthetic"
    )
    print(f"all-pairs GW on 30 items x {args.feature_answers} answers: {gw30.seconds:.1f}s")
    return gw30.seconds


def _job_config(
    args: argparse.Namespace, methods: Sequence[str], main_method: str
) -> MergeJobConfig:
    """The merge job this benchmark runs: the GW plan with the main method, compared with every
    planner's plan, the random plans, the other methods and (``--fp16-run``) float16 weights."""
    return MergeJobConfig(
        job="benchmark",
        method=main_method,
        group_size=args.group_size,
        feature_answers=args.feature_answers,
        backbone=args.backbone,
        compare_planners=STRUCTURED,
        random_plans=args.random_plans,
        compare_methods=tuple(methods),
        fp16_run=args.fp16_run,
        cv_folds=args.cv_folds,
        label_weight=args.label_weight,
        seed=args.seed,
    )


def _from_job(report: dict[str, object], job: MergeJobReport, gw_30_seconds: float) -> None:
    """The job's figures in the report's sections: distances, plans, unmerged and merged runs."""
    report["distances"] = {
        **{
            name: {k: info[k] for k in ("seconds", "cached", "pairs")}
            for name, info in job.matrices.items()
        },
        "gw_30_items_seconds": gw_30_seconds,
        "feature_seconds": job.distances["feature_seconds"],
        "pretrained_feature_seconds": job.pretrained_feature_seconds,
    }
    report["distance_matrices"] = {
        name: {"item_ids": info["item_ids"], "values": info["values"]}
        for name, info in job.matrices.items()
    }
    report["plans"] = job.plans
    report["unmerged"] = job.unmerged
    report["merged"] = {
        run.label: {k: v for k, v in run.to_json().items() if k != "predictions"}
        for run in job.runs
    }


def _print_job_start(job: MergeJobReport) -> None:
    """What the job found before its first run: feature times, distances and plans."""
    unmerged = job.unmerged["summary"]["micro_f1_pooled"]  # type: ignore[index]
    print(
        f"features: own {_f(job.distances['feature_seconds'], 1)}s, pretrained "
        f"{job.pretrained_feature_seconds:.1f}s; unmerged pooled micro F1 {unmerged:.3f}",
        flush=True,
    )
    for name, info in job.matrices.items():
        print(f"{name}: {info['seconds']:.2f}s{' (cached)' if info['cached'] else ''}", flush=True)
    for name, plan in job.plans.items():
        print(f"plan {name}: {plan['groups']}", flush=True)


def _print_run(run: MergeRun) -> None:
    print(
        f"merged {run.label}: test micro F1 {run.summary['micro_f1_pooled']:.3f}, "
        f"val {run.val_summary['micro_f1_pooled']:.3f}, train CV {_f(run.cv_accuracy)} "
        f"({run.seconds:.0f}s)",
        flush=True,
    )


def main() -> None:
    args = _parse()
    device = _device(args.device)
    torch.manual_seed(args.seed)
    item_bank, chosen, examples = _read_examples(args)
    args.out.mkdir(parents=True, exist_ok=True)
    models_dir = args.models_dir or args.out / "models" / args.kind
    _check_data_settings(models_dir, args)
    started = time.perf_counter()
    print(f"device {device}; models in {models_dir}; {len(chosen)} items", flush=True)
    training = _train_all(
        args, models_dir, chosen, examples, {i: item_bank[i].max_score for i in chosen}, device
    )
    if args.train_only:
        return
    methods, main_method = _methods(args)
    report: dict[str, object] = {
        "args": {k: str(v) for k, v in vars(args).items()},
        "device": device,
        "training": training,
        "methods": methods,
        "main_method": main_method,
    }
    encoder = Encoder(args.backbone, max_length=args.max_length, device=device)
    items = _load_items(args, models_dir, chosen, examples, encoder)
    report["unmerged_refit"] = _refit_baseline(items, encoder)
    report["storage"] = {"unmerged_bytes": sum(weights_bytes(i.artifact.path) for i in items)}
    gw_30_seconds = _gw_30_items(args, encoder.hidden_size)

    def written(job: MergeJobReport) -> None:
        if len(job.runs) == 1:
            _print_job_start(job)
        _print_run(job.runs[-1])
        _from_job(report, job, gw_30_seconds)
        report["seconds"] = time.perf_counter() - started
        _write(args, report)

    # the job's folder: heatmaps, plan.json, the groups of every run (cached distances: OUT/cache)
    job = run_merge_job(
        items,
        encoder,
        args.out / "job",
        _job_config(args, methods, main_method),
        cache_dir=args.out / "cache",
        on_run=written,
    )
    results: dict[str, dict[str, object]] = report["merged"]  # type: ignore[assignment]
    report["selection"] = _selection(args, report, results, list(job.plans), main_method)
    by_id = {item.item_id: item for item in items}
    report["latency"] = _serving_check(args, device, encoder, by_id, results[f"gw/{main_method}"])
    report["seconds"] = time.perf_counter() - started
    _write(args, report)
    print((args.out / "report.md").read_text())


def _selection(
    args: argparse.Namespace,
    report: dict[str, object],
    results: dict[str, dict[str, object]],
    plans: Sequence[str],
    main_method: str,
) -> dict[str, object]:
    """The plan chosen on the validation answers, and the random plans' spread (test)."""
    random_names = [name for name in plans if name.startswith("random-")]
    candidates = [f"{name}/{main_method}" for name in STRUCTURED]
    chosen_by_val = max(
        candidates,
        key=lambda label: (results[label]["val_summary"]["micro_f1_pooled"], label == "gw"),  # type: ignore[index]
    )
    random_test = [
        results[f"{name}/{main_method}"]["summary"]["micro_f1_pooled"]  # type: ignore[index]
        for name in random_names
    ]
    random_val = [
        results[f"{name}/{main_method}"]["val_summary"]["micro_f1_pooled"]  # type: ignore[index]
        for name in random_names
    ]
    chosen_by_cv = (
        max(candidates, key=lambda label: (results[label]["cv_accuracy"], label == "gw"))  # type: ignore[arg-type,return-value]
        if args.cv_folds
        else None
    )
    print(f"chosen on validation: {chosen_by_val}; by training CV: {chosen_by_cv}", flush=True)
    return {
        "val_selected": chosen_by_val,
        "val_selected_test_micro_f1": results[chosen_by_val]["summary"]["micro_f1_pooled"],  # type: ignore[index]
        "cv_selected": chosen_by_cv,
        "cv_selected_test_micro_f1": (
            results[chosen_by_cv]["summary"]["micro_f1_pooled"] if chosen_by_cv else None  # type: ignore[index]
        ),
        "rank_correlation_with_test": _signal_correlations(
            [results[f"{name}/{main_method}"] for name in plans],
            [report["plans"][name]["gw_cost"] for name in plans],  # type: ignore[index]
        ),
        "random_test_micro_f1_mean": statistics.fmean(random_test) if random_test else None,
        "random_test_micro_f1_std": statistics.stdev(random_test) if len(random_test) > 1 else None,
        "random_val_micro_f1_mean": statistics.fmean(random_val) if random_val else None,
        "random_test_micro_f1": random_test,
    }


def _serving_check(
    args: argparse.Namespace,
    device: str,
    encoder: Encoder,
    by_id: dict[str, ItemData],
    gw_main: dict[str, object],
) -> dict[str, object]:
    """Latency, and a check that a written group folder serves what was evaluated."""
    first_group = Path(gw_main["groups"][0]["path"])  # type: ignore[index]
    scorer = GroupScorer(first_group, args.backbone, max_length=args.max_length, device=device)
    group_items = [by_id[g.item_id] for g in scorer.group.items]
    unmerged_latency = _latency(
        encoder,
        group_items,
        lambda item: encoder.load(
            item_state(item.artifact, encoder.base_state), tag=f"item:{item.item_id}:{item.hash}"
        ),
        repeats=1,
    )
    merged_latency = _latency(scorer.encoder, group_items, lambda item: None, repeats=1)
    probe = group_items[0]
    served = scorer.score(probe.item_id, [probe.examples[i].text for i in probe.split.test])
    evaluated = gw_main["per_item"][probe.item_id]  # type: ignore[index]
    served_f1 = float(
        np.mean(
            [
                r.score == probe.examples[i].label
                for r, i in zip(served, probe.split.test, strict=True)
            ]
        )
    )
    return {
        "items": [i.item_id for i in group_items],
        "unmerged_seconds_per_answer_switching_models": unmerged_latency,
        "merged_seconds_per_answer": merged_latency,
        "served_model_version": served[0].model_version if served else None,
        "served_micro_f1": served_f1,
        "evaluated_micro_f1": evaluated["micro_f1"],
    }


def _write(args: argparse.Namespace, report: dict[str, object]) -> None:
    (args.out / "report.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    (args.out / "report.md").write_text(render_markdown(report))


def _signal_correlations(
    runs: Sequence[dict[str, object]], gw_costs: Sequence[float]
) -> dict[str, float | None]:
    """Spearman correlation, over all plans, of each selection signal with test micro F1."""
    from scipy.stats import spearmanr

    test = [r["summary"]["micro_f1_pooled"] for r in runs]  # type: ignore[index]
    signals = {
        "val_micro_f1": [r["val_summary"]["micro_f1_pooled"] for r in runs],  # type: ignore[index]
        "train_cv_accuracy": [r["cv_accuracy"] for r in runs],
        "low_gw_cost": [-c for c in gw_costs],
    }
    out: dict[str, float | None] = {}
    for name, values in signals.items():
        if len(runs) < 3 or any(v is None for v in values) or len(set(values)) < 2:
            out[name] = None
            continue
        rho = float(spearmanr(values, test).statistic)
        out[name] = None if np.isnan(rho) else rho
    return out


def _refit_baseline(items: Sequence[ItemData], encoder: Encoder) -> dict[str, object]:
    predictions, seconds = refit_own_heads(items, encoder, MergeConfig())
    print(
        "unmerged + re-fitted heads: pooled micro F1 "
        f"{pooled_report(items, predictions)['micro_f1_pooled']:.3f} ({seconds:.0f}s)",
        flush=True,
    )
    return {
        "summary": pooled_report(items, predictions),
        "per_item": {i.item_id: item_report(i, predictions[i.item_id]) for i in items},
        "seconds": seconds,
    }


def _f(value: object, digits: int = 3) -> str:
    return f"{float(value):.{digits}f}" if isinstance(value, (int, float)) else str(value)  # type: ignore[arg-type]


def _results_table(report: dict[str, object]) -> list[str]:
    """The table of every run against the unmerged models."""
    unmerged = report["unmerged"]["summary"]  # type: ignore[index]
    base = unmerged["micro_f1_pooled"]
    before = report["storage"]["unmerged_bytes"]  # type: ignore[index]
    lines = [
        "# Merge benchmark (GW-SMM and baselines)",
        "",
        f"Arguments: `{json.dumps(report['args'])}`; device {report.get('device')}",
        "",
        "| plan / method | test micro F1 (pooled) | change (points) | item-mean macro F1 | "
        "item-mean QWK | item-mean accuracy | val micro F1 | train CV accuracy | "
        "micro F1 without head re-fit | storage MB | reduction |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
        f"| unmerged | {_f(base)} | - | {_f(unmerged['macro_f1_item_mean'])} | "
        f"{_f(unmerged['qwk_item_mean'])} | {_f(unmerged['accuracy_item_mean'])} | "
        f"{_f(report['unmerged']['val_summary']['micro_f1_pooled'])} | - | - | "  # type: ignore[index]
        f"{before / 1e6:.1f} | 1.00x |",
    ]
    refit = report.get("unmerged_refit")
    if refit:
        r = refit["summary"]  # type: ignore[index]
        lines.append(
            f"| unmerged, heads re-fitted | {_f(r['micro_f1_pooled'])} | "
            f"{100 * (r['micro_f1_pooled'] - base):+.1f} | {_f(r['macro_f1_item_mean'])} | "
            f"{_f(r['qwk_item_mean'])} | {_f(r['accuracy_item_mean'])} | - | - | - | "
            f"{before / 1e6:.1f} | 1.00x |"
        )
    for name, run in report["merged"].items():  # type: ignore[attr-defined]
        s = run["summary"]
        lines.append(
            f"| {name} | {_f(s['micro_f1_pooled'])} | {100 * (s['micro_f1_pooled'] - base):+.1f} | "
            f"{_f(s['macro_f1_item_mean'])} | {_f(s['qwk_item_mean'])} | "
            f"{_f(s['accuracy_item_mean'])} | {_f(run['val_summary']['micro_f1_pooled'])} | "
            f"{_f(run.get('cv_accuracy'))} | {_f(run['summary_without_refit']['micro_f1_pooled'])} | "
            f"{run['storage_bytes'] / 1e6:.1f} | {before / run['storage_bytes']:.2f}x |"
        )
    return lines


def _selection_lines(report: dict[str, object], selection: dict[str, Any]) -> list[str]:
    """Structured plans against the random plans, and the plans the signals chose."""
    mean, std = selection["random_test_micro_f1_mean"], selection["random_test_micro_f1_std"]
    lines = ["", "## Structured plans against random plans (test, pooled micro F1)", ""]
    if mean is not None:
        lines.append(
            f"- random plans: mean {_f(mean)} +- {_f(std)} (std over "
            f"{len(selection['random_test_micro_f1'])} plans: "
            f"{', '.join(_f(v) for v in selection['random_test_micro_f1'])})"
        )
    main = report["main_method"]
    for name in STRUCTURED:
        run = report["merged"].get(f"{name}/{main}")  # type: ignore[attr-defined]
        if run is None:
            continue
        value = run["summary"]["micro_f1_pooled"]
        versus = (
            f"{100 * (value - mean):+.1f} points vs random mean"
            + (f" ({(value - mean) / std:+.2f} std)" if std else "")
            if mean is not None
            else ""
        )
        lines.append(f"- {name}: {_f(value)} {versus}")
    lines.append(
        f"- chosen on the validation answers: **{selection['val_selected']}**, test "
        f"{_f(selection['val_selected_test_micro_f1'])}"
    )
    if selection.get("cv_selected"):
        lines.append(
            f"- chosen by cross-validation on the training answers: "
            f"**{selection['cv_selected']}**, test "
            f"{_f(selection['cv_selected_test_micro_f1'])}"
        )
    correlations = selection.get("rank_correlation_with_test") or {}
    lines.append(
        "- rank correlation with test micro F1 over all plans (Spearman): "
        + ", ".join(f"{k} {_f(v, 2)}" for k, v in correlations.items())
    )
    return lines


def _per_item_lines(report: dict[str, object], main_run: dict[str, Any]) -> list[str]:
    """Each item before and after the GW plan with the main method."""
    per_before = report["unmerged"]["per_item"]  # type: ignore[index]
    lines = [
        "",
        f"## Per item: unmerged vs gw/{report['main_method']} (test split)",
        "",
        "| item | n test | micro F1 before | after | macro F1 before | after | QWK before | after |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for item_id, after in main_run["per_item"].items():
        b = per_before[item_id]
        lines.append(
            f"| {item_id} | {int(after['n_test'])} | {_f(b['micro_f1'])} | "
            f"{_f(after['micro_f1'])} | {_f(b['macro_f1'])} | {_f(after['macro_f1'])} | "
            f"{_f(b['qwk'])} | {_f(after['qwk'])} |"
        )
    return lines


def _plan_and_time_lines(report: dict[str, object]) -> list[str]:
    """The plans' costs and groups, then where the time went."""
    d: dict[str, Any] = report["distances"]  # type: ignore[assignment]
    lines = [
        "",
        "## Plans (total within-group distance)",
        "",
        "| plan | GW cost | centroid-cosine cost | groups |",
        "|---|---|---|---|",
    ]
    for name, plan in report["plans"].items():  # type: ignore[attr-defined]
        lines.append(
            f"| {name} | {_f(plan['gw_cost'])} | {_f(plan['cosine_cost'])} | "
            f"{'; '.join(' + '.join(g) for g in plan['groups'])} |"
        )
    lat: dict[str, Any] = report.get("latency") or {}  # type: ignore[assignment]
    gw = d["gw"]
    return lines + [
        "",
        "## Time",
        "",
        f"- features under each item's own model: {_f(d['feature_seconds'], 1)} s; under the "
        f"pretrained backbone: {_f(d['pretrained_feature_seconds'], 1)} s",
        f"- all-pairs GW on these items: {_f(gw['seconds'], 2)} s ({gw['pairs']} pairs"
        f"{', cached' if gw['cached'] else ''})",
        f"- all-pairs GW on 30 items of the same shape (435 pairs): "
        f"{_f(d['gw_30_items_seconds'], 2)} s",
        "- scoring, seconds per answer (one group's test answers): unmerged with model switching "
        f"{_f(lat.get('unmerged_seconds_per_answer_switching_models'), 4)}, merged "
        f"{_f(lat.get('merged_seconds_per_answer'), 4)}",
        "- the written group folder served its first item's test answers with micro F1 "
        f"{_f(lat.get('served_micro_f1'))} (evaluation in memory: "
        f"{_f(lat.get('evaluated_micro_f1'))}), version `{lat.get('served_model_version')}`",
        f"- whole benchmark: {_f(report['seconds'], 0)} s",
        "",
    ]


def render_markdown(report: dict[str, object]) -> str:
    """``report.md``: the results table, selection, per item, plans and time, in that order."""
    lines = _results_table(report)
    selection = report.get("selection")
    if selection:
        lines += _selection_lines(report, selection)  # type: ignore[arg-type]
    main_run = report["merged"].get(f"gw/{report['main_method']}")  # type: ignore[attr-defined]
    if main_run:
        lines += _per_item_lines(report, main_run)
    lines += _plan_and_time_lines(report)
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
