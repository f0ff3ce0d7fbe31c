"""The merged group artifact: one shared extractor stored once, plus every item's heads.

A group folder has the artifact layout (``manifest.json`` + ``weights.safetensors``, written
atomically by :func:`ml_core.artifact.write_artifact`) with ``kind = "merged"``:

- ``backbone.<param>`` (``merged_kind = "full"``: the whole merged backbone), or
  ``lora.<module>.A`` / ``lora.<module>.B`` (``merged_kind = "lora"``: one adapter with
  ``alpha = r``, i.e. scaling 1);
- ``items.<i>.head.<c>.weight`` / ``.bias``: criterion ``c`` of the ``i``-th item in the
  manifest's ``items`` list (item ids may contain dots, so they are indexed, not named).

Each item keeps its own model version, pointing at the group folder and naming the item:
:func:`item_version` gives ``"<group_id>@<hash>/<item_id>"``. :class:`GroupScorer` serves one
group; ``lora`` groups can also be exported as ordinary per-item ``lora`` artifacts, which the
multi-item :class:`~ml_core.engine.ScoringEngine` serves unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file

from ml_core.answers import MAX_CHARS_PER_TOKEN, clean_answer_text
from ml_core.artifact import (
    WEIGHTS_FILE,
    ArtifactError,
    Criterion,
    load_artifact,
    read_manifest,
    write_artifact,
)
from ml_core.backbone import backbone_fingerprint
from ml_core.engine import ScoreRequest, ScoreResult, error_result
from ml_core.merge.models import Encoder, StateDict, artifact_hash, fold_deltas

GROUP_KIND = "merged"


@dataclass(frozen=True)
class GroupItem:
    """One item of a merged group: its criteria and its heads (one per criterion)."""

    item_id: str
    criteria: tuple[Criterion, ...]
    heads: tuple[tuple[torch.Tensor, torch.Tensor], ...] = field(repr=False)


@dataclass(frozen=True)
class MergedGroup:
    """A loaded group folder."""

    path: Path
    group_id: str
    merged_kind: str
    backbone: str
    backbone_fingerprint: str
    pooling: str
    items: tuple[GroupItem, ...]
    manifest: dict[str, object]
    shared: dict[str, torch.Tensor] = field(repr=False)

    def item(self, item_id: str) -> GroupItem:
        for item in self.items:
            if item.item_id == item_id:
                return item
        raise KeyError(f"item {item_id!r} is not in merged group {self.group_id!r}")

    def lora_modules(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Module -> (A, B) of a ``lora`` group (scaling 1)."""
        return {
            name[len("lora.") : -len(".A")]: (tensor, self.shared[name[:-2] + ".B"])
            for name, tensor in self.shared.items()
            if name.startswith("lora.") and name.endswith(".A")
        }

    def extractor_state(self, base: Mapping[str, torch.Tensor]) -> StateDict:
        """The shared extractor as a full backbone state dict."""
        if self.merged_kind == "full":
            return {k.removeprefix("backbone."): v.float() for k, v in self.shared.items()}
        return fold_deltas(
            base, {m: b.float() @ a.float() for m, (a, b) in self.lora_modules().items()}
        )


def write_group(
    out_dir: Path,
    *,
    group_id: str,
    merged_kind: str,
    shared: Mapping[str, torch.Tensor],
    items: Sequence[GroupItem],
    backbone: str,
    fingerprint: str,
    pooling: str,
    extra: Mapping[str, object] | None = None,
    shared_dtype: str = "float32",
) -> int:
    """Write a group folder; ``shared`` keys are backbone params (full) or module names (lora).

    ``shared`` for ``lora`` maps ``<module>.A`` / ``<module>.B``. Returns the folder's bytes.
    """
    if merged_kind not in ("full", "lora"):
        raise ValueError(f"merged_kind must be full or lora, got {merged_kind!r}")
    dtype = torch.float16 if shared_dtype == "float16" else torch.float32
    prefix = "backbone." if merged_kind == "full" else "lora."
    tensors: dict[str, torch.Tensor] = {
        prefix + name: (t.to(dtype) if t.is_floating_point() else t) for name, t in shared.items()
    }
    for index, item in enumerate(items):
        for c, (weight, bias) in enumerate(item.heads):
            tensors[f"items.{index}.head.{c}.weight"] = weight.float()
            tensors[f"items.{index}.head.{c}.bias"] = bias.float()
    manifest: dict[str, object] = {
        "kind": GROUP_KIND,
        "merged_kind": merged_kind,
        "group_id": group_id,
        "backbone": backbone,
        "backbone_fingerprint": fingerprint,
        "pooling": pooling,
        "shared_dtype": shared_dtype,
        "items": [
            {
                "item_id": item.item_id,
                "criteria": [{"name": c.name, "labels": list(c.labels)} for c in item.criteria],
            }
            for item in items
        ],
        **dict(extra or {}),
    }
    return write_artifact(Path(out_dir), manifest, tensors)


