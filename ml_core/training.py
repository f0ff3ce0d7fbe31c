"""Training of one item's scorer, in three kinds on the same data handling.

- ``lora``: frozen backbone + LoRA adapter (peft) on the attention query/value + one linear head
  per criterion. This is what the multi-item engine serves.
- ``head``: frozen backbone + heads only; backbone features are computed once and cached.
- ``full``: the whole backbone fine-tuned with the heads (the per-item baseline; large artifact,
  not servable by the multi-item engine).

All kinds share: a seeded stratified 80/10/10 split when the data has none, class-weighted
cross-entropy (scores are imbalanced) plus an L2 penalty on the trained adapter/head weights,
early stopping on validation loss, and metrics on the test split.
"""

from __future__ import annotations

import copy
import math
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from ml_core.artifact import KINDS, write_artifact
from ml_core.backbone import backbone_fingerprint, backbone_label, resolve_backbone
from ml_core.metrics import classification_report
from ml_core.modeling import (
    DEFAULT_TARGET_MODULES,
    POOLINGS,
    ScoringHeads,
    load_backbone_model,
    load_tokenizer,
    pool,
    usable_length,
)

SPLITS: tuple[str, ...] = ("train", "val", "test", "")

# Learning rates that work for each kind on MiniLM-sized backbones with ~100-300 answers/item.
_DEFAULT_LEARNING_RATES: dict[str, float] = {"lora": 2e-3, "head": 1e-2, "full": 1e-4}


