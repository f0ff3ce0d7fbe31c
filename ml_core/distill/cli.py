"""``python -m ml_core.distill``: distill one item, score with a student file, time a student.

    python -m ml_core.distill train --items items.csv --responses responses.csv --item ITEM \\
        --teacher TEACHER_ARTIFACT_DIR --out OUT_DIR [--unlabelled unlabelled.csv]
    python -m ml_core.distill train ... --teacher-probabilities probs.csv   # no backbone needed
    python -m ml_core.distill score --model OUT_DIR/student.onnx "an answer" "another answer"
    python -m ml_core.distill speed --model OUT_DIR/student.onnx --responses responses.csv --item ITEM

Teacher probabilities as CSV: a ``response_id`` column and one column per class (in class
order); as ``.npy``: ``[answers, classes]`` in the order of the item's rows in responses.csv.
Unlabelled answers: a CSV with ``item_id`` and ``text`` columns (other columns ignored).
"""

from __future__ import annotations

import argparse
import csv
import functools
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ml_core.distill.config_args import add_config_arguments, config_from_arguments
from ml_core.distill.scorer import DistilledScorer

if TYPE_CHECKING:
    from ml_core.data import ResponseRecord
    from ml_core.distill.config import DistillConfig


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ml_core.distill",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="distill one item into a student artifact folder")
    train.add_argument("--items", type=Path, required=True, help="items.csv (SAF layout)")
    train.add_argument("--responses", type=Path, required=True, help="responses.csv (SAF layout)")
    train.add_argument("--item", required=True, help="item_id to distill")
    train.add_argument(
        "--out", type=Path, required=True, help="artifact folder to write (replaced)"
    )
    teacher = train.add_mutually_exclusive_group(required=True)
    teacher.add_argument(
        "--teacher", type=Path, help="teacher artifact folder (any trained model version)"
    )
    teacher.add_argument(
        "--teacher-probabilities",
        type=Path,
        help="precomputed teacher probabilities (.csv or .npy)",
    )
    train.add_argument(
        "--teacher-version", default="", help="version label of the teacher, stored in the student"
    )
    train.add_argument("--unlabelled", type=Path, help="CSV of unlabelled answers (item_id, text)")
    train.add_argument(
        "--unlabelled-probabilities", type=Path, help=".npy teacher probabilities of --unlabelled"
    )
    add_config_arguments(train)

    score = commands.add_parser(
        "score", help="score texts with a student .onnx file (JSON lines out)"
    )
    score.add_argument(
        "--model", type=Path, required=True, help="student.onnx or its artifact folder"
    )
    score.add_argument("texts", nargs="*", help="answers; none = one answer per line on stdin")

    speed = commands.add_parser("speed", help="answers per second of a student on one core")
    speed.add_argument("--model", type=Path, required=True)
    speed.add_argument("--responses", type=Path, required=True)
    speed.add_argument("--item", default=None, help="only this item's answers")
    speed.add_argument("--seconds", type=float, default=2.0)

    args = parser.parse_args(argv)
    if args.command == "train":
        return _train(args)
    if args.command == "score":
        scorer = DistilledScorer(args.model)
        texts = args.texts or [line.rstrip("\n") for line in sys.stdin]
        for text, result in zip(texts, scorer.score(texts), strict=True):
            print(json.dumps({"text": text[:80], **result.__dict__}))
        return 0
    return _speed(args)


def _train_with_teacher(
    args: argparse.Namespace,
    answers: Sequence[ResponseRecord],
    unlabelled: Sequence[str],
    max_score: int,
    config: DistillConfig,
) -> int:
    """The teacher model asked about every answer: the job the training worker runs."""
    from ml_core.distill.job import DistillJobConfig, run_distill_job
    from ml_core.distill.teacher import (
        load_teacher,
        teacher_probabilities,
        teacher_seconds_per_answer,
    )

    engine, version = load_teacher(
        args.teacher, version=args.teacher_version, backbone=config.backbone, threads=1
    )
    job = DistillJobConfig(
        item_id=args.item,
        texts=tuple(r.text for r in answers),
        scores=tuple(r.score for r in answers),
        splits=tuple(r.split for r in answers),
        max_score=max_score,
        teacher_version=version,
        unlabelled=tuple(unlabelled),
        min_answers=1,
        max_unlabelled=len(unlabelled),
        distill=config,
    )
    timing = teacher_seconds_per_answer(engine, list(job.texts[:64]))
    report = run_distill_job(
        job,
        functools.partial(teacher_probabilities, engine),
        args.out,
        teacher_seconds_per_answer=timing["seconds_per_answer"],
    )
    return _print_artifact(report.path, report.onnx_path, report.size_bytes, report.metrics)


