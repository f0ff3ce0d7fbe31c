"""The merge pipeline end to end: item features -> distances -> plan -> merged groups -> metrics.

Everything works on item artifacts (``full`` or ``lora``) plus the items' human-scored answers;
every item's train/val/test split is rebuilt exactly as its training made it (same splitter, seed
and fractions from the artifact's manifest), so "test" always means answers its model never saw.
"""

from __future__ import annotations

import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from ml_core.artifact import Artifact, ArtifactError
from ml_core.merge.config import FULL_METHODS, FeatureConfig, MergeConfig
from ml_core.merge.group import GroupItem, write_group
from ml_core.merge.heads import refit_head
from ml_core.merge.merging import concat_lora_factors, merge_full, merge_lora
from ml_core.merge.models import (
    Encoder,
    artifact_hash,
    backbone_state,
    fold_deltas,
    head_tensors,
    item_state,
    lora_deltas,
)
from ml_core.metrics import classification_report, per_label_accuracy
from ml_core.training import Split, TrainConfig, TrainExample, split_examples


@dataclass(frozen=True)
class ItemData:
    """One item's artifact and answers, with the split its training used."""

    item_id: str
    artifact: Artifact
    examples: tuple[TrainExample, ...]
    split: Split
    token_ids: tuple[tuple[int, ...], ...] = field(repr=False, default=())

    def labels(self, indices: Sequence[int]) -> np.ndarray:
        """``[len(indices), criteria]`` class indices."""
        return np.array([self.examples[i].labels() for i in indices], dtype=np.int64).reshape(
            len(indices), -1
        )

    @property
    def hash(self) -> str:
        return artifact_hash(self.artifact.path)


def artifact_split(artifact: Artifact, examples: Sequence[TrainExample]) -> Split:
    """The split the artifact's training made of ``examples`` (same seed and fractions)."""
    training = dict(artifact.manifest.get("training") or {})  # type: ignore[call-overload]
    config = TrainConfig(
        seed=int(training.get("seed", TrainConfig.seed)),
        val_fraction=float(training.get("val_fraction", TrainConfig.val_fraction)),
        test_fraction=float(training.get("test_fraction", TrainConfig.test_fraction)),
    )
    return split_examples(examples, config)


def prepare_item(
    artifact: Artifact, examples: Sequence[TrainExample], encoder: Encoder
) -> ItemData:
    """Bundle an artifact with its answers, split and token ids (tokenized once)."""
    token_ids = tuple(tuple(ids) for ids in encoder.tokenize([e.text for e in examples]))
    return ItemData(
        artifact.item_id, artifact, tuple(examples), artifact_split(artifact, examples), token_ids
    )


def feature_sample(item: ItemData, config: FeatureConfig) -> list[int]:
    """Seeded sample of at most ``config.max_answers`` training answers (sorted indices)."""
    train = list(item.split.train)
    if len(train) > config.max_answers:
        train = sorted(random.Random(config.seed).sample(train, config.max_answers))
    return train


def encode_indices(encoder: Encoder, item: ItemData, indices: Sequence[int]) -> np.ndarray:
    return encoder.encode([], token_ids=[item.token_ids[i] for i in indices])


def own_features(
    items: Sequence[ItemData], encoder: Encoder, config: FeatureConfig, *, with_test: bool = False
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], float]:
    """Per item: features of its training sample under its own model (and of its test answers).

    Returns (sample features, test features — empty unless ``with_test``, seconds).
    """
    started = time.perf_counter()
    samples: dict[str, np.ndarray] = {}
    tests: dict[str, np.ndarray] = {}
    for item in items:
        encoder.load(
            item_state(item.artifact, encoder.base_state), tag=f"item:{item.item_id}:{item.hash}"
        )
        sample = feature_sample(item, config)
        wanted = sample + (list(item.split.test) if with_test else [])
        features = encode_indices(encoder, item, wanted)
        samples[item.item_id] = features[: len(sample)]
        if with_test:
            tests[item.item_id] = features[len(sample) :]
    return samples, tests, time.perf_counter() - started


def pretrained_features(
    items: Sequence[ItemData], encoder: Encoder, config: FeatureConfig
) -> tuple[dict[str, np.ndarray], float]:
    """Per item: features of its training sample under the pretrained backbone (one shared
    space for all items); (features, seconds)."""
    started = time.perf_counter()
    encoder.load_base()
    samples = {
        item.item_id: encode_indices(encoder, item, feature_sample(item, config)) for item in items
    }
    return samples, time.perf_counter() - started


def sample_scores(items: Sequence[ItemData], config: FeatureConfig) -> dict[str, np.ndarray]:
    """Per item: the first criterion's class of each answer of its feature sample, as a fraction
    of the item's highest class (0..1), so items with different score ranges compare."""
    out = {}
    for item in items:
        top = max(1, item.artifact.criteria[0].num_labels - 1)
        out[item.item_id] = item.labels(feature_sample(item, config))[:, 0].astype(np.float64) / top
    return out


# --------------------------------------------------------------------------------------------
# Merging one group