def load_group(path: Path) -> MergedGroup:
    """Load a group folder written by :func:`write_group` (raises ``ArtifactError`` if not one).

    A ``full`` item artifact loads as a group of one (its own backbone and head), so one scorer
    serves merged groups and the unmerged full models they came from (rolling back).
    """
    path = Path(path)
    manifest = read_manifest(path)
    if manifest.get("kind") == "full":
        return _full_artifact_group(path, manifest)
    if manifest.get("kind") != GROUP_KIND:
        raise ArtifactError(f"{path} is not a merged group (kind {manifest.get('kind')!r})")
    try:
        tensors = load_file(str(path / WEIGHTS_FILE))
        items = []
        entries: list[dict[str, Any]] = list(manifest["items"])  # type: ignore[call-overload]
        for index, entry in enumerate(entries):
            criteria = tuple(
                Criterion(str(c["name"]), tuple(int(v) for v in c["labels"]))
                for c in entry["criteria"]
            )
            heads = tuple(
                (tensors[f"items.{index}.head.{c}.weight"], tensors[f"items.{index}.head.{c}.bias"])
                for c in range(len(criteria))
            )
            items.append(GroupItem(str(entry["item_id"]), criteria, heads))
        shared = {k: v for k, v in tensors.items() if not k.startswith("items.")}
        return MergedGroup(
            path=path,
            group_id=str(manifest["group_id"]),
            merged_kind=str(manifest["merged_kind"]),
            backbone=str(manifest["backbone"]),
            backbone_fingerprint=str(manifest["backbone_fingerprint"]),
            pooling=str(manifest.get("pooling", "mean")),
            items=tuple(items),
            manifest=manifest,
            shared=shared,
        )
    except (KeyError, TypeError, ValueError, OSError) as exc:
        raise ArtifactError(f"merged group {path} is malformed: {exc}") from exc


def _full_artifact_group(path: Path, manifest: dict[str, object]) -> MergedGroup:
    artifact = load_artifact(path)
    heads = tuple(artifact.head_tensors(i) for i in range(len(artifact.criteria)))
    return MergedGroup(
        path=path,
        group_id=artifact.item_id,
        merged_kind="full",
        backbone=artifact.backbone,
        backbone_fingerprint=artifact.backbone_fingerprint,
        pooling=artifact.pooling,
        items=(GroupItem(artifact.item_id, artifact.criteria, heads),),
        manifest=manifest,
        shared={k: v for k, v in artifact.tensors.items() if k.startswith("backbone.")},
    )


def item_version(group_path: Path, item_id: str) -> str:
    """The model version of one item served from a group: ``<group_id>@<hash>/<item_id>``."""
    manifest = read_manifest(Path(group_path))
    group_id = manifest.get("group_id") or manifest.get("item_id")  # a full artifact: itself
    return f"{group_id}@{artifact_hash(Path(group_path))}/{item_id}"


