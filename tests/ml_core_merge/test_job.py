"""``run_merge_job`` asked to compare, as the benchmark asks: every plan and method is merged
and evaluated, each run's figures are those of its own predictions, and the report reads back."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ml_core.artifact import load_artifact
from ml_core.merge.job import MergeJobConfig, MergeJobReport, run_merge_job
from ml_core.merge.models import Encoder
from ml_core.merge.pipeline import prepare_item
from ml_core.merge.planners import PLANNERS
from ml_core.training import TrainExample


def test_a_comparing_job_runs_every_plan_and_method_and_reads_back(
    full_items: dict[str, tuple[Path, list[TrainExample]]], tiny_backbone: Path, tmp_path: Path
) -> None:
    encoder = Encoder(str(tiny_backbone), device="cpu")
    items = [
        prepare_item(load_artifact(p), examples, encoder) for p, examples in full_items.values()
    ]
    config = MergeJobConfig(
        job="compare",
        group_size=2,
        feature_answers=16,
        backbone=str(tiny_backbone),
        compare_planners=tuple(PLANNERS),
        random_plans=2,
        compare_methods=("average", "ties"),
        fp16_run=True,
        cv_folds=2,
    )
    assert MergeJobConfig.from_json(json.loads(json.dumps(config.to_json()))) == config
    seen: list[str] = []
    job = run_merge_job(
        items,
        encoder,
        tmp_path / "job",
        config,
        cache_dir=tmp_path / "cache",
        on_run=lambda so_far: seen.append(so_far.runs[-1].label),
    )

    planned = [f"{name}/ties" for name in PLANNERS] + ["random-0/ties", "random-1/ties"]
    assert [run.label for run in job.runs] == [*planned, "gw/average", "gw/ties/fp16"] == seen
    assert list(job.plans) == [*PLANNERS, "random-0", "random-1"]
    assert all({"gw_cost", "cosine_cost"} <= set(plan) for plan in job.plans.values())
    assert set(job.matrices) == set(PLANNERS)
    # the job's own run is the one its items' outcomes come from, written under groups/
    own = job.run("gw/ties")
    assert own.summary == pytest.approx(job.summary["after"])
    assert all(Path(g["path"]).parent == tmp_path / "job" / "groups" for g in own.groups)  # type: ignore[arg-type]
    assert {o.item_id: o.after["micro_f1"] for o in job.items} == pytest.approx(
        {key: figures["micro_f1"] for key, figures in own.per_item.items()}
    )
    by_id = {item.item_id: item for item in items}
    for run in job.runs:
        right = sum(
            int(
                (
                    np.array(run.predictions[k])[:, 0] == by_id[k].labels(by_id[k].split.test)[:, 0]
                ).sum()
            )
            for k in by_id
        )
        total = sum(len(item.split.test) for item in items)
        assert run.summary["micro_f1_pooled"] == pytest.approx(right / total)
        assert run.cv_accuracy is not None and 0.0 <= run.cv_accuracy <= 1.0
    assert job.run("gw/ties/fp16").storage_bytes < own.storage_bytes
    assert MergeJobReport.from_json(json.loads(json.dumps(job.to_json()))) == job


def test_a_job_asked_for_an_unknown_planner_refuses_before_any_work(tmp_path: Path) -> None:
    config = MergeJobConfig(job="bad", compare_planners=("gw", "nearest"))
    with pytest.raises(ValueError, match="nearest"):
        run_merge_job([], encoder=None, job_dir=tmp_path, config=config, cache_dir=tmp_path)  # type: ignore[arg-type]
    assert not any(tmp_path.iterdir())
