"""``run_distill_job``: the job the worker, the CLI and the benchmark run, with a fake teacher."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from ml_core.distill import DistilledScorer
from ml_core.distill.job import DistillJobConfig, DistillJobReport, run_distill_job
from tests.ml_core_distill.conftest import KEYWORDS, fake_teacher, fast_config, toy_answers


def _keyword_teacher(asked: list[str]):
    def teacher(batch: Sequence[str]) -> np.ndarray:
        asked.extend(batch)
        return fake_teacher(np.array([sum(k in t.split() for k in KEYWORDS) for t in batch]))

    return teacher


def test_a_job_asks_the_teacher_and_writes_a_student_with_a_typed_report(tmp_path: Path) -> None:
    texts, labels = toy_answers(90)
    production = ["udp tcp router", texts[0], "frame data"]  # texts[0] is a scored answer
    job = DistillJobConfig(
        item_id="toy",
        texts=tuple(texts),
        scores=tuple(int(v) for v in labels),
        max_score=2,
        teacher_version="toy:head:1",
        unlabelled=tuple(production),
        distill=fast_config(augment_copies=0, compare_baseline=False),
    )
    asked: list[str] = []
    report = run_distill_job(job, _keyword_teacher(asked), tmp_path / "student")
    # every scored answer once, then the production answers that are not scored ones
    assert asked == [*texts, "udp tcp router", "frame data"]
    assert report.unlabelled_answers == 2 and report.labelled_answers == 90
    assert DistillJobReport.from_json(json.loads(json.dumps(report.to_json()))) == report
    manifest = json.loads(Path(report.path, "manifest.json").read_text())
    assert manifest["teacher_version"] == "toy:head:1"
    assert report.metrics["accuracy"] >= 0.8
    assert DistilledScorer(Path(report.path)).score([texts[0]])[0].score == labels[0]


def test_a_job_config_reads_back_from_json() -> None:
    texts, labels = toy_answers(12)
    job = DistillJobConfig(
        item_id="toy",
        texts=tuple(texts),
        scores=tuple(int(v) for v in labels),
        max_score=2,
        teacher_version="t",
        distill=fast_config(lambda_sweep=(0.5, 2.0)),
    )
    assert DistillJobConfig.from_json(json.loads(json.dumps(job.to_json()))) == job


def test_a_job_with_too_few_answers_is_refused_before_the_teacher_is_asked(
    tmp_path: Path,
) -> None:
    texts, labels = toy_answers(9)
    job = DistillJobConfig(
        item_id="small",
        texts=tuple(texts),
        scores=tuple(int(v) for v in labels),
        max_score=2,
        teacher_version="t",
    )
    asked: list[str] = []
    with pytest.raises(ValueError, match="item 'small' needs at least 10 scored answers"):
        run_distill_job(job, _keyword_teacher(asked), tmp_path / "s")
    assert asked == []
