"""Initial student embeddings from the backbone's input embeddings, projected by PCA.

The backbone has seen far more text than one item's answers; starting the student's 32-wide
table from the main directions of the backbone's token vectors gives related words related
vectors before training. Needs transformers and the backbone at training time only.
"""

from __future__ import annotations

import numpy as np
import torch

from ml_core.distill.vocabulary import PAD_ID, UNK_ID, UNK_TOKEN, Vocabulary


def backbone_embedding_init(
    vocabulary: Vocabulary, dim: int, backbone: str | None = None
) -> torch.Tensor:
    """``[len(vocabulary), dim]`` table: each token's backbone vector (a word: the mean of its
    WordPiece vectors), centred and projected on the top ``dim`` principal directions, scaled to
    unit variance per dimension as ``nn.Embedding`` starts; padding is zero."""
    from ml_core.backbone import resolve_backbone
    from ml_core.modeling import load_backbone_model, load_tokenizer

    resolved = resolve_backbone(backbone)
    tokenizer = load_tokenizer(resolved)
    embeddings = load_backbone_model(resolved).get_input_embeddings()
    assert isinstance(embeddings, torch.nn.Embedding)
    table = embeddings.weight.detach().float().numpy()
    backbone_vocab = tokenizer.get_vocab()
    unk = backbone_vocab.get(tokenizer.unk_token or UNK_TOKEN, 0)
    vectors = np.zeros((len(vocabulary), table.shape[1]), dtype=np.float64)
    for index, token in enumerate(vocabulary.tokens):
        if index == PAD_ID:
            continue
        if index == UNK_ID:
            rows = [unk]
        elif vocabulary.mode == "wordpiece":
            rows = [backbone_vocab.get(token, unk)]
        else:
            rows = [backbone_vocab.get(piece, unk) for piece in tokenizer.tokenize(token)] or [unk]
        vectors[index] = table[rows].mean(axis=0)
    real = vectors[1:]
    centred = real - real.mean(axis=0, keepdims=True)
    # principal directions of this item's tokens, not of the whole 30k vocabulary
    _, _, components = np.linalg.svd(centred, full_matrices=False)
    projected = centred @ components[:dim].T
    if projected.shape[1] < dim:  # fewer tokens than dimensions: pad with small noise
        extra = np.random.default_rng(0).normal(
            0, 1e-2, (projected.shape[0], dim - projected.shape[1])
        )
        projected = np.concatenate([projected, extra], axis=1)
    projected /= projected.std(axis=0, keepdims=True) + 1e-8
    out = np.zeros((len(vocabulary), dim), dtype=np.float32)
    out[1:] = projected
    return torch.from_numpy(out)
