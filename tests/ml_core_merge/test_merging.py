"""Merging methods on state dicts and LoRA adapters: merging a model with itself gives it back."""

from __future__ import annotations

import pytest
import torch

from ml_core.merge.config import MergeConfig
from ml_core.merge.merging import (
    average_states,
    concat_lora_factors,
    merge_full,
    merge_lora,
    task_arithmetic,
    ties_merge,
)


def _state(seed: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {
        "layer.weight": torch.randn(6, 5, generator=generator),
        "layer.bias": torch.randn(6, generator=generator),
        "position_ids": torch.arange(4),
    }


def _same(first: dict[str, torch.Tensor], second: dict[str, torch.Tensor]) -> bool:
    return set(first) == set(second) and all(
        torch.allclose(first[k].float(), second[k].float(), atol=1e-6) for k in first
    )


def test_average_of_two_identical_models_is_the_model() -> None:
    model = _state(1)
    assert _same(average_states([model, model]), model)


def test_average_is_the_parameter_mean() -> None:
    first, second = _state(1), _state(2)
    merged = average_states([first, second])
    assert torch.allclose(
        merged["layer.weight"], (first["layer.weight"] + second["layer.weight"]) / 2
    )
    assert torch.equal(merged["position_ids"], first["position_ids"])


def test_task_arithmetic_and_ties_of_a_model_with_itself_relative_to_base_is_the_model() -> None:
    base, model = _state(0), _state(1)
    assert _same(task_arithmetic([model, model], base, scaling=0.5), model)
    assert _same(task_arithmetic([model], base, scaling=1.0), model)
    assert _same(ties_merge([model, model], base, density=1.0, scaling=1.0), model)
    assert _same(
        merge_full([model, model, model], base, MergeConfig(method="ties", ties_density=1.0)), model
    )


def test_ties_keeps_only_the_largest_agreeing_updates() -> None:
    base = {"w": torch.zeros(4)}
    first = {"w": torch.tensor([4.0, -1.0, 0.1, 2.0])}
    second = {"w": torch.tensor([2.0, 3.0, -0.1, -2.5])}
    merged = ties_merge([first, second], base, density=0.5, scaling=1.0)["w"]
    # each keeps its 2 largest: first (4, 2), second (3, -2.5). Entry 0 and 1: one update each;
    # entry 3: signs disagree, the elected sign is negative (mass -0.5) -> -2.5; entry 2: trimmed
    assert torch.allclose(merged, torch.tensor([4.0, 3.0, 0.0, -2.5]))


def _adapter(seed: int, rank: int = 2) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(seed)
    return {
        "q": (torch.randn(rank, 5, generator=generator), torch.randn(6, rank, generator=generator))
    }


@pytest.mark.parametrize("method", ["svd", "concat"])
def test_merged_lora_of_identical_adapters_equals_the_adapter(method: str) -> None:
    adapter, scaling = _adapter(3), 2.0
    delta = scaling * adapter["q"][1] @ adapter["q"][0]
    if method == "svd":
        merged = merge_lora([{"q": delta}, {"q": delta}], MergeConfig(method="svd"), rank=2)
    else:
        merged = concat_lora_factors([adapter, adapter], [scaling, scaling])
    a, b = merged["q"]
    assert torch.allclose(b @ a, delta, atol=1e-5)
    assert a.shape[0] == (2 if method == "svd" else 4)


def test_svd_merge_of_different_adapters_is_the_best_rank_r_mean() -> None:
    first, second = _adapter(1), _adapter(2)
    deltas = [{"q": adapter["q"][1] @ adapter["q"][0]} for adapter in (first, second)]
    mean = (deltas[0]["q"] + deltas[1]["q"]) / 2
    exact = merge_lora(deltas, MergeConfig(method="svd", lora_rank=4), rank=2)["q"]
    assert torch.allclose(exact[1] @ exact[0], mean, atol=1e-5)  # rank 4 holds the whole mean
    concat = concat_lora_factors([first, second], [1.0, 1.0])["q"]
    assert torch.allclose(concat[1] @ concat[0], mean, atol=1e-5)
