"""Encoder backends behind one interface: token ids + item index + LoRA tables -> pooled vectors.

The engine never branches on the backend. ``torch`` runs the :class:`MultiItemEncoder` (fp32 on
CPU, fp16 on CUDA, bf16 on request); ``onnx`` and ``onnx-int8`` run the same module exported once
to ONNX with the item index and the LoRA tables as graph inputs (see :mod:`ml_core.onnx_backend`).
"""

from __future__ import annotations

import itertools
import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ml_core.modeling import MultiItemEncoder, load_backbone_model

logger = logging.getLogger(__name__)

BACKENDS: tuple[str, ...] = ("auto", "torch", "onnx", "onnx-int8")
"""``auto`` is torch (fp16) on CUDA and onnx-int8 on CPU: see :func:`resolve_backend_name`."""
TABLE_DTYPE = torch.float16
"""Resident LoRA tables are fp16: half the memory per item, and the low-rank update is small
relative to the frozen weights, so fp16 rounding of A/B moves scores far less than int8 does."""

_table_versions = itertools.count(1)


@dataclass(frozen=True)
class LoraTables:
    """Stacked LoRA matrices of all loaded items, one ``A``/``B`` pair per target module.

    ``tensors`` is ``(A_0, B_0, A_1, B_1, ...)`` in ``module_names`` order; ``A_k`` is
    ``[slots, in, r]`` and ``B_k`` ``[slots, r, out]`` (scaling folded into ``B``), stored in
    fp16 (:data:`TABLE_DTYPE`). Slot 0 is all zeros so rows without an adapter gather a no-op. ``version`` changes with every new table
    set, so backends can cache device copies.
    """

    module_names: tuple[str, ...]
    tensors: tuple[torch.Tensor, ...]
    version: int

    @property
    def slots(self) -> int:
        return int(self.tensors[0].shape[0]) if self.tensors else 1

    @property
    def rank(self) -> int:
        return int(self.tensors[0].shape[2]) if self.tensors else 0

    def nbytes(self) -> int:
        return sum(t.nbytes for t in self.tensors)

    def item_matrices(self, slot: int) -> tuple[tuple[torch.Tensor, torch.Tensor], ...]:
        return tuple(
            (self.tensors[2 * k][slot], self.tensors[2 * k + 1][slot])
            for k in range(len(self.module_names))
        )

    @staticmethod
    def empty(module_names: Sequence[str], shapes: Mapping[str, tuple[int, int]]) -> LoraTables:
        return LoraTables.stack(module_names, shapes, [])

    @staticmethod
    def stack(
        module_names: Sequence[str],
        shapes: Mapping[str, tuple[int, int]],
        items: Sequence[Sequence[tuple[torch.Tensor, torch.Tensor]]],
    ) -> LoraTables:
        """Stack per-item ``(A [in, r], B [r, out])`` lists into tables; ranks padded with zeros."""
        rank = max((a.shape[1] for item in items for a, _ in item), default=1)
        tensors: list[torch.Tensor] = []
        for k, name in enumerate(module_names):
            fan_in, fan_out = shapes[name]
            table_a = torch.zeros((len(items) + 1, fan_in, rank), dtype=TABLE_DTYPE)
            table_b = torch.zeros((len(items) + 1, rank, fan_out), dtype=TABLE_DTYPE)
            for slot, item in enumerate(items, start=1):
                lora_a, lora_b = item[k]
                table_a[slot, :, : lora_a.shape[1]] = lora_a
                table_b[slot, : lora_b.shape[0], :] = lora_b
            tensors += [table_a, table_b]
        return LoraTables(tuple(module_names), tuple(tensors), next(_table_versions))


