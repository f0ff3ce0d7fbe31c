"""``python -m ml_core.merge {job,distances,plan,merge,evaluate}``.

``job`` runs a whole merge job (distances, plan, groups, evaluation) as the training worker does
(:func:`ml_core.merge.job.run_merge_job`) and writes its report; the other commands run one step
each, to inspect or change what goes into the next.

Item artifacts are given as folders (``--artifacts DIR ...``; the item id comes from each
manifest); answers from a responses CSV in the SAF layout. The answers must be the ones the items
were trained on, so every item's split is rebuilt as its training made it.

    python -m ml_core.merge job --artifacts var/models/* --responses r.csv --group-size 3 \
        --out var/merge/job-1      # --compare-planners centroid_cosine --random-plans 5: compare
    python -m ml_core.merge distances --artifacts var/models/* --responses r.csv --out var/merge
    python -m ml_core.merge plan --distances var/merge/distances-gw-<key>.npz --group-size 3 \
        --out var/merge/plan.json          # or --human my-plan.csv to validate a human plan
    python -m ml_core.merge merge --plan var/merge/plan.json --artifacts var/models/* \
        --responses r.csv --method ties --out var/merge/groups
    python -m ml_core.merge evaluate --groups var/merge/groups/* --artifacts var/models/* \
        --responses r.csv --out var/merge/evaluation.json
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import MISSING, asdict, fields
from pathlib import Path
from typing import TypeVar

import numpy as np

from ml_core.artifact import load_artifact
from ml_core.backbone import backbone_label
from ml_core.data import read_items_csv, read_responses_csv
from ml_core.merge.config import DISTANCES, DistanceConfig, FeatureConfig, MergeConfig, PlanConfig
from ml_core.merge.distances import cached_matrix, draw_heatmap, load_matrix
from ml_core.merge.group import GroupScorer
from ml_core.merge.job import MergeJobConfig, run_merge_job
from ml_core.merge.models import Encoder, head_tensors
from ml_core.merge.pipeline import (
    ItemData,
    item_report,
    merge_group,
    own_features,
    pooled_report,
    predict_heads,
    prepare_item,
)
from ml_core.merge.planners import PLANNERS
from ml_core.merge.plans import make_plan, plan_cost, read_plan_file
from ml_core.training import TrainExample

ConfigT = TypeVar("ConfigT", FeatureConfig, DistanceConfig, PlanConfig, MergeConfig)


def _add_config(parser: argparse.ArgumentParser, config_type: type, prefix: str = "") -> None:
    """One ``--<field>`` option per dataclass field, with the field's help text."""
    for f in fields(config_type):
        default = f.default if f.default is not MISSING else None
        # annotations are strings here (postponed evaluation); their first name is the type
        annotation = str(f.type)
        cast: object = str
        if annotation.startswith("bool"):
            cast = _boolean
        elif annotation.startswith("int"):
            cast = int
        elif annotation.startswith("float"):
            cast = float
        parser.add_argument(
            f"--{prefix}{f.name}".replace("_", "-"),
            dest=f"{prefix}{f.name}",
            type=cast,  # type: ignore[arg-type]
            default=default,
            help=f.metadata.get("help"),
        )


