"""Frozen-backbone sentence vectors for training, computed once and cached.

:func:`frozen_embedder` tokenizes a batch of answers once (truncated to the window, never padded
to it), sorts them by length into batches of at most ``token_budget`` padded tokens, runs the
frozen backbone with ``threads`` intra-op threads and pools the token states. The vectors are
**not** L2-normalised (they are the pooled features a ``head`` item is trained on and that
``ScoringEngine.embed`` serves); callers normalise when they want to.

:class:`EmbeddingCache` wraps any embedder with a per-text memory cache and, optionally, one
``.npy`` file per (backbone fingerprint, pooling, set of texts) on disk, so cross-validation folds,
candidates and benchmark reruns never embed the same answer twice.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

Embedder = Callable[[Sequence[str]], np.ndarray]


def frozen_embedder(
    backbone: str | None = None,
    pooling: str = "mean",
    threads: int | None = None,
    *,
    max_length: int = 256,
    token_budget: int = 4096,
) -> Embedder:
    """``texts -> float32 [n, hidden]`` pooled (``mean`` or ``cls``), **not** normalised.

    The backbone and tokenizer are loaded once, at this call. ``threads`` defaults to
    :func:`ml_core.backbone.default_threads` (the usable cores).
    """
    import torch

    from ml_core.backbone import default_threads, resolve_backbone
    from ml_core.modeling import (
        POOLINGS,
        load_backbone_model,
        load_tokenizer,
        pool,
        usable_length,
    )

    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
    resolved = resolve_backbone(backbone)
    tokenizer = load_tokenizer(resolved)
    model = load_backbone_model(resolved)
    max_length = usable_length(resolved, max_length)
    pad_id = int(tokenizer.pad_token_id or 0)
    thread_count = threads or default_threads()
    hidden = int(model.config.hidden_size)

    def embed(texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), hidden), dtype=np.float32)
        if not texts:
            return out
        encoded = tokenizer(list(texts), truncation=True, max_length=max_length, padding=False)
        ids: list[list[int]] = [list(x) for x in encoded["input_ids"]]
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        previous = torch.get_num_threads()
        torch.set_num_threads(thread_count)
        try:
            with torch.inference_mode():
                start = 0
                while start < len(order):
                    # grow the batch while its padded size (longest x rows) fits the budget
                    stop = start + 1
                    while (
                        stop < len(order)
                        and len(ids[order[stop]]) * (stop + 1 - start) <= token_budget
                    ):
                        stop += 1
                    batch = order[start:stop]
                    width = max(len(ids[i]) for i in batch)
                    input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
                    mask = torch.zeros((len(batch), width), dtype=torch.long)
                    for row, i in enumerate(batch):
                        input_ids[row, : len(ids[i])] = torch.tensor(ids[i], dtype=torch.long)
                        mask[row, : len(ids[i])] = 1
                    states = model(input_ids=input_ids, attention_mask=mask).last_hidden_state
                    out[batch] = pool(states, mask, pooling).float().numpy()
                    start = stop
        finally:
            torch.set_num_threads(previous)
        return out

    return embed


def _texts_key(texts: Sequence[str]) -> str:
    digest = hashlib.sha256()
    for text in texts:
        digest.update(hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest())
    return digest.hexdigest()[:32]


class EmbeddingCache:
    """Memoises an embedder per text; ``preload`` reads/writes a whole set of texts on disk.

    ``folder`` should be specific to the backbone fingerprint and pooling (the caller's key);
    a file is named by a hash of the texts it holds, so changed data never reads stale vectors.
    """

    def __init__(self, embed: Embedder | None, folder: Path | None = None) -> None:
        self._embed = embed
        self._folder = folder
        self._vectors: dict[str, np.ndarray] = {}
        self.computed = 0

    def preload(self, texts: Sequence[str]) -> None:
        """Make every text of ``texts`` available (from disk when this set was seen before)."""
        unique = sorted(set(texts))
        path = self._folder / f"{_texts_key(unique)}.npy" if self._folder is not None else None
        if path is not None and path.is_file():
            vectors = np.load(path)
            if vectors.shape[0] == len(unique):
                self._vectors.update(zip(unique, vectors, strict=True))
                return
        missing = [t for t in unique if t not in self._vectors]
        if missing:
            self._compute(missing)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            np.save(path, np.stack([self._vectors[t] for t in unique]).astype(np.float32))

    def _compute(self, unique: Sequence[str]) -> np.ndarray:
        if self._embed is None:
            raise KeyError("text not in the embedding cache and no embedder to compute it")
        vectors = np.asarray(self._embed(list(unique)), dtype=np.float32)
        self.computed += len(unique)
        self._vectors.update(zip(unique, vectors, strict=True))
        return vectors

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        missing = sorted(set(texts) - set(self._vectors))
        if missing:
            self._compute(missing)
        if not texts:
            width = next(iter(self._vectors.values())).shape[0] if self._vectors else 0
            return np.zeros((0, width), dtype=np.float32)
        return np.stack([self._vectors[t] for t in texts]).astype(np.float32)
