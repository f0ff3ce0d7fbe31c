"""The ``python -m ml_core.merge`` commands chained: distances -> plan -> merge -> evaluate."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from ml_core.merge.cli import main
from ml_core.merge.group import load_group
from ml_core.training import TrainExample


def _responses_csv(trained: dict[str, tuple[Path, list[TrainExample]]], path: Path) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["item_id", "response_id", "text", "score", "split"])
        for item_id, (_, examples) in trained.items():
            for number, example in enumerate(examples):
                writer.writerow(
                    [item_id, f"{item_id}-{number}", example.text, example.label, example.split]
                )
    return path


def test_cli_distances_plan_merge_evaluate(
    full_items: dict[str, tuple[Path, list[TrainExample]]],
    tiny_backbone: Path,
    tmp_path: Path,
    capsys,
) -> None:
    responses = _responses_csv(full_items, tmp_path / "responses.csv")
    common = [
        "--artifacts",
        *[str(p) for p, _ in full_items.values()],
        "--responses",
        str(responses),
        "--backbone",
        str(tiny_backbone),
    ]
    assert (
        main(["distances", *common, "--out", str(tmp_path / "d"), "--feature-max-answers", "16"])
        == 0
    )
    written = json.loads(capsys.readouterr().out)
    assert Path(written["heatmap"]).is_file() and not written["cached"]
    assert (
        main(
            [
                "plan",
                "--distances",
                written["matrix"],
                "--group-size",
                "2",
                "--out",
                str(tmp_path / "plan.json"),
            ]
        )
        == 0
    )
    plan = json.loads((tmp_path / "plan.json").read_text())
    assert sorted(len(g) for g in plan["groups"]) == [1, 2]
    assert (
        main(
            [
                "merge",
                *common,
                "--plan",
                str(tmp_path / "plan.json"),
                "--method",
                "task_arithmetic",
                "--out",
                str(tmp_path / "groups"),
            ]
        )
        == 0
    )
    groups = sorted(str(p) for p in (tmp_path / "groups").iterdir())
    assert {load_group(Path(g)).manifest["method"] for g in groups} == {"task_arithmetic"}
    capsys.readouterr()
    assert (
        main(["evaluate", *common, "--groups", *groups, "--out", str(tmp_path / "eval.json")]) == 0
    )
    report = json.loads((tmp_path / "eval.json").read_text())
    assert set(report["after"]["per_item"]) == set(full_items)
    assert report["storage"]["merged_bytes"] < report["storage"]["unmerged_bytes"]


def test_cli_job_runs_the_workers_merge_job_and_its_report_reads_back(
    lora_items: dict[str, tuple[Path, list[TrainExample]]],
    tiny_backbone: Path,
    tmp_path: Path,
    capsys,
) -> None:
    from ml_core.merge.job import MergeJobReport

    responses = _responses_csv(lora_items, tmp_path / "responses.csv")
    out = tmp_path / "job"
    arguments = ["job", "--artifacts", *[str(p) for p, _ in lora_items.values()]]
    arguments += ["--responses", str(responses), "--backbone", str(tiny_backbone)]
    arguments += ["--method", "svd", "--group-size", "2", "--feature-answers", "16"]
    arguments += ["--random-plans", "1", "--compare-methods", "concat"]
    assert main([*arguments, "--job", "j1", "--out", str(out)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert list(printed["runs"]) == ["gw/svd", "random-0/svd", "gw/concat"]
    report = MergeJobReport.from_json(json.loads((out / "job.json").read_text()))
    assert report.to_json() == json.loads((out / "job.json").read_text())
    assert sorted(k for g in report.plan for k in g) == sorted(lora_items)
    assert printed["plan"] == report.plan
    assert {o.item_id for o in report.items} == set(lora_items)
    for outcome in report.items:
        # a LoRA group exports one artifact folder per item, loadable on its own
        assert Path(outcome.artifact_path, "manifest.json").is_file()
        assert outcome.group_id.startswith("j1-g")
        metrics = report.item_metrics(outcome.item_id)
        assert set(metrics["before"]) == {"micro_f1", "macro_f1", "qwk", "accuracy"}
        assert metrics["merge"]["plan"] == report.plan
