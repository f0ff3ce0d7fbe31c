"""The interface the Django/Celery side codes against: train an item, serve it, score answers."""

from __future__ import annotations

from pathlib import Path

import pytest

from ml_core.artifact import ArtifactError, BackboneMismatchError
from ml_core.backbone import backbone_fingerprint, resolve_backbone
from ml_core.engine import ScoreRequest, ScoringEngine
from ml_core.training import TrainConfig, TrainExample, TrainingCancelled, TrainProgress, train_item


def test_resolve_backbone_accepts_a_local_folder(tiny_backbone: Path) -> None:
    assert resolve_backbone(str(tiny_backbone)) == str(tiny_backbone.resolve())
    assert Path(resolve_backbone(None)).name == "model"


def test_fingerprint_differs_between_backbones(tiny_backbone: Path, other_backbone: Path) -> None:
    assert backbone_fingerprint(str(tiny_backbone)) == backbone_fingerprint(str(tiny_backbone))
    assert backbone_fingerprint(str(tiny_backbone)) != backbone_fingerprint(str(other_backbone))


def test_head_item_trains_reports_progress_and_serves(
    tiny_backbone: Path, examples: list[TrainExample], tmp_path: Path
) -> None:
    seen: list[TrainProgress] = []
    artifact = train_item(
        examples,
        item_id="q1",
        num_labels=3,
        out_dir=tmp_path / "q1",
        backbone=str(tiny_backbone),
        config=TrainConfig(kind="head", epochs=3),
        progress=seen.append,
    )
    assert artifact.kind == "head" and artifact.size_bytes > 0
    assert {"qwk", "accuracy", "macro_f1", "micro_f1", "n_test"} <= set(artifact.metrics)
    assert artifact.metrics["n_test"] == 6
    assert seen and seen[-1].percent <= 100.0

    engine = ScoringEngine(str(tiny_backbone))
    engine.load_item("q1", artifact.path, "v1")
    assert engine.loaded() == {"q1": "v1"}
    results = engine.score(
        [ScoreRequest("q1", examples[0].text), ScoreRequest("q1", examples[1].text)]
    )
    assert [r.error for r in results] == [None, None]
    for result in results:
        assert result.score in (0, 1, 2)
        assert len(result.probabilities) == 3
        assert abs(sum(result.probabilities) - 1.0) < 1e-5
        assert result.confidence == max(result.probabilities)
        assert result.model_version == "v1"


def test_bad_input_gives_error_results_not_exceptions(
    tiny_backbone: Path, examples: list[TrainExample], tmp_path: Path
) -> None:
    artifact = train_item(
        examples,
        item_id="q1",
        num_labels=3,
        out_dir=tmp_path / "q1",
        backbone=str(tiny_backbone),
        config=TrainConfig(kind="head", epochs=1),
    )
    engine = ScoringEngine(str(tiny_backbone), max_length=16)
    engine.load_item("q1", artifact.path, "v1")
    long_text = " ".join(["tcp"] * 100)
    requests = [
        ScoreRequest("q1", ""),
        ScoreRequest("q1", "  \n\t "),
        ScoreRequest("nope", "tcp udp"),
        ScoreRequest("q1", b"\xff\xfe tcp"),  # type: ignore[arg-type]
        ScoreRequest("q1", long_text),
        ScoreRequest("q1", "tcp udp"),
        ScoreRequest("q1", "\udcff tcp"),
    ]
    results = engine.score(requests)
    assert len(results) == len(requests)
    assert [r.item_key for r in results] == [r.item_key for r in requests]
    assert "empty" in (results[0].error or "") and results[0].score is None
    assert "empty" in (results[1].error or "")
    assert "unknown item" in (results[2].error or "") and results[2].score is None
    assert "UTF-8" in (results[3].error or "")
    assert results[4].error is None and results[4].truncated and results[4].score is not None
    assert results[5].error is None and not results[5].truncated
    assert results[6].error is not None and results[6].score is None
    assert engine.score([]) == []


def test_artifact_for_another_backbone_is_refused(
    tiny_backbone: Path, other_backbone: Path, examples: list[TrainExample], tmp_path: Path
) -> None:
    artifact = train_item(
        examples,
        item_id="q1",
        num_labels=3,
        out_dir=tmp_path / "q1",
        backbone=str(tiny_backbone),
        config=TrainConfig(kind="head", epochs=1),
    )
    engine = ScoringEngine(str(other_backbone))
    with pytest.raises(BackboneMismatchError, match="trained on backbone"):
        engine.load_item("q1", artifact.path, "v1")
    with pytest.raises(ArtifactError):
        engine.load_item("q1", tmp_path / "missing", "v1")
    assert engine.loaded() == {}


def test_should_stop_cancels_training_without_writing(
    tiny_backbone: Path, examples: list[TrainExample], tmp_path: Path
) -> None:
    with pytest.raises(TrainingCancelled):
        train_item(
            examples,
            item_id="q1",
            num_labels=3,
            out_dir=tmp_path / "q1",
            backbone=str(tiny_backbone),
            config=TrainConfig(kind="head"),
            should_stop=lambda: True,
        )
    assert not (tmp_path / "q1").exists()


def test_token_budget_batching_and_padding_do_not_change_scores(
    tiny_backbone: Path, examples: list[TrainExample], tmp_path: Path
) -> None:
    artifact = train_item(
        examples,
        item_id="q1",
        num_labels=3,
        out_dir=tmp_path / "q1",
        backbone=str(tiny_backbone),
        config=TrainConfig(kind="head", epochs=1),
    )
    texts = [" ".join(["tcp"] * n) + " udp" for n in (1, 9, 3, 20, 5, 2, 14)]
    scores = {}
    for budget in (8, 4096):
        engine = ScoringEngine(str(tiny_backbone), token_budget=budget, max_batch_size=3)
        engine.load_item("q1", artifact.path, "v1")
        scores[budget] = [
            r.probabilities for r in engine.score([ScoreRequest("q1", t) for t in texts])
        ]
    for small, large in zip(scores[8], scores[4096], strict=True):
        assert small == pytest.approx(large, abs=1e-5)


@pytest.mark.parametrize("backend", ["onnx-int8", "torch"])
def test_answers_longer_than_the_backbones_positions_are_truncated_not_failed(
    tiny_backbone: Path, examples: list[TrainExample], tmp_path: Path, backend: str
) -> None:
    # the tiny backbone has 128 positions, fewer than the engine's default max_length (256): a
    # long answer must be cut to the backbone's limit, in training and in serving
    from ml_core.modeling import position_limit

    assert position_limit(str(tiny_backbone)) == 128
    long_text = " ".join(["tcp udp header"] * 100)  # 300 words, 302 tokens
    artifact = train_item(
        [*examples, TrainExample(long_text, 2)],
        item_id="q1",
        num_labels=3,
        out_dir=tmp_path / "q1",
        backbone=str(tiny_backbone),
        config=TrainConfig(kind="lora", epochs=1),
    )
    engine = ScoringEngine(str(tiny_backbone), backend=backend, cache_dir=tmp_path / "onnx")
    assert engine.max_length == 128
    engine.load_item("q1", artifact.path, "v1")
    results = engine.score([ScoreRequest("q1", long_text), ScoreRequest("q1", "tcp udp")])
    assert [r.error for r in results] == [None, None]
    assert results[0].truncated and not results[1].truncated
    assert results[0].score is not None
