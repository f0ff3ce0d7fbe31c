"""Serving merged groups: a mix of a group's items in one forward pass, bad input per answer,
an unmerged full model as a group of one, and human plans pasted as text."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ml_core.artifact import load_artifact
from ml_core.engine import ScoreRequest
from ml_core.merge.config import FeatureConfig, MergeConfig
from ml_core.merge.group import GroupScorer, is_group_folder, item_version
from ml_core.merge.models import Encoder, head_tensors
from ml_core.merge.pipeline import merge_group, own_features, predict_heads, prepare_item
from ml_core.merge.plans import MergePlan, PlanError, parse_plan_text
from ml_core.training import TrainExample

Trained = dict[str, tuple[Path, list[TrainExample]]]


@pytest.fixture(scope="module")
def group_folder(
    full_items: Trained, tiny_backbone: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    encoder = Encoder(str(tiny_backbone))
    items = [prepare_item(load_artifact(p), ex, encoder) for p, ex in full_items.values()]
    folder = tmp_path_factory.mktemp("served") / "group"
    merge_group(items, encoder, folder, group_id="g", config=MergeConfig(), backbone_label="tiny")
    return folder


def test_a_mix_of_items_is_scored_in_one_forward_pass_like_each_item_alone(
    group_folder: Path, tiny_backbone: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scorer = GroupScorer(group_folder, str(tiny_backbone))
    requests = [
        ScoreRequest("q-a", "tcp udp data"),
        ScoreRequest("q-c", "router switch"),
        ScoreRequest("q-b", "tcp"),
        ScoreRequest("q-a", "the network"),
    ]
    alone = [scorer.score(r.item_key, [r.text])[0] for r in requests]
    calls: list[int] = []
    encode = scorer.encoder.encode

    def counting(texts, token_ids=None):  # type: ignore[no-untyped-def]
        calls.append(len(token_ids or texts))
        return encode(texts, token_ids=token_ids)

    monkeypatch.setattr(scorer.encoder, "encode", counting)
    mixed = scorer.score_requests(requests, versions={"q-a": "q-a@v7"})
    assert calls == [4]  # one encoder call for the whole mix
    for together, single in zip(mixed, alone, strict=True):
        assert together.item_key == single.item_key and together.score == single.score
        assert np.allclose(together.probabilities, single.probabilities, atol=1e-5)
    assert mixed[0].model_version == "q-a@v7"  # the server's label wins
    assert mixed[1].model_version == item_version(group_folder, "q-c")
    # the weights live in the model only: the file's tensors and the pretrained copy are gone
    assert scorer.group.shared == {} and scorer.encoder.base_state == {}


def test_bad_answers_and_foreign_items_get_errors_not_exceptions(
    group_folder: Path, tiny_backbone: Path
) -> None:
    scorer = GroupScorer(group_folder, str(tiny_backbone), max_length=8)
    results = scorer.score_requests(
        [
            ScoreRequest("q-a", "   "),
            ScoreRequest("other", "tcp"),
            ScoreRequest("q-b", b"\xff"),  # type: ignore[arg-type]
            ScoreRequest("q-b", " ".join(["tcp"] * 40)),
            ScoreRequest("q-b", "udp"),
        ]
    )
    assert results[0].error == "empty answer" and results[0].score is None
    assert "not in merged group" in (results[1].error or "")
    assert "UTF-8" in (results[2].error or "")
    assert results[3].truncated and results[3].score is not None
    assert not results[4].truncated and results[4].error is None


def test_a_full_item_artifact_serves_as_a_group_of_one(
    full_items: Trained, tiny_backbone: Path
) -> None:
    path, examples = full_items["q-c"]
    assert is_group_folder(path)
    encoder = Encoder(str(tiny_backbone))
    item = prepare_item(load_artifact(path), examples, encoder)
    _, tests, _ = own_features([item], encoder, FeatureConfig(max_answers=4), with_test=True)
    expected = predict_heads(tests["q-c"], head_tensors(item.artifact))[:, 0]
    scorer = GroupScorer(path, str(tiny_backbone))
    assert scorer.item_ids == ("q-c",)
    served = scorer.score("q-c", [item.examples[i].text for i in item.split.test])
    assert [r.score for r in served] == list(expected)


def test_lora_item_artifacts_are_not_served_as_groups(lora_items: Trained) -> None:
    assert not is_group_folder(lora_items["q-a"][0])
    assert not is_group_folder(Path("/nonexistent"))


def test_human_plans_pasted_as_json_or_csv_are_validated() -> None:
    items = ["a", "b", "c"]
    assert parse_plan_text('{"groups": [["a", "b"], ["c"]]}', items) == MergePlan(
        (("a", "b"), ("c",)), "human"
    )
    assert parse_plan_text("item_id,group\na,x\nb,y\nc,x\n", items).groups == (("a", "c"), ("b",))
    with pytest.raises(PlanError, match="missing"):
        parse_plan_text('[["a", "b"]]', items)
    with pytest.raises(PlanError, match="at most 2"):
        parse_plan_text('[["a", "b", "c"]]', items, max_group_size=2)
    with pytest.raises(PlanError, match="not valid JSON"):
        parse_plan_text("{groups", items)
