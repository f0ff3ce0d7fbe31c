"""Merging per-item models guided by GW distance (GW-SMM) vs unmerged models and baseline plans.

For the chosen items: train one model per item (``--kind full`` or ``lora``; cached under
``OUT/models``), embed each item's training answers with its own model, compute all-pairs
Gromov-Wasserstein, centroid-cosine and random distances, plan groups (trios by default) from
each, merge every group (several methods for the GW plan, the main method for the others), re-fit
the heads, and compare test metrics, storage and latency with the unmerged models.
Writes ``report.json``, ``report.md`` and the heatmaps to ``--out``.

    .venv/bin/python benchmarks/merge_benchmark.py \
        --responses ../shared/datasets/saf/responses.csv --items ../shared/datasets/saf/items.csv \
        --out var/merge-bench --kind full --max-train-per-item 64 --epochs 2 --feature-answers 48 \
        --random-plans 2 --items-only saf-de-1 saf-de-3 saf-de-4 saf-en-10.1_TC saf-en-10.2_TC \
        saf-en-10.3_TC saf-en-12.1_PE saf-en-12.2_PE saf-en-12.3_PE
    # the same with --refit-baseline-only adds "unmerged, heads re-fitted" to that report

Trained models and distance matrices are reused from ``OUT`` when present. Results of this run
are in ``docs/decisions/0005-merge-item-models-gw-guided.md``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ml_core.artifact import load_artifact  # noqa: E402
from ml_core.backbone import backbone_label  # noqa: E402
from ml_core.data import read_items_csv, read_responses_csv  # noqa: E402
from ml_core.merge.config import DistanceConfig, FeatureConfig, MergeConfig, PlanConfig  # noqa: E402
from ml_core.merge.distances import (  # noqa: E402
    DistanceMatrix,
    cached_matrix,
    draw_heatmap,
)
from ml_core.merge.group import GroupScorer  # noqa: E402
from ml_core.merge.models import Encoder, head_tensors, item_state  # noqa: E402
from ml_core.merge.pipeline import (  # noqa: E402
    GroupResult,
    ItemData,
    item_report,
    merge_group,
    own_features,
    pooled_report,
    predict_heads,
    prepare_item,
    refit_own_heads,
)
from ml_core.merge.plans import MergePlan, make_plan, plan_cost, random_plan  # noqa: E402
from ml_core.training import TrainConfig, TrainExample, fix_splits, train_item  # noqa: E402


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--responses", type=Path, required=True)
    parser.add_argument("--items", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument(
        "--items-only", nargs="*", default=None, help="item ids to run (default: all)"
    )
    parser.add_argument("--kind", choices=("full", "lora"), default="full")
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
        help="comma list; default: average,task_arithmetic,ties (full) / svd,concat (lora)",
    )
    parser.add_argument(
        "--main-method",
        default=None,
        help="method used for the baseline plans (default: ties / svd)",
    )
    parser.add_argument("--random-plans", type=int, default=3, help="random plans to average")
    parser.add_argument(
        "--feature-answers",
        type=int,
        default=64,
        help="training answers per item for the distances",
    )
    parser.add_argument(
        "--refit-baseline-only",
        action="store_true",
        help="add the unmerged + re-fitted heads baseline to an existing OUT/report.json and stop",
    )
    parser.add_argument(
        "--fp16-run", action="store_true", help="also merge the GW plan with float16 shared weights"
    )
    parser.add_argument("--train-only", action="store_true", help="train the item models and stop")
    parser.add_argument("--seed", type=int, default=13)
    return parser.parse_args()


def _train_all(
    args: argparse.Namespace,
    chosen: Sequence[str],
    examples: dict[str, list[TrainExample]],
    max_scores: dict[str, int],
) -> dict[str, dict[str, float]]:
    info: dict[str, dict[str, float]] = {}
    for number, item_id in enumerate(chosen, 1):
        out_dir = args.out / "models" / args.kind / item_id
        if (out_dir / "manifest.json").is_file():
            info[item_id] = {"cached": 1.0}
            continue
        config = TrainConfig(kind=args.kind, seed=args.seed, max_length=args.max_length)
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
            f"[train {number}/{len(chosen)}] {item_id}: {info[item_id]['train_seconds']:.0f}s micro F1 {info[item_id]['micro_f1']:.3f}",
            flush=True,
        )
    return info


def _latency(
    encoder: Encoder, items: Sequence[ItemData], load_state: object, repeats: int = 3
) -> float:
    """Seconds per answer to score every item's test answers (batched), best of ``repeats``."""
    best = float("inf")
    total = sum(len(item.split.test) for item in items)
    for _ in range(repeats):
        started = time.perf_counter()
        for item in items:
            load_state(item)  # type: ignore[operator]
            encoder.encode([], token_ids=[item.token_ids[i] for i in item.split.test])
        best = min(best, time.perf_counter() - started)
    return best / max(1, total)