def _train(args: argparse.Namespace) -> int:
    from ml_core.data import read_items_csv, read_responses_csv
    from ml_core.distill.api import distill_item

    items = {item.item_id: item for item in read_items_csv(args.items)}
    if args.item not in items:
        raise SystemExit(f"item {args.item!r} is not in {args.items}")
    item = items[args.item]
    answers = [r for r in read_responses_csv(args.responses, items) if r.item_id == args.item]
    if not answers:
        raise SystemExit(f"no answers for item {args.item!r} in {args.responses}")
    texts = [r.text for r in answers]
    unlabelled = _unlabelled_texts(args.unlabelled, args.item) if args.unlabelled else []
    config = config_from_arguments(args)
    unlabelled_probs: np.ndarray | None = None
    if args.teacher is not None:
        return _train_with_teacher(args, answers, unlabelled, item.max_score, config)
    # the teacher's probabilities given as files: no teacher to ask about variants
    probabilities = _read_probabilities(
        args.teacher_probabilities, [r.response_id for r in answers]
    )
    if unlabelled:
        if args.unlabelled_probabilities is None:
            raise SystemExit(
                "--unlabelled with --teacher-probabilities needs --unlabelled-probabilities"
            )
        unlabelled_probs = np.load(args.unlabelled_probabilities)
    artifact = distill_item(
        texts,
        [r.score for r in answers],
        probabilities,
        unlabelled,
        unlabelled_probs,
        config=config,
        out_dir=args.out,
        item_id=args.item,
        score_labels=list(range(item.max_score + 1)),
        splits=[r.split for r in answers],
        teacher_version=args.teacher_version,
    )
    return _print_artifact(
        str(artifact.path), str(artifact.onnx_path), artifact.size_bytes, artifact.metrics
    )


def _print_artifact(path: str, onnx: str, size_bytes: int, metrics: dict[str, float]) -> int:
    print(
        json.dumps(
            {"path": path, "onnx": onnx, "size_bytes": size_bytes, "metrics": metrics}, indent=2
        )
    )
    return 0


def _speed(args: argparse.Namespace) -> int:
    from ml_core.data import read_responses_csv
    from ml_core.distill.speed import measure_speed

    scorer = DistilledScorer(args.model, threads=1)
    texts = [r.text for r in read_responses_csv(args.responses) if args.item in (None, r.item_id)]
    print(json.dumps(measure_speed(scorer, texts, min_seconds=args.seconds), indent=2))
    return 0


def _unlabelled_texts(path: Path, item_id: str) -> list[str]:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        return [
            row["text"]
            for row in csv.DictReader(handle)
            if row.get("item_id", item_id) == item_id and row["text"].strip()
        ]


def _read_probabilities(path: Path, response_ids: Sequence[str]) -> np.ndarray:
    """Teacher probabilities aligned with ``response_ids`` from a ``.npy`` or ``.csv`` file."""
    if path.suffix == ".npy":
        array = np.load(path)
        if array.ndim != 2 or len(array) != len(response_ids):
            raise SystemExit(
                f"{path}: expected [{len(response_ids)}, classes], got {list(array.shape)}"
            )
        return array.astype(np.float32)
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        columns = [c for c in (reader.fieldnames or []) if c != "response_id"]
        rows = {row["response_id"]: [float(row[c]) for c in columns] for row in reader}
    missing = [rid for rid in response_ids if rid not in rows]
    if missing:
        raise SystemExit(
            f"{path}: no probabilities for {len(missing)} answers, e.g. {missing[0]!r}"
        )
    return np.array([rows[rid] for rid in response_ids], dtype=np.float32)
