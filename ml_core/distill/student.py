"""The tiny student: embedding -> BiLSTM -> global max pooling -> dense ReLU -> class logits.

With the research's sizes (embedding 32, 16 LSTM units per direction, dense 16) and a vocabulary
of ~1,000 words it has about 0.04M parameters; the embedding table is most of them.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from ml_core.distill.config import DistillConfig
from ml_core.distill.vocabulary import PAD_ID

# LSTM outputs lie in (-1, 1): subtracting this from padded steps keeps them out of the max
# without an infinity (which the ONNX graph would have to carry through an addition).
PAD_PENALTY = 4.0


class StudentModel(nn.Module):
    """Scores right-padded token ids ``[batch, tokens]`` (``0`` = padding) into class logits."""

    def __init__(
        self,
        vocab_size: int,
        num_labels: int,
        *,
        embedding_dim: int = 32,
        lstm_units: int = 16,
        dense_units: int = 16,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=PAD_ID)
        self.lstm = nn.LSTM(embedding_dim, lstm_units, batch_first=True, bidirectional=True)
        self.dropout = nn.Dropout(dropout)
        self.dense = nn.Linear(2 * lstm_units, dense_units)
        self.output = nn.Linear(dense_units, num_labels)

    @classmethod
    def from_config(cls, vocab_size: int, num_labels: int, config: DistillConfig) -> StudentModel:
        return cls(
            vocab_size,
            num_labels,
            embedding_dim=config.embedding_dim,
            lstm_units=config.lstm_units,
            dense_units=config.dense_units,
            dropout=config.dropout,
        )

    @property
    def num_labels(self) -> int:
        return self.output.out_features

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        lengths = (input_ids != PAD_ID).sum(dim=1)
        # an all-padding row still gets one step so packing never sees a zero length
        lengths = lengths.clamp(min=1)
        embedded = self.dropout(self.embedding(input_ids))
        packed = pack_padded_sequence(
            embedded, lengths.cpu(), batch_first=True, enforce_sorted=False
        )
        states, _ = self.lstm(packed)
        states, _ = pad_packed_sequence(states, batch_first=True, total_length=input_ids.shape[1])
        steps = torch.arange(input_ids.shape[1], device=input_ids.device)
        padded = (steps[None, :] >= lengths[:, None]).to(states.dtype)
        pooled = (states - PAD_PENALTY * padded[:, :, None]).max(dim=1).values
        hidden = torch.relu(self.dense(self.dropout(pooled)))
        return self.output(self.dropout(hidden))


def parameter_count(model: nn.Module) -> int:
    """Number of scalar parameters."""
    return sum(p.numel() for p in model.parameters())


def pad_batch(ids: Sequence[Sequence[int]]) -> torch.Tensor:
    """Right-pad token id lists to one ``[batch, longest]`` tensor."""
    width = max(1, max((len(row) for row in ids), default=1))
    out = torch.full((len(ids), width), PAD_ID, dtype=torch.long)
    for row, seq in enumerate(ids):
        out[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
    return out
