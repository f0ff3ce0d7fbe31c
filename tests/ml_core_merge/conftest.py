"""Tiny in-process backbones and trained toy items for the merge tests."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from ml_core.training import TrainConfig, TrainExample, train_item

_WORDS = (
    "tcp udp header port sequence number ack window checksum length reliable connection "
    "packet router switch frame error flow control congestion segment the a is and not of "
    "to in has no yes because data layer network transport"
).split()


def toy_examples(
    n: int = 60, seed: int = 0, keywords: tuple[str, str] = ("tcp", "udp")
) -> list[TrainExample]:
    """Answers scored 0..2 by how many of the two ``keywords`` they contain; fixed splits."""
    rng = random.Random(seed)
    fillers = [w for w in _WORDS if w not in keywords]
    examples = []
    for i in range(n):
        label = i % 3
        words = rng.sample(fillers, 5) + list(keywords[:label])
        rng.shuffle(words)
        split = "test" if i % 10 == 0 else ("val" if i % 10 == 1 else "train")
        examples.append(TrainExample(text=" ".join(words), label=label, split=split))
    return examples


# three toy items: two about the same key words, one about others
TOY_ITEMS: dict[str, tuple[str, str]] = {
    "q-a": ("tcp", "udp"),
    "q-b": ("tcp", "udp"),
    "q-c": ("router", "switch"),
}


def _train(
    folder: Path, backbone: Path, kind: str, count: int = 3
) -> dict[str, tuple[Path, list[TrainExample]]]:
    out = {}
    for number, (item_id, keywords) in enumerate(list(TOY_ITEMS.items())[:count]):
        examples = toy_examples(45, seed=number, keywords=keywords)
        # one epoch at a high rate moves the weights apart; the tests need no accuracy
        config = TrainConfig(
            kind=kind, epochs=1, seed=number, learning_rate=3e-3 if kind == "full" else None
        )
        train_item(
            examples,
            item_id=item_id,
            num_labels=3,
            out_dir=folder / item_id,
            backbone=str(backbone),
            config=config,
        )
        out[item_id] = (folder / item_id, examples)
    return out


@pytest.fixture(scope="session")
def full_items(
    tiny_backbone: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, tuple[Path, list[TrainExample]]]:
    """item id -> (``full`` artifact folder, its examples)."""
    return _train(tmp_path_factory.mktemp("full-items"), tiny_backbone, "full")


@pytest.fixture(scope="session")
def lora_items(
    tiny_backbone: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, tuple[Path, list[TrainExample]]]:
    """item id -> (``lora`` artifact folder, its examples)."""
    return _train(tmp_path_factory.mktemp("lora-items"), tiny_backbone, "lora", count=2)
