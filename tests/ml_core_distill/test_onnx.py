"""The exported single-file student: same scores as torch, loads alone, handles odd input."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from ml_core.distill.onnx_export import export_onnx
from ml_core.distill.scorer import METADATA_KEY, DistilledScorer
from ml_core.distill.student import StudentModel
from ml_core.distill.trainer import predict_probabilities
from ml_core.distill.vocabulary import build_word_vocabulary
from tests.ml_core_distill.conftest import toy_answers

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def exported(tmp_path: Path) -> tuple[StudentModel, Path, list[str]]:
    texts, _ = toy_answers(30)
    vocabulary = build_word_vocabulary(texts, max_length=12)
    torch.manual_seed(3)
    model = StudentModel(len(vocabulary), 3).eval()
    # random weights give near-uniform outputs; sharpen them so a gate-order slip would show
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.mul_(3.0)
    path = tmp_path / "build" / "student.onnx"
    export_onnx(model, vocabulary, (0, 2, 4), path, item_id="toy", model_version="toy:v1")
    return model, path, texts


def test_onnx_scores_match_torch(exported: tuple[StudentModel, Path, list[str]]) -> None:
    model, path, texts = exported
    scorer = DistilledScorer(path)
    # answers of different lengths in one batch: padding and the reverse direction are exercised
    batch = [*texts[:10], "tcp", "udp " * 40]
    ids = [e.ids for e in scorer.vocabulary.encode_batch(batch)]
    expected = predict_probabilities(model, ids)
    np.testing.assert_allclose(scorer.predict_proba(batch), expected, atol=1e-5)


def test_single_file_loads_alone_and_scores(
    exported: tuple[StudentModel, Path, list[str]], tmp_path: Path
) -> None:
    _, path, texts = exported
    alone = tmp_path / "laptop"
    alone.mkdir()
    shutil.copy(path, alone / "my-item.onnx")
    scorer = DistilledScorer(alone / "my-item.onnx")
    results = scorer.score(texts[:3])
    assert [r.error for r in results] == [None] * 3
    assert all(r.score in (0, 2, 4) for r in results)  # class indices mapped to score values
    assert all(
        abs(sum(r.probabilities) - 1) < 1e-5 and r.confidence == max(r.probabilities)
        for r in results
    )
    assert results[0].model_version == "toy:v1" and scorer.item_id == "toy"


def test_metadata_is_embedded_in_the_file(exported: tuple[StudentModel, Path, list[str]]) -> None:
    _, path, _ = exported
    props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert '"vocabulary"' in props[METADATA_KEY] and '"labels": [0, 2, 4]' in props[METADATA_KEY]


def test_empty_and_very_long_answers(exported: tuple[StudentModel, Path, list[str]]) -> None:
    _, path, _ = exported
    empty, blank, long, unknown, raw = DistilledScorer(path).score(
        ["", "  \n", "tcp udp " * 50_000, "%%%", b"tcp"]
    )
    assert empty.score is None and empty.error == "empty answer"
    assert blank.score is None and blank.error == "empty answer"
    assert long.error is None and long.truncated and long.score is not None
    assert unknown.error is None and unknown.score is not None
    assert raw.error is None and not raw.truncated


def test_scoring_does_not_import_torch(exported: tuple[StudentModel, Path, list[str]]) -> None:
    _, path, _ = exported
    code = (
        "import sys; from ml_core.distill import DistilledScorer; "
        f"print(DistilledScorer({str(path)!r}).score(['tcp'])[0].score); "
        "assert 'torch' not in sys.modules and 'transformers' not in sys.modules"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stderr


def test_speed_report_has_wall_and_cpu_rates(
    exported: tuple[StudentModel, Path, list[str]],
) -> None:
    from ml_core.distill.speed import measure_speed

    _, path, texts = exported
    speed = measure_speed(DistilledScorer(path), texts, min_seconds=0.01)
    assert {
        "answers_per_second",
        "answers_per_second_cpu",
        "answers_per_second_end_to_end",
        "mean_tokens",
    } <= set(speed)
    assert speed["answers_per_second"] > 0
