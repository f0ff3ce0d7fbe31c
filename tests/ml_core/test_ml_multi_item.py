"""One forward pass serves any mix of items; each row gets exactly its own adapter and head."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from peft import LoraConfig, get_peft_model

from ml_core.artifact import load_artifact
from ml_core.engine import ScoreRequest, ScoringEngine
from ml_core.modeling import load_backbone_model, load_tokenizer, pool
from ml_core.training import TrainConfig, train_item
from tests.ml_core.conftest import make_examples


@pytest.fixture(scope="module")
def lora_items(tiny_backbone: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("lora-items")
    paths: dict[str, Path] = {}
    for seed in range(3):
        examples = make_examples(45, seed=seed)
        artifact = train_item(
            examples,
            item_id=f"item{seed}",
            num_labels=3,
            out_dir=out / f"item{seed}",
            backbone=str(tiny_backbone),
            config=TrainConfig(kind="lora", epochs=2, seed=seed, learning_rate=5e-2),
        )
        assert artifact.kind == "lora"
        paths[f"item{seed}"] = artifact.path
    head = train_item(
        make_examples(45, seed=9),
        item_id="head",
        num_labels=3,
        out_dir=out / "head",
        backbone=str(tiny_backbone),
        config=TrainConfig(kind="head", epochs=2),
    )
    paths["head"] = head.path
    return paths


def _reference_probabilities(backbone: Path, artifact_dir: Path, text: str) -> np.ndarray:
    """The item scored the slow way: peft model with the artifact's adapter, then its head."""
    artifact = load_artifact(artifact_dir)
    model = load_backbone_model(str(backbone))
    if artifact.kind == "lora":
        model = get_peft_model(
            model,
            LoraConfig(
                r=artifact.lora_r, lora_alpha=artifact.lora_alpha, target_modules=["query", "value"]
            ),
        )
        state = {}
        for name, (lora_a, lora_b) in artifact.lora_modules().items():
            state[f"base_model.model.{name}.lora_A.default.weight"] = lora_a
            state[f"base_model.model.{name}.lora_B.default.weight"] = lora_b
        missing = model.load_state_dict(state, strict=False)
        assert not missing.unexpected_keys
    model.eval()
    tokens = load_tokenizer(str(backbone))([text], return_tensors="pt")
    with torch.no_grad():
        hidden = model(
            input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"]
        ).last_hidden_state
        pooled = pool(hidden, tokens["attention_mask"], "mean")
        weight, bias = artifact.head_tensors(0)
        return torch.softmax(pooled @ weight.T + bias, dim=-1)[0].numpy()


def test_mixed_batch_matches_each_item_scored_alone(
    tiny_backbone: Path, lora_items: dict[str, Path]
) -> None:
    engine = ScoringEngine(str(tiny_backbone), device="cpu")  # exactness, not GPU precision
    for key, path in lora_items.items():
        engine.load_item(key, path, "v1")
    texts = [e.text for e in make_examples(12, seed=5)]
    keys = ["item0", "item1", "item2", "head"] * 3
    mixed = engine.score([ScoreRequest(k, t) for k, t in zip(keys, texts, strict=False)])
    for key, text, result in zip(keys, texts, mixed, strict=False):
        reference = _reference_probabilities(tiny_backbone, lora_items[key], text)
        np.testing.assert_allclose(result.probabilities, reference, atol=1e-5)
        alone = engine.score([ScoreRequest(key, text)])[0]
        np.testing.assert_allclose(result.probabilities, alone.probabilities, atol=1e-5)


def test_adapters_change_the_scores(tiny_backbone: Path, lora_items: dict[str, Path]) -> None:
    engine = ScoringEngine(str(tiny_backbone), device="cpu")  # exactness, not GPU precision
    for key, path in lora_items.items():
        engine.load_item(key, path, "v1")
    text = "tcp udp header"
    with_adapter = engine.score([ScoreRequest("item0", text)])[0].probabilities
    artifact = load_artifact(lora_items["item0"])
    weight, bias = artifact.head_tensors(0)
    plain = torch.softmax(torch.from_numpy(engine.encode_plain([text])) @ weight.T + bias, dim=-1)[
        0
    ].numpy()
    assert not np.allclose(with_adapter, plain, atol=1e-4)


def test_items_are_added_replaced_and_removed_while_serving(
    tiny_backbone: Path, lora_items: dict[str, Path]
) -> None:
    engine = ScoringEngine(str(tiny_backbone), device="cpu")  # exactness, not GPU precision
    engine.load_item("a", lora_items["item0"], "v1")
    text = "tcp udp header port"
    first = engine.score([ScoreRequest("a", text)])[0]
    engine.load_item("b", lora_items["head"], "v1")
    engine.load_item("a", lora_items["item1"], "v2")
    replaced = engine.score([ScoreRequest("a", text)])[0]
    assert replaced.model_version == "v2"
    expected = _reference_probabilities(tiny_backbone, lora_items["item1"], text)
    np.testing.assert_allclose(replaced.probabilities, expected, atol=1e-5)
    assert first.probabilities != replaced.probabilities
    engine.remove_item("a")
    assert engine.loaded() == {"b": "v1"}
    assert "unknown item" in (engine.score([ScoreRequest("a", text)])[0].error or "")
    assert engine.score([ScoreRequest("b", text)])[0].error is None


def test_concurrent_scoring_and_reloading_never_fails(
    tiny_backbone: Path, lora_items: dict[str, Path]
) -> None:
    engine = ScoringEngine(str(tiny_backbone), device="cpu")  # exactness, not GPU precision
    for key, path in lora_items.items():
        engine.load_item(key, path, "v0")
    errors: list[str] = []
    stop = threading.Event()

    def score_loop() -> None:
        while not stop.is_set():
            for result in engine.score(
                [ScoreRequest(k, "tcp udp port") for k in ("item0", "item1", "item2", "head")]
            ):
                if result.error is not None:
                    errors.append(result.error)

    workers = [threading.Thread(target=score_loop) for _ in range(2)]
    for worker in workers:
        worker.start()
    for version in range(10):
        engine.load_item("item1", lora_items["item2" if version % 2 else "item1"], f"v{version}")
        engine.load_item("extra", lora_items["item0"], "v1")
        engine.remove_item("extra")
    stop.set()
    for worker in workers:
        worker.join()
    assert errors == []
