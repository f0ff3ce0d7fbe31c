"""Training one student: labels and teacher probabilities in one loss, early stopping on validation.

loss = CE(student, labels) + lambda * T^2 * CE(teacher probabilities at temperature T,
student at temperature T). Answers without a label (unlabelled answers scored by the teacher)
only enter the second term; with lambda = 0 they are ignored and this is plain training.
"""

from __future__ import annotations

import copy
import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ml_core.distill.config import DistillConfig
from ml_core.distill.student import StudentModel, pad_batch

NO_LABEL = -1
"""Label of an answer that has only teacher probabilities."""


@dataclass(frozen=True)
class StudentSet:
    """Token ids, labels (``NO_LABEL`` where none) and teacher probabilities ``[n, labels]``."""

    ids: list[list[int]]
    labels: np.ndarray
    teacher: np.ndarray | None

    def __post_init__(self) -> None:
        if len(self.labels) != len(self.ids) or (
            self.teacher is not None and len(self.teacher) != len(self.ids)
        ):
            raise ValueError("ids, labels and teacher probabilities must have one row per answer")

    def __len__(self) -> int:
        return len(self.ids)

    def subset(self, rows: Sequence[int]) -> StudentSet:
        rows = list(rows)
        return StudentSet(
            ids=[self.ids[i] for i in rows],
            labels=self.labels[rows],
            teacher=None if self.teacher is None else self.teacher[rows],
        )


@dataclass(frozen=True)
class TrainedStudent:
    """The best student (lowest validation loss), the lambda it used and its loss history."""

    model: StudentModel
    distill_lambda: float
    best_val_loss: float
    epochs_run: int
    history: list[dict[str, float]]


