"""``python -m ml_core {train,evaluate,export,score,benchmark}``: the ml_core tools without Django."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import fields
from pathlib import Path

from ml_core.data import DataFormatError, read_items_csv, read_responses_csv


def _csv_list(value: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(",") if v.strip())


def _add_backbone(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--backbone", default=None, help="backbone name or local path (default: packaged MiniLM)"
    )


def _parser() -> argparse.ArgumentParser:
    from ml_core.training import TrainConfig

    parser = argparse.ArgumentParser(prog="python -m ml_core", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser(
        "train", help="train items from a responses CSV (default kind: auto)"
    )
    train.add_argument("--responses", type=Path, required=True)
    train.add_argument("--items", type=Path, default=None, help="items.csv (max_score per item)")
    train.add_argument("--items-only", type=_csv_list, default=(), help="comma-separated item ids")
    train.add_argument(
        "--out", type=Path, required=True, help="artifacts are written to OUT/<item_id>"
    )
    _add_backbone(train)
    casters: dict[str, Callable[[str], object]] = {
        "int": int,
        "float": float,
        "float | None": float,
        "str": str,
        "bool": lambda v: v.lower() in ("1", "true", "yes"),
    }
    for f in fields(TrainConfig):
        caster = casters.get(str(f.type))
        if caster is None:  # tuples and devices are not command-line settings
            continue
        train.add_argument(
            f"--{f.name.replace('_', '-')}",
            dest=f.name,
            type=caster,
            default=None,
            help=f.metadata.get("help"),
        )

    evaluate = commands.add_parser("evaluate", help="metrics of an artifact on labelled answers")
    evaluate.add_argument("--artifact", type=Path, required=True)
    evaluate.add_argument("--responses", type=Path, required=True)
    evaluate.add_argument(
        "--item", default=None, help="item id in the CSV (default: the artifact's)"
    )
    evaluate.add_argument(
        "--split", default="heldout", help="heldout (the artifact's test split), all, train, test"
    )
    _add_backbone(evaluate)

    export = commands.add_parser("export", help="export the backbone's ONNX graphs (fp32 + int8)")
    _add_backbone(export)
    export.add_argument("--out", type=Path, default=None, help="folder (default: the ONNX cache)")

    truncate = commands.add_parser(
        "truncate-backbone",
        help="write a copy of the backbone with only its first N layers (a faster encoder)",
    )
    _add_backbone(truncate)
    truncate.add_argument("--layers", type=int, required=True)
    truncate.add_argument("--out", type=Path, required=True)

    score = commands.add_parser("score", help="score answers with one or more artifacts")
    score.add_argument("--artifact", action="append", required=True, metavar="ITEM_KEY=DIR")
    score.add_argument(
        "--input", type=Path, default=None, help="CSV with item_key,text (default: stdin)"
    )
    score.add_argument(
        "--backend",
        default="auto",
        help="auto (torch on CUDA, onnx-int8 on CPU), torch, onnx, onnx-int8",
    )
    _add_backbone(score)

    _add_benchmark(commands)
    return parser


def _add_benchmark(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    bench = commands.add_parser(
        "benchmark",
        help="quality of model kinds against the TF-IDF baseline (cross-validated by default); "
        "engine cost when lora is among the kinds",
    )
    bench.add_argument("--responses", type=Path, required=True)
    bench.add_argument("--items", type=Path, default=None)
    _add_backbone(bench)
    bench.add_argument("--items-only", type=_csv_list, default=())
    bench.add_argument("--max-train-per-item", type=int, default=None)
    bench.add_argument(
        "--kinds",
        type=_csv_list,
        default=("auto",),
        help="comma-separated: auto (default), head, lora, full; the baseline always runs",
    )
    bench.add_argument(
        "--eval",
        choices=("cv", "split"),
        default="cv",
        help="cv: repeated stratified k-fold over all answers (default); split: the data's own",
    )
    bench.add_argument("--folds", type=int, default=5, help="cross-validation folds")
    bench.add_argument("--cv-repeats", type=int, default=2, help="cross-validation repeats")
    bench.add_argument(
        "--embedding-cache",
        type=Path,
        default=None,
        help="folder caching frozen-backbone vectors between runs (default: OUT/embeddings)",
    )
    bench.add_argument(
        "--backends",
        type=_csv_list,
        default=("torch", "onnx", "onnx-int8"),
        help="engine backends to time; 'none' skips the engine part",
    )
    bench.add_argument("--repeats", type=int, default=15)
    bench.add_argument("--throughput-answers", type=int, default=256)
    bench.add_argument("--latency-samples", type=int, default=100)
    bench.add_argument(
        "--epochs", type=int, default=None, help="override the 5 training epochs (engine-only runs)"
    )
    bench.add_argument(
        "--reuse", action="store_true", help="reuse artifacts already in OUT/artifacts"
    )
    bench.add_argument(
        "--seed", type=int, default=13, help="seed for splits, initialisation and sampling"
    )
    bench.add_argument(
        "--onnx-cache",
        type=Path,
        default=None,
        help="folder of exported ONNX graphs (default: ~/.cache/scorebridge/onnx)",
    )
    bench.add_argument("--out", type=Path, required=True)


def _train(args: argparse.Namespace) -> int:
    from ml_core.evaluation import examples_by_item, num_labels_for
    from ml_core.training import TrainConfig, train_item

    item_bank = {i.item_id: i for i in read_items_csv(args.items)} if args.items else {}
    grouped = examples_by_item(read_responses_csv(args.responses, item_bank or None))
    overrides = {
        f.name: getattr(args, f.name)
        for f in fields(TrainConfig)
        if getattr(args, f.name, None) is not None
    }
    kind = overrides.pop("kind", "auto")
    config = TrainConfig(kind=kind if kind != "auto" else "lora", **overrides)
    for item_id in args.items_only or sorted(grouped):
        if item_id not in grouped:
            print(f"error: no responses for item {item_id!r}", file=sys.stderr)
            return 2
        if kind == "auto":
            from ml_core.auto import AutoConfig, train_auto

            record = item_bank.get(item_id)
            artifact = train_auto(
                grouped[item_id],
                num_labels_for(record, grouped[item_id]),
                args.out / item_id,
                backbone=args.backbone,
                config=AutoConfig(seed=config.seed, pooling=config.pooling),
                reference_answers=(record.reference_answer,)
                if record and record.reference_answer
                else (),
                item_id=item_id,
            )
        else:
            artifact = train_item(
                grouped[item_id],
                item_id=item_id,
                num_labels=num_labels_for(item_bank.get(item_id), grouped[item_id]),
                out_dir=args.out / item_id,
                backbone=args.backbone,
                config=config,
            )
        print(
            json.dumps(
                {
                    "item_id": item_id,
                    "path": str(artifact.path),
                    "kind": artifact.kind,
                    "size_bytes": artifact.size_bytes,
                    "metrics": artifact.metrics,
                }
            )
        )
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from ml_core.artifact import load_artifact
    from ml_core.evaluation import evaluate_artifact, examples_by_item, held_out_examples

    artifact = load_artifact(args.artifact)
    item_id = args.item or artifact.item_id
    examples = examples_by_item(read_responses_csv(args.responses)).get(item_id, [])
    if not examples:
        print(f"error: no responses for item {item_id!r}", file=sys.stderr)
        return 2
    if args.split == "heldout":
        examples = held_out_examples(examples, args.artifact)
    elif args.split != "all":
        examples = [e for e in examples if e.split == args.split]
    print(json.dumps(evaluate_artifact(args.artifact, examples, backbone=args.backbone), indent=2))
    return 0


def _export(args: argparse.Namespace) -> int:
    from ml_core.backbone import backbone_fingerprint, resolve_backbone
    from ml_core.onnx_backend import default_cache_dir, export_encoder, graph_folder_name

    folder = args.out or default_cache_dir() / graph_folder_name(
        backbone_fingerprint(args.backbone), "mean"
    )
    paths = export_encoder(resolve_backbone(args.backbone), folder)
    print(json.dumps({name: str(path) for name, path in paths.items()}, indent=2))
    return 0


def _truncate(args: argparse.Namespace) -> int:
    from ml_core.backbone import backbone_fingerprint, resolve_backbone
    from ml_core.modeling import truncate_backbone

    try:
        out = truncate_backbone(resolve_backbone(args.backbone), args.layers, args.out)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(
        json.dumps(
            {"backbone": str(out.resolve()), "fingerprint": backbone_fingerprint(str(out))},
            indent=2,
        )
    )
    return 0


def _score(args: argparse.Namespace) -> int:
    from ml_core.engine import ScoreRequest, ScoringEngine

    engine = ScoringEngine(args.backbone, backend=args.backend)
    for spec in args.artifact:
        key, _, folder = spec.partition("=")
        if not folder:
            print(f"error: --artifact must be ITEM_KEY=DIR, got {spec!r}", file=sys.stderr)
            return 2
        engine.load_item(key, Path(folder), Path(folder).name)
    handle = (
        args.input.open(newline="", encoding="utf-8", errors="surrogateescape")
        if args.input
        else sys.stdin
    )
    rows = list(csv.DictReader(handle))
    results = engine.score(
        [ScoreRequest(row.get("item_key", ""), row.get("text", "")) for row in rows]
    )
    for result in results:
        print(
            json.dumps(
                {
                    "item_key": result.item_key,
                    "score": result.score,
                    "confidence": round(result.confidence, 4),
                    "probabilities": [round(p, 4) for p in result.probabilities],
                    "criteria": dict(result.criteria) if result.criteria else None,
                    "truncated": result.truncated,
                    "error": result.error,
                    "model_version": result.model_version,
                }
            )
        )
    return 0


def _benchmark(args: argparse.Namespace) -> int:
    from ml_core.benchmark import BenchmarkConfig, run_benchmark

    config = BenchmarkConfig(
        responses=args.responses,
        out=args.out,
        items=args.items,
        backbone=args.backbone,
        items_only=args.items_only,
        max_train_per_item=args.max_train_per_item,
        kinds=args.kinds,
        eval=args.eval,
        folds=args.folds,
        cv_repeats=args.cv_repeats,
        embedding_cache=args.embedding_cache or args.out / "embeddings",
        backends=tuple(b for b in args.backends if b != "none"),
        repeats=args.repeats,
        throughput_answers=args.throughput_answers,
        latency_samples=args.latency_samples,
        reuse=args.reuse,
        epochs=args.epochs,
        seed=args.seed,
        onnx_cache=args.onnx_cache,
    )
    run_benchmark(config, log=lambda line: print(line, flush=True))
    print((args.out / "report.md").read_text())
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    handlers = {
        "train": _train,
        "evaluate": _evaluate,
        "export": _export,
        "truncate-backbone": _truncate,
        "score": _score,
        "benchmark": _benchmark,
    }
    try:
        return handlers[args.command](args)
    except DataFormatError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
