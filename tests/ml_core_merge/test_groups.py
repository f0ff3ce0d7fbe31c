"""Merged groups end to end on tiny trained items: merge, re-fit heads, write, load and score."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ml_core.artifact import ArtifactError, load_artifact
from ml_core.engine import ScoreRequest, ScoringEngine
from ml_core.merge.config import FeatureConfig, MergeConfig
from ml_core.merge.distances import gw_matrix
from ml_core.merge.group import GroupScorer, export_lora_items, item_version, load_group
from ml_core.merge.heads import refit_head
from ml_core.merge.models import Encoder, head_tensors
from ml_core.merge.pipeline import ItemData, merge_group, own_features, predict_heads, prepare_item
from ml_core.training import TrainExample


def _items(trained: dict[str, tuple[Path, list[TrainExample]]], encoder: Encoder) -> list[ItemData]:
    return [
        prepare_item(load_artifact(path), examples, encoder) for path, examples in trained.values()
    ]


def _train_accuracy(item: ItemData, features: np.ndarray, heads: list) -> float:
    predicted = predict_heads(features[item.split.train], heads)
    return float((predicted == item.labels(item.split.train)).mean())


def test_merged_full_group_scores_and_refit_heads_do_not_lower_training_accuracy(
    full_items: dict[str, tuple[Path, list[TrainExample]]], tiny_backbone: Path, tmp_path: Path
) -> None:
    encoder = Encoder(str(tiny_backbone))
    items = _items(full_items, encoder)
    result = merge_group(
        items,
        encoder,
        tmp_path / "group",
        group_id="g1",
        config=MergeConfig(method="ties"),
        backbone_label="tiny",
    )
    group = load_group(result.path)
    assert [i.item_id for i in group.items] == ["q-a", "q-b", "q-c"]
    for item in items:
        features = result.features[item.item_id]
        stale = _train_accuracy(item, features, head_tensors(item.artifact))
        refit = _train_accuracy(item, features, list(group.item(item.item_id).heads))
        assert refit >= stale
    scorer = GroupScorer(result.path, str(tiny_backbone))
    item = items[0]
    texts = [item.examples[i].text for i in item.split.test]
    scored = scorer.score(item.item_id, texts)
    assert [r.score for r in scored] == list(
        predict_heads(
            result.features[item.item_id][item.split.test], list(group.item(item.item_id).heads)
        )[:, 0]
    )
    assert scored[0].model_version == item_version(result.path, item.item_id)
    assert scored[0].model_version.startswith("g1@") and scored[0].model_version.endswith("/q-a")
    with pytest.raises(KeyError):
        scorer.score("not-in-group", ["tcp"])


def test_a_group_of_one_scores_exactly_like_the_item_model(
    full_items: dict[str, tuple[Path, list[TrainExample]]], tiny_backbone: Path, tmp_path: Path
) -> None:
    encoder = Encoder(str(tiny_backbone))
    item = _items(full_items, encoder)[2]
    _, tests, _ = own_features([item], encoder, FeatureConfig(max_answers=8), with_test=True)
    result = merge_group(
        [item],
        encoder,
        tmp_path / "single",
        group_id="one",
        config=MergeConfig(method="average", refit_heads=False),
        backbone_label="tiny",
    )
    served = GroupScorer(result.path, str(tiny_backbone)).probabilities(
        item.item_id, [item.examples[i].text for i in item.split.test]
    )[0]
    expected = predict_heads(tests[item.item_id], head_tensors(item.artifact))[:, 0]
    assert np.array_equal(served.argmax(axis=1), expected)


def test_own_features_feed_gw(
    full_items: dict[str, tuple[Path, list[TrainExample]]], tiny_backbone: Path
) -> None:
    encoder = Encoder(str(tiny_backbone))
    samples, _, _ = own_features(
        _items(full_items, encoder), encoder, FeatureConfig(max_answers=20)
    )
    assert {k: v.shape for k, v in samples.items()} == {k: (20, 32) for k in ("q-a", "q-b", "q-c")}
    matrix = gw_matrix(samples)
    assert matrix.values.shape == (3, 3) and (matrix.values[np.triu_indices(3, 1)] > 0).all()


def test_refit_recovers_a_head_that_was_scrambled() -> None:
    rng = np.random.default_rng(0)
    features = rng.standard_normal((90, 6)).astype(np.float32)
    labels = (features[:, 0] > 0).astype(np.int64) + (features[:, 1] > 0.5).astype(np.int64)
    import torch

    fit = refit_head(features, labels, torch.zeros(3, 6), torch.zeros(3), l2=1e-4)
    assert fit.refit_kept and fit.train_accuracy_after > 0.8 > fit.train_accuracy_before


def test_lora_group_exports_artifacts_the_engine_serves(
    lora_items: dict[str, tuple[Path, list[TrainExample]]], tiny_backbone: Path, tmp_path: Path
) -> None:
    encoder = Encoder(str(tiny_backbone))
    items = _items(lora_items, encoder)
    result = merge_group(
        items[:2],
        encoder,
        tmp_path / "lora-group",
        group_id="lg",
        config=MergeConfig(method="svd"),
        backbone_label="tiny",
    )
    assert load_group(result.path).merged_kind == "lora"
    exported = export_lora_items(result.path, tmp_path / "engine-artifacts")
    engine = ScoringEngine(str(tiny_backbone), device="cpu")  # exactness, not GPU precision
    scorer = GroupScorer(result.path, str(tiny_backbone))
    for item in items[:2]:
        engine.load_item(
            item.item_id, exported[item.item_id], item_version(result.path, item.item_id)
        )
        texts = [item.examples[i].text for i in item.split.test]
        from_engine = np.array(
            [r.probabilities for r in engine.score([ScoreRequest(item.item_id, t) for t in texts])]
        )
        from_group = scorer.probabilities(item.item_id, texts)[0]
        assert np.allclose(from_engine, from_group, atol=1e-4)


def test_loading_a_lora_item_artifact_as_a_group_fails_clearly(
    lora_items: dict[str, tuple[Path, list[TrainExample]]],
) -> None:
    with pytest.raises(ArtifactError, match="not a merged group"):
        load_group(next(iter(lora_items.values()))[0])


def test_unmerged_models_with_refitted_heads_predict_every_test_answer(
    full_items: dict[str, tuple[Path, list[TrainExample]]], tiny_backbone: Path
) -> None:
    from ml_core.merge.pipeline import refit_own_heads

    encoder = Encoder(str(tiny_backbone))
    items = _items(full_items, encoder)[:2]
    predictions, _ = refit_own_heads(items, encoder, MergeConfig())
    assert {k: v.shape for k, v in predictions.items()} == {
        i.item_id: (len(i.split.test), 1) for i in items
    }


def test_float16_shared_weights_halve_the_group_and_still_score(
    full_items: dict[str, tuple[Path, list[TrainExample]]], tiny_backbone: Path, tmp_path: Path
) -> None:
    encoder = Encoder(str(tiny_backbone))
    items = _items(full_items, encoder)[:2]
    sizes = {}
    for dtype in ("float32", "float16"):
        config = MergeConfig(method="average", shared_dtype=dtype, refit_heads=False)
        result = merge_group(
            items, encoder, tmp_path / dtype, group_id=dtype, config=config, backbone_label="tiny"
        )
        sizes[dtype] = result.size_bytes
    assert sizes["float16"] < 0.6 * sizes["float32"]
    scored = GroupScorer(tmp_path / "float16", str(tiny_backbone)).score("q-a", ["tcp udp data"])
    assert scored[0].score in (0, 1, 2)
