"""The multi-item scoring engine: one backbone, every item's adapter and heads resident, any mix of
items scored in one forward pass.

Per-item LoRA matrices are stacked into tables (slot 0 = no adapter, used by ``head`` items) and
gathered per row by an item-index tensor inside the backbone; the per-criterion heads are stacked
the same way and gathered per row after pooling. Loading, replacing and removing items builds new
tables and swaps them in atomically (copy-on-write), so a batch in flight always sees one
consistent set of items and nothing is ever loaded per request.
"""

from __future__ import annotations

import copy
import logging
import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ml_core.answers import MAX_CHARS_PER_TOKEN, clean_answer_text
from ml_core.artifact import AUTO_KIND, Artifact, ArtifactError, load_artifact
from ml_core.backbone import backbone_fingerprint, default_threads, resolve_backbone
from ml_core.backend_factory import create_backend
from ml_core.backends import EncoderBackend, LoraTables, resolve_backend_name
from ml_core.modeling import load_tokenizer, usable_length
from ml_core.results import ScoreRequest, ScoreResult, error_result

logger = logging.getLogger(__name__)

# Characters kept before tokenizing: bounds the cost of absurdly long input; far above any window.
CPU_TOKEN_BUDGET = 256
"""Default padded tokens per forward pass on CPU (see ``ScoringEngine``). Int8 MiniLM on one
core, SAF answers in the workers' batches of 32, CPU ms per answer over six interleaved rounds
(`/proc` process time): 192: 4.53, 256: 4.69, 384: 4.76, 512: 5.08; earlier, 1,024 and 2,048
were slower still. Smaller passes keep the activations in the core's cache."""
GPU_TOKEN_BUDGET = 16384
"""Default padded tokens per forward pass on CUDA."""
_PAD_LOGIT = -1e9


@dataclass(frozen=True)
class Embedded:
    """Pooled backbone vectors ``[n, hidden]`` (NaN rows: the batch failed) and, per row,
    whether the text was longer than the window."""

    vectors: np.ndarray
    truncated: np.ndarray


@dataclass(frozen=True)
class _Item:
    version: str
    lora_slot: int  # 0 = no adapter
    head_slots: tuple[int, ...]  # one per criterion
    criteria: tuple[str, ...]
    labels: tuple[tuple[int, ...], ...]  # score value of each class, per criterion
    lora: tuple[tuple[torch.Tensor, torch.Tensor], ...] | None = field(default=None, repr=False)


@dataclass(frozen=True)
class _Snapshot:
    """Everything one ``score`` call reads; replaced as a whole, never mutated."""

    items: Mapping[str, _Item]
    tables: LoraTables
    head_weight: torch.Tensor  # [heads, max_labels, hidden]
    head_bias: torch.Tensor  # [heads, max_labels], padded classes at -1e9


@dataclass(frozen=True)
class _Tokenized:
    ids: list[int]
    truncated: bool