class GroupScorer:
    """Scores answers of any item of one merged group with the shared extractor + its heads.

    Holds one backbone instance with the group's weights loaded (the group file's tensors and the
    pretrained weights are not kept); :meth:`score_requests` scores a mix of the group's items in
    one forward pass. ``device`` as for :class:`~ml_core.merge.models.Encoder`.
    """

    def __init__(
        self,
        group_path: Path,
        backbone: str | None = None,
        *,
        max_length: int = 256,
        batch_size: int = 32,
        device: str | None = None,
    ) -> None:
        self.path = Path(group_path)
        self.group = load_group(self.path)
        fingerprint = backbone_fingerprint(backbone)
        if self.group.backbone_fingerprint != fingerprint:
            raise ArtifactError(
                f"merged group {group_path} was made on backbone {self.group.backbone_fingerprint}, "
                f"not {fingerprint}"
            )
        lora = self.group.merged_kind == "lora"
        self.encoder = Encoder(
            backbone,
            pooling=self.group.pooling,
            max_length=max_length,
            batch_size=batch_size,
            device=device,
            keep_base=lora,  # a lora group folds its adapter into the pretrained weights
        )
        self.encoder.load(
            self.group.extractor_state(self.encoder.base_state), tag=f"group:{self.group.group_id}"
        )
        # the model now holds the weights: drop the file's copy and the pretrained copy
        self.group.shared.clear()
        self.encoder.base_state = {}
        self.max_length = max_length
        self.versions = {
            item.item_id: item_version(self.path, item.item_id) for item in self.group.items
        }

    @property
    def item_ids(self) -> tuple[str, ...]:
        return tuple(item.item_id for item in self.group.items)

    def held(self) -> Mapping[str, str]:
        """Item id -> version of every item of the group (the serving protocol)."""
        return dict(self.versions)

    def resident_bytes(self) -> Mapping[str, int]:
        """Bytes of the group's encoder (its weights and heads)."""
        model = self.encoder.model
        encoder = sum(t.numel() * t.element_size() for t in model.state_dict().values())
        heads = sum(
            w.numel() * 4 + b.numel() * 4 for item in self.group.items for w, b in item.heads
        )
        return {"encoder": int(encoder), "heads": int(heads)}

    def probabilities(
        self, item_id: str, texts: Sequence[str], features: np.ndarray | None = None
    ) -> list[np.ndarray]:
        """Per criterion, ``[len(texts), num_labels]`` probabilities (``features`` skips encoding)."""
        item = self.group.item(item_id)
        x = torch.as_tensor(features if features is not None else self.encoder.encode(texts))
        return [torch.softmax(x @ w.T + b, dim=-1).numpy() for w, b in item.heads]

    def score(self, item_id: str, texts: Sequence[str]) -> list[ScoreResult]:
        """One :class:`~ml_core.engine.ScoreResult` per answer, like the engine's ``score``."""
        self.group.item(item_id)  # KeyError for an item of another group
        return self.score_requests([ScoreRequest(item_id, text) for text in texts])

    def score_requests(
        self, requests: Sequence[ScoreRequest], versions: Mapping[str, str] | None = None
    ) -> list[ScoreResult]:
        """Score any mix of this group's items in one forward pass; one result per request.

        Never raises for bad input: an item outside the group, or an empty or non-text answer,
        gives a result with ``error`` set. ``versions`` (item -> label) overrides the
        ``model_version`` reported (a server reports its own version labels).
        """
        labels = {**self.versions, **dict(versions or {})}
        known = {item.item_id: item for item in self.group.items}
        results: list[ScoreResult | None] = [None] * len(requests)
        pending: list[int] = []
        texts: list[str] = []
        for position, request in enumerate(requests):
            key = str(getattr(request, "item_key", ""))
            text, problem = clean_answer_text(getattr(request, "text", None))
            if key not in known:
                problem = f"item {key!r} is not in merged group {self.group.group_id!r}"
            if problem is not None:
                results[position] = error_result(key, problem, labels.get(key, ""))
            else:
                pending.append(position)
                texts.append(text)
        if pending:
            token_ids, truncated = self._tokenize(texts)
            try:
                features = torch.as_tensor(self.encoder.encode([], token_ids=token_ids))
            except Exception as exc:  # noqa: BLE001 - report per answer, keep serving
                for position in pending:
                    key = requests[position].item_key
                    results[position] = error_result(
                        key, f"scoring failed: {exc}", labels.get(key, "")
                    )
                features = None
            if features is not None:
                for row, position in enumerate(pending):
                    key = requests[position].item_key
                    results[position] = _item_result(
                        known[key], features[row : row + 1], labels[key], truncated[row]
                    )
        return [r if r is not None else error_result("", "internal error") for r in results]

    def _tokenize(self, texts: Sequence[str]) -> tuple[list[list[int]], list[bool]]:
        """Token ids cut to the window, and whether each answer was longer than the window."""
        limit = self.max_length * MAX_CHARS_PER_TOKEN
        clipped = [t[:limit] for t in texts]
        token_ids = self.encoder.tokenize(clipped)
        truncated = [len(t) > limit for t in texts]
        full_window = [i for i, ids in enumerate(token_ids) if len(ids) >= self.max_length]
        if full_window:
            # only answers that fill the window can have been cut: count their tokens uncut
            lengths = self.encoder.tokenizer(
                [clipped[i] for i in full_window], truncation=False, return_length=True
            )["length"]
            for i, length in zip(full_window, lengths, strict=True):
                truncated[i] = truncated[i] or int(length) > self.max_length
        return token_ids, truncated