def _boolean(value: str) -> bool:
    if value.lower() in ("1", "true", "yes"):
        return True
    if value.lower() in ("0", "false", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {value!r}")


def _config(args: argparse.Namespace, config_type: type[ConfigT], prefix: str = "") -> ConfigT:
    values = {f.name: getattr(args, f"{prefix}{f.name}") for f in fields(config_type)}
    config = config_type(**values)
    config.validate()
    return config


def _load_items(
    args: argparse.Namespace, encoder: Encoder | None = None
) -> tuple[list[ItemData], Encoder]:
    artifacts = [load_artifact(Path(p)) for p in args.artifacts]
    bank = {i.item_id: i for i in read_items_csv(args.items)} if args.items else None
    responses = (
        read_responses_csv(args.responses, bank) if bank else read_responses_csv(args.responses)
    )
    by_item: dict[str, list[TrainExample]] = {}
    for r in responses:
        by_item.setdefault(r.item_id, []).append(TrainExample(r.text, r.score, r.split))
    encoder = encoder or Encoder(
        args.backbone, pooling=artifacts[0].pooling, max_length=args.max_length
    )
    missing = [a.item_id for a in artifacts if a.item_id not in by_item]
    if missing:
        raise SystemExit(f"no answers in {args.responses} for items {missing}")
    return [prepare_item(a, by_item[a.item_id], encoder) for a in artifacts], encoder


def _common(parser: argparse.ArgumentParser, needs_artifacts: bool = True) -> None:
    if needs_artifacts:
        parser.add_argument("--artifacts", nargs="+", required=True, help="item artifact folders")
        parser.add_argument(
            "--responses", type=Path, required=True, help="responses.csv (SAF layout)"
        )
        parser.add_argument("--items", type=Path, default=None, help="items.csv (optional)")
    parser.add_argument(
        "--backbone", default=None, help="backbone name or path (default: packaged)"
    )
    parser.add_argument("--max-length", type=int, default=256, help="tokens per answer")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ml_core.merge",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)

    distances = commands.add_parser(
        "distances", help="item features, distance matrix (cached), heatmap"
    )
    _common(distances)
    distances.add_argument("--kind", choices=DISTANCES, default="gw")
    distances.add_argument(
        "--out", type=Path, required=True, help="folder for the matrix and heatmap"
    )
    _add_config(distances, FeatureConfig, "feature_")
    _add_config(distances, DistanceConfig, "distance_")

    plan = commands.add_parser(
        "plan", help="group items from a distance matrix, or validate a human plan"
    )
    plan.add_argument("--distances", type=Path, help="a matrix written by 'distances' (.npz)")
    plan.add_argument(
        "--human", type=Path, default=None, help="a human plan (.json or .csv) to validate and cost"
    )
    plan.add_argument("--out", type=Path, required=True, help="plan JSON to write")
    _add_config(plan, PlanConfig)

    job = commands.add_parser("job", help="a whole merge job, as the training worker runs it")
    _common(job)
    job.add_argument("--out", type=Path, required=True, help="the job's folder")
    job.add_argument("--job", default="cli", help="the job's name (in group ids)")
    job.add_argument("--method", default="ties", help="merge method (ties, svd, concat, ...)")
    job.add_argument("--group-size", type=int, default=3, help="items per group at most")
    job.add_argument("--feature-answers", type=int, default=64, help="answers per item compared")
    job.add_argument("--human", type=Path, default=None, help="a human plan instead of planning")
    job.add_argument(
        "--compare-planners",
        nargs="*",
        default=[],
        choices=sorted(PLANNERS),
        help="also merge these planners' plans (with --method)",
    )
    job.add_argument("--random-plans", type=int, default=0, help="also merge N random plans")
    job.add_argument(
        "--compare-methods", nargs="*", default=[], help="also merge the job's plan with these"
    )
    job.add_argument(
        "--cv-folds", type=int, default=0, help="cross-validated head accuracy (0: off)"
    )

    merge = commands.add_parser("merge", help="merge every group of a plan into a group folder")
    _common(merge)
    merge.add_argument("--plan", type=Path, required=True)
    merge.add_argument("--out", type=Path, required=True, help="folder for the group folders")
    _add_config(merge, MergeConfig)

    evaluate = commands.add_parser(
        "evaluate", help="test metrics of the items before and after merging"
    )
    _common(evaluate)
    evaluate.add_argument("--groups", nargs="+", required=True, help="merged group folders")
    evaluate.add_argument("--out", type=Path, required=True, help="JSON report to write")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    commands = {
        "job": _job,
        "distances": _distances,
        "plan": _plan,
        "merge": _merge,
        "evaluate": _evaluate,
    }
    return commands[args.command](args)


def _job(args: argparse.Namespace) -> int:
    items, encoder = _load_items(args)
    plan = read_plan_file(args.human, [i.item_id for i in items]) if args.human else None
    config = MergeJobConfig(
        job=args.job,
        method=args.method,
        group_size=args.group_size,
        feature_answers=args.feature_answers,
        plan=plan.groups if plan is not None else None,
        backbone=args.backbone,
        compare_planners=tuple(args.compare_planners),
        random_plans=args.random_plans,
        compare_methods=tuple(args.compare_methods),
        cv_folds=args.cv_folds,
    )
    report = run_merge_job(items, encoder, args.out, config, cache_dir=args.out / "cache")
    (args.out / "job.json").write_text(json.dumps(report.to_json(), indent=2) + "\n")
    runs = {run.label: run.summary["micro_f1_pooled"] for run in report.runs}
    print(json.dumps({"plan": report.plan, "summary": report.summary, "runs": runs}, indent=2))
    return 0


def _distances(args: argparse.Namespace) -> int:
    feature_config = _config(args, FeatureConfig, "feature_")
    distance_config = _config(args, DistanceConfig, "distance_")
    items, encoder = _load_items(args)
    encoder.batch_size = feature_config.batch_size
    samples, _, seconds = own_features(items, encoder, feature_config)
    matrix, hit = cached_matrix(
        args.kind,
        samples,
        {i.item_id: i.hash for i in items},
        args.out,
        config=distance_config,
        feature_settings=asdict(feature_config),
    )
    png = draw_heatmap(matrix, args.out / f"heatmap-{args.kind}.png")
    written = sorted(
        args.out.glob(f"distances-{args.kind}-*.npz"), key=lambda p: p.stat().st_mtime
    )[-1]
    print(
        json.dumps(
            {
                "matrix": str(written),
                "heatmap": str(png),
                "cached": hit,
                "feature_seconds": seconds,
                "distance_seconds": matrix.seconds,
            }
        )
    )
    return 0


def _plan(args: argparse.Namespace) -> int:
    plan_config = _config(args, PlanConfig)
    loaded = load_matrix(args.distances) if args.distances else None
    if args.human:
        plan = read_plan_file(args.human, loaded.item_ids if loaded else None)
    elif loaded is not None:
        plan = make_plan(loaded, plan_config)
    else:
        raise SystemExit("plan needs --distances, --human, or both")
    out = {
        **plan.to_json(),
        **({"cost": plan_cost(plan, loaded), "distance_kind": loaded.kind} if loaded else {}),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out))
    return 0