@dataclass
class TrainConfig:
    """How one item is trained. Defaults follow the research protocol (issue 3)."""

    kind: str = field(
        default="lora",
        metadata={"help": "lora | head | full (train_item); auto is trained by ml_core.auto"},
    )
    epochs: int = field(default=5, metadata={"help": "maximum training epochs"})
    patience: int = field(
        default=2, metadata={"help": "stop after this many epochs without a lower validation loss"}
    )
    lora_r: int = field(default=8, metadata={"help": "LoRA rank"})
    lora_alpha: int = field(default=16, metadata={"help": "LoRA alpha (scaling = alpha / r)"})
    lora_dropout: float = field(default=0.1, metadata={"help": "dropout on the LoRA input"})
    target_modules: tuple[str, ...] = field(
        default=DEFAULT_TARGET_MODULES, metadata={"help": "backbone Linear modules that get LoRA"}
    )
    pooling: str = field(default="mean", metadata={"help": "sentence vector: mean | cls"})
    seed: int = field(default=13, metadata={"help": "seed for the split, init and shuffling"})
    max_length: int = field(
        default=256, metadata={"help": "tokens per answer; longer is truncated"}
    )
    batch_size: int = field(default=16, metadata={"help": "answers per optimisation step"})
    learning_rate: float | None = field(
        default=None, metadata={"help": "AdamW learning rate; None = per-kind default"}
    )
    head_learning_rate: float | None = field(
        default=None,
        metadata={
            "help": "learning rate of the freshly initialised heads; None = max(kind rate, 2e-3)"
        },
    )
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW decoupled weight decay"})
    l2: float = field(
        default=1e-4,
        metadata={
            "help": "L2 penalty (sum of squares) on adapter and head weights, added to the loss"
        },
    )
    head_dropout: float = field(default=0.1, metadata={"help": "dropout before the heads"})
    class_weighting: bool = field(
        default=True, metadata={"help": "weight the loss by inverse class frequency"}
    )
    val_fraction: float = field(default=0.1, metadata={"help": "validation share when splitting"})
    test_fraction: float = field(default=0.1, metadata={"help": "test share when splitting"})
    device: str | None = field(
        default=None, metadata={"help": "torch device; None = cuda if available"}
    )

    def resolved_learning_rate(self) -> float:
        return (
            self.learning_rate
            if self.learning_rate is not None
            else _DEFAULT_LEARNING_RATES[self.kind]
        )

    def resolved_head_learning_rate(self) -> float:
        if self.head_learning_rate is not None:
            return self.head_learning_rate
        # a random head needs larger steps than a pretrained backbone within a few epochs
        return max(self.resolved_learning_rate(), 2e-3)

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first invalid field."""
        if self.kind not in KINDS:
            raise ValueError(f"TrainConfig.kind must be one of {KINDS}, got {self.kind!r}")
        if self.pooling not in POOLINGS:
            raise ValueError(f"TrainConfig.pooling must be one of {POOLINGS}, got {self.pooling!r}")
        for name in ("epochs", "batch_size", "max_length", "lora_r"):
            if getattr(self, name) < 1:
                raise ValueError(f"TrainConfig.{name} must be >= 1")
        if not 0 <= self.val_fraction < 1 or not 0 <= self.test_fraction < 1:
            raise ValueError("TrainConfig.val_fraction and test_fraction must be in [0, 1)")


@dataclass(frozen=True)
class TrainExample:
    """One human-scored answer. ``label`` is the score (class index 0..num_labels-1).

    ``split`` is ``train``/``val``/``test`` when the data fixes it, ``""`` to let training split.
    Items scored on several criteria set ``criteria_labels`` (one label per criterion); ``label``
    is then ignored.
    """

    text: str
    label: int
    split: str = ""
    criteria_labels: tuple[int, ...] | None = None

    def labels(self) -> tuple[int, ...]:
        return self.criteria_labels if self.criteria_labels is not None else (self.label,)


@dataclass(frozen=True)
class TrainProgress:
    """Reported after every optimisation step; ``percent`` is ``100 * step / steps``."""

    epoch: int
    epochs: int
    step: int
    steps: int
    metric: dict[str, float]

    @property
    def percent(self) -> float:
        return 100.0 * self.step / self.steps if self.steps else 100.0


@dataclass(frozen=True)
class TrainedArtifact:
    """Where the artifact was written, its kind, its test metrics and its size on disk."""

    path: Path
    kind: str
    metrics: dict[str, float]
    size_bytes: int


class TrainingCancelled(Exception):
    """``should_stop`` returned True; nothing was written."""


# --------------------------------------------------------------------------------------------
# Data handling shared by all kinds


@dataclass(frozen=True)
class Split:
    """Indices into the example list for each split."""

    train: list[int]
    val: list[int]
    test: list[int]


def _stratified_take(
    indices: list[int], strata: Sequence[int], fraction: float, rng: random.Random
) -> tuple[list[int], list[int]]:
    """Split ``indices`` into (rest, taken) with ~``fraction`` of every stratum taken.

    Rounding is done on the running total so small classes still contribute over the whole set,
    and a class with a single answer stays in ``rest`` (training needs it more than evaluation).
    """
    by_class: dict[int, list[int]] = {}
    for index in indices:
        by_class.setdefault(strata[index], []).append(index)
    rest: list[int] = []
    taken: list[int] = []
    carry = 0.0
    for label in sorted(by_class):
        members = by_class[label][:]
        rng.shuffle(members)
        exact = len(members) * fraction + carry
        count = int(round(exact)) if len(members) > 1 else 0
        count = min(count, len(members) - 1) if len(members) > 1 else 0
        carry = exact - count
        taken.extend(members[:count])
        rest.extend(members[count:])
    return sorted(rest), sorted(taken)


def split_examples(examples: Sequence[TrainExample], config: TrainConfig) -> Split:
    """Use the examples' own splits; stratify-split (seeded) whatever has no split.

    Unsplit examples are divided 80/10/10 (``val_fraction``/``test_fraction``). When the data
    gives train and test but no val, val is carved from train with the same share of the whole.
    """
    rng = random.Random(config.seed)
    strata = [example.labels()[0] for example in examples]
    given: dict[str, list[int]] = {name: [] for name in SPLITS}
    for index, example in enumerate(examples):
        if example.split not in SPLITS:
            raise ValueError(
                f"example {index}: split must be one of {SPLITS}, got {example.split!r}"
            )
        given[example.split].append(index)
    train, val, test = given["train"], given["val"], given["test"]
    unsplit = given[""]
    if unsplit:
        rest, new_test = _stratified_take(unsplit, strata, config.test_fraction, rng)
        share = config.val_fraction / max(1e-9, 1.0 - config.test_fraction)
        rest, new_val = _stratified_take(rest, strata, share, rng)
        train, val, test = train + rest, val + new_val, test + new_test
    if not val and train:
        total = len(examples)
        share = min(0.5, config.val_fraction * total / max(1, len(train)))
        train, val = _stratified_take(train, strata, share, rng)
    return Split(train=sorted(train), val=sorted(val), test=sorted(test))


def fix_splits(examples: list[TrainExample], cap: int | None, seed: int) -> list[TrainExample]:
    """Every example with an explicit split (the dataset's own where given), at most ``cap``
    training answers; val and test answers are never dropped. Benchmarks use it so that every
    kind and every merge plan sees the same answers."""
    split = split_examples(examples, TrainConfig(seed=seed))
    names = {
        **{i: "train" for i in split.train},
        **{i: "val" for i in split.val},
        **{i: "test" for i in split.test},
    }
    fixed = [
        TrainExample(e.text, e.label, names[i], e.criteria_labels) for i, e in enumerate(examples)
    ]
    if cap is not None:
        train_rows = [i for i, e in enumerate(fixed) if e.split == "train"]
        keep = set(random.Random(seed).sample(train_rows, min(cap, len(train_rows))))
        fixed = [e for i, e in enumerate(fixed) if e.split != "train" or i in keep]
    return fixed


def class_weights(labels: Sequence[int], num_labels: int) -> torch.Tensor:
    """Inverse-frequency weights normalised to mean 1 over the classes present.

    Absent classes get weight 1 (they never appear in the loss on this data anyway).
    """
    counts = Counter(labels)
    present = [c for c in range(num_labels) if counts[c] > 0]
    weights = torch.ones(num_labels)
    if not present:
        return weights
    for c in present:
        weights[c] = len(labels) / (len(present) * counts[c])
    return weights


def _encode(
    tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], max_length: int
) -> list[list[int]]:
    encoded = tokenizer(list(texts), truncation=True, max_length=max_length, padding=False)
    return [list(ids) for ids in encoded["input_ids"]]


def collate(
    input_ids: Sequence[Sequence[int]], pad_id: int, device: torch.device | str = "cpu"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad to the longest sequence of this batch (dynamic padding)."""
    width = max(len(ids) for ids in input_ids)
    ids = torch.full((len(input_ids), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(input_ids), width), dtype=torch.long)
    for row, seq in enumerate(input_ids):
        ids[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        mask[row, : len(seq)] = 1
    return ids.to(device), mask.to(device)


def _batches(
    indices: Sequence[int],
    batch_size: int,
    generator: torch.Generator,
    lengths: Sequence[int] | None = None,
) -> Iterator[list[int]]:
    """Shuffled batches; with ``lengths``, answers of similar length share a batch.

    Length bucketing (sort within shuffled windows of 8 batches, then shuffle the batches) cuts
    the padding that dominates CPU training time when a few answers are long, while keeping
    batches random across epochs.
    """
    order = [indices[i] for i in torch.randperm(len(indices), generator=generator).tolist()]
    if lengths is not None:
        window = batch_size * 8
        order = [
            i
            for start in range(0, len(order), window)
            for i in sorted(order[start : start + window], key=lambda j: lengths[j])
        ]
    batches = [order[start : start + batch_size] for start in range(0, len(order), batch_size)]
    for b in torch.randperm(len(batches), generator=generator).tolist():
        yield batches[b]


def _length_sorted_batches(
    indices: Sequence[int], lengths: Sequence[int], batch_size: int
) -> Iterator[list[int]]:
    # evaluation only: sorting by length keeps padding (wasted compute) small
    order = sorted(indices, key=lambda i: lengths[i])
    for start in range(0, len(order), batch_size):
        yield order[start : start + batch_size]


# --------------------------------------------------------------------------------------------
# The trainable module for each kind


class _ScoringModel(nn.Module):
    """Backbone (optionally with peft LoRA) -> pooling -> heads."""

    def __init__(self, backbone: nn.Module, heads: ScoringHeads, pooling: str) -> None:
        super().__init__()
        self.backbone = backbone
        self.heads = heads
        self.pooling = pooling

    def features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.backbone(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return pool(hidden, attention_mask, self.pooling)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> list[torch.Tensor]:
        return self.heads(self.features(input_ids, attention_mask))


def _loss(
    logits: Sequence[torch.Tensor], labels: torch.Tensor, weights: Sequence[torch.Tensor]
) -> torch.Tensor:
    return sum(
        (
            nn.functional.cross_entropy(out, labels[:, c], weight=weights[c])
            for c, out in enumerate(logits)
        ),
        torch.zeros((), device=labels.device),
    )


def _l2(parameters: Sequence[nn.Parameter]) -> torch.Tensor:
    return sum((p.pow(2).sum() for p in parameters), torch.zeros((), device=parameters[0].device))


# --------------------------------------------------------------------------------------------


def train_item(
    examples: Sequence[TrainExample],
    *,
    item_id: str,
    num_labels: int | Sequence[int],
    out_dir: Path,
    backbone: str | None = None,
    config: TrainConfig | None = None,
    progress: Callable[[TrainProgress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    criteria: Sequence[str] | None = None,
    embed: Callable[[Sequence[str]], np.ndarray] | None = None,
) -> TrainedArtifact:
    """Train one item's scorer and write its artifact folder at ``out_dir``.

    ``num_labels`` is the number of score classes (``max_score + 1``), or one count per criterion
    for multi-criterion items (then every example sets ``criteria_labels`` and ``criteria`` may
    name the criteria). Metrics in the result and the artifact are on the test split: ``qwk``,
    ``accuracy``, ``macro_f1``, ``micro_f1``, ``n_test`` (multi-criterion adds ``exact_match``
    and per-criterion values). ``should_stop`` is polled every step; when it returns True,
    :class:`TrainingCancelled` is raised and nothing is written. The global torch RNG state is
    left as it was. For ``head``, ``embed`` (texts -> ``[n, hidden]`` pooled, unnormalised
    frozen-backbone vectors, e.g. a cached :func:`ml_core.embeddings.frozen_embedder`) replaces
    the feature pass, so repeated trainings on the same answers never re-run the backbone.
    """
    config = copy.deepcopy(config) if config is not None else TrainConfig()
    config.validate()
    counts = [num_labels] if isinstance(num_labels, int) else [int(n) for n in num_labels]
    names = (
        list(criteria)
        if criteria is not None
        else (["score"] if len(counts) == 1 else [f"criterion_{i}" for i in range(len(counts))])
    )
    if len(names) != len(counts):
        raise ValueError("criteria must name every criterion of num_labels")
    if not examples:
        raise ValueError(f"item {item_id!r}: no examples to train on")
    for index, example in enumerate(examples):
        labels = example.labels()
        if len(labels) != len(counts):
            raise ValueError(
                f"item {item_id!r} example {index}: {len(labels)} labels for {len(counts)} criteria"
            )
        for label, count in zip(labels, counts, strict=False):
            if not 0 <= label < count:
                raise ValueError(
                    f"item {item_id!r} example {index}: label {label} outside 0..{count - 1}"
                )

    devices: list[int] = []  # fork_rng over CPU only keeps the caller's CPU RNG untouched
    with torch.random.fork_rng(devices=devices):
        job = _Job(
            examples=examples,
            item_id=item_id,
            counts=counts,
            names=names,
            out_dir=Path(out_dir),
            backbone=backbone,
            config=config,
            progress=progress,
            should_stop=should_stop,
        )
        return _train(job, embed=embed if config.kind == "head" else None)


@dataclass(frozen=True)
class _Job:
    """One validated training request; it travels through the phases of :func:`_train`."""

    examples: Sequence[TrainExample]
    item_id: str
    counts: list[int]
    names: list[str]
    out_dir: Path
    backbone: str | None
    config: TrainConfig
    progress: Callable[[TrainProgress], None] | None
    should_stop: Callable[[], bool] | None


@dataclass
class _Inputs:
    """The examples as the model reads them: token ids, or frozen features where known."""

    input_ids: list[list[int]]
    lengths: list[int]
    pad_id: int
    labels: torch.Tensor
    features: torch.Tensor | None


@dataclass
class _Fit:
    """The model being trained and what each step needs besides the inputs."""

    model: _ScoringModel
    optimizer: torch.optim.Optimizer
    regularised: list[nn.Parameter]
    weights: list[torch.Tensor]
    device: torch.device
    split: Split
    generator: torch.Generator


@dataclass
class _Outcome:
    """What the epochs produced: the loss curve and where early stopping left off."""

    history: list[dict[str, float]]
    best_val: float
    epochs_run: int


def _train(
    job: _Job, *, embed: Callable[[Sequence[str]], np.ndarray] | None = None
) -> TrainedArtifact:
    """The phases: read the inputs, build the model, fit, measure on the test split, write."""
    started = time.perf_counter()
    config = job.config
    torch.manual_seed(config.seed)
    device = torch.device(config.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    resolved = resolve_backbone(job.backbone)
    split = split_examples(job.examples, config)
    if not split.train:
        raise ValueError(f"item {job.item_id!r}: no training examples after splitting")
    inputs = _read_inputs(job, resolved, embed)
    model, hidden_size = _build_model(job, resolved, inputs, device)
    optimizer, regularised = _optimizer(model, config)
    weights = [
        (
            class_weights(inputs.labels[split.train, c].tolist(), n)
            if config.class_weighting
            else torch.ones(n)
        ).to(device)
        for c, n in enumerate(job.counts)
    ]
    if config.kind == "head" and inputs.features is None:
        # frozen backbone: one feature pass serves every epoch
        inputs.features = _features(
            model,
            inputs.input_ids,
            inputs.lengths,
            range(len(job.examples)),
            inputs.pad_id,
            device,
            config.batch_size * 2,
        )
    fit = _Fit(
        model=model,
        optimizer=optimizer,
        regularised=regularised,
        weights=weights,
        device=device,
        split=split,
        generator=torch.Generator().manual_seed(config.seed),
    )
    previous_threads = torch.get_num_threads()
    if inputs.features is not None and device.type == "cpu":
        # heads on cached features are tiny ops: one thread; more only wait on each other
        # (2 cores shared with other work: 10-20 s per item instead of 0.3-0.7 s)
        torch.set_num_threads(1)
    try:
        outcome = _fit(job, inputs, fit)
    finally:
        torch.set_num_threads(previous_threads)
    train_seconds = time.perf_counter() - started
    metrics = _test_metrics(job, inputs, fit, outcome)
    metrics["train_seconds"] = float(train_seconds)
    manifest = _manifest(job, hidden_size, split, metrics, outcome.history)
    size = write_artifact(job.out_dir, manifest, _artifact_tensors(model, config.kind))
    return TrainedArtifact(path=job.out_dir, kind=config.kind, metrics=metrics, size_bytes=size)


def _read_inputs(
    job: _Job, resolved: str, embed: Callable[[Sequence[str]], np.ndarray] | None
) -> _Inputs:
    texts = [e.text for e in job.examples]
    labels = torch.tensor([e.labels() for e in job.examples], dtype=torch.long)
    if embed is not None:
        # frozen features from the caller's (cached) embedder: no tokenizer, no backbone here
        features = torch.as_tensor(np.asarray(embed(texts), dtype=np.float32))
        empty: list[list[int]] = [[] for _ in texts]
        return _Inputs(empty, [0] * len(texts), 0, labels, features)
    tokenizer = load_tokenizer(resolved)
    input_ids = _encode(tokenizer, texts, usable_length(resolved, job.config.max_length))
    pad_id = int(tokenizer.pad_token_id or 0)
    return _Inputs(input_ids, [len(ids) for ids in input_ids], pad_id, labels, None)


def _build_model(
    job: _Job, resolved: str, inputs: _Inputs, device: torch.device
) -> tuple[_ScoringModel, int]:
    """The backbone (none when features are given), LoRA or frozen as the kind says, and the
    heads; returns the model and its hidden size."""
    config = job.config
    model_backbone: nn.Module
    if inputs.features is not None:
        hidden_size = int(inputs.features.shape[1])
        model_backbone = nn.Identity()
    else:
        pretrained = load_backbone_model(resolved)
        hidden_size = int(pretrained.config.hidden_size)
        model_backbone = pretrained
    heads = ScoringHeads(hidden_size, job.counts, dropout=config.head_dropout)
    if config.kind == "lora":
        from peft import LoraConfig, get_peft_model

        lora_config = LoraConfig(
            r=config.lora_r,
            lora_alpha=config.lora_alpha,
            lora_dropout=config.lora_dropout,
            target_modules=list(config.target_modules),
            bias="none",
        )
        model_backbone = get_peft_model(model_backbone, lora_config)  # type: ignore[arg-type]
    elif config.kind == "head":
        for parameter in model_backbone.parameters():
            parameter.requires_grad_(False)
    return _ScoringModel(model_backbone, heads, config.pooling).to(device), hidden_size


def _optimizer(
    model: _ScoringModel, config: TrainConfig
) -> tuple[torch.optim.Optimizer, list[nn.Parameter]]:
    """AdamW with the heads' own learning rate; and the parameters the L2 penalty applies to."""
    regularised = [
        p
        for n, p in model.named_parameters()
        if p.requires_grad and ("lora_" in n or n.startswith("heads."))
    ]
    body = [
        p for n, p in model.named_parameters() if p.requires_grad and not n.startswith("heads.")
    ]
    groups = [
        {"params": list(model.heads.parameters()), "lr": config.resolved_head_learning_rate()}
    ]
    if body:
        groups.append({"params": body, "lr": config.resolved_learning_rate()})
    optimizer = torch.optim.AdamW(
        groups, lr=config.resolved_learning_rate(), weight_decay=config.weight_decay
    )
    return optimizer, regularised


def _fit(job: _Job, inputs: _Inputs, fit: _Fit) -> _Outcome:
    """Epochs with early stopping on the validation loss; the best weights are loaded back."""
    config = job.config
    steps_per_epoch = math.ceil(len(fit.split.train) / config.batch_size)
    best_val = math.inf
    best_state: dict[str, torch.Tensor] | None = None
    stale = 0
    step = 0
    outcome = _Outcome(history=[], best_val=math.inf, epochs_run=0)
    for epoch in range(1, config.epochs + 1):
        outcome.epochs_run = epoch
        step, epoch_loss = _run_epoch(job, inputs, fit, epoch, step)
        val_loss = _evaluate_loss(
            fit.model,
            inputs.features,
            inputs.input_ids,
            inputs.lengths,
            fit.split.val or fit.split.train,
            inputs.labels,
            fit.weights,
            inputs.pad_id,
            fit.device,
            config.batch_size * 2,
        )
        train_loss = epoch_loss / max(1, steps_per_epoch)
        outcome.history.append(
            {"epoch": float(epoch), "train_loss": train_loss, "val_loss": val_loss}
        )
        if job.progress is not None:
            job.progress(
                TrainProgress(
                    epoch,
                    config.epochs,
                    step,
                    steps_per_epoch * config.epochs,
                    {"val_loss": val_loss, "train_loss": train_loss},
                )
            )
        if val_loss < best_val - 1e-6:
            best_val = val_loss
            stale = 0
            best_state = {
                k: v.detach().clone()
                for k, v in fit.model.state_dict().items()
                if _is_trained(k, config.kind)
            }
        else:
            stale += 1
            if stale >= config.patience:
                break
    if best_state is not None:
        fit.model.load_state_dict(best_state, strict=False)
    outcome.best_val = best_val
    return outcome


def _run_epoch(job: _Job, inputs: _Inputs, fit: _Fit, epoch: int, step: int) -> tuple[int, float]:
    """One pass over the training split; returns the step count so far and the summed loss."""
    config, model = job.config, fit.model
    total_steps = math.ceil(len(fit.split.train) / config.batch_size) * config.epochs
    model.train()
    if config.kind == "head":
        model.backbone.eval()
    epoch_loss = 0.0
    features = inputs.features
    for batch in _batches(
        fit.split.train,
        config.batch_size,
        fit.generator,
        None if features is not None else inputs.lengths,
    ):
        if job.should_stop is not None and job.should_stop():
            raise TrainingCancelled(f"training of item {job.item_id!r} cancelled at step {step}")
        batch_labels = inputs.labels[batch].to(fit.device)
        if features is not None:
            logits = model.heads(features[batch].to(fit.device))
        else:
            ids, mask = collate([inputs.input_ids[i] for i in batch], inputs.pad_id, fit.device)
            logits = model(ids, mask)
        loss = _loss(logits, batch_labels, fit.weights)
        if config.l2 > 0 and fit.regularised:
            loss = loss + config.l2 * _l2(fit.regularised)
        fit.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        fit.optimizer.step()
        step += 1
        epoch_loss += float(loss.detach())
        if job.progress is not None:
            job.progress(
                TrainProgress(
                    epoch, config.epochs, step, total_steps, {"loss": float(loss.detach())}
                )
            )
    return step, epoch_loss


def _test_metrics(job: _Job, inputs: _Inputs, fit: _Fit, outcome: _Outcome) -> dict[str, float]:
    """Metrics on the test split (none but its size when it is empty) and the run's counts."""
    split = fit.split
    metrics: dict[str, float] = {"n_test": float(len(split.test))}
    if split.test:
        predictions = _predict(
            fit.model,
            inputs.features,
            inputs.input_ids,
            inputs.lengths,
            split.test,
            inputs.pad_id,
            fit.device,
            job.config.batch_size * 2,
        )
        metrics.update(
            classification_report(
                inputs.labels[split.test].numpy(),
                predictions,
                num_labels=job.counts,
                criteria=job.names,
            )
        )
    metrics.update(
        {
            "n_train": float(len(split.train)),
            "n_val": float(len(split.val)),
            "epochs_run": float(outcome.epochs_run),
            "best_val_loss": float(outcome.best_val),
        }
    )
    return metrics


def _manifest(
    job: _Job,
    hidden_size: int,
    split: Split,
    metrics: dict[str, float],
    history: list[dict[str, float]],
) -> dict[str, object]:
    config = job.config
    return {
        "item_id": job.item_id,
        "kind": config.kind,
        "backbone": backbone_label(job.backbone),
        "backbone_fingerprint": backbone_fingerprint(job.backbone),
        "criteria": [
            {"name": n, "labels": list(range(c))}
            for n, c in zip(job.names, job.counts, strict=False)
        ],
        "pooling": config.pooling,
        "hidden_size": hidden_size,
        "lora": {
            "r": config.lora_r,
            "alpha": config.lora_alpha,
            "target_modules": list(config.target_modules),
        }
        if config.kind == "lora"
        else None,
        "metrics": metrics,
        "training": {
            **asdict(config),
            "learning_rate": config.resolved_learning_rate(),
            "head_learning_rate": config.resolved_head_learning_rate(),
            "history": history,
        },
        "split_sizes": {"train": len(split.train), "val": len(split.val), "test": len(split.test)},
    }


def _is_trained(state_key: str, kind: str) -> bool:
    if kind == "full":
        return True
    return state_key.startswith("heads.") or "lora_" in state_key


@torch.no_grad()
def _features(
    model: _ScoringModel,
    input_ids: Sequence[Sequence[int]],
    lengths: Sequence[int],
    indices: Sequence[int],
    pad_id: int,
    device: torch.device,
    batch_size: int,
) -> torch.Tensor:
    model.eval()
    out = torch.zeros((len(input_ids), model.heads.hidden_size))
    for batch in _length_sorted_batches(indices, lengths, batch_size):
        ids, mask = collate([input_ids[i] for i in batch], pad_id, device)
        out[batch] = model.features(ids, mask).float().cpu()
    return out


@torch.no_grad()
def _logits(
    model: _ScoringModel,
    features: torch.Tensor | None,
    input_ids: Sequence[Sequence[int]],
    lengths: Sequence[int],
    indices: Sequence[int],
    pad_id: int,
    device: torch.device,
    batch_size: int,
) -> list[torch.Tensor]:
    model.eval()
    if features is not None:
        return [out.cpu() for out in model.heads(features[list(indices)].to(device))]
    feats = _features(model, input_ids, lengths, indices, pad_id, device, batch_size)
    return [out.cpu() for out in model.heads(feats[list(indices)].to(device))]


def _evaluate_loss(
    model: _ScoringModel,
    features: torch.Tensor | None,
    input_ids: Sequence[Sequence[int]],
    lengths: Sequence[int],
    indices: Sequence[int],
    labels: torch.Tensor,
    weights: Sequence[torch.Tensor],
    pad_id: int,
    device: torch.device,
    batch_size: int,
) -> float:
    logits = _logits(model, features, input_ids, lengths, indices, pad_id, device, batch_size)
    # unweighted loss: the validation loss should track calibrated likelihood on real data
    return float(_loss(logits, labels[list(indices)], [torch.ones_like(w).cpu() for w in weights]))


def _predict(
    model: _ScoringModel,
    features: torch.Tensor | None,
    input_ids: Sequence[Sequence[int]],
    lengths: Sequence[int],
    indices: Sequence[int],
    pad_id: int,
    device: torch.device,
    batch_size: int,
) -> np.ndarray:
    logits = _logits(model, features, input_ids, lengths, indices, pad_id, device, batch_size)
    return np.stack([out.argmax(dim=-1).numpy() for out in logits], axis=1)


def _artifact_tensors(model: _ScoringModel, kind: str) -> dict[str, torch.Tensor]:
    tensors: dict[str, torch.Tensor] = {}
    for index, head in enumerate(model.heads.heads):
        assert isinstance(head, nn.Linear)
        tensors[f"head.{index}.weight"] = head.weight.detach().float().cpu()
        tensors[f"head.{index}.bias"] = head.bias.detach().float().cpu()
    if kind == "lora":
        for name, module in model.backbone.named_modules():
            lora_a = getattr(module, "lora_A", None)
            lora_b = getattr(module, "lora_B", None)
            if (
                isinstance(lora_a, nn.ModuleDict)
                and isinstance(lora_b, nn.ModuleDict)
                and "default" in lora_a
            ):
                # peft wraps the backbone as base_model.model.<name>; keep the backbone-relative name
                relative = name.removeprefix("base_model.model.")
                layer_a, layer_b = lora_a["default"], lora_b["default"]
                assert isinstance(layer_a, nn.Linear) and isinstance(layer_b, nn.Linear)
                tensors[f"lora.{relative}.A"] = layer_a.weight.detach().float().cpu()
                tensors[f"lora.{relative}.B"] = layer_b.weight.detach().float().cpu()
    elif kind == "full":
        backbone = model.backbone
        assert isinstance(backbone, PreTrainedModel)
        for name, tensor in backbone.state_dict().items():
            tensors[f"backbone.{name}"] = tensor.detach().float().cpu()
    return tensors
