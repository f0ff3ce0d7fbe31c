"""Distillation over every SAF item: teacher vs distilled student vs the same student with lambda=0.

For each item: train a teacher with ``ml_core.training.train_item`` (kind ``head`` by default),
score every answer with it through the ``ScoringEngine``, distill a student with
``ml_core.distill.distill_item`` on the same train/val/test split, and compare on the test
answers. Writes ``report.json`` and ``report.md`` to ``--out``.

Timings are taken in this one run on a shared machine: the student in ONNX Runtime with one
intra-op thread, the teacher engine with one thread, both batched over the item's answers.

    .venv/bin/python benchmarks/distill_benchmark.py \
        --responses ../shared/datasets/saf/responses.csv --items ../shared/datasets/saf/items.csv \
        --out var/distill-benchmark
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from dataclasses import fields
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ml_core.data import (  # noqa: E402
    ItemRecord,
    ResponseRecord,
    read_items_csv,
    read_responses_csv,
)
from ml_core.distill.config import DistillConfig  # noqa: E402
from ml_core.distill.config_args import add_config_arguments, config_from_arguments  # noqa: E402
from ml_core.distill.job import DistillJobConfig, run_distill_job  # noqa: E402
from ml_core.distill.teacher import teacher_probabilities, teacher_seconds_per_answer  # noqa: E402
from ml_core.engine import ScoringEngine  # noqa: E402
from ml_core.metrics import classification_report  # noqa: E402
from ml_core.training import TrainConfig, TrainExample, split_examples, train_item  # noqa: E402

KINDS = ("teacher", "student", "baseline")
METRICS = ("qwk", "accuracy", "macro_f1")


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--responses", type=Path)
    parser.add_argument("--items", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument(
        "--items-only", nargs="*", default=None, help="item ids to run (default: all)"
    )
    parser.add_argument("--teacher-kind", choices=("head", "lora"), default="head")
    parser.add_argument(
        "--teacher-epochs", type=int, default=None, help="teacher epochs (default: TrainConfig's)"
    )
    parser.add_argument("--backbone", default=None)
    parser.add_argument(
        "--retrain-teachers",
        action="store_true",
        help="retrain teachers even if OUT/teachers/<item> exists",
    )
    parser.add_argument("--teacher-timing-seconds", type=float, default=1.0)
    parser.add_argument(
        "--teacher-timing-answers",
        type=int,
        default=32,
        help="with --remeasure-speed: answers the teacher is timed on",
    )
    parser.add_argument(
        "--merge",
        nargs="+",
        type=Path,
        default=None,
        help="only combine the report.json of earlier runs (e.g. item subsets run in parallel) into --out",
    )
    parser.add_argument(
        "--remeasure-speed",
        action="store_true",
        help="with --merge: time every student and teacher again, one after the other, in this process",
    )
    # every DistillConfig field can be overridden, e.g. --temperature 3 --lambda_sweep 0.5,1,2
    add_config_arguments(parser, skip=("backbone",))
    return parser.parse_args()


def main() -> None:
    args = _parse()
    config = config_from_arguments(args, backbone=args.backbone)
    if args.merge:
        _merge(args, config)
        return
    if args.items is None or args.responses is None:
        raise SystemExit("--items and --responses are required (unless --merge)")
    items = {item.item_id: item for item in read_items_csv(args.items)}
    responses = read_responses_csv(args.responses, items)
    by_item: dict[str, list] = defaultdict(list)
    for response in responses:
        by_item[response.item_id].append(response)
    chosen = args.items_only or sorted(by_item)
    args.out.mkdir(parents=True, exist_ok=True)
    engine = ScoringEngine(args.backbone, threads=1)
    rows: list[dict[str, object]] = []
    started = time.perf_counter()
    for number, item_id in enumerate(chosen, 1):
        item_started = time.perf_counter()
        row = _run_item(args, config, engine, items[item_id], by_item[item_id])
        row["seconds"] = time.perf_counter() - item_started
        speed = "speed not measured"
        if row.get("student_answers_per_second"):  # None with --measure_speed false
            student_spa = 1.0 / float(row["student_answers_per_second"])  # type: ignore[arg-type]
            student_e2e = 1.0 / float(row["student_answers_per_second_end_to_end"] or 1e-9)  # type: ignore[arg-type]
            row["speedup"] = float(row["teacher_seconds_per_answer"]) / student_spa  # type: ignore[arg-type]
            row["speedup_end_to_end"] = float(row["teacher_seconds_per_answer"]) / student_e2e  # type: ignore[arg-type]
            speed = f"{row['student_answers_per_second']:.0f} ans/s, x{row['speedup']:.0f}"
        rows.append(row)
        print(
            f"[{number}/{len(chosen)}] {item_id}: QWK teacher {row.get('teacher_qwk', 0):.3f} student "
            f"{row.get('student_qwk', 0):.3f} lambda0 {row.get('baseline_qwk', 0):.3f} | "
            f"{speed} | {row['seconds']:.0f}s",
            flush=True,
        )
        _write(args, config, rows, time.perf_counter() - started)


def _run_item(
    args: argparse.Namespace,
    config: DistillConfig,
    engine: ScoringEngine,
    item: ItemRecord,
    answers: list[ResponseRecord],
) -> dict[str, object]:
    """One item: its teacher trained (or reused), its student distilled by the worker's job,
    both measured on the teacher's own test split."""
    item_id = item.item_id
    examples = [TrainExample(text=r.text, label=r.score, split=r.split) for r in answers]
    teacher_config = TrainConfig(kind=args.teacher_kind)
    if args.teacher_epochs:
        teacher_config.epochs = args.teacher_epochs
    teacher_dir = args.out / "teachers" / args.teacher_kind / item_id
    teacher_started = time.perf_counter()
    if args.retrain_teachers or not (teacher_dir / "manifest.json").is_file():
        train_item(
            examples,
            item_id=item_id,
            num_labels=item.max_score + 1,
            out_dir=teacher_dir,
            backbone=args.backbone,
            config=teacher_config,
        )
    teacher_seconds = time.perf_counter() - teacher_started
    version = f"{item_id}:{args.teacher_kind}"
    engine.load_item(item_id, teacher_dir, version)
    texts = [r.text for r in answers]
    probabilities = teacher_probabilities(engine, texts, item_key=item_id)
    # the teacher's own split (same splitter and seed): the student is tested on the same answers
    split = split_examples(examples, teacher_config)
    splits = [""] * len(texts)
    for name in ("train", "val", "test"):
        for index in getattr(split, name):
            splits[index] = name
    test_texts = [texts[i] for i in split.test]
    timing = teacher_seconds_per_answer(
        engine, test_texts or texts, item_key=item_id, min_seconds=args.teacher_timing_seconds
    )
    job = DistillJobConfig(
        item_id=item_id,
        texts=tuple(texts),
        scores=tuple(r.score for r in answers),
        splits=tuple(splits),
        max_score=item.max_score,
        teacher_version=version,
        min_answers=1,
        distill=config,
    )
    done = run_distill_job(
        job,
        lambda batch: teacher_probabilities(engine, batch, item_key=item_id),
        args.out / "students" / item_id,
        teacher_seconds_per_answer=timing["seconds_per_answer"],
    )
    engine.remove_item(item_id)
    report = json.loads((Path(done.path) / "manifest.json").read_text())["report"]
    student = report["student"]
    teacher_check = classification_report(
        np.array([answers[i].score for i in split.test]),
        probabilities[split.test].argmax(1),
        num_labels=item.max_score + 1,
    )
    row = {
        "item_id": item_id,
        "language": item.language,
        "n_answers": len(texts),
        "n_test": len(split.test),
        **{
            f"{kind}_{m}": float(report[kind][m])
            for kind in KINDS
            for m in METRICS
            if m in report.get(kind, {})
        },
        "teacher_artifact_qwk": float(teacher_check["qwk"]),
        "lambda": student["lambda"],
        "parameters": student["parameters"],
        "onnx_bytes": report["onnx_bytes"],
        "mean_tokens": student.get("mean_tokens"),
        "student_answers_per_second": student.get("answers_per_second"),
        "student_answers_per_second_end_to_end": student.get("answers_per_second_end_to_end"),
        "teacher_seconds_per_answer": timing["seconds_per_answer"],
        "teacher_single_seconds_per_answer": timing["single_seconds_per_answer"],
        "teacher_cpu_seconds_per_answer": timing.get("cpu_seconds_per_answer"),
        "student_answers_per_second_cpu": student.get("answers_per_second_cpu"),
        "teacher_agreement": student.get("teacher_agreement"),
        "onnx_max_abs_difference": student.get("onnx_max_abs_difference"),
        "augmented_answers": report.get("augmented", 0),
        "teacher_train_seconds": teacher_seconds,
    }
    return row


