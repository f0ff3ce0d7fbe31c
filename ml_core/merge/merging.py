"""Combining a group's feature extractors into one.

Fully fine-tuned backbones (state dicts with the same keys) are merged by

- ``average``: the plain parameter mean (what the GW-SMM research did),
- ``task_arithmetic``: ``base + lambda * sum_i (theta_i - base)`` (Ilharco et al., 2023),
- ``ties``: task vectors trimmed to their largest ``density`` share, a sign elected per entry by
  the summed mass, and the agreeing entries averaged (Yadav et al., 2023), then scaled by lambda.

LoRA adapters are merged on their weight updates ``dW_i = alpha/r * B_i @ A_i``: ``svd`` takes the
mean update and re-factorizes it to rank r (one adapter the size of an item's), ``concat`` stacks
the factors (rank ``k * r``, the exact mean). Merged adapters are stored with ``alpha = r`` (scaling
1) so the factors carry the whole update.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch

from ml_core.merge.config import FULL_METHODS, MergeConfig
from ml_core.merge.models import StateDict

_DEFAULT_SCALING = {"average": 1.0, "task_arithmetic": 0.5, "ties": 1.0}


def _check_same_keys(states: Sequence[Mapping[str, torch.Tensor]]) -> None:
    if not states:
        raise ValueError("nothing to merge: no models given")
    keys = set(states[0])
    for index, state in enumerate(states[1:], start=1):
        if set(state) != keys:
            raise ValueError(f"model {index} has other parameters than model 0; cannot merge")


def average_states(
    states: Sequence[Mapping[str, torch.Tensor]], device: torch.device | None = None
) -> StateDict:
    """Parameter-wise mean (integer buffers are taken from the first model).

    ``device`` is where the arithmetic runs (results come back to the CPU).
    """
    _check_same_keys(states)
    merged: StateDict = {}
    for key, first in states[0].items():
        if not first.is_floating_point():
            merged[key] = first.clone()
            continue
        stacked = torch.stack([s[key].to(device).float() for s in states])
        merged[key] = stacked.mean(dim=0).to(first.dtype).cpu()
    return merged


def task_arithmetic(
    states: Sequence[Mapping[str, torch.Tensor]],
    base: Mapping[str, torch.Tensor],
    scaling: float,
    device: torch.device | None = None,
) -> StateDict:
    """``base + scaling * sum of task vectors``; a model merged with itself (scaling 1) is itself."""
    _check_same_keys(states)
    merged: StateDict = {}
    for key, first in states[0].items():
        if not first.is_floating_point() or key not in base:
            merged[key] = first.clone()
            continue
        origin = base[key].to(device).float()
        total = sum((s[key].to(device).float() - origin for s in states), torch.zeros_like(origin))
        merged[key] = (origin + scaling * total).to(first.dtype).cpu()
    return merged


def _trim(task_vector: torch.Tensor, density: float) -> torch.Tensor:
    """Zero all but the ``density`` share of entries with the largest magnitude."""
    if density >= 1.0:
        return task_vector
    flat = task_vector.abs().flatten()
    keep = max(1, math.ceil(density * flat.numel()))
    # the keep-th largest magnitude is the (n - keep + 1)-th smallest
    threshold = flat.kthvalue(flat.numel() - keep + 1).values
    return torch.where(task_vector.abs() >= threshold, task_vector, torch.zeros_like(task_vector))


def ties_merge(
    states: Sequence[Mapping[str, torch.Tensor]],
    base: Mapping[str, torch.Tensor],
    *,
    density: float,
    scaling: float,
    device: torch.device | None = None,
) -> StateDict:
    """TIES-merging relative to ``base``: trim, elect sign, disjoint mean, scale."""
    _check_same_keys(states)
    merged: StateDict = {}
    for key, first in states[0].items():
        if not first.is_floating_point() or key not in base:
            merged[key] = first.clone()
            continue
        origin = base[key].to(device).float()
        trimmed = torch.stack([_trim(s[key].to(device).float() - origin, density) for s in states])
        sign = torch.sign(trimmed.sum(dim=0))
        agree = (torch.sign(trimmed) == sign) & (trimmed != 0)
        count = agree.sum(dim=0).clamp(min=1)
        mean = (trimmed * agree).sum(dim=0) / count
        merged[key] = (origin + scaling * mean).to(first.dtype).cpu()
    return merged


def merge_full(
    states: Sequence[Mapping[str, torch.Tensor]],
    base: Mapping[str, torch.Tensor],
    config: MergeConfig,
    device: torch.device | None = None,
) -> StateDict:
    """Merge fully fine-tuned backbones with ``config.method`` (a LoRA method means average).

    ``device`` (e.g. a GPU) is where the arithmetic runs; the merged tensors are on the CPU.
    """
    method = config.method if config.method in FULL_METHODS else "average"
    scaling = config.scaling if config.scaling is not None else _DEFAULT_SCALING[method]
    if len(states) == 1:
        return {k: v.clone() for k, v in states[0].items()}
    if method == "average":
        return average_states(states, device)
    if method == "task_arithmetic":
        return task_arithmetic(states, base, scaling, device)
    return ties_merge(states, base, density=config.ties_density, scaling=scaling, device=device)


def merge_lora(
    deltas: Sequence[Mapping[str, torch.Tensor]], config: MergeConfig, rank: int
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Merged adapter: module -> (A ``[r', in]``, B ``[out, r']``) with scaling 1 (``alpha = r'``).

    ``deltas`` are the items' scaled updates (see :func:`ml_core.merge.models.lora_deltas`).
    ``svd`` (also used for any full-model method) keeps rank ``config.lora_rank or rank``;
    ``concat`` is exact but of rank ``k * r`` — it needs the factors, see
    :func:`concat_lora_factors`.
    """
    _check_same_keys(deltas)
    target_rank = config.lora_rank or rank
    merged: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    for module in deltas[0]:
        mean = torch.stack([d[module].float() for d in deltas]).mean(dim=0)
        u, s, vh = torch.linalg.svd(mean, full_matrices=False)
        r = min(target_rank, s.numel())
        root = s[:r].sqrt()
        # split the singular values evenly so neither factor dwarfs the other
        merged[module] = (
            (root[:, None] * vh[:r]).contiguous(),
            (u[:, :r] * root[None, :]).contiguous(),
        )
    return merged


def concat_lora_factors(
    adapters: Sequence[Mapping[str, tuple[torch.Tensor, torch.Tensor]]], scalings: Sequence[float]
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Exact mean adapter by stacking factors: ``A = [A_1; ...; A_k]``, ``B = [s_1 B_1, ...] / k``."""
    if not adapters:
        raise ValueError("nothing to merge: no adapters given")
    k = len(adapters)
    merged: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    for module in adapters[0]:
        a = torch.cat([adapter[module][0].float() for adapter in adapters], dim=0)
        b = torch.cat(
            [
                s * adapter[module][1].float() / k
                for adapter, s in zip(adapters, scalings, strict=False)
            ],
            dim=1,
        )
        merged[module] = (a, b)
    return merged
