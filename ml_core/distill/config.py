"""Configuration of a distillation run: the student's sizes, its vocabulary and how it is trained."""

from __future__ import annotations

from dataclasses import dataclass, field

VOCABULARIES: tuple[str, ...] = ("word", "wordpiece")
EMBEDDING_INITS: tuple[str, ...] = ("random", "backbone")


@dataclass
class DistillConfig:
    """How one item's student is built and trained. Defaults follow the research (issue 5)."""

    # --- student sizes
    embedding_dim: int = field(default=32, metadata={"help": "width of the token embedding"})
    lstm_units: int = field(default=16, metadata={"help": "units per direction of the BiLSTM"})
    dense_units: int = field(default=16, metadata={"help": "width of the ReLU layer after pooling"})
    dropout: float = field(
        default=0.2,
        metadata={"help": "dropout on the embedding, the pooled vector and the ReLU layer"},
    )

    # --- vocabulary
    vocabulary: str = field(
        default="word",
        metadata={
            "help": "word: lowercased word tokens of the item's answers | wordpiece: the backbone's WordPiece pieces seen in them"
        },
    )
    min_docs: int = field(
        default=2,
        metadata={
            "help": "a token is kept when this many of the texts it is built from (training and unlabelled answers) hold it; 2 keeps a word of a single answer, e.g. a name, out of the .onnx file"
        },
    )
    max_vocabulary: int = field(
        default=20000,
        metadata={"help": "most tokens kept (most frequent first), PAD and UNK included"},
    )
    max_length: int = field(
        default=128,
        metadata={"help": "tokens per answer; longer answers are scored on their start"},
    )
    embedding_init: str = field(
        default="random",
        metadata={
            "help": "random | backbone: project the backbone's input embeddings of each token to embedding_dim (PCA)"
        },
    )
    backbone: str | None = field(
        default=None,
        metadata={
            "help": "backbone for the wordpiece vocabulary and backbone embedding init; None = default"
        },
    )

    # --- loss
    distill_lambda: float = field(
        default=1.0,
        metadata={"help": "weight of CE(teacher probabilities); 0 is plain training on labels"},
    )
    temperature: float = field(
        default=2.0, metadata={"help": "softens teacher and student distributions in the soft loss"}
    )
    lambda_sweep: tuple[float, ...] = field(
        default=(),
        metadata={
            "help": "if set, train one student per lambda and keep the best on validation (QWK, then loss)"
        },
    )
    class_weighting: bool = field(
        default=True, metadata={"help": "weight the label loss by inverse class frequency"}
    )

    # --- more inputs for the teacher to label
    augment_copies: int = field(
        default=4,
        metadata={
            "help": "variants of each training answer scored by the teacher (needs a teacher callable; 0 = off)"
        },
    )

    # --- optimisation
    epochs: int = field(default=60, metadata={"help": "maximum training epochs"})
    patience: int = field(
        default=10, metadata={"help": "stop after this many epochs without a lower validation loss"}
    )
    batch_size: int = field(default=32, metadata={"help": "answers per optimisation step"})
    learning_rate: float = field(default=5e-3, metadata={"help": "Adam learning rate"})
    weight_decay: float = field(default=1e-4, metadata={"help": "AdamW decoupled weight decay"})
    threads: int = field(
        default=1, metadata={"help": "torch threads while training (1 is fastest for this size)"}
    )
    seed: int = field(default=13, metadata={"help": "seed for the split, init and shuffling"})
    val_fraction: float = field(
        default=0.1, metadata={"help": "validation share when the data has no split"}
    )
    test_fraction: float = field(
        default=0.2, metadata={"help": "test share when the data has no split"}
    )

    # --- report
    compare_baseline: bool = field(
        default=True, metadata={"help": "also train the same student with lambda = 0 and report it"}
    )
    measure_speed: bool = field(
        default=True, metadata={"help": "time the exported student in ONNX Runtime (1 thread)"}
    )

    def lambdas(self) -> tuple[float, ...]:
        """The lambdas to train: the sweep if given, else ``distill_lambda`` alone."""
        return tuple(self.lambda_sweep) if self.lambda_sweep else (self.distill_lambda,)

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first invalid field."""
        if self.vocabulary not in VOCABULARIES:
            raise ValueError(
                f"DistillConfig.vocabulary must be one of {VOCABULARIES}, got {self.vocabulary!r}"
            )
        if self.embedding_init not in EMBEDDING_INITS:
            raise ValueError(
                f"DistillConfig.embedding_init must be one of {EMBEDDING_INITS}, got {self.embedding_init!r}"
            )
        for name in (
            "embedding_dim",
            "lstm_units",
            "dense_units",
            "min_docs",
            "max_length",
            "epochs",
            "batch_size",
            "threads",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"DistillConfig.{name} must be >= 1")
        if self.augment_copies < 0:
            raise ValueError("DistillConfig.augment_copies must be >= 0")
        if self.max_vocabulary < 3:
            raise ValueError("DistillConfig.max_vocabulary must be >= 3 (PAD, UNK and one token)")
        if not 0 <= self.dropout < 1:
            raise ValueError("DistillConfig.dropout must be in [0, 1)")
        if self.temperature <= 0:
            raise ValueError("DistillConfig.temperature must be > 0")
        if any(value < 0 for value in self.lambdas()):
            raise ValueError("DistillConfig lambdas must be >= 0")
        if not 0 <= self.val_fraction < 1 or not 0 <= self.test_fraction < 1:
            raise ValueError("DistillConfig.val_fraction and test_fraction must be in [0, 1)")