@dataclass(frozen=True)
class GroupResult:
    """A merged group written to disk, with what happened to every head."""

    group_id: str
    path: Path
    item_ids: tuple[str, ...]
    size_bytes: int
    method: str
    head_refits: dict[str, list[dict[str, float]]]
    seconds: float
    # merged features of each item's answers (train, validation and test), rows indexed like
    # the item's examples; empty unless merge_group was asked to encode everything
    features: dict[str, np.ndarray] = field(repr=False, default_factory=dict)
    # every item's heads as written (re-fitted or kept), one (weight, bias) per criterion
    heads: dict[str, list[tuple[torch.Tensor, torch.Tensor]]] = field(
        repr=False, default_factory=dict
    )

    def predictions(self, item: ItemData, indices: Sequence[int]) -> np.ndarray:
        """``[len(indices), criteria]`` class indices of the merged model on ``item``'s rows."""
        return predict_heads(self.features[item.item_id][list(indices)], self.heads[item.item_id])


def merged_extractor(
    group: Sequence[ItemData],
    base: Mapping[str, torch.Tensor],
    config: MergeConfig,
    device: torch.device | None = None,
) -> tuple[str, dict[str, torch.Tensor], str]:
    """(merged kind, tensors to store, method used) for one group of same-kind artifacts.

    ``device`` is where full models are merged (the tensors returned are on the CPU).
    """
    kinds = {item.artifact.kind for item in group}
    if len(kinds) != 1:
        raise ArtifactError(
            f"a group mixes artifact kinds {sorted(kinds)}; merge one kind at a time"
        )
    kind = kinds.pop()
    if kind == "full":
        method = config.method if config.method in FULL_METHODS else "average"
        merged = merge_full([backbone_state(item.artifact) for item in group], base, config, device)
        return "full", merged, method
    if kind == "lora":
        artifacts = [item.artifact for item in group]
        if config.method == "concat":
            factors = concat_lora_factors(
                [a.lora_modules() for a in artifacts], [a.lora_alpha / a.lora_r for a in artifacts]
            )
            method = "concat"
        else:
            factors = merge_lora(
                [lora_deltas(a) for a in artifacts], config, rank=max(a.lora_r for a in artifacts)
            )
            method = "svd"
        tensors: dict[str, torch.Tensor] = {}
        for module, (a, b) in factors.items():
            tensors[f"{module}.A"] = a
            tensors[f"{module}.B"] = b
        return "lora", tensors, method
    raise ArtifactError(f"artifacts of kind {kind!r} have no extractor to merge")


def _encoder_state(
    encoder: Encoder, merged_kind: str, tensors: Mapping[str, torch.Tensor], config: MergeConfig
) -> dict[str, torch.Tensor]:
    """The merged extractor as the encoder's weights: full weights as merged, LoRA factors
    folded into the base; rounded through float16 when stored so (score what is stored)."""
    if merged_kind == "full":
        state = dict(tensors)
    else:
        modules = {
            name[: -len(".A")]: (tensors[name], tensors[name[:-2] + ".B"])
            for name in tensors
            if name.endswith(".A")
        }
        state = fold_deltas(encoder.base_state, {m: b @ a for m, (a, b) in modules.items()})
    if config.shared_dtype == "float16":
        state = {k: (v.half().float() if v.is_floating_point() else v) for k, v in state.items()}
    return state


def merge_group(
    group: Sequence[ItemData],
    encoder: Encoder,
    out_dir: Path,
    *,
    group_id: str,
    config: MergeConfig,
    backbone_label: str,
    extra: Mapping[str, object] | None = None,
    encode_all: bool = True,
) -> GroupResult:
    """Merge a group's extractors, re-fit each head on the merged features, write the folder.

    Heads are re-fitted on each item's training answers only. With ``encode_all`` the merged
    features of all of each item's answers are returned (evaluation on the validation and test
    splits without re-encoding).
    """
    config.validate()
    started = time.perf_counter()
    merged_kind, tensors, method = merged_extractor(
        group, encoder.base_state, config, encoder.device
    )
    state = _encoder_state(encoder, merged_kind, tensors, config)
    encoder.load(state, tag=f"group:{group_id}:{method}:{id(state)}")
    features: dict[str, np.ndarray] = {}
    items: list[GroupItem] = []
    refits: dict[str, list[dict[str, float]]] = {}
    for item in group:
        wanted = (
            sorted(item.split.train + item.split.val + item.split.test)
            if encode_all
            else list(item.split.train)
        )
        encoded = encode_indices(encoder, item, wanted)
        by_index = dict(zip(wanted, range(len(wanted)), strict=True))
        if encode_all:
            rows = np.zeros((len(item.examples), encoded.shape[1]), dtype=np.float32)
            rows[wanted] = encoded
            features[item.item_id] = rows
        train_x = encoded[[by_index[i] for i in item.split.train]]
        train_y = item.labels(item.split.train)
        heads = []
        refits[item.item_id] = []
        for c, (weight, bias) in enumerate(head_tensors(item.artifact)):
            if config.refit_heads:
                fit = refit_head(
                    train_x, train_y[:, c], weight, bias, l2=config.head_l2, steps=config.head_steps
                )
                heads.append((fit.weight, fit.bias))
                refits[item.item_id].append(
                    {
                        "kept": float(fit.refit_kept),
                        "train_accuracy_before": fit.train_accuracy_before,
                        "train_accuracy_after": fit.train_accuracy_after,
                    }
                )
            else:
                heads.append((weight, bias))
        items.append(GroupItem(item.item_id, item.artifact.criteria, tuple(heads)))
    first = group[0].artifact
    size = write_group(
        out_dir,
        group_id=group_id,
        merged_kind=merged_kind,
        shared=tensors,
        items=items,
        backbone=backbone_label,
        fingerprint=first.backbone_fingerprint,
        pooling=first.pooling,
        shared_dtype=config.shared_dtype,
        extra={
            "method": method,
            "merge_config": asdict(config),
            "sources": [
                {"item_id": it.item_id, "path": str(it.artifact.path), "hash": it.hash}
                for it in group
            ],
            "head_refits": refits,
            **dict(extra or {}),
        },
    )
    return GroupResult(
        group_id,
        Path(out_dir),
        tuple(i.item_id for i in group),
        size,
        method,
        refits,
        time.perf_counter() - started,
        features,
        {item.item_id: list(item.heads) for item in items},
    )


