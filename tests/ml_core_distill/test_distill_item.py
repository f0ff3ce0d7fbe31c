"""``distill_item``: the function the worker calls, end to end with a fake teacher."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ml_core.distill import DistilledScorer, distill_item
from ml_core.distill.cli import main as cli_main
from tests.ml_core_distill.conftest import fake_teacher, fast_config, toy_answers


def test_distill_item_writes_a_distilled_artifact_and_reports_all_three(tmp_path: Path) -> None:
    texts, labels = toy_answers(90)
    artifact = distill_item(
        texts,
        labels,
        fake_teacher(labels),
        config=fast_config(),
        out_dir=tmp_path / "student",
        item_id="toy",
        score_labels=(0, 1, 2),
        teacher_version="toy:head:1",
    )
    manifest = json.loads((artifact.path / "manifest.json").read_text())
    assert manifest["kind"] == "distilled" and manifest["teacher_version"] == "toy:head:1"
    assert artifact.onnx_path.is_file() and artifact.size_bytes > artifact.onnx_path.stat().st_size
    for key in (
        "qwk",
        "accuracy",
        "macro_f1",
        "teacher_qwk",
        "baseline_qwk",
        "parameters",
        "onnx_bytes",
    ):
        assert key in artifact.metrics
    assert artifact.metrics["accuracy"] >= 0.8
    assert DistilledScorer(artifact.path).score([texts[0]])[0].score == labels[0]


def test_unlabelled_answers_and_a_lambda_sweep(tmp_path: Path) -> None:
    texts, labels = toy_answers(60)
    extra_texts = ["ospf tcp udp", "ospf frame"]  # 'ospf' only occurs in unlabelled answers
    artifact = distill_item(
        texts,
        labels,
        fake_teacher(labels),
        extra_texts,
        fake_teacher(np.array([2, 0])),
        config=fast_config(epochs=5, lambda_sweep=(0.5, 2.0), compare_baseline=False),
        out_dir=tmp_path / "s",
    )
    sweep = artifact.report["sweep"]
    assert [row["lambda"] for row in sweep] == [0.5, 2.0] and artifact.metrics["lambda"] in (
        0.5,
        2.0,
    )
    assert "baseline_qwk" not in artifact.metrics
    scorer = DistilledScorer(artifact.onnx_path)
    assert "ospf" in scorer.vocabulary.tokens


def test_a_word_of_a_single_answer_is_not_in_the_onnx_file(tmp_path: Path) -> None:
    texts, labels = toy_answers(30)
    texts[0] += " Wilhelmina wilhelmina WILHELMINA"  # a student's name, in one training answer
    extra_texts = ["Quintessa tcp", "tcp frame"]  # and another's, in one unlabelled answer
    artifact = distill_item(
        texts,
        labels,
        fake_teacher(labels),
        extra_texts,
        fake_teacher(np.array([1, 1])),
        config=fast_config(epochs=2, compare_baseline=False),
        out_dir=tmp_path / "s",
        splits=["train"] * 24 + ["val"] * 3 + ["test"] * 3,
    )
    onnx_bytes = artifact.onnx_path.read_bytes().lower()
    assert b"wilhelmina" not in onnx_bytes and b"quintessa" not in onnx_bytes
    assert "tcp" in DistilledScorer(artifact.onnx_path).vocabulary.tokens


def test_rejects_misaligned_teacher_probabilities(tmp_path: Path) -> None:
    texts, labels = toy_answers(9)
    with pytest.raises(ValueError, match="one row per answer"):
        distill_item(
            texts, labels, fake_teacher(labels)[:5], config=fast_config(), out_dir=tmp_path / "x"
        )
    assert not (tmp_path / "x").exists()


def test_cli_trains_from_saf_csv_and_teacher_probabilities(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    texts, labels = toy_answers(45)
    (tmp_path / "items.csv").write_text(
        "item_id,language,prompt,reference_answer,max_score\nq1,en,Name them,tcp udp,2\n"
    )
    rows = ["item_id,response_id,text,score,split"] + [
        f"q1,r{i},{t},{y}," for i, (t, y) in enumerate(zip(texts, labels, strict=True))
    ]
    (tmp_path / "responses.csv").write_text("\n".join(rows) + "\n")
    np.save(tmp_path / "probs.npy", fake_teacher(labels))
    code = cli_main(
        [
            "train",
            "--items",
            str(tmp_path / "items.csv"),
            "--responses",
            str(tmp_path / "responses.csv"),
            "--item",
            "q1",
            "--teacher-probabilities",
            str(tmp_path / "probs.npy"),
            "--out",
            str(tmp_path / "out"),
            "--epochs",
            "3",
            "--compare_baseline",
            "false",
            "--measure_speed",
            "false",
        ]
    )
    assert code == 0 and (tmp_path / "out" / "student.onnx").is_file()
    assert json.loads(capsys.readouterr().out)["metrics"]["n_test"] > 0


def test_a_teacher_callable_scores_variants_of_the_training_answers(tmp_path: Path) -> None:
    texts, labels = toy_answers(45)
    asked: list[str] = []

    def teacher(batch: list[str]) -> np.ndarray:
        asked.extend(batch)
        return fake_teacher(np.array([sum(k in t.split() for k in ("tcp", "udp")) for t in batch]))

    artifact = distill_item(
        texts,
        labels,
        fake_teacher(labels),
        config=fast_config(epochs=3, augment_copies=2, compare_baseline=False),
        out_dir=tmp_path / "s",
        teacher=teacher,
    )
    manifest = json.loads((artifact.path / "manifest.json").read_text())
    assert len(asked) == artifact.report["augmented"] == 2 * manifest["split_sizes"]["train"]
