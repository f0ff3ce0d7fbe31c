"""New answers made from an item's training answers, for the teacher to score.

Distillation transfers most when the student sees many inputs with the teacher's probabilities
(Tang et al., 2019, "Distilling task-specific knowledge from BERT into simple neural networks").
An item has ~100-300 answers, so each training answer is varied a few times: words dropped,
words replaced by other words of the same item's answers, and (sometimes) only a window of the
answer kept. The variants carry no human label: only the teacher's probabilities train on them.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence

_TOKEN = re.compile(r"\S+")


def augment_texts(
    texts: Sequence[str],
    *,
    copies: int,
    seed: int = 13,
    drop_probability: float = 0.1,
    replace_probability: float = 0.1,
    window_probability: float = 0.25,
) -> list[str]:
    """``copies`` variants of every text (blank texts skipped), deterministic for a ``seed``."""
    rng = random.Random(seed)
    words = [w for text in texts for w in _TOKEN.findall(text)]
    out: list[str] = []
    if not words:
        return out
    for text in texts:
        tokens = _TOKEN.findall(text)
        if not tokens:
            continue
        for _ in range(copies):
            varied: list[str] = []
            for token in tokens:
                draw = rng.random()
                if draw < drop_probability:
                    continue
                varied.append(
                    rng.choice(words) if draw < drop_probability + replace_probability else token
                )
            if len(varied) > 4 and rng.random() < window_probability:
                # a window of at least half the answer: partial answers are common among students
                size = rng.randint((len(varied) + 1) // 2, len(varied))
                start = rng.randint(0, len(varied) - size)
                varied = varied[start : start + size]
            out.append(" ".join(varied or tokens))
    return out