# --------------------------------------------------------------------------------------------
# Evaluation


def predict_heads(
    features: np.ndarray, heads: Sequence[tuple[torch.Tensor, torch.Tensor]]
) -> np.ndarray:
    """``[n, criteria]`` predicted class indices of linear heads on fixed features."""
    x = torch.as_tensor(features, dtype=torch.float32)
    return np.stack([(x @ w.float().T + b.float()).argmax(dim=1).numpy() for w, b in heads], axis=1)


def item_report(item: ItemData, predictions: np.ndarray, split: str = "test") -> dict[str, float]:
    """Metrics of one item on ``split`` (test or val): QWK, accuracy, micro/macro F1, exact match,
    per-label accuracy."""
    truth = item.labels(getattr(item.split, split))
    counts = [c.num_labels for c in item.artifact.criteria]
    report = classification_report(
        truth, predictions, num_labels=counts, criteria=[c.name for c in item.artifact.criteria]
    )
    report.setdefault(
        "exact_match", float((truth == predictions).all(axis=1).mean()) if len(truth) else 0.0
    )
    for name, value in zip(
        (c.name for c in item.artifact.criteria),
        per_label_accuracy(truth, predictions),
        strict=False,
    ):
        report[f"label_accuracy/{name}"] = value
    report["n_test"] = float(len(truth))
    return report


def pooled_report(
    items: Sequence[ItemData], predictions: Mapping[str, np.ndarray], split: str = "test"
) -> dict[str, float]:
    """Metrics over the answers of ``split`` (test or val) of all items together (micro) and
    averaged per item (macro)."""
    per_item = [item_report(item, predictions[item.item_id], split) for item in items]
    truth = np.concatenate([item.labels(getattr(item.split, split))[:, 0] for item in items])
    pred = np.concatenate([predictions[item.item_id][:, 0] for item in items])
    # pooled micro F1 = share of all test answers scored right (single-label classification)
    out = {
        "micro_f1_pooled": float((truth == pred).mean()) if len(truth) else 0.0,
        "n_test": float(len(truth)),
    }
    for key in ("micro_f1", "macro_f1", "qwk", "accuracy", "exact_match"):
        out[f"{key}_item_mean"] = float(np.mean([r[key] for r in per_item])) if per_item else 0.0
    return out


def refit_own_heads(
    items: Sequence[ItemData], encoder: Encoder, config: MergeConfig
) -> tuple[dict[str, np.ndarray], float]:
    """Test predictions of every *unmerged* model with its heads re-fitted like merged ones.

    The fair baseline for merging with re-fitted heads: it separates what merging costs from what
    re-fitting a head by L-BFGS (rather than a few epochs of SGD) gains. Returns (predictions,
    seconds).
    """
    started = time.perf_counter()
    predictions: dict[str, np.ndarray] = {}
    for item in items:
        encoder.load(
            item_state(item.artifact, encoder.base_state), tag=f"item:{item.item_id}:{item.hash}"
        )
        wanted = list(item.split.train) + list(item.split.test)
        encoded = encode_indices(encoder, item, wanted)
        train_x, test_x = encoded[: len(item.split.train)], encoded[len(item.split.train) :]
        train_y = item.labels(item.split.train)
        heads = []
        for c, (weight, bias) in enumerate(head_tensors(item.artifact)):
            fit = refit_head(
                train_x, train_y[:, c], weight, bias, l2=config.head_l2, steps=config.head_steps
            )
            heads.append((fit.weight, fit.bias))
        predictions[item.item_id] = predict_heads(test_x, heads)
    return predictions, time.perf_counter() - started
