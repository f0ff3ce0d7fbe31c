"""Settings of the merge pipeline: features, distances, plans, merging and head re-fitting.

Every field carries its help text; the CLI builds its options from these dataclasses.
"""

from __future__ import annotations

from dataclasses import dataclass, field

DISTANCES: tuple[str, ...] = ("gw", "centroid_cosine", "random")
FULL_METHODS: tuple[str, ...] = ("average", "task_arithmetic", "ties")
LORA_METHODS: tuple[str, ...] = ("svd", "concat")


@dataclass
class FeatureConfig:
    """Which answers of an item are embedded, and how."""

    max_answers: int = field(
        default=64, metadata={"help": "training answers embedded per item (seeded sample)"}
    )
    max_length: int = field(default=256, metadata={"help": "tokens per answer; longer is cut"})
    batch_size: int = field(default=32, metadata={"help": "answers per forward pass"})
    seed: int = field(default=13, metadata={"help": "seed of the answer sample"})

    def validate(self) -> None:
        for name in ("max_answers", "max_length", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"FeatureConfig.{name} must be >= 1")


@dataclass
class DistanceConfig:
    """How the distance between two items' feature sets is measured."""

    metric: str = field(
        default="euclidean",
        metadata={"help": "ground metric inside one feature set: euclidean | cosine"},
    )
    normalize: str = field(
        default="max",
        metadata={"help": "scale of each intra-set distance matrix: max | mean (scale-free GW)"},
    )
    max_iter: int = field(default=200, metadata={"help": "GW solver iterations"})
    tol: float = field(default=1e-7, metadata={"help": "GW solver relative tolerance"})
    label_weight: float = field(
        default=0.0,
        metadata={
            "help": "weight of the score difference (scores as a fraction of the item's maximum) "
            "in each intra-set cost: 0 = features only; >0 compares how answers are arranged "
            "with respect to their scores (label-aware GW)"
        },
    )

    def validate(self) -> None:
        if self.metric not in ("euclidean", "cosine"):
            raise ValueError("DistanceConfig.metric must be euclidean or cosine")
        if self.normalize not in ("max", "mean"):
            raise ValueError("DistanceConfig.normalize must be max or mean")
        if not 0.0 <= self.label_weight <= 1.0:
            raise ValueError("DistanceConfig.label_weight must be in [0, 1]")


@dataclass
class PlanConfig:
    """How items are grouped: ``ceil(n / group_size)`` groups whose sizes differ by at most one."""

    group_size: int = field(default=3, metadata={"help": "largest group (2 = pairs, 3 = trios)"})
    exact_max_items: int = field(
        default=14, metadata={"help": "solve exactly (subset DP) up to this many items"}
    )
    restarts: int = field(
        default=64, metadata={"help": "random restarts of the local search for larger sets"}
    )
    seed: int = field(default=13, metadata={"help": "seed of the heuristic and of random plans"})

    def validate(self) -> None:
        if self.group_size < 1:
            raise ValueError("PlanConfig.group_size must be >= 1")
        if self.restarts < 1:
            raise ValueError("PlanConfig.restarts must be >= 1")


@dataclass
class MergeConfig:
    """How one group's models become one shared feature extractor, and how heads are re-fitted."""

    method: str = field(
        default="ties",
        metadata={
            "help": "full: average | task_arithmetic | ties; lora: svd | concat "
            "(a full method given for lora artifacts means svd)"
        },
    )
    scaling: float | None = field(
        default=None,
        metadata={"help": "task-vector scaling lambda (default: task_arithmetic 0.5, ties 1.0)"},
    )
    ties_density: float = field(
        default=0.2, metadata={"help": "TIES: share of each task vector's entries kept (top |x|)"}
    )
    lora_rank: int | None = field(
        default=None, metadata={"help": "rank of a merged LoRA adapter (svd); None = the items' r"}
    )
    refit_heads: bool = field(
        default=True, metadata={"help": "re-fit every item's head on the merged model's features"}
    )
    head_l2: float = field(
        default=1e-3, metadata={"help": "L2 penalty (sum of squared weights) when re-fitting heads"}
    )
    head_steps: int = field(default=200, metadata={"help": "L-BFGS iterations per head re-fit"})
    shared_dtype: str = field(
        default="float32",
        metadata={"help": "storage dtype of the shared weights: float32 | float16"},
    )

    def validate(self) -> None:
        if self.method not in FULL_METHODS + LORA_METHODS:
            raise ValueError(f"MergeConfig.method must be one of {FULL_METHODS + LORA_METHODS}")
        if not 0.0 < self.ties_density <= 1.0:
            raise ValueError("MergeConfig.ties_density must be in (0, 1]")
        if self.shared_dtype not in ("float32", "float16"):
            raise ValueError("MergeConfig.shared_dtype must be float32 or float16")
        if self.lora_rank is not None and self.lora_rank < 1:
            raise ValueError("MergeConfig.lora_rank must be >= 1")
