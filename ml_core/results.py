"""What every scorer takes and returns: a request to score one answer and its result.

Plain dataclasses (no torch), so the ONNX-only distilled scorer uses them too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ScoreRequest:
    """One answer to score for one item (``item_key`` as passed to ``load_item``)."""

    item_key: str
    text: str


@dataclass(frozen=True)
class ScoreResult:
    """The machine score of one answer.

    ``score`` is the predicted score (for multi-criterion items the sum of the criterion scores,
    which are in ``criteria``); ``probabilities`` are the class probabilities (multi-criterion:
    the criteria's probabilities concatenated in order, also per criterion in
    ``criteria_probabilities``); ``confidence`` is the top probability (the lowest over criteria).
    ``truncated`` says the answer was longer than the window and only its start was scored.
    On bad input ``error`` is set and ``score`` is None. ``vector`` is the answer's pooled
    backbone vector where the scorer computed one (``float32 [hidden]``; ``None`` otherwise):
    answers of one item and model version can be compared by it (answer groups).
    """

    item_key: str
    score: int | None
    probabilities: tuple[float, ...]
    confidence: float
    model_version: str
    truncated: bool = False
    error: str | None = None
    criteria: Mapping[str, int] | None = None
    criteria_probabilities: Mapping[str, tuple[float, ...]] | None = None
    # an array (no numpy import here): not compared, not shown in repr
    vector: object | None = field(default=None, compare=False, repr=False)


def error_result(item_key: str, error: str, version: str = "") -> ScoreResult:
    """A result that carries ``error`` instead of a score."""
    return ScoreResult(
        item_key=item_key,
        score=None,
        probabilities=(),
        confidence=0.0,
        model_version=version,
        error=error,
    )
