"""Torch modules shared by training and serving: backbone loading, pooling, scoring heads, and the
multi-item LoRA encoder that applies a different adapter to every row of one batch.

The multi-item encoder replaces each LoRA target ``nn.Linear`` of the backbone by
:class:`MultiLoraLinear`, which adds ``x @ A[item] @ B[item]`` where ``A``/``B`` are gathered
per row from tables stacked over all loaded items. Row ``i`` of a batch therefore runs with the
adapter of its own item, and any mix of items costs one forward pass.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn
from transformers import AutoModel, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

POOLINGS: tuple[str, ...] = ("mean", "cls")
DEFAULT_TARGET_MODULES: tuple[str, ...] = ("query", "value")


def load_backbone_model(resolved: str) -> PreTrainedModel:
    """The bare encoder (no task head) of a resolved backbone, in eval mode, fp32."""
    model = AutoModel.from_pretrained(resolved, attn_implementation="sdpa")
    model.eval()
    return model


def truncate_backbone(resolved: str, layers: int, out: Path) -> Path:
    """Write a copy of a backbone that keeps only its first ``layers`` transformer layers (same
    embeddings, same tokenizer) to ``out``; returns ``out``.

    A faster serving encoder for small CPU servers: the packaged MiniLM cut from 6 to 3 layers
    embeds about 1.6-1.9x as many answers per second, for 0.004 less mean QWK of ``auto`` on SAF
    (benchmarks/README.md). Any model whose config has ``num_hidden_layers`` works."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(resolved)
    total = getattr(config, "num_hidden_layers", None)
    if not isinstance(total, int):
        raise ValueError(f"{resolved}: its config has no num_hidden_layers to cut")
    if not 1 <= layers <= total:
        raise ValueError(f"layers must be between 1 and {total} for {resolved}, got {layers}")
    config.num_hidden_layers = layers
    # the weights of the dropped layers are simply not loaded
    model = AutoModel.from_pretrained(resolved, config=config)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    load_tokenizer(resolved).save_pretrained(out)
    return out


# models that number positions from padding_idx + 1 (their table holds two more rows than
# tokens fit)
_OFFSET_POSITIONS = ("roberta", "xlm-roberta", "camembert", "longformer", "bart", "mbart")


@functools.lru_cache(maxsize=16)
def position_limit(resolved: str) -> int | None:
    """The most tokens one answer may have for this backbone (its position table), or None
    when its config sets no limit; callers cut their ``max_length`` to it, so a long answer
    is truncated, never an index error deep in the model."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(resolved)
    positions = getattr(config, "max_position_embeddings", None)
    if not isinstance(positions, int) or positions <= 0:
        return None
    if getattr(config, "model_type", "") in _OFFSET_POSITIONS:
        positions -= int(getattr(config, "pad_token_id", 1) or 1) + 1
    return positions


def usable_length(resolved: str, max_length: int) -> int:
    """``max_length`` cut to what the backbone's positions allow."""
    limit = position_limit(resolved)
    return max_length if limit is None else max(1, min(max_length, limit))


def load_tokenizer(resolved: str) -> PreTrainedTokenizerBase:
    """The backbone's fast tokenizer (fast is needed for overflow detection and speed)."""
    return AutoTokenizer.from_pretrained(resolved, use_fast=True)


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """Sentence vector ``[batch, hidden]`` from token states ``[batch, tokens, hidden]``."""
    if pooling == "cls":
        return hidden[:, 0]
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)


class ScoringHeads(nn.Module):
    """One linear classifier per criterion over the pooled sentence vector."""

    def __init__(self, hidden_size: int, num_labels: Sequence[int], dropout: float = 0.1) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.dropout = nn.Dropout(dropout)
        self.heads = nn.ModuleList(nn.Linear(hidden_size, n) for n in num_labels)

    def forward(self, pooled: torch.Tensor) -> list[torch.Tensor]:
        pooled = self.dropout(pooled)
        return [head(pooled) for head in self.heads]


class _LoraContext:
    """Per-forward state shared by all :class:`MultiLoraLinear` modules of one encoder."""

    def __init__(self) -> None:
        self.item_index: torch.Tensor | None = None
        self.tables: Sequence[torch.Tensor] = ()


class MultiLoraLinear(nn.Module):
    """``base(x) + (x @ A[item_index]) @ B[item_index]`` with per-row adapters.

    ``A`` tables are ``[slots, in, r]`` and ``B`` tables ``[slots, r, out]`` with the LoRA
    scaling already folded into ``B``; slot 0 is all zeros (no adapter). Tables may be fp16; the
    gathered rows are cast to the activation dtype.
    """

    def __init__(self, base: nn.Linear, context: _LoraContext, table_position: int) -> None:
        super().__init__()
        self.base = base
        self._context = context
        self._position = table_position

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.base(x)
        context = self._context
        if context.item_index is None:
            return out
        # tables may be stored in a narrower dtype than x: cast only the gathered rows
        lora_a = context.tables[2 * self._position][context.item_index].to(x.dtype)
        lora_b = context.tables[2 * self._position + 1][context.item_index].to(x.dtype)
        return out + torch.matmul(torch.matmul(x, lora_a), lora_b)


def find_target_modules(model: nn.Module, target_modules: Sequence[str]) -> list[str]:
    """Dotted names of the ``nn.Linear`` modules whose last name part is in ``target_modules``."""
    wanted = set(target_modules)
    return [
        name
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear) and name.rsplit(".", 1)[-1] in wanted
    ]


class MultiItemEncoder(nn.Module):
    """Frozen backbone + per-row LoRA; ``forward`` returns pooled sentence vectors.

    ``forward(input_ids, attention_mask, item_index, *tables)`` takes the stacked tables as
    inputs (``A_0, B_0, A_1, B_1, ...`` in :attr:`module_names` order) so that the same exported
    graph serves any set of loaded items. Without tables it is the plain backbone.
    """

    def __init__(
        self,
        backbone: PreTrainedModel,
        *,
        pooling: str = "mean",
        target_modules: Sequence[str] = DEFAULT_TARGET_MODULES,
    ) -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        self.backbone = backbone
        self.pooling = pooling
        self._context = _LoraContext()
        self.module_names: list[str] = find_target_modules(backbone, target_modules)
        if not self.module_names:
            raise ValueError(f"backbone has no nn.Linear modules named {list(target_modules)}")
        for position, name in enumerate(self.module_names):
            parent_name, _, child = name.rpartition(".")
            parent = backbone.get_submodule(parent_name) if parent_name else backbone
            base = getattr(parent, child)
            setattr(parent, child, MultiLoraLinear(base, self._context, position))
        for parameter in self.backbone.parameters():
            parameter.requires_grad_(False)

    @property
    def hidden_size(self) -> int:
        return int(self.backbone.config.hidden_size)

    def module_shape(self, name: str) -> tuple[int, int]:
        """(in_features, out_features) of a LoRA target module."""
        module = self.backbone.get_submodule(name)
        assert isinstance(module, MultiLoraLinear)
        return module.base.in_features, module.base.out_features

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        item_index: torch.Tensor | None = None,
        *tables: torch.Tensor,
    ) -> torch.Tensor:
        context = self._context
        context.item_index = item_index if tables else None
        context.tables = tables
        try:
            hidden = self.backbone(
                input_ids=input_ids, attention_mask=attention_mask
            ).last_hidden_state
        finally:
            # never leave tensors from one call visible to the next
            context.item_index = None
            context.tables = ()
        return pool(hidden, attention_mask, self.pooling)