def _item_result(
    item: GroupItem, features: torch.Tensor, version: str, truncated: bool
) -> ScoreResult:
    per_criterion = [torch.softmax(features @ w.T + b, dim=-1)[0].numpy() for w, b in item.heads]
    chosen = {
        c.name: int(c.labels[int(p.argmax())])
        for c, p in zip(item.criteria, per_criterion, strict=True)
    }
    multi = len(item.criteria) > 1
    return ScoreResult(
        item_key=item.item_id,
        score=sum(chosen.values()),
        probabilities=tuple(float(v) for p in per_criterion for v in p),
        confidence=float(min(p.max() for p in per_criterion)),
        model_version=version,
        truncated=truncated,
        criteria=chosen if multi else None,
        criteria_probabilities={
            c.name: tuple(float(v) for v in p)
            for c, p in zip(item.criteria, per_criterion, strict=True)
        }
        if multi
        else None,
    )


def is_group_folder(path: Path) -> bool:
    """Whether :class:`GroupScorer` serves ``path``: a merged group or a ``full`` item artifact
    (rather than an artifact for the multi-item engine)."""
    try:
        return read_manifest(Path(path)).get("kind") in (GROUP_KIND, "full")
    except ArtifactError:
        return False


def export_lora_items(group_path: Path, out_root: Path) -> dict[str, Path]:
    """Write one ordinary ``lora`` artifact per item of a ``lora`` group (the merged adapter +
    the item's heads), which :class:`~ml_core.engine.ScoringEngine` loads with ``load_item``.

    The adapter is repeated per item on disk; the group folder stays the stored source of truth.
    """
    group = load_group(Path(group_path))
    if group.merged_kind != "lora":
        raise ArtifactError(
            "only lora groups export to engine artifacts; full groups use GroupScorer"
        )
    modules = group.lora_modules()
    rank = int(next(iter(modules.values()))[0].shape[0])
    target_modules = sorted({name.rsplit(".", 1)[-1] for name in modules})
    out: dict[str, Path] = {}
    for item in group.items:
        tensors: dict[str, torch.Tensor] = {}
        for c, (weight, bias) in enumerate(item.heads):
            tensors[f"head.{c}.weight"] = weight
            tensors[f"head.{c}.bias"] = bias
        for name, (a, b) in modules.items():
            tensors[f"lora.{name}.A"] = a.float()
            tensors[f"lora.{name}.B"] = b.float()
        manifest: dict[str, object] = {
            "item_id": item.item_id,
            "kind": "lora",
            "backbone": group.backbone,
            "backbone_fingerprint": group.backbone_fingerprint,
            "criteria": [{"name": c.name, "labels": list(c.labels)} for c in item.criteria],
            "pooling": group.pooling,
            "lora": {"r": rank, "alpha": float(rank), "target_modules": target_modules},
            "metrics": {},
            "merged_from_group": {
                "group_id": group.group_id,
                "version": item_version(Path(group_path), item.item_id),
            },
        }
        path = Path(out_root) / _safe_name(item.item_id)
        write_artifact(path, manifest, tensors)
        out[item.item_id] = path
    return out


def _safe_name(item_id: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in item_id)
