"""Tiny in-process backbones and scored answers shared by the ml_core tests."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from transformers import BertConfig, BertModel, BertTokenizer

from ml_core.training import TrainExample

_WORDS = (
    "tcp udp header port sequence number ack window checksum length reliable connection "
    "packet router switch frame error flow control congestion segment the a is and not of "
    "to in has no yes because data layer network transport"
).split()


def make_tiny_backbone(folder: Path, seed: int = 0) -> Path:
    """Save a 2-layer, 32-wide BERT with a word-level vocabulary to ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *_WORDS]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tokenizer = BertTokenizer(vocab=str(folder / "vocab.txt"))
    tokenizer.save_pretrained(str(folder))
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    BertModel(config).save_pretrained(str(folder))
    return folder


def make_examples(n: int = 60, seed: int = 0, split: str = "") -> list[TrainExample]:
    """Answers whose score (0..2) is the number of key words they contain."""
    rng = random.Random(seed)
    fillers = [w for w in _WORDS if w not in ("tcp", "udp")]
    examples = []
    for i in range(n):
        label = i % 3
        words = rng.sample(fillers, 5) + ["tcp", "udp"][:label]
        rng.shuffle(words)
        examples.append(TrainExample(text=" ".join(words), label=label, split=split))
    return examples


@pytest.fixture(scope="session")
def other_backbone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_backbone(tmp_path_factory.mktemp("other-bert"), seed=1)


@pytest.fixture()
def examples() -> Iterator[list[TrainExample]]:
    yield make_examples()
