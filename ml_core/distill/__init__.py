"""Distill any item model into a tiny student (embedding, BiLSTM, max pooling, dense) that runs
anywhere: one self-contained ``.onnx`` file scored by :class:`DistilledScorer` with ONNX Runtime.

Callers use :func:`distill_item` (training) and :class:`DistilledScorer` (scoring). Scoring
needs only numpy and onnxruntime, so the torch-based names are imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ml_core.distill.config import DistillConfig
from ml_core.distill.scorer import DistilledResult, DistilledScorer
from ml_core.distill.vocabulary import Vocabulary

if TYPE_CHECKING:
    from ml_core.distill.api import DistilledArtifact, distill_item

__all__ = [
    "DistillConfig",
    "DistilledArtifact",
    "DistilledResult",
    "DistilledScorer",
    "Vocabulary",
    "distill_item",
]


def __getattr__(name: str) -> object:
    # torch is imported only by callers that train, never by offline scoring
    if name in ("distill_item", "DistilledArtifact"):
        from ml_core.distill import api

        return getattr(api, name)
    raise AttributeError(f"module 'ml_core.distill' has no attribute {name!r}")