def main() -> None:  # noqa: C901 - a linear script
    args = _parse()
    torch.manual_seed(args.seed)
    item_bank = {item.item_id: item for item in read_items_csv(args.items)}
    responses = read_responses_csv(args.responses, item_bank)
    raw: dict[str, list[TrainExample]] = defaultdict(list)
    for response in responses:
        raw[response.item_id].append(TrainExample(response.text, response.score, response.split))
    chosen = list(args.items_only or sorted(raw))
    examples = {item: fix_splits(raw[item], args.max_train_per_item, args.seed) for item in chosen}
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    training = _train_all(args, chosen, examples, {i: item_bank[i].max_score for i in chosen})
    if args.train_only:
        return
    report: dict[str, object] = {
        "args": {k: str(v) for k, v in vars(args).items()},
        "training": training,
    }

    feature_config = FeatureConfig(
        max_answers=args.feature_answers, max_length=args.max_length, seed=args.seed
    )
    distance_config = DistanceConfig()
    plan_config = PlanConfig(group_size=args.group_size, seed=args.seed)
    encoder = Encoder(args.backbone, max_length=args.max_length)
    items = [
        prepare_item(
            load_artifact(args.out / "models" / args.kind / item_id), examples[item_id], encoder
        )
        for item_id in chosen
    ]
    by_id = {item.item_id: item for item in items}

    # the fair baseline: unmerged models with their heads re-fitted like the merged ones
    report["unmerged_refit"] = _refit_baseline(items, encoder)
    if args.refit_baseline_only:
        old = json.loads((args.out / "report.json").read_text())
        old["unmerged_refit"] = report["unmerged_refit"]
        _write(args, old, old.get("methods", []), old.get("main_method", "ties"))
        print((args.out / "report.md").read_text())
        return

    # 1. features under each item's own model; the unmerged baseline on the test answers
    samples, tests, feature_seconds = own_features(items, encoder, feature_config, with_test=True)
    unmerged_pred = {
        item.item_id: predict_heads(tests[item.item_id], head_tensors(item.artifact))
        for item in items
    }
    unmerged = {
        "per_item": {i.item_id: item_report(i, unmerged_pred[i.item_id]) for i in items},
        "summary": pooled_report(items, unmerged_pred),
    }
    print(
        f"features: {feature_seconds:.1f}s; unmerged pooled micro F1 {unmerged['summary']['micro_f1_pooled']:.3f}",
        flush=True,
    )

    # 2. distances (cached) and heatmaps
    hashes = {item.item_id: item.hash for item in items}
    matrices: dict[str, DistanceMatrix] = {}
    distance_info: dict[str, object] = {}
    for kind in ("gw", "centroid_cosine"):
        matrix, hit = cached_matrix(
            kind,
            samples,
            hashes,
            args.out / "cache",
            config=distance_config,
            feature_settings=asdict(feature_config),
        )
        if not hit:
            draw_heatmap(matrix, args.out / f"heatmap-{kind}.png")
        matrices[kind] = matrix
        distance_info[kind] = {
            "seconds": matrix.seconds,
            "cached": hit,
            "pairs": len(items) * (len(items) - 1) // 2,
        }
        print(f"{kind}: {matrix.seconds:.2f}s{' (cached)' if hit else ''}", flush=True)
    # GW alone on 30 synthetic items of the same shape: the 30-item timing target
    synthetic = {
        f"s{i}": np.random.default_rng(i)
        .standard_normal((args.feature_answers, encoder.hidden_size))
        .astype(np.float32)
        for i in range(30)
    }
    gw30 = cached_matrix(
        "gw",
        synthetic,
        {k: k for k in synthetic},
        args.out / "cache-synthetic",
        config=distance_config,
    )[0]
    distance_info["gw_30_items_seconds"] = gw30.seconds
    print(f"gw on 30 synthetic items: {gw30.seconds:.1f}s", flush=True)
    distance_info["feature_seconds"] = feature_seconds
    report["distances"] = distance_info
    report["distance_matrices"] = {
        k: {"item_ids": list(m.item_ids), "values": m.values.round(6).tolist()}
        for k, m in matrices.items()
    }

    # 3. plans
    plans: dict[str, MergePlan] = {
        "gw": make_plan(matrices["gw"], plan_config, "gw"),
        "centroid_cosine": make_plan(matrices["centroid_cosine"], plan_config, "centroid_cosine"),
    }
    for r in range(args.random_plans):
        plans[f"random-{r}"] = random_plan(chosen, args.group_size, args.seed + r)
    # language / topic of each item is a natural human plan: the SAF item id prefix names the topic
    report["plans"] = {
        name: {
            **plan.to_json(),
            "gw_cost": plan_cost(plan, matrices["gw"]),
            "cosine_cost": plan_cost(plan, matrices["centroid_cosine"]),
        }
        for name, plan in plans.items()
    }
    for name, plan in plans.items():
        print(f"plan {name}: {[list(g) for g in plan.groups]}", flush=True)

    # 4. merge + evaluate
    full = args.kind == "full"
    methods = (
        args.methods.split(",")
        if args.methods
        else (["average", "task_arithmetic", "ties"] if full else ["svd", "concat"])
    )
    main_method = args.main_method or ("ties" if full else "svd")
    if main_method not in methods:
        methods.insert(0, main_method)
    report["methods"], report["main_method"] = methods, main_method
    # (plan, method, storage dtype): every method on the GW plan, the main method on the others,
    # and the main method with float16 shared weights
    # the comparisons that answer the targets first, so a cut-short run still reports them
    runs = (
        [("gw", main_method, "float32")]
        + [(name, main_method, "float32") for name in plans if name != "gw"]
        + [("gw", m, "float32") for m in methods if m != main_method]
        + ([("gw", main_method, "float16")] if args.fp16_run else [])
    )
    report["unmerged"] = unmerged
    report["storage"] = {
        "unmerged_bytes": sum(
            sum(f.stat().st_size for f in item.artifact.path.iterdir() if f.is_file())
            for item in items
        )
    }
    group_cache: dict[tuple[tuple[str, ...], str, str], GroupResult] = {}
    results: dict[str, object] = {}
    for plan_name, method, dtype in runs:
        plan = plans[plan_name]
        config = MergeConfig(method=method, shared_dtype=dtype)
        label = f"{plan_name}/{method}" + ("/fp16" if dtype == "float16" else "")
        run_started = time.perf_counter()
        merged_pred: dict[str, np.ndarray] = {}
        stale_pred: dict[str, np.ndarray] = {}
        groups: list[GroupResult] = []
        for _index, group in enumerate(plan.groups):
            key = (tuple(group), method, dtype)
            if key not in group_cache:
                group_id = f"{method}-" + "+".join(group)
                digest = hashlib.sha256(repr(key).encode()).hexdigest()[:10]
                out_dir = args.out / "merged" / f"{method}-{dtype}" / f"group-{digest}"
                group_cache[key] = merge_group(
                    [by_id[i] for i in group],
                    encoder,
                    out_dir,
                    group_id=group_id,
                    config=config,
                    backbone_label=backbone_label(args.backbone),
                )
            result = group_cache[key]
            groups.append(result)
            scorer_heads = _heads_of(result)
            for item_id in group:
                item = by_id[item_id]
                test_features = result.features[item_id][list(item.split.test)]
                merged_pred[item_id] = predict_heads(test_features, scorer_heads[item_id])
                stale_pred[item_id] = predict_heads(test_features, head_tensors(item.artifact))
        merged_items = [by_id[i] for i in plan.item_ids]
        results[label] = {
            "plan": plan_name,
            "method": method,
            "shared_dtype": dtype,
            "summary": pooled_report(merged_items, merged_pred),
            "summary_without_refit": pooled_report(merged_items, stale_pred),
            "per_item": {i: item_report(by_id[i], merged_pred[i]) for i in plan.item_ids},
            "storage_bytes": sum(g.size_bytes for g in groups),
            "groups": [
                {
                    "items": list(g.item_ids),
                    "path": str(g.path),
                    "bytes": g.size_bytes,
                    "head_refits": g.head_refits,
                }
                for g in groups
            ],
            "seconds": time.perf_counter() - run_started,
        }
        s = results[label]["summary"]  # type: ignore[index]
        print(
            f"merged {label}: pooled micro F1 {s['micro_f1_pooled']:.3f} ({time.perf_counter() - run_started:.0f}s)",
            flush=True,
        )
        report["merged"] = results
        report["seconds"] = time.perf_counter() - started
        _write(args, report, methods, main_method)

    # 5. latency, and a check that a written group folder serves what was evaluated
    gw_main = results[f"gw/{main_method}"]  # type: ignore[index]
    first_group = Path(gw_main["groups"][0]["path"])  # type: ignore[index]
    scorer = GroupScorer(first_group, args.backbone, max_length=args.max_length)
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
    report["latency"] = {
        "items": [i.item_id for i in group_items],
        "unmerged_seconds_per_answer_switching_models": unmerged_latency,
        "merged_seconds_per_answer": merged_latency,
        "served_model_version": served[0].model_version if served else None,
        "served_micro_f1": served_f1,
        "evaluated_micro_f1": evaluated["micro_f1"],
    }
    report["seconds"] = time.perf_counter() - started
    _write(args, report, methods, main_method)
    print((args.out / "report.md").read_text())


