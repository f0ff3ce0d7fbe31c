"""Toy items for the distillation tests: answers whose score is the number of key words in them,
and a fake teacher whose probabilities are made from the labels (no backbone needed)."""

from __future__ import annotations

import random

import numpy as np

from ml_core.distill.config import DistillConfig

FILLERS = "the a of packet router frame data layer network is and to it has".split()
KEYWORDS = ("tcp", "udp")


def toy_answers(n: int = 90, seed: int = 0) -> tuple[list[str], np.ndarray]:
    """``n`` answers scored 0..2: the score is how many of ``tcp``/``udp`` the answer names."""
    rng = random.Random(seed)
    texts, labels = [], []
    for i in range(n):
        label = i % 3
        words = rng.sample(FILLERS, 5) + list(KEYWORDS[:label])
        rng.shuffle(words)
        texts.append(" ".join(words))
        labels.append(label)
    return texts, np.array(labels, dtype=np.int64)


def fake_teacher(labels: np.ndarray, num_labels: int = 3, confidence: float = 0.8) -> np.ndarray:
    """Probabilities a good teacher might give: ``confidence`` on the true class, the rest spread."""
    rest = (1.0 - confidence) / (num_labels - 1)
    out = np.full((len(labels), num_labels), rest, dtype=np.float32)
    out[np.arange(len(labels)), labels] = confidence
    return out


def fast_config(**overrides: object) -> DistillConfig:
    """A config that trains the toy student in about a second."""
    config = DistillConfig(
        epochs=30, patience=30, learning_rate=1e-2, batch_size=16, measure_speed=False
    )
    for name, value in overrides.items():
        setattr(config, name, value)
    return config
