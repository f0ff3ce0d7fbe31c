"""Item models as plain backbone state dicts, and an encoder that embeds answers with any of them.

A ``full`` artifact carries its whole fine-tuned backbone; a ``lora`` artifact is folded into the
backbone weights (``W + alpha/r * B @ A``, exact at inference since LoRA dropout is off). Either
way an item's feature extractor becomes one state dict, so merging and embedding never branch on
the kind. One :class:`Encoder` holds one backbone instance and swaps state dicts into it, which is
far cheaper than loading a model per item.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from ml_core.artifact import WEIGHTS_FILE, Artifact, ArtifactError
from ml_core.backbone import resolve_backbone
from ml_core.modeling import load_backbone_model, load_tokenizer, pool
from ml_core.training import collate

StateDict = dict[str, torch.Tensor]

_HASH_CHUNK = 1 << 20
_hash_cache: dict[tuple[str, int, int], str] = {}


def artifact_hash(path: Path) -> str:
    """sha256 (hex, 16 chars) of an artifact's weights and manifest; cached per size and mtime."""
    path = Path(path)
    files = sorted(f for f in path.iterdir() if f.is_file())
    stats = [f.stat() for f in files]
    key = (str(path.resolve()), sum(s.st_size for s in stats), max(s.st_mtime_ns for s in stats))
    if key not in _hash_cache:
        digest = hashlib.sha256()
        for file in files:
            digest.update(file.name.encode())
            with file.open("rb") as handle:
                while chunk := handle.read(_HASH_CHUNK):
                    digest.update(chunk)
        _hash_cache[key] = digest.hexdigest()[:16]
    return _hash_cache[key]


def backbone_state(artifact: Artifact) -> StateDict:
    """The fine-tuned backbone weights of a ``full`` artifact (keys without ``backbone.``)."""
    if artifact.kind != "full":
        raise ArtifactError(f"artifact {artifact.path} is {artifact.kind!r}, not 'full'")
    return {
        k.removeprefix("backbone."): v
        for k, v in artifact.tensors.items()
        if k.startswith("backbone.")
    }


def lora_deltas(artifact: Artifact) -> dict[str, torch.Tensor]:
    """Module name -> scaled weight update ``alpha / r * B @ A`` (``[out, in]``) of a LoRA artifact."""
    if artifact.kind != "lora":
        raise ArtifactError(f"artifact {artifact.path} is {artifact.kind!r}, not 'lora'")
    scaling = artifact.lora_alpha / artifact.lora_r
    return {name: scaling * (b @ a) for name, (a, b) in artifact.lora_modules().items()}


def fold_deltas(base: Mapping[str, torch.Tensor], deltas: Mapping[str, torch.Tensor]) -> StateDict:
    """``base`` with every ``<module>.weight`` increased by its delta (other tensors shared)."""
    state = dict(base)
    for module, delta in deltas.items():
        key = f"{module}.weight"
        if key not in state:
            raise ArtifactError(f"LoRA module {module!r} is not a weight of this backbone")
        state[key] = state[key] + delta.to(state[key].dtype)
    return state


def item_state(artifact: Artifact, base: Mapping[str, torch.Tensor]) -> StateDict:
    """The feature extractor of one item as a backbone state dict (``head`` items: the base)."""
    if artifact.kind == "full":
        return backbone_state(artifact)
    if artifact.kind == "lora":
        return fold_deltas(base, lora_deltas(artifact))
    return dict(base)


def head_tensors(artifact: Artifact) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(weight ``[labels, hidden]``, bias ``[labels]``) of every criterion of the artifact."""
    return [artifact.head_tensors(i) for i in range(len(artifact.criteria))]


class Encoder:
    """Pooled sentence vectors of answers under a swappable backbone state dict.

    ``device`` is a torch device (``None``: CUDA when available, else CPU); the model runs there,
    state dicts and returned features stay on the CPU. ``keep_base=False`` drops the copy of the
    pretrained weights (a server that loads one state and never merges saves a model's memory).
    """

    def __init__(
        self,
        backbone: str | None = None,
        *,
        pooling: str = "mean",
        max_length: int = 256,
        batch_size: int = 32,
        device: str | None = None,
        keep_base: bool = True,
    ) -> None:
        resolved = resolve_backbone(backbone)
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.tokenizer: PreTrainedTokenizerBase = load_tokenizer(resolved)
        self.model: PreTrainedModel = load_backbone_model(resolved)
        # a private CPU copy: load_state_dict writes into the model's tensors in place
        self.base_state: StateDict = (
            {k: v.detach().clone() for k, v in self.model.state_dict().items()} if keep_base else {}
        )
        self.model.to(self.device)  # type: ignore[arg-type]
        self.pooling = pooling
        self.max_length = max_length
        self.batch_size = batch_size
        self._pad_id = int(self.tokenizer.pad_token_id or 0)
        self._loaded: str | None = "base"

    @property
    def hidden_size(self) -> int:
        return int(self.model.config.hidden_size)

    def load(self, state: Mapping[str, torch.Tensor], tag: str | None = None) -> None:
        """Use ``state`` (a full backbone state dict) for the next :meth:`encode` calls.

        ``tag`` names the state; loading the same tag again is free.
        """
        if tag is not None and tag == self._loaded:
            return
        missing, unexpected = self.model.load_state_dict(dict(state), strict=False)
        if unexpected:
            raise ArtifactError(f"weights do not fit this backbone: unexpected {unexpected[:3]}")
        # missing entries are buffers saved by no artifact (e.g. position ids); they never change
        self._loaded = tag

    def load_base(self) -> None:
        """Use the pretrained backbone weights again."""
        self.load(self.base_state, tag="base")

    def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        encoded = self.tokenizer(list(texts), truncation=True, max_length=self.max_length)
        return [list(ids) for ids in encoded["input_ids"]]

    @torch.no_grad()
    def encode(
        self, texts: Sequence[str], token_ids: Sequence[Sequence[int]] | None = None
    ) -> np.ndarray:
        """``[len(texts), hidden]`` float32 sentence vectors (``token_ids`` skips tokenizing)."""
        ids_list = list(token_ids) if token_ids is not None else self.tokenize(texts)
        out = np.zeros((len(ids_list), self.hidden_size), dtype=np.float32)
        if not ids_list:
            return out
        self.model.eval()
        # length-sorted batches keep padding, the main CPU waste, small
        order = sorted(range(len(ids_list)), key=lambda i: len(ids_list[i]))
        for start in range(0, len(order), self.batch_size):
            batch = order[start : start + self.batch_size]
            ids, mask = collate([ids_list[i] for i in batch], self._pad_id, self.device)
            hidden = self.model(input_ids=ids, attention_mask=mask).last_hidden_state
            out[batch] = pool(hidden, mask, self.pooling).float().cpu().numpy()
        return out


def weights_bytes(path: Path) -> int:
    """Bytes on disk of an artifact or merged group folder (all files)."""
    path = Path(path)
    if (path / WEIGHTS_FILE).is_file() or path.is_dir():
        return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    raise ArtifactError(f"{path} is not an artifact folder")