def _write(
    args: argparse.Namespace, report: dict[str, object], methods: Sequence[str], main_method: str
) -> None:
    (args.out / "report.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    (args.out / "report.md").write_text(render_markdown(report, methods, main_method))


def _refit_baseline(items: Sequence[ItemData], encoder: Encoder) -> dict[str, object]:
    predictions, seconds = refit_own_heads(items, encoder, MergeConfig())
    print(
        f"unmerged + re-fitted heads: pooled micro F1 {pooled_report(items, predictions)['micro_f1_pooled']:.3f} ({seconds:.0f}s)",
        flush=True,
    )
    return {
        "summary": pooled_report(items, predictions),
        "per_item": {i.item_id: item_report(i, predictions[i.item_id]) for i in items},
        "seconds": seconds,
    }


def _heads_of(result: GroupResult) -> dict[str, list[tuple[torch.Tensor, torch.Tensor]]]:
    from ml_core.merge.group import load_group

    group = load_group(result.path)
    return {item.item_id: list(item.heads) for item in group.items}


def _f(value: object, digits: int = 3) -> str:
    return f"{float(value):.{digits}f}" if isinstance(value, (int, float)) else str(value)  # type: ignore[arg-type]


def render_markdown(report: dict[str, object], methods: Sequence[str], main_method: str) -> str:
    unmerged = report["unmerged"]["summary"]  # type: ignore[index]
    before = report["storage"]["unmerged_bytes"]  # type: ignore[index]
    lines = [
        "# Merge benchmark (GW-SMM and baselines)",
        "",
        f"Arguments: `{json.dumps(report['args'])}`",
        "",
        "| plan / method | pooled micro F1 | change (points) | item-mean micro F1 | item-mean macro F1 | item-mean QWK | micro F1 without head re-fit | storage MB | storage reduction |",
        "|---|---|---|---|---|---|---|---|---|",
        f"| unmerged | {_f(unmerged['micro_f1_pooled'])} | - | {_f(unmerged['micro_f1_item_mean'])} | {_f(unmerged['macro_f1_item_mean'])} | {_f(unmerged['qwk_item_mean'])} | - | {before / 1e6:.1f} | 1.00x |",  # type: ignore[index]
    ]
    refit = report.get("unmerged_refit")
    if refit:
        r = refit["summary"]  # type: ignore[index]
        lines.append(
            f"| unmerged, heads re-fitted | {_f(r['micro_f1_pooled'])} | {100 * (r['micro_f1_pooled'] - unmerged['micro_f1_pooled']):+.1f} | {_f(r['micro_f1_item_mean'])} | {_f(r['macro_f1_item_mean'])} | {_f(r['qwk_item_mean'])} | - | {before / 1e6:.1f} | 1.00x |"
        )
    for name, run in report["merged"].items():  # type: ignore[union-attr]
        s = run["summary"]
        lines.append(
            f"| {name} | {_f(s['micro_f1_pooled'])} | {100 * (s['micro_f1_pooled'] - unmerged['micro_f1_pooled']):+.1f} | {_f(s['micro_f1_item_mean'])} | {_f(s['macro_f1_item_mean'])} | {_f(s['qwk_item_mean'])} | "
            f"{_f(run['summary_without_refit']['micro_f1_pooled'])} | {run['storage_bytes'] / 1e6:.1f} | {before / run['storage_bytes']:.2f}x |"
        )
    main = report["merged"].get(f"gw/{main_method}")  # type: ignore[union-attr]
    if main:
        per_before = report["unmerged"]["per_item"]  # type: ignore[index]
        lines += [
            "",
            f"## Per item: unmerged vs gw/{main_method} (test split)",
            "",
            "| item | n test | micro F1 before | after | macro F1 before | after | QWK before | after |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for item_id, after in main["per_item"].items():
            b = per_before[item_id]
            lines.append(
                f"| {item_id} | {int(after['n_test'])} | {_f(b['micro_f1'])} | {_f(after['micro_f1'])} | "
                f"{_f(b['macro_f1'])} | {_f(after['macro_f1'])} | {_f(b['qwk'])} | {_f(after['qwk'])} |"
            )
    d = report["distances"]
    lines += [
        "",
        "## Plans (total within-group distance)",
        "",
        "| plan | GW cost | centroid-cosine cost | groups |",
        "|---|---|---|---|",
    ]
    for name, plan in report["plans"].items():  # type: ignore[union-attr]
        lines.append(
            f"| {name} | {_f(plan['gw_cost'])} | {_f(plan['cosine_cost'])} | {'; '.join(' + '.join(g) for g in plan['groups'])} |"
        )
    lat = report.get("latency") or {}
    lines += [
        "",
        "## Time",
        "",
        f"- features under each item's own model: {_f(d['feature_seconds'], 1)} s",  # type: ignore[index]
        f"- all-pairs GW on these items: {_f(d['gw']['seconds'], 2)} s ({d['gw']['pairs']} pairs{', cached' if d['gw']['cached'] else ''})",  # type: ignore[index]
        f"- all-pairs GW on 30 synthetic items of the same shape: {_f(d['gw_30_items_seconds'], 2)} s",  # type: ignore[index]
        f"- scoring, seconds per answer (one group's test answers): unmerged with model switching {_f(lat.get('unmerged_seconds_per_answer_switching_models'), 4)}, merged {_f(lat.get('merged_seconds_per_answer'), 4)}",  # type: ignore[union-attr]
        f"- the written group folder served its first item's test answers with micro F1 {_f(lat.get('served_micro_f1'))} (evaluation in memory: {_f(lat.get('evaluated_micro_f1'))}), version `{lat.get('served_model_version')}`",  # type: ignore[union-attr]
        f"- whole benchmark: {_f(report['seconds'], 0)} s",
        "",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