def _merge(args: argparse.Namespace, config: DistillConfig) -> None:
    rows: list[dict[str, object]] = []
    seconds = 0.0
    commands = []
    folders: dict[str, Path] = {}
    for folder in args.merge:
        payload = json.loads((folder / "report.json").read_text())
        for row in payload["items"]:
            if row["item_id"] not in folders:
                rows.append(row)
                folders[str(row["item_id"])] = folder
        seconds = max(seconds, float(payload["seconds"]))
        commands.append(payload["command"])
    args.out.mkdir(parents=True, exist_ok=True)
    rows.sort(key=lambda r: str(r["item_id"]))
    if args.remeasure_speed:
        _remeasure(args, rows, folders)
    _write(args, config, rows, seconds, commands=commands)


def _remeasure(
    args: argparse.Namespace, rows: list[dict[str, object]], folders: dict[str, Path]
) -> None:
    """Time students and teachers again, sequentially, after the parallel runs are over."""
    from ml_core.distill.scorer import DistilledScorer
    from ml_core.distill.speed import measure_speed

    items = {item.item_id: item for item in read_items_csv(args.items)}
    answers = defaultdict(list)
    for response in read_responses_csv(args.responses, items):
        answers[response.item_id].append(response.text)
    engine = ScoringEngine(args.backbone, threads=1)
    for row in rows:
        item_id = str(row["item_id"])
        folder = folders[item_id]
        texts = answers[item_id]
        speed = measure_speed(
            DistilledScorer(folder / "students" / item_id, threads=1), texts, min_seconds=1.0
        )
        engine.load_item(item_id, folder / "teachers" / args.teacher_kind / item_id, "timing")
        # the teacher on the item's first answers: its cost per answer is stable, and the
        # backbone is the slow part of this re-measurement on a loaded machine
        timing = teacher_seconds_per_answer(
            engine,
            texts[: args.teacher_timing_answers],
            item_key=item_id,
            min_seconds=args.teacher_timing_seconds,
            singles=8,
        )
        engine.remove_item(item_id)
        row.update(
            {
                "student_answers_per_second": speed["answers_per_second"],
                "student_answers_per_second_cpu": speed["answers_per_second_cpu"],
                "student_answers_per_second_end_to_end": speed["answers_per_second_end_to_end"],
                "teacher_seconds_per_answer": timing["seconds_per_answer"],
                "teacher_cpu_seconds_per_answer": timing["cpu_seconds_per_answer"],
                "teacher_single_seconds_per_answer": timing["single_seconds_per_answer"],
                "speed_timed_on": "all answers of the item, sequential re-measurement",
            }
        )
        row["speedup"] = timing["seconds_per_answer"] * speed["answers_per_second"]
        row["speedup_end_to_end"] = (
            timing["seconds_per_answer"] * speed["answers_per_second_end_to_end"]
        )
        print(
            f"{item_id}: student {speed['answers_per_second']:,.0f} ans/s (cpu {speed['answers_per_second_cpu']:,.0f}), "
            f"teacher {1000 * timing['seconds_per_answer']:.1f} ms/ans (cpu {1000 * timing['cpu_seconds_per_answer']:.1f})",
            flush=True,
        )