def _merge(args: argparse.Namespace) -> int:
    merge_config = _config(args, MergeConfig)
    items, encoder = _load_items(args)
    by_id = {i.item_id: i for i in items}
    plan = read_plan_file(args.plan, list(by_id))
    written = []
    for index, group in enumerate(plan.groups):
        result = merge_group(
            [by_id[i] for i in group],
            encoder,
            args.out / f"group-{index:03d}",
            group_id=f"{plan.source}-{index:03d}",
            config=merge_config,
            backbone_label=backbone_label(args.backbone),
            extra={"plan": plan.to_json()},
            encode_all=False,
        )
        written.append(
            {
                "path": str(result.path),
                "items": list(result.item_ids),
                "bytes": result.size_bytes,
                "method": result.method,
            }
        )
    print(json.dumps(written, indent=2))
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    items, encoder = _load_items(args)
    by_id = {i.item_id: i for i in items}
    _, tests, _ = own_features(items, encoder, FeatureConfig(max_answers=1), with_test=True)
    before = {i: predict_heads(tests[i], head_tensors(by_id[i].artifact)) for i in by_id}
    after: dict[str, np.ndarray] = {}
    group_bytes = 0
    for folder in args.groups:
        scorer = GroupScorer(Path(folder), args.backbone, max_length=args.max_length)
        group_bytes += sum(f.stat().st_size for f in Path(folder).iterdir() if f.is_file())
        for entry in scorer.group.items:
            item = by_id[entry.item_id]
            probabilities = scorer.probabilities(
                entry.item_id, [item.examples[k].text for k in item.split.test]
            )
            after[entry.item_id] = np.stack([p.argmax(axis=1) for p in probabilities], axis=1)
    merged_items = [by_id[i] for i in after]
    report: dict[str, dict[str, object]] = {
        "before": {
            "summary": pooled_report(merged_items, before),
            "per_item": {i.item_id: item_report(i, before[i.item_id]) for i in merged_items},
        },
        "after": {
            "summary": pooled_report(merged_items, after),
            "per_item": {i.item_id: item_report(i, after[i.item_id]) for i in merged_items},
        },
        "storage": {
            "unmerged_bytes": sum(
                sum(f.stat().st_size for f in i.artifact.path.iterdir() if f.is_file())
                for i in merged_items
            ),
            "merged_bytes": group_bytes,
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(
        json.dumps(
            {
                "before": report["before"]["summary"],
                "after": report["after"]["summary"],
                "storage": report["storage"],
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
