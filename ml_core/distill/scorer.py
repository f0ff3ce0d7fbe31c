"""Scoring with a distilled student: one ``.onnx`` file, ONNX Runtime and numpy, nothing else.

This module imports neither torch nor transformers, so it runs on any laptop with
``pip install onnxruntime numpy``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from ml_core.answers import clean_answer_text
from ml_core.distill.vocabulary import PAD_ID, Vocabulary
from ml_core.results import ScoreRequest, ScoreResult, error_result

METADATA_KEY = "scorebridge.distilled"
"""``metadata_props`` key of the JSON metadata (vocabulary, labels, versions, metrics)."""
ONNX_FILE = "student.onnx"


@dataclass(frozen=True)
class DistilledResult:
    """The machine score of one answer, with the same fields as the engine's ``ScoreResult``.

    ``score`` is the predicted score value, ``probabilities`` the class probabilities (class ``i``
    is score ``labels[i]``), ``confidence`` the top probability, ``truncated`` that only the start
    of a long answer was read. On empty or non-text input ``error`` is set and ``score`` is None.
    """

    score: int | None
    probabilities: tuple[float, ...]
    confidence: float
    model_version: str
    truncated: bool = False
    error: str | None = None


class DistilledScorer:
    """Loads a distilled student (the ``.onnx`` file or its artifact folder) and scores texts.

    ``threads`` is ONNX Runtime's intra-op thread count (1 = one core). ``batch_size`` bounds the
    answers run together (64 measured fastest on one core); answers are grouped by length so little padding is computed.
    """

    def __init__(self, path: str | Path, *, threads: int = 1, batch_size: int = 64) -> None:
        path = Path(path)
        if path.is_dir():
            path = path / ONNX_FILE
        if not path.is_file():
            raise FileNotFoundError(f"no distilled student at {path}")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self._session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        raw = self._session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
        if raw is None:
            raise ValueError(
                f"{path} is not a Scorebridge distilled student (no {METADATA_KEY} metadata)"
            )
        self.metadata: dict[str, object] = json.loads(raw)
        self.vocabulary = Vocabulary.from_dict(self.metadata["vocabulary"])  # type: ignore[arg-type]
        self.labels: tuple[int, ...] = tuple(int(v) for v in self.metadata["labels"])  # type: ignore[union-attr]
        self.item_id = str(self.metadata.get("item_id", ""))
        self.model_version = str(self.metadata.get("model_version", ""))
        self.batch_size = max(1, batch_size)
        self.path = path

    def predict_ids(self, ids: Sequence[Sequence[int]]) -> np.ndarray:
        """Probabilities ``[n, labels]`` for already tokenized answers (each non-empty)."""
        out = np.zeros((len(ids), len(self.labels)), dtype=np.float32)
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        for start in range(0, len(order), self.batch_size):
            batch = order[start : start + self.batch_size]
            width = max(1, max(len(ids[i]) for i in batch))
            matrix = np.full((len(batch), width), PAD_ID, dtype=np.int64)
            for row, index in enumerate(batch):
                matrix[row, : len(ids[index])] = ids[index]
            out[batch] = self._session.run(None, {"input_ids": matrix})[0]
        return out

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Probabilities ``[n, labels]``; blank texts get a uniform row (use ``score`` for errors)."""
        encoded = self.vocabulary.encode_batch(str(t) for t in texts)
        probabilities = self.predict_ids([e.ids for e in encoded])
        for row, text in enumerate(texts):
            if not str(text).strip():
                probabilities[row] = 1.0 / len(self.labels)
        return probabilities

    def score(self, texts: Sequence[str | bytes]) -> list[DistilledResult]:
        """Score every text; one result per text, same order. Never raises for bad input."""
        results: list[DistilledResult | None] = [None] * len(texts)
        pending: list[tuple[int, list[int], bool]] = []
        for position, raw in enumerate(texts):
            text, problem = clean_answer_text(raw)
            if problem is not None:
                results[position] = DistilledResult(
                    None, (), 0.0, self.model_version, error=problem
                )
                continue
            encoded = self.vocabulary.encode(text)
            pending.append((position, encoded.ids, encoded.truncated))
        if pending:
            probabilities = self.predict_ids([ids for _, ids, _ in pending])
            for (position, _, truncated), probs in zip(pending, probabilities, strict=True):
                best = int(np.argmax(probs))
                results[position] = DistilledResult(
                    score=self.labels[best],
                    probabilities=tuple(float(p) for p in probs),
                    confidence=float(probs[best]) if math.isfinite(float(probs[best])) else 0.0,
                    model_version=self.model_version,
                    truncated=truncated,
                )
        return [
            r
            if r is not None
            else DistilledResult(None, (), 0.0, self.model_version, error="internal error")
            for r in results
        ]

    # the serving protocol (``ml_core.serving.Scorer``)
    def score_requests(
        self, requests: Sequence[ScoreRequest], versions: Mapping[str, str] | None = None
    ) -> list[ScoreResult]:
        """Score requests for this student's item (``item_id``, or the single key of
        ``versions``, which maps it to the version label reported); others get an error."""
        served = dict(versions) if versions else {self.item_id: self.model_version}
        results: list[ScoreResult | None] = [None] * len(requests)
        mine = [i for i, r in enumerate(requests) if getattr(r, "item_key", None) in served]
        for position, request in enumerate(requests):
            if position not in mine:
                key = str(getattr(request, "item_key", ""))
                results[position] = error_result(key, f"unknown item {key!r}")
        answers = self.score([requests[i].text for i in mine])
        for position, answer in zip(mine, answers, strict=True):
            key = requests[position].item_key
            results[position] = ScoreResult(
                item_key=key,
                score=answer.score,
                probabilities=answer.probabilities,
                confidence=answer.confidence,
                model_version=served[key],
                truncated=answer.truncated,
                error=answer.error,
            )
        return [r if r is not None else error_result("", "internal error") for r in results]

    def held(self) -> Mapping[str, str]:
        """``{item_id: model_version}``."""
        return {self.item_id: self.model_version}

    def resident_bytes(self) -> Mapping[str, int]:
        """The ONNX file's size (the session holds about that much)."""
        return {"student": self.path.stat().st_size}