def _summary(rows: list[dict[str, object]]) -> dict[str, object]:
    def mean(key: str) -> float:
        values = [float(r[key]) for r in rows if r.get(key) is not None]  # type: ignore[arg-type]
        return float(np.mean(values)) if values else float("nan")

    # speeds over the items whose student was timed (none with --measure_speed false)
    timed = [r for r in rows if r.get("student_answers_per_second")]
    total_answers = sum(int(r["n_answers"]) for r in timed)  # type: ignore[arg-type]
    student_time = sum(int(r["n_answers"]) / float(r["student_answers_per_second"]) for r in timed)  # type: ignore[arg-type]
    student_time_e2e = sum(
        int(r["n_answers"]) / float(r["student_answers_per_second_end_to_end"]) for r in timed
    )  # type: ignore[arg-type]
    teacher_time = sum(int(r["n_answers"]) * float(r["teacher_seconds_per_answer"]) for r in timed)  # type: ignore[arg-type]
    summary: dict[str, object] = {
        f"mean_{kind}_{m}": mean(f"{kind}_{m}") for kind in KINDS for m in METRICS
    }
    # per-core rates from CPU time: robust to other load on a shared machine
    cpu_rows = [
        r
        for r in rows
        if r.get("student_answers_per_second_cpu") and r.get("teacher_cpu_seconds_per_answer")
    ]
    cpu_answers = sum(int(r["n_answers"]) for r in cpu_rows)  # type: ignore[arg-type]
    student_cpu = sum(
        int(r["n_answers"]) / float(r["student_answers_per_second_cpu"]) for r in cpu_rows
    )  # type: ignore[arg-type]
    teacher_cpu = sum(
        int(r["n_answers"]) * float(r["teacher_cpu_seconds_per_answer"]) for r in cpu_rows
    )  # type: ignore[arg-type]
    summary["student_answers_per_cpu_second_all_answers"] = (
        cpu_answers / student_cpu if student_cpu else 0.0
    )
    summary["teacher_cpu_seconds_per_answer_all_answers"] = (
        teacher_cpu / cpu_answers if cpu_answers else 0.0
    )
    summary["speedup_cpu_all_answers"] = teacher_cpu / student_cpu if student_cpu else 0.0
    summary.update(
        {
            "items": len(rows),
            "mean_parameters": mean("parameters"),
            "mean_onnx_bytes": mean("onnx_bytes"),
            "mean_teacher_agreement": mean("teacher_agreement"),
            # answers weighted: every SAF answer scored once, as a school would
            "student_answers_per_second_all_answers": total_answers / student_time
            if student_time
            else 0.0,
            "student_answers_per_second_end_to_end_all_answers": total_answers / student_time_e2e
            if student_time_e2e
            else 0.0,
            "teacher_seconds_per_answer_all_answers": teacher_time / total_answers
            if total_answers
            else 0.0,
            "speedup_all_answers": (teacher_time / student_time) if student_time else 0.0,
            "speedup_end_to_end_all_answers": (teacher_time / student_time_e2e)
            if student_time_e2e
            else 0.0,
            "items_student_beats_baseline_qwk": sum(
                1 for r in rows if float(r.get("student_qwk", 0)) > float(r.get("baseline_qwk", 0))
            ),  # type: ignore[arg-type]
            "items_baseline_beats_student_qwk": sum(
                1 for r in rows if float(r.get("student_qwk", 0)) < float(r.get("baseline_qwk", 0))
            ),  # type: ignore[arg-type]
        }
    )
    summary["targets"] = {
        "student_qwk_within_0.05_of_teacher": summary["mean_teacher_qwk"]
        - summary["mean_student_qwk"]
        <= 0.05,  # type: ignore[operator]
        "distillation_beats_lambda0_mean_qwk": summary["mean_student_qwk"]
        > summary["mean_baseline_qwk"],  # type: ignore[operator]
    }
    if not timed:
        return summary
    summary["targets"] |= {  # type: ignore[operator]
        "student_20000_answers_per_second_per_core": summary[
            "student_answers_per_second_all_answers"
        ]
        >= 20000,  # type: ignore[operator]
        "student_50x_faster_than_teacher": summary["speedup_all_answers"] >= 50,  # type: ignore[operator]
        "student_20000_answers_per_cpu_second": summary[
            "student_answers_per_cpu_second_all_answers"
        ]
        >= 20000,  # type: ignore[operator]
        "student_50x_faster_than_teacher_cpu_time": summary["speedup_cpu_all_answers"] >= 50,  # type: ignore[operator]
    }
    return summary