class EncoderBackend(ABC):
    """Runs the backbone with per-row adapters and returns pooled fp32 vectors ``[batch, hidden]``."""

    hidden_size: int
    module_names: Sequence[str]
    device_type: str
    """``"cpu"`` or ``"cuda"``: where the forward passes run."""

    @abstractmethod
    def module_shape(self, name: str) -> tuple[int, int]:
        """(in_features, out_features) of a LoRA target module."""

    @abstractmethod
    def encode(
        self,
        input_ids: np.ndarray,
        attention_mask: np.ndarray,
        item_index: np.ndarray,
        tables: LoraTables,
    ) -> np.ndarray:
        """Pooled vectors with row ``i`` using the adapter in slot ``item_index[i]``."""

    @abstractmethod
    def encode_plain(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        """Pooled vectors of the plain backbone (no adapter machinery at all)."""

    @abstractmethod
    def backbone_bytes(self) -> int:
        """Bytes of backbone weights held by this backend."""


def pick_device(device: str | None) -> torch.device:
    """``None`` -> CUDA when available, else CPU; a CUDA request without CUDA falls back to CPU."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    chosen = torch.device(device)
    if chosen.type == "cuda" and not torch.cuda.is_available():
        logger.warning("CUDA requested but not available; scoring on CPU")
        return torch.device("cpu")
    return chosen


class TorchBackend(EncoderBackend):
    """The multi-item encoder in PyTorch: fp32 on CPU, fp16 (or ``dtype``) on CUDA."""

    def __init__(
        self,
        resolved: str,
        *,
        device: str | None,
        threads: int,
        pooling: str,
        dtype: torch.dtype | None = None,
    ) -> None:
        self.device = pick_device(device)
        self.device_type = self.device.type
        if self.device.type == "cpu":
            torch.set_num_threads(threads)
            self.dtype = torch.float32  # CPU half precision is slower and less exact than fp32
        else:
            self.dtype = dtype or torch.float16
        self.encoder = MultiItemEncoder(load_backbone_model(resolved), pooling=pooling).to(
            self.device, self.dtype
        )
        self.encoder.eval()
        self.hidden_size = self.encoder.hidden_size
        self.module_names = list(self.encoder.module_names)
        # the encoder shares per-call state between its LoRA modules; one forward at a time
        self._lock = threading.Lock()
        self._device_tables: tuple[int, tuple[torch.Tensor, ...]] = (0, ())

    def module_shape(self, name: str) -> tuple[int, int]:
        return self.encoder.module_shape(name)

    def _tables_on_device(self, tables: LoraTables) -> tuple[torch.Tensor, ...]:
        version, cached = self._device_tables
        if version != tables.version:
            # on CPU the fp16 tables are used as they are (rows are cast after the gather)
            cached = tuple(t.to(self.device) for t in tables.tensors)
            self._device_tables = (tables.version, cached)
        return cached

    def encode(
        self,
        input_ids: np.ndarray,
        attention_mask: np.ndarray,
        item_index: np.ndarray,
        tables: LoraTables,
    ) -> np.ndarray:
        ids = torch.from_numpy(input_ids).to(self.device)
        mask = torch.from_numpy(attention_mask).to(self.device)
        with self._lock, torch.inference_mode():
            if tables.slots <= 1 or not item_index.any():
                # no row has an adapter: skip the gather entirely
                pooled = self.encoder(ids, mask)
            else:
                index = torch.from_numpy(item_index).to(self.device)
                pooled = self.encoder(ids, mask, index, *self._tables_on_device(tables))
        return pooled.float().cpu().numpy()

    def encode_plain(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        ids = torch.from_numpy(input_ids).to(self.device)
        mask = torch.from_numpy(attention_mask).to(self.device)
        with self._lock, torch.inference_mode():
            return self.encoder(ids, mask).float().cpu().numpy()

    def backbone_bytes(self) -> int:
        return sum(p.numel() * p.element_size() for p in self.encoder.parameters())


def resolve_backend_name(name: str, device: str | None) -> str:
    """The concrete backend for ``name``: ``auto`` becomes ``torch`` on CUDA, else ``onnx-int8``.

    On 2 CPU cores with SAF answers, onnx-int8 scored one answer in 4 ms against 38 ms for torch
    fp32 and moved mean QWK by less than 0.01 (benchmarks/README.md, issue 3).
    """
    if name not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {name!r}")
    if name != "auto":
        return name
    return "torch" if pick_device(device).type == "cuda" else "onnx-int8"
