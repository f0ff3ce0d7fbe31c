"""Training kinds, data handling and artifact format."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from ml_core.artifact import FORMAT_VERSION, ArtifactError, load_artifact
from ml_core.engine import ScoreRequest, ScoringEngine
from ml_core.training import TrainConfig, TrainExample, class_weights, split_examples, train_item
from tests.ml_core.conftest import make_examples


def test_unsplit_data_gets_a_seeded_stratified_80_10_10_split() -> None:
    examples = make_examples(90)
    first = split_examples(examples, TrainConfig(seed=3))
    assert first == split_examples(examples, TrainConfig(seed=3))
    assert first != split_examples(examples, TrainConfig(seed=4))
    assert (len(first.train), len(first.val), len(first.test)) == (72, 9, 9)
    assert sorted(first.train + first.val + first.test) == list(range(90))
    assert Counter(examples[i].label for i in first.test) == {0: 3, 1: 3, 2: 3}


def test_given_train_test_split_is_kept_and_val_is_carved_from_train() -> None:
    examples = make_examples(60, split="train") + make_examples(12, seed=1, split="test")
    split = split_examples(examples, TrainConfig())
    assert split.test == list(range(60, 72))
    assert set(split.val) <= set(range(60)) and split.val
    assert not set(split.val) & set(split.train)


def test_class_weights_favour_rare_scores() -> None:
    weights = class_weights([0, 0, 0, 0, 0, 0, 1, 1, 2], 4)
    assert weights[2] > weights[1] > weights[0]
    assert weights[3] == 1.0


def test_full_kind_writes_a_whole_model_the_engine_refuses(
    tiny_backbone: Path, tmp_path: Path
) -> None:
    artifact = train_item(
        make_examples(45),
        item_id="q",
        num_labels=3,
        out_dir=tmp_path / "full",
        backbone=str(tiny_backbone),
        config=TrainConfig(kind="full", epochs=1),
    )
    loaded = load_artifact(artifact.path)
    assert loaded.kind == "full" and any(k.startswith("backbone.") for k in loaded.tensors)
    with pytest.raises(ArtifactError, match="full"):
        ScoringEngine(str(tiny_backbone)).load_item("q", artifact.path, "v1")


def test_artifact_is_a_small_versioned_folder(tiny_backbone: Path, tmp_path: Path) -> None:
    artifact = train_item(
        make_examples(45),
        item_id="q",
        num_labels=3,
        out_dir=tmp_path / "a",
        backbone=str(tiny_backbone),
        config=TrainConfig(kind="lora", epochs=1),
    )
    manifest = json.loads((artifact.path / "manifest.json").read_text())
    assert manifest["format_version"] == FORMAT_VERSION
    assert (
        manifest["kind"] == "lora"
        and manifest["lora"]["r"] == 8
        and manifest["lora"]["alpha"] == 16
    )
    assert manifest["backbone_fingerprint"].startswith(tiny_backbone.name)
    assert manifest["criteria"] == [{"name": "score", "labels": [0, 1, 2]}]
    assert manifest["training"]["epochs"] == 1
    assert sorted(p.name for p in artifact.path.iterdir()) == [
        "manifest.json",
        "weights.safetensors",
    ]
    # retraining into the same folder replaces it
    again = train_item(
        make_examples(45),
        item_id="q",
        num_labels=3,
        out_dir=tmp_path / "a",
        backbone=str(tiny_backbone),
        config=TrainConfig(kind="head", epochs=1),
    )
    assert load_artifact(again.path).kind == "head"


def test_multi_criterion_item_gets_one_head_per_criterion(
    tiny_backbone: Path, tmp_path: Path
) -> None:
    examples = [
        TrainExample(text=e.text, label=0, criteria_labels=(e.label, min(1, e.label)))
        for e in make_examples(60)
    ]
    artifact = train_item(
        examples,
        item_id="m",
        num_labels=[3, 2],
        criteria=["content", "form"],
        out_dir=tmp_path / "m",
        backbone=str(tiny_backbone),
        config=TrainConfig(kind="lora", epochs=1),
    )
    assert {"exact_match", "accuracy/content", "accuracy/form", "qwk"} <= set(artifact.metrics)
    engine = ScoringEngine(str(tiny_backbone))
    engine.load_item("m", artifact.path, "v1")
    single = train_item(
        make_examples(45),
        item_id="s",
        num_labels=3,
        out_dir=tmp_path / "s",
        backbone=str(tiny_backbone),
        config=TrainConfig(kind="head", epochs=1),
    )
    engine.load_item("s", single.path, "v1")
    multi, plain = engine.score(
        [ScoreRequest("m", "tcp udp port"), ScoreRequest("s", "tcp udp port")]
    )
    assert multi.criteria is not None and set(multi.criteria) == {"content", "form"}
    assert multi.score == sum(multi.criteria.values())
    assert len(multi.probabilities) == 5
    assert (
        multi.criteria_probabilities is not None and len(multi.criteria_probabilities["form"]) == 2
    )
    assert plain.criteria is None and len(plain.probabilities) == 3


def test_bad_labels_are_rejected_before_training(tiny_backbone: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="outside"):
        train_item(
            [TrainExample("tcp", 5)],
            item_id="q",
            num_labels=3,
            out_dir=tmp_path / "x",
            backbone=str(tiny_backbone),
        )
    with pytest.raises(ValueError, match="kind"):
        train_item(
            make_examples(9),
            item_id="q",
            num_labels=3,
            out_dir=tmp_path / "x",
            backbone=str(tiny_backbone),
            config=TrainConfig(kind="bogus"),
        )