def _write(
    args: argparse.Namespace,
    config: DistillConfig,
    rows: list[dict[str, object]],
    seconds: float,
    commands: list[str] | None = None,
) -> None:
    summary = _summary(rows)
    payload = {
        "command": " ".join(sys.argv),
        "merged_commands": commands or [],
        "teacher_kind": args.teacher_kind,
        "distill_config": {f.name: getattr(config, f.name) for f in fields(DistillConfig)},
        "seconds": seconds,
        "summary": summary,
        "items": rows,
    }
    (args.out / "report.json").write_text(json.dumps(payload, indent=2, default=list) + "\n")
    lines = [
        "# Distillation benchmark",
        "",
        f"Teacher: `{args.teacher_kind}` (ml_core.training.train_item), served by ScoringEngine (1 thread). "
        "Student: ONNX Runtime, 1 intra-op thread. Metrics on each item's test answers.",
        "",
        f"Command: `{payload['command']}`",
        "",
        *[f"Merged run: `{c}`" for c in commands or []],
        "",
        "| item | n test | QWK teacher | QWK student | QWK λ=0 | acc T/S/λ0 | F1 T/S/λ0 | λ | params | ONNX KB | tokens | student ans/s | teacher ms/ans | speed-up |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['item_id']} | {r['n_test']} | {r.get('teacher_qwk', 0):.3f} | {r.get('student_qwk', 0):.3f} | "
            f"{r.get('baseline_qwk', 0):.3f} | {r.get('teacher_accuracy', 0):.2f}/{r.get('student_accuracy', 0):.2f}/"
            f"{r.get('baseline_accuracy', 0):.2f} | {r.get('teacher_macro_f1', 0):.2f}/{r.get('student_macro_f1', 0):.2f}/"
            f"{r.get('baseline_macro_f1', 0):.2f} | {r['lambda']} | {r['parameters']} | {float(r['onnx_bytes']) / 1024:.0f} | "
            f"{float(r['mean_tokens'] or 0):.0f} | {float(r['student_answers_per_second'] or 0):,.0f} | "
            f"{1000 * float(r['teacher_seconds_per_answer']):.1f} | ×{float(r.get('speedup') or 0):,.0f} |"
        )
    s = summary
    lines.append(
        f"| **mean** | | **{s['mean_teacher_qwk']:.3f}** | **{s['mean_student_qwk']:.3f}** | **{s['mean_baseline_qwk']:.3f}** | "
        f"{s['mean_teacher_accuracy']:.2f}/{s['mean_student_accuracy']:.2f}/{s['mean_baseline_accuracy']:.2f} | "
        f"{s['mean_teacher_macro_f1']:.2f}/{s['mean_student_macro_f1']:.2f}/{s['mean_baseline_macro_f1']:.2f} | | "
        f"{s['mean_parameters']:,.0f} | {s['mean_onnx_bytes'] / 1024:.0f} | | "
        f"{s['student_answers_per_second_all_answers']:,.0f} (all answers) | "
        f"{1000 * s['teacher_seconds_per_answer_all_answers']:.1f} | ×{s['speedup_all_answers']:,.0f} |"
    )
    lines += [
        "",
        f"- Student end to end (Python tokenization + ONNX Runtime): {s['student_answers_per_second_end_to_end_all_answers']:,.0f} answers/s, "
        f"×{s['speedup_end_to_end_all_answers']:,.0f} vs the teacher.",
        f"- Items where the student beats λ=0 on QWK: {s['items_student_beats_baseline_qwk']}, where λ=0 wins: {s['items_baseline_beats_student_qwk']}.",
        f"- Student/teacher agreement on test answers (mean): {s['mean_teacher_agreement']:.3f}.",
        f"- In CPU time of the one-thread runs (robust to other load on the machine): student "
        f"{s['student_answers_per_cpu_second_all_answers']:,.0f} answers per CPU second, teacher "
        f"{1000 * s['teacher_cpu_seconds_per_answer_all_answers']:.1f} ms CPU per answer, "
        f"×{s['speedup_cpu_all_answers']:,.0f}.",
        "",
        "Targets:",
        "",
    ]
    lines += [f"- {name}: {'met' if ok else 'NOT met'}" for name, ok in summary["targets"].items()]  # type: ignore[union-attr]
    lines.append("")
    lines.append(f"Total run time {seconds / 60:.1f} min.")
    (args.out / "report.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