def soften(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """Teacher probabilities at ``temperature``: ``softmax(log p / T)`` (T = 1 leaves them as they are)."""
    logp = np.log(np.clip(np.asarray(probabilities, dtype=np.float64), 1e-8, 1.0)) / temperature
    logp -= logp.max(axis=1, keepdims=True)
    out = np.exp(logp)
    return (out / out.sum(axis=1, keepdims=True)).astype(np.float32)


def class_weights(labels: np.ndarray, num_labels: int) -> torch.Tensor:
    """Inverse-frequency weights over the labelled answers, mean 1 over the classes present."""
    counts = Counter(int(v) for v in labels if v != NO_LABEL)
    weights = torch.ones(num_labels)
    present = [c for c in range(num_labels) if counts[c]]
    total = sum(counts.values())
    for c in present:
        weights[c] = total / (len(present) * counts[c])
    return weights


def distillation_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    soft_targets: torch.Tensor | None,
    *,
    distill_lambda: float,
    temperature: float,
    weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """``CE(labels) + lambda * T^2 * CE(soft targets)`` for one batch.

    ``labels`` is ``NO_LABEL`` where an answer has none; ``soft_targets`` are the teacher
    probabilities already softened at ``temperature``. The T^2 factor keeps the soft term's
    gradients on the same scale whatever the temperature (Hinton et al.).
    """
    loss = logits.new_zeros(())
    labelled = labels != NO_LABEL
    if bool(labelled.any()):
        loss = loss + nn.functional.cross_entropy(
            logits[labelled], labels[labelled], weight=weights
        )
    if distill_lambda > 0 and soft_targets is not None:
        log_student = nn.functional.log_softmax(logits / temperature, dim=-1)
        soft = -(soft_targets * log_student).sum(dim=-1).mean()
        loss = loss + distill_lambda * temperature**2 * soft
    return loss


def train_student(
    train: StudentSet,
    val: StudentSet,
    *,
    vocab_size: int,
    num_labels: int,
    config: DistillConfig,
    distill_lambda: float,
    embedding_init: torch.Tensor | None = None,
    progress: Callable[[dict[str, float]], None] | None = None,
) -> TrainedStudent:
    """Train one student with ``distill_lambda``; keep the epoch with the lowest validation loss.

    The validation loss is the same objective on the validation answers (label term unweighted,
    so it tracks likelihood on real data). Seeded by ``config.seed``; the caller's torch RNG
    state is left as it was.
    """
    threads = torch.get_num_threads()
    # a model this small is slower on several threads (synchronisation outweighs the work)
    torch.set_num_threads(config.threads)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            return _train(
                train, val, vocab_size, num_labels, config, distill_lambda, embedding_init, progress
            )
    finally:
        torch.set_num_threads(threads)


def _tensors(
    data: StudentSet, temperature: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    soft = None if data.teacher is None else torch.from_numpy(soften(data.teacher, temperature))
    return pad_batch(data.ids), torch.as_tensor(data.labels, dtype=torch.long), soft


def _train(
    train: StudentSet,
    val: StudentSet,
    vocab_size: int,
    num_labels: int,
    config: DistillConfig,
    distill_lambda: float,
    embedding_init: torch.Tensor | None,
    progress: Callable[[dict[str, float]], None] | None,
) -> TrainedStudent:
    if distill_lambda == 0:
        # plain training: answers that carry only teacher probabilities have nothing to teach
        train = train.subset([i for i, label in enumerate(train.labels) if label != NO_LABEL])
    if len(train) == 0:
        raise ValueError("no training answers for the student")
    model = StudentModel.from_config(vocab_size, num_labels, config)
    if embedding_init is not None:
        with torch.no_grad():
            model.embedding.weight.copy_(embedding_init)
    weights = class_weights(train.labels, num_labels) if config.class_weighting else None
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    train_ids, train_labels, train_soft = _tensors(train, config.temperature)
    # no validation answers (tiny data): fall back to the training loss for early stopping
    val_ids, val_labels, val_soft = _tensors(val if len(val) else train, config.temperature)
    generator = torch.Generator().manual_seed(config.seed)
    best = math.inf
    best_state = copy.deepcopy(model.state_dict())
    stale = 0
    epochs_run = 0
    history: list[dict[str, float]] = []
    for epoch in range(1, config.epochs + 1):
        epochs_run = epoch
        model.train()
        order = torch.randperm(len(train), generator=generator)
        total = 0.0
        for start in range(0, len(order), config.batch_size):
            batch = order[start : start + config.batch_size]
            ids = train_ids[batch]
            # trim the batch to its own longest answer: the LSTM cost follows the width
            width = int((ids != 0).sum(dim=1).max().clamp(min=1))
            logits = model(ids[:, :width])
            loss = distillation_loss(
                logits,
                train_labels[batch],
                None if train_soft is None else train_soft[batch],
                distill_lambda=distill_lambda,
                temperature=config.temperature,
                weights=weights,
            )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(batch)
        model.eval()
        with torch.no_grad():
            val_loss = float(
                distillation_loss(
                    model(val_ids),
                    val_labels,
                    val_soft,
                    distill_lambda=distill_lambda,
                    temperature=config.temperature,
                )
            )
        history.append(
            {"epoch": float(epoch), "train_loss": total / len(train), "val_loss": val_loss}
        )
        if progress is not None:
            progress(history[-1])
        if val_loss < best - 1e-6:
            best, stale = val_loss, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            stale += 1
            if stale >= config.patience:
                break
    model.load_state_dict(best_state)
    model.eval()
    return TrainedStudent(
        model=model,
        distill_lambda=distill_lambda,
        best_val_loss=best,
        epochs_run=epochs_run,
        history=history,
    )


@torch.no_grad()
def predict_probabilities(
    model: StudentModel, ids: Sequence[Sequence[int]], batch_size: int = 256
) -> np.ndarray:
    """Class probabilities ``[n, labels]`` from the torch student (eval mode)."""
    model.eval()
    out = np.zeros((len(ids), model.num_labels), dtype=np.float32)
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    for start in range(0, len(order), batch_size):
        batch = order[start : start + batch_size]
        out[batch] = torch.softmax(model(pad_batch([ids[i] for i in batch])), dim=-1).numpy()
    return out
