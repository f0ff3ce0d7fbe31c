"""Scoring saved artifacts on labelled answers, for every kind (used by the CLI and benchmark).

``lora`` and ``head`` artifacts are scored through :class:`~ml_core.engine.ScoringEngine` (the
serving path itself); ``full`` artifacts, which the engine cannot serve, through a standalone
fine-tuned model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from ml_core.artifact import (
    AUTO_KIND,
    Artifact,
    BackboneMismatchError,
    load_artifact,
    read_manifest,
)
from ml_core.backbone import backbone_fingerprint, resolve_backbone
from ml_core.data import ItemRecord, ResponseRecord
from ml_core.engine import ScoreRequest, ScoringEngine
from ml_core.metrics import classification_report
from ml_core.modeling import load_backbone_model, load_tokenizer, pool, usable_length
from ml_core.training import TrainExample, collate


def examples_by_item(responses: Sequence[ResponseRecord]) -> dict[str, list[TrainExample]]:
    """Group scored responses into training examples per item, keeping their split."""
    grouped: dict[str, list[TrainExample]] = {}
    for response in responses:
        grouped.setdefault(response.item_id, []).append(
            TrainExample(text=response.text, label=response.score, split=response.split)
        )
    return grouped


def num_labels_for(item: ItemRecord | None, examples: Sequence[TrainExample]) -> int:
    """Score classes of an item: ``max_score + 1`` from the item bank, else from the data."""
    if item is not None:
        return item.max_score + 1
    return max(e.label for e in examples) + 1


class FullModelScorer:
    """Scores answers with a ``full`` artifact (a whole fine-tuned backbone plus heads)."""

    def __init__(
        self, artifact: Artifact, backbone: str | None = None, max_length: int = 256
    ) -> None:
        artifact.check_backbone(backbone_fingerprint(backbone))
        resolved = resolve_backbone(backbone)
        self.artifact = artifact
        self.tokenizer = load_tokenizer(resolved)
        self.model = load_backbone_model(resolved)
        state = {
            k.removeprefix("backbone."): v
            for k, v in artifact.tensors.items()
            if k.startswith("backbone.")
        }
        self.model.load_state_dict(state, strict=False)
        self.model.eval()
        self.max_length = usable_length(resolved, max_length)

    @torch.no_grad()
    def probabilities(self, texts: Sequence[str], batch_size: int = 32) -> list[np.ndarray]:
        """Per criterion, ``[len(texts), num_labels]`` class probabilities."""
        encoded = self.tokenizer(list(texts), truncation=True, max_length=self.max_length)[
            "input_ids"
        ]
        out = [
            np.zeros((len(texts), c.num_labels), dtype=np.float32) for c in self.artifact.criteria
        ]
        order = sorted(range(len(texts)), key=lambda i: len(encoded[i]))
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            ids, mask = collate([encoded[i] for i in batch], int(self.tokenizer.pad_token_id or 0))
            pooled = pool(
                self.model(input_ids=ids, attention_mask=mask).last_hidden_state,
                mask,
                self.artifact.pooling,
            )
            for c in range(len(self.artifact.criteria)):
                weight, bias = self.artifact.head_tensors(c)
                out[c][batch] = torch.softmax(pooled @ weight.T + bias, dim=-1).numpy()
        return out


def predict_artifact(
    artifact_dir: Path,
    texts: Sequence[str],
    *,
    backbone: str | None = None,
    engine: ScoringEngine | None = None,
    item_key: str = "item",
) -> np.ndarray:
    """Predicted class indices ``[len(texts), criteria]`` of the artifact on ``texts``.

    Empty answers (which the engine refuses) are predicted as class 0. ``auto`` artifacts are
    scored by :class:`ml_core.auto.AutoModel`, with the engine's ``embed`` (the serving path)
    when ``engine`` is given, else a frozen-backbone embedder, when the model needs vectors.
    """
    if read_manifest(artifact_dir).get("kind") == AUTO_KIND:
        return _predict_auto(artifact_dir, texts, backbone=backbone, engine=engine)
    artifact = load_artifact(artifact_dir)
    if artifact.kind == "full":
        probabilities = FullModelScorer(artifact, backbone).probabilities(texts)
        return np.stack([p.argmax(axis=1) for p in probabilities], axis=1)
    owned = engine is None
    engine = engine or ScoringEngine(backbone)
    engine.load_item(item_key, artifact_dir, "eval")
    try:
        results = engine.score([ScoreRequest(item_key, t) for t in texts])
    finally:
        if owned:
            engine.remove_item(item_key)
    predictions = np.zeros((len(texts), len(artifact.criteria)), dtype=np.int64)
    for row, result in enumerate(results):
        if result.error is None:
            if result.criteria is not None:
                predictions[row] = [
                    artifact.criteria[c].labels.index(result.criteria[crit.name])
                    for c, crit in enumerate(artifact.criteria)
                ]
            else:
                predictions[row, 0] = int(np.argmax(result.probabilities))
    return predictions


def _predict_auto(
    artifact_dir: Path,
    texts: Sequence[str],
    *,
    backbone: str | None,
    engine: ScoringEngine | None,
) -> np.ndarray:
    from ml_core.auto import AutoModel, frozen_embedder

    model = AutoModel.load(artifact_dir)
    embeddings = None
    if model.needs_embeddings:
        fingerprint = engine.fingerprint if engine is not None else backbone_fingerprint(backbone)
        if fingerprint != model.backbone_fingerprint:
            raise BackboneMismatchError(
                f"auto artifact {artifact_dir} was trained on {model.backbone_fingerprint}, "
                f"not {fingerprint}"
            )
        embed = engine.embed if engine is not None else frozen_embedder(backbone, model.pooling)
        embeddings = embed(texts)
    scores = model.decode(model.probabilities(texts, embeddings))
    return np.asarray(scores, dtype=np.int64)[:, None]


def evaluate_artifact(
    artifact_dir: Path,
    examples: Sequence[TrainExample],
    *,
    backbone: str | None = None,
    engine: ScoringEngine | None = None,
) -> dict[str, float]:
    """Metrics of the artifact on ``examples`` (all of them; filter the split beforehand)."""
    criteria = load_artifact(artifact_dir).criteria
    predictions = predict_artifact(
        artifact_dir, [e.text for e in examples], backbone=backbone, engine=engine
    )
    truth = np.array([e.labels() for e in examples], dtype=np.int64)
    report = classification_report(
        truth,
        predictions,
        num_labels=[c.num_labels for c in criteria],
        criteria=[c.name for c in criteria],
    )
    report["n"] = float(len(examples))
    return report


def held_out_examples(examples: Sequence[TrainExample], artifact_dir: Path) -> list[TrainExample]:
    """The examples that formed the artifact's test split (recomputed from its saved config)."""
    from ml_core.training import TrainConfig, split_examples

    manifest = load_artifact(artifact_dir).manifest
    if manifest.get("kind") == AUTO_KIND:
        # auto holds answers out inside its own cross-validation; its metrics are those
        raise ValueError(
            "an auto artifact is trained on every answer it was given; it has no held-out split "
            "(see its cross-validated metrics, or run the benchmark)"
        )
    training = manifest.get("training")
    config = TrainConfig()
    if isinstance(training, Mapping):
        config.seed = int(training.get("seed", config.seed))
        config.val_fraction = float(training.get("val_fraction", config.val_fraction))
        config.test_fraction = float(training.get("test_fraction", config.test_fraction))
    split = split_examples(examples, config)
    return [examples[i] for i in split.test]
