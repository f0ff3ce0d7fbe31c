"""Re-fitting an item's heads on the merged extractor's features.

Merging moves every item's features; the old head then reads a shifted space, which is where the
GW-SMM research lost most of its accuracy. With the extractor fixed, re-fitting a linear head is a
small convex problem (class-weighted logistic regression, L2), solved with L-BFGS from the old head
in well under a second. The old head is kept when the re-fit scores fewer training answers right,
so re-fitting never lowers training accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ml_core.training import class_weights


@dataclass(frozen=True)
class HeadFit:
    """One criterion's head after re-fitting and whether the re-fit was kept."""

    weight: torch.Tensor
    bias: torch.Tensor
    refit_kept: bool
    train_accuracy_before: float
    train_accuracy_after: float


def _accuracy(
    features: torch.Tensor, labels: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor
) -> float:
    if len(labels) == 0:
        return 0.0
    return float(((features @ weight.T + bias).argmax(dim=1) == labels).float().mean())


def refit_head(
    features: np.ndarray,
    labels: np.ndarray,
    weight: torch.Tensor,
    bias: torch.Tensor,
    *,
    l2: float = 1e-3,
    steps: int = 200,
    class_weighting: bool = True,
) -> HeadFit:
    """Fit ``softmax(features @ W.T + b)`` to ``labels`` starting from ``weight``/``bias``.

    ``features`` ``[n, hidden]``; ``labels`` ``[n]`` class indices. Deterministic (full batch).
    """
    x = torch.as_tensor(np.asarray(features), dtype=torch.float32)
    y = torch.as_tensor(np.asarray(labels), dtype=torch.long)
    num_labels = int(weight.shape[0])
    before = _accuracy(x, y, weight.float(), bias.float())
    if len(y) == 0:
        return HeadFit(weight, bias, False, before, before)
    class_weight = (
        class_weights(y.tolist(), num_labels) if class_weighting else torch.ones(num_labels)
    )
    head = nn.Linear(x.shape[1], num_labels)
    with torch.no_grad():
        head.weight.copy_(weight.float())
        head.bias.copy_(bias.float())
    optimizer = torch.optim.LBFGS(
        head.parameters(), lr=1.0, max_iter=steps, line_search_fn="strong_wolfe"
    )

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = (
            nn.functional.cross_entropy(head(x), y, weight=class_weight)
            + l2 * head.weight.pow(2).sum()
        )
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    new_weight = head.weight.detach().clone()
    new_bias = head.bias.detach().clone()
    after = _accuracy(x, y, new_weight, new_bias)
    if not torch.isfinite(new_weight).all() or after < before:
        return HeadFit(weight, bias, False, before, before)
    return HeadFit(new_weight, new_bias, True, before, after)


def cross_validated_correct(
    features: np.ndarray,
    labels: np.ndarray,
    weight: torch.Tensor,
    bias: torch.Tensor,
    *,
    folds: int = 5,
    l2: float = 1e-3,
    steps: int = 100,
    seed: int = 13,
) -> int:
    """How many of the answers a head re-fitted on the *other* folds scores right (k-fold).

    A selection signal that uses the training answers (far more than the validation split) and
    never the test answers: a merged extractor whose features let a re-fitted head generalize
    scores higher. Folds are a seeded shuffle; fewer answers than ``folds`` gives 0.
    """
    x = np.asarray(features, dtype=np.float32)
    y = np.asarray(labels, dtype=np.int64)
    if len(y) < folds or folds < 2:
        return 0
    order = np.random.default_rng(seed).permutation(len(y))
    correct = 0
    for fold in range(folds):
        held = order[fold::folds]
        kept = np.setdiff1d(order, held)
        fit = refit_head(x[kept], y[kept], weight, bias, l2=l2, steps=steps)
        predicted = (torch.as_tensor(x[held]) @ fit.weight.float().T + fit.bias.float()).argmax(1)
        correct += int((predicted.numpy() == y[held]).sum())
    return correct