class ScoringEngine:
    """Scores answers for any loaded items; thread-safe.

    ``backend`` is ``"torch"`` or ``"onnx"`` (fp32) or ``"onnx-int8"`` (dynamically quantized), or
    ``"auto"``: torch on CUDA, onnx-int8 on CPU.
    ``device`` ``None`` picks CUDA when available (torch: fp16 there) and falls back to CPU.
    ``gpu_dtype`` (``"float16"`` or ``"bfloat16"``) is the torch precision on CUDA.
    ``threads`` defaults to the cores divided by ``SCORING_WORKER_PROCESSES``. ``token_budget``
    (padded tokens per forward pass) defaults to :data:`CPU_TOKEN_BUDGET` or
    :data:`GPU_TOKEN_BUDGET` by where the backend runs. Create it in the
    worker process (after fork), not at import time.
    """

    def __init__(
        self,
        backbone: str | None = None,
        *,
        backend: str = "torch",
        device: str | None = None,
        threads: int | None = None,
        max_length: int = 256,
        token_budget: int | None = None,
        max_batch_size: int = 64,
        pooling: str = "mean",
        cache_dir: Path | None = None,
        gpu_dtype: str = "float16",
    ) -> None:
        backend = resolve_backend_name(backend, device)
        if max_length < 4:
            raise ValueError("max_length must be >= 4")
        self.backbone = resolve_backbone(backbone)
        self.fingerprint = backbone_fingerprint(backbone)
        max_length = usable_length(self.backbone, max_length)
        self.max_length = max_length
        self.max_batch_size = max_batch_size
        self.pooling = pooling
        self.threads = threads or default_threads()
        hf_tokenizer = load_tokenizer(self.backbone)
        # the Rust tokenizer directly: one call gives ids and whether truncation happened
        self._tokenizer = copy.deepcopy(hf_tokenizer.backend_tokenizer)
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(max_length=max_length)
        self._pad_id = int(hf_tokenizer.pad_token_id or 0)
        self._backend: EncoderBackend = create_backend(
            backend,
            self.backbone,
            fingerprint=self.fingerprint,
            device=device,
            threads=self.threads,
            pooling=pooling,
            cache_dir=cache_dir,
            gpu_dtype=gpu_dtype,
        )
        self.backend_name = backend
        if token_budget is None:
            # CPU caches favour small padded batches (CPU_TOKEN_BUDGET's measurements); a GPU
            # wants large ones
            token_budget = (
                GPU_TOKEN_BUDGET if self._backend.device_type == "cuda" else CPU_TOKEN_BUDGET
            )
        self.token_budget = max(token_budget, max_length)
        self.hidden_size = self._backend.hidden_size
        self.module_names: tuple[str, ...] = tuple(self._backend.module_names)
        self._module_shapes = {name: self._backend.module_shape(name) for name in self.module_names}
        self._write_lock = threading.Lock()
        self._snapshot = _Snapshot(
            items={},
            tables=LoraTables.empty(self.module_names, self._module_shapes),
            head_weight=torch.zeros((0, 1, self.hidden_size)),
            head_bias=torch.zeros((0, 1)),
        )

    # ----------------------------------------------------------------------------------------
    # Item management

    def load_item(self, item_key: str, artifact_dir: Path, version: str) -> None:
        """Add ``item_key`` from the artifact at ``artifact_dir``, or replace its current version.

        Raises :class:`~ml_core.artifact.ArtifactError` (or its subclass
        ``BackboneMismatchError``) for an unreadable artifact, one made for another backbone, or a
        ``full`` artifact (a whole fine-tuned model cannot share the backbone).
        """
        artifact = load_artifact(Path(artifact_dir))
        artifact.check_backbone(self.fingerprint)
        self._check_servable(artifact)
        lora = self._lora_matrices(artifact)
        heads = [artifact.head_tensors(i) for i in range(len(artifact.criteria))]
        with self._write_lock:
            old = self._snapshot
            items = {key: item for key, item in old.items.items() if key != item_key}
            heads_by_item = {key: self._item_heads(old, item) for key, item in items.items()}
            heads_by_item[item_key] = heads
            lora_by_item = {key: item.lora for key, item in items.items() if item.lora is not None}
            if lora is not None:
                lora_by_item[item_key] = lora
            criteria = tuple(c.name for c in artifact.criteria)
            labels = tuple(c.labels for c in artifact.criteria)
            items[item_key] = _Item(
                version=version,
                lora_slot=0,
                head_slots=(),
                criteria=criteria,
                labels=labels,
                lora=lora,
            )
            self._snapshot = self._build(items, heads_by_item, lora_by_item)

    def remove_item(self, item_key: str) -> None:
        """Stop serving ``item_key`` (no error if it is not loaded)."""
        with self._write_lock:
            old = self._snapshot
            if item_key not in old.items:
                return
            items = {key: item for key, item in old.items.items() if key != item_key}
            heads_by_item = {key: self._item_heads(old, item) for key, item in items.items()}
            lora_by_item = {key: item.lora for key, item in items.items() if item.lora is not None}
            self._snapshot = self._build(items, heads_by_item, lora_by_item)

    def loaded(self) -> dict[str, str]:
        """``item_key -> version`` of every item being served."""
        return {key: item.version for key, item in self._snapshot.items.items()}

    def resident_bytes(self) -> dict[str, int]:
        """Bytes held for the backbone and for all items' adapters and heads."""
        snapshot = self._snapshot
        item_bytes = (
            snapshot.tables.nbytes() + snapshot.head_weight.nbytes + snapshot.head_bias.nbytes
        )
        return {"backbone": self._backend.backbone_bytes(), "items": int(item_bytes)}

    def _check_servable(self, artifact: Artifact) -> None:
        if artifact.kind == AUTO_KIND:
            raise ArtifactError(
                f"artifact {artifact.path} is an 'auto' model (item {artifact.item_id!r}); it is "
                "served by ml_core.auto.AutoModel, not by the engine's heads"
            )
        if artifact.kind == "full":
            raise ArtifactError(
                f"artifact {artifact.path} is a 'full' model (item {artifact.item_id!r}); the "
                "multi-item engine serves only 'lora' and 'head' artifacts"
            )
        if artifact.kind not in ("lora", "head"):
            raise ArtifactError(
                f"artifact {artifact.path} is a {artifact.kind!r} model; the multi-item engine "
                "serves only 'lora' and 'head' artifacts"
            )
        if artifact.pooling != self.pooling:
            raise ArtifactError(
                f"artifact {artifact.path} uses {artifact.pooling!r} pooling; engine uses {self.pooling!r}"
            )
        for index in range(len(artifact.criteria)):
            weight, bias = artifact.head_tensors(index)
            if weight.shape != (
                artifact.criteria[index].num_labels,
                self.hidden_size,
            ) or bias.shape != (artifact.criteria[index].num_labels,):
                raise ArtifactError(
                    f"artifact {artifact.path}: head {index} has shape {tuple(weight.shape)}"
                )

    def _lora_matrices(
        self, artifact: Artifact
    ) -> tuple[tuple[torch.Tensor, torch.Tensor], ...] | None:
        """Per engine module: (A ``[in, r]``, B ``[r, out]`` with scaling folded), or None."""
        if artifact.kind != "lora":
            return None
        modules = artifact.lora_modules()
        unknown = set(modules) - set(self.module_names)
        if unknown:
            raise ArtifactError(
                f"artifact {artifact.path} adapts modules this backbone lacks: {sorted(unknown)}"
            )
        scaling = artifact.lora_alpha / artifact.lora_r
        out: list[tuple[torch.Tensor, torch.Tensor]] = []
        for name in self.module_names:
            fan_in, fan_out = self._module_shapes[name]
            if name not in modules:
                out.append((torch.zeros((fan_in, 1)), torch.zeros((1, fan_out))))
                continue
            lora_a, lora_b = modules[name]
            if lora_a.shape[1] != fan_in or lora_b.shape[0] != fan_out:
                raise ArtifactError(f"artifact {artifact.path}: LoRA shape mismatch at {name}")
            out.append(
                (lora_a.t().contiguous().float(), (lora_b.t() * scaling).contiguous().float())
            )
        return tuple(out)

    @staticmethod
    def _item_heads(snapshot: _Snapshot, item: _Item) -> list[tuple[torch.Tensor, torch.Tensor]]:
        return [
            (snapshot.head_weight[slot, : len(labels)], snapshot.head_bias[slot, : len(labels)])
            for slot, labels in zip(item.head_slots, item.labels, strict=False)
        ]

    def _build(
        self,
        items: dict[str, _Item],
        heads_by_item: Mapping[str, Sequence[tuple[torch.Tensor, torch.Tensor]]],
        lora_by_item: Mapping[str, tuple[tuple[torch.Tensor, torch.Tensor], ...]],
    ) -> _Snapshot:
        lora_keys = sorted(lora_by_item)
        tables = LoraTables.stack(
            self.module_names, self._module_shapes, [lora_by_item[k] for k in lora_keys]
        )
        head_list: list[tuple[torch.Tensor, torch.Tensor]] = []
        new_items: dict[str, _Item] = {}
        for key in sorted(items):
            item = items[key]
            slots = []
            for weight, bias in heads_by_item[key]:
                slots.append(len(head_list))
                head_list.append((weight, bias))
            lora_slot = lora_keys.index(key) + 1 if key in lora_by_item else 0
            new_items[key] = _Item(
                version=item.version,
                lora_slot=lora_slot,
                head_slots=tuple(slots),
                criteria=item.criteria,
                labels=item.labels,
                # views into the new tables: the tables stay the only resident copy of each adapter
                lora=tables.item_matrices(lora_slot) if lora_slot else None,
            )
        max_labels = max((w.shape[0] for w, _ in head_list), default=1)
        head_weight = torch.zeros((len(head_list), max_labels, self.hidden_size))
        head_bias = torch.full((len(head_list), max_labels), _PAD_LOGIT)
        for slot, (weight, bias) in enumerate(head_list):
            head_weight[slot, : weight.shape[0]] = weight
            head_bias[slot, : bias.shape[0]] = bias
        return _Snapshot(
            items=new_items, tables=tables, head_weight=head_weight, head_bias=head_bias
        )

    # ----------------------------------------------------------------------------------------
    # Scoring

    def score(self, requests: Sequence[ScoreRequest]) -> list[ScoreResult]:
        """Score every request; one result per request, same order. Never raises for bad input.

        Unknown item, empty/whitespace or undecodable text give a result with ``error`` set and
        ``score`` None. Answers longer than the window are scored on their start and flagged
        ``truncated``.
        """
        return self.score_and_embed(requests, ())[0]

    # the serving protocol (``ml_core.serving.Scorer``)
    score_requests = score

    def held(self) -> dict[str, str]:
        """``item_key -> version`` of every item being served (as :meth:`loaded`)."""
        return self.loaded()

    def score_and_embed(
        self, requests: Sequence[ScoreRequest], texts: Sequence[str]
    ) -> tuple[list[ScoreResult], Embedded]:
        """Score ``requests`` and pool ``texts`` through the plain backbone in the same forward
        passes (rows of both are bucketed by length together), for scorers that put their own
        model on the backbone's pooled vectors (``auto`` items).

        ``texts`` must be cleaned answers (:func:`~ml_core.answers.clean_answer_text`); a row
        whose batch failed comes back as NaN.
        """
        snapshot = self._snapshot
        results: list[ScoreResult | None] = [None] * len(requests)
        pending: list[tuple[int, str, _Item | None]] = []
        for position, request in enumerate(requests):
            key = getattr(request, "item_key", None)
            text, problem = clean_answer_text(getattr(request, "text", None))
            item = snapshot.items.get(key) if isinstance(key, str) else None
            if item is None:
                results[position] = error_result(str(key), f"unknown item {key!r}")
            elif problem is not None:
                results[position] = error_result(str(key), problem, version=item.version)
            else:
                pending.append((position, text, item))
        scored_rows = len(pending)
        # plain rows: no adapter (slot 0), no heads; position = index into ``texts``
        pending.extend((index, str(text), None) for index, text in enumerate(texts))
        vectors = np.full((len(texts), self.hidden_size), np.nan, dtype=np.float32)
        cut = np.zeros(len(texts), dtype=bool)
        tokenized: list[_Tokenized] = []
        error = "internal error"
        if pending:
            try:
                tokenized = self._tokenize([text for _, text, _ in pending])
            except Exception as exc:  # noqa: BLE001 - a tokenizer failure must not take down the engine
                logger.exception("tokenization failed")
                error = f"tokenization failed: {exc}"
                tokenized = []
        for batch in self._plan_batches([len(t.ids) for t in tokenized]):
            rows = [pending[i] for i in batch]
            scored: Sequence[np.ndarray | None]
            pooled: np.ndarray | None
            try:
                scored, pooled = self._score_batch(
                    snapshot, [tokenized[i] for i in batch], [item for _, _, item in rows]
                )
            except Exception as exc:  # noqa: BLE001 - report per answer, keep serving
                logger.exception("scoring batch failed")
                scored, pooled = [None for _ in rows], None
                error = f"scoring failed: {type(exc).__name__}: {exc}"
            for row, (index, (position, _, item)) in enumerate(zip(batch, rows, strict=True)):
                if index >= scored_rows:
                    if pooled is not None:
                        vectors[position] = pooled[row]
                    cut[position] = tokenized[index].truncated
                    continue
                assert item is not None
                key = requests[position].item_key
                out = scored[row]
                results[position] = (
                    error_result(key, error, item.version)
                    if out is None
                    else _result(
                        key,
                        item,
                        out,
                        tokenized[index].truncated,
                        pooled[row] if pooled is not None else None,
                    )
                )
        for position, _, item in pending[:scored_rows]:
            if results[position] is None:  # tokenization failed
                assert item is not None
                results[position] = error_result(requests[position].item_key, error, item.version)
        return (
            [r if r is not None else error_result("", "internal error") for r in results],
            Embedded(vectors, cut),
        )

    def _tokenize(self, texts: Sequence[str]) -> list[_Tokenized]:
        limit = self.max_length * MAX_CHARS_PER_TOKEN
        clipped = [text[:limit] for text in texts]
        encodings = self._tokenizer.encode_batch(clipped)
        return [
            _Tokenized(ids=list(enc.ids), truncated=bool(enc.overflowing) or len(text) > limit)
            for enc, text in zip(encodings, texts, strict=False)
        ]

    def _plan_batches(self, lengths: Sequence[int]) -> list[list[int]]:
        """Group positions, sorted by length, so each padded batch stays within the token budget."""
        order = sorted(range(len(lengths)), key=lambda i: lengths[i])
        batches: list[list[int]] = []
        current: list[int] = []
        for index in order:
            width = max(1, lengths[index])  # sorted ascending: this row sets the padded width
            if current and (
                (len(current) + 1) * width > self.token_budget
                or len(current) >= self.max_batch_size
            ):
                batches.append(current)
                current = []
            current.append(index)
        if current:
            batches.append(current)
        return batches

    def _pad(self, tokens: Sequence[_Tokenized]) -> tuple[np.ndarray, np.ndarray]:
        """``(input_ids, attention_mask)`` padded to the longest answer of the batch."""
        width = max(len(t.ids) for t in tokens)
        input_ids = np.full((len(tokens), width), self._pad_id, dtype=np.int64)
        attention_mask = np.zeros((len(tokens), width), dtype=np.int64)
        for row, tok in enumerate(tokens):
            input_ids[row, : len(tok.ids)] = tok.ids
            attention_mask[row, : len(tok.ids)] = 1
        return input_ids, attention_mask

    def _score_batch(
        self,
        snapshot: _Snapshot,
        tokens: Sequence[_Tokenized],
        items: Sequence[_Item | None],
    ) -> tuple[list[np.ndarray | None], np.ndarray]:
        """Per row, its heads' probabilities (None for a plain row), and every row's pooled vector."""
        input_ids, attention_mask = self._pad(tokens)
        item_index = np.array([item.lora_slot if item else 0 for item in items], dtype=np.int64)
        pooled = self._backend.encode(input_ids, attention_mask, item_index, snapshot.tables)
        # heads: one (row, head) pair per criterion, gathered from the stacked head tables
        pair_rows = np.array(
            [row for row, item in enumerate(items) if item for _ in item.head_slots],
            dtype=np.int64,
        )
        pair_heads = np.array(
            [slot for item in items if item for slot in item.head_slots], dtype=np.int64
        )
        out: list[np.ndarray | None] = []
        if len(pair_rows) == 0:
            return [None for _ in items], pooled
        weight = snapshot.head_weight.numpy()[pair_heads]
        bias = snapshot.head_bias.numpy()[pair_heads]
        logits = np.einsum("ph,plh->pl", pooled[pair_rows].astype(np.float32), weight) + bias
        logits -= logits.max(axis=1, keepdims=True)
        probabilities = np.exp(logits)
        probabilities /= probabilities.sum(axis=1, keepdims=True)
        start = 0
        for item in items:
            if item is None:
                out.append(None)
                continue
            out.append(probabilities[start : start + len(item.head_slots)])
            start += len(item.head_slots)
        return out, pooled

    # benchmark hook: the same forward without any adapter (plain backbone)
    def encode_plain(self, texts: Sequence[str]) -> np.ndarray:
        """Pooled vectors from the plain backbone graph (no adapter machinery), for comparisons."""
        return self._encode_batches(texts, serving=False)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Pooled backbone vectors (no adapter) through the serving path, as head items get them."""
        return self._encode_batches(texts, serving=True)

    def _encode_batches(self, texts: Sequence[str], *, serving: bool) -> np.ndarray:
        tokenized = self._tokenize(texts)
        out = np.zeros((len(texts), self.hidden_size), dtype=np.float32)
        tables = self._snapshot.tables
        for batch in self._plan_batches([len(t.ids) for t in tokenized]):
            ids, mask = self._pad([tokenized[i] for i in batch])
            if serving:
                zeros = np.zeros(len(batch), dtype=np.int64)
                out[batch] = self._backend.encode(ids, mask, zeros, tables)
            else:
                out[batch] = self._backend.encode_plain(ids, mask)
        return out


def _result(
    item_key: str,
    item: _Item,
    probabilities: np.ndarray,
    truncated: bool,
    vector: np.ndarray | None = None,
) -> ScoreResult:
    per_criterion: dict[str, int] = {}
    per_probabilities: dict[str, tuple[float, ...]] = {}
    confidence = math.inf
    for name, labels, probs in zip(item.criteria, item.labels, probabilities, strict=False):
        probs = probs[: len(labels)]
        best = int(np.argmax(probs))
        per_criterion[name] = labels[best]
        per_probabilities[name] = tuple(float(p) for p in probs)
        confidence = min(confidence, float(probs[best]))
    multi = len(item.criteria) > 1
    return ScoreResult(
        item_key=item_key,
        score=int(sum(per_criterion.values())),
        probabilities=tuple(p for name in item.criteria for p in per_probabilities[name]),
        confidence=float(confidence),
        model_version=item.version,
        truncated=truncated,
        criteria=per_criterion if multi else None,
        criteria_probabilities=per_probabilities if multi else None,
        vector=np.array(vector, dtype=np.float32) if vector is not None else None,
    )
