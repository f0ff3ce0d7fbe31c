"""The student's own tokenizer: a small vocabulary built from one item's answers.

Pure Python (no torch, no transformers at scoring time), so the single ``.onnx`` file plus this
module is all a laptop needs. Two modes:

- ``word``: lowercased word tokens (``\\w+``, Unicode-aware, so German umlauts stay words).
- ``wordpiece``: the backbone's WordPiece pieces that occur in the item's answers; scoring splits
  words greedily (longest match first, ``##`` continuations) over those pieces only, so the
  backbone's 30k-entry vocabulary is not needed offline.

Id 0 is padding, id 1 is the unknown token; a token outside the vocabulary maps to id 1.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

PAD_TOKEN = "[PAD]"
UNK_TOKEN = "[UNK]"
PAD_ID = 0
UNK_ID = 1
MODES: tuple[str, ...] = ("word", "wordpiece")
CONTINUATION = "##"

_WORD = re.compile(r"\w+")
_WORD_OR_PUNCT = re.compile(r"\w+|[^\w\s]")
# characters read before tokenizing: bounds the work on absurdly long input, far above any window
_CHARS_PER_TOKEN = 32
# BERT's limit: longer "words" (URLs, garbage) become one unknown token instead of many pieces
_MAX_WORD_CHARS = 100


@dataclass(frozen=True)
class Encoded:
    """Token ids of one answer (never empty for non-blank text) and whether it was cut."""

    ids: list[int]
    truncated: bool


@dataclass(frozen=True)
class Vocabulary:
    """Tokens by id (``tokens[0]`` is ``[PAD]``, ``tokens[1]`` is ``[UNK]``) and how text is split."""

    mode: str
    tokens: tuple[str, ...]
    max_length: int = 128
    strip_accents: bool = False
    _index: Mapping[str, int] = field(init=False, repr=False, compare=False)
    _longest: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"vocabulary mode must be one of {MODES}, got {self.mode!r}")
        if self.tokens[:2] != (PAD_TOKEN, UNK_TOKEN):
            raise ValueError("vocabulary must start with [PAD], [UNK]")
        if self.max_length < 1:
            raise ValueError("max_length must be >= 1")
        index = {token: i for i, token in enumerate(self.tokens)}
        if len(index) != len(self.tokens):
            raise ValueError("vocabulary tokens must be unique")
        object.__setattr__(self, "_index", index)
        object.__setattr__(self, "_longest", max(len(t) for t in self.tokens))

    def __len__(self) -> int:
        return len(self.tokens)

    # ------------------------------------------------------------------------------------------

    def split(self, text: str) -> list[str]:
        """The token strings of ``text`` before lookup (unknown words are kept as they are)."""
        text = _normalise(text, self.strip_accents)
        if self.mode == "word":
            return _WORD.findall(text)
        pieces: list[str] = []
        for word in _WORD_OR_PUNCT.findall(text):
            pieces.extend(self._wordpieces(word))
        return pieces

    def encode(self, text: str) -> Encoded:
        """Ids of ``text``, cut to ``max_length``; a text without any token gives ``[UNK]``."""
        limit = self.max_length * _CHARS_PER_TOKEN
        tokens = self.split(text[:limit])
        truncated = len(tokens) > self.max_length or (
            len(text) > limit and bool(text[limit:].strip())
        )
        ids = [self._index.get(token, UNK_ID) for token in tokens[: self.max_length]]
        # a non-empty input must reach the model as at least one step of the LSTM
        return Encoded(ids=ids or [UNK_ID], truncated=truncated)

    def encode_batch(self, texts: Iterable[str]) -> list[Encoded]:
        return [self.encode(text) for text in texts]

    def _wordpieces(self, word: str) -> list[str]:
        if len(word) > _MAX_WORD_CHARS:
            return [UNK_TOKEN]
        pieces: list[str] = []
        start = 0
        while start < len(word):
            end = min(len(word), start + self._longest)
            piece = None
            while end > start:
                candidate = word[start:end] if start == 0 else CONTINUATION + word[start:end]
                if candidate in self._index:
                    piece = candidate
                    break
                end -= 1
            if piece is None:
                # as BERT does: a word that cannot be covered is one unknown token
                return [UNK_TOKEN]
            pieces.append(piece)
            start = end
        return pieces

    # ------------------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form, stored inside the exported ``.onnx`` file."""
        return {
            "mode": self.mode,
            "tokens": list(self.tokens),
            "max_length": self.max_length,
            "strip_accents": self.strip_accents,
            "pad_id": PAD_ID,
            "unk_id": UNK_ID,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> Vocabulary:
        tokens = data["tokens"]
        if not isinstance(tokens, list):
            raise ValueError("vocabulary 'tokens' must be a list")
        return cls(
            mode=str(data["mode"]),
            tokens=tuple(str(t) for t in tokens),
            max_length=int(data.get("max_length", 128)),  # type: ignore[call-overload]
            strip_accents=bool(data.get("strip_accents", False)),
        )


def _normalise(text: str, strip_accents: bool) -> str:
    text = text.lower()
    if strip_accents:
        text = "".join(
            c for c in unicodedata.normalize("NFD", text) if unicodedata.category(c) != "Mn"
        )
    return text


def _ranked(
    counts: Counter[str], documents: Counter[str], min_docs: int, max_size: int
) -> tuple[str, ...]:
    # a token is kept when ``min_docs`` texts hold it, however often one text repeats it; most
    # frequent first, ties alphabetical: the same texts always give the same ids
    kept = sorted((t for t, d in documents.items() if d >= min_docs), key=lambda t: (-counts[t], t))
    return (PAD_TOKEN, UNK_TOKEN, *kept[: max_size - 2])


def _tally(tokenised: Iterable[list[str]]) -> tuple[Counter[str], Counter[str]]:
    """Occurrences of each token and the number of texts holding it."""
    counts: Counter[str] = Counter()
    documents: Counter[str] = Counter()
    for tokens in tokenised:
        counts.update(tokens)
        documents.update(set(tokens))
    return counts, documents


def build_word_vocabulary(
    texts: Sequence[str], *, min_docs: int = 2, max_size: int = 20000, max_length: int = 128
) -> Vocabulary:
    """Lowercased word tokens occurring in at least ``min_docs`` of ``texts``.

    With the default 2 a word only one answer holds (a student's name, say) is never part of
    the vocabulary, so it is not in the exported ``.onnx`` file either.
    """
    counts, documents = _tally(_WORD.findall(_normalise(text, False)) for text in texts)
    documents.pop(PAD_TOKEN.lower(), None)
    return Vocabulary(
        mode="word", tokens=_ranked(counts, documents, min_docs, max_size), max_length=max_length
    )


def build_wordpiece_vocabulary(
    texts: Sequence[str],
    *,
    backbone: str | None = None,
    min_docs: int = 2,
    max_size: int = 20000,
    max_length: int = 128,
) -> Vocabulary:
    """The backbone's WordPiece pieces occurring in at least ``min_docs`` of ``texts``.

    Every single character seen (as a word start and as a ``##`` continuation) is kept too, when
    the backbone has it, so a new word of known letters splits into pieces rather than ``[UNK]``.
    Needs transformers and the backbone's tokenizer files at build time only.
    """
    from ml_core.backbone import resolve_backbone
    from ml_core.modeling import load_tokenizer

    tokenizer = load_tokenizer(resolve_backbone(backbone))
    backbone_vocab = tokenizer.get_vocab()
    strip_accents = bool(getattr(tokenizer, "do_lower_case", True))
    special = set(tokenizer.all_special_tokens)
    counts, documents = _tally(
        [p for p in tokenizer.tokenize(text) if p not in special] for text in texts
    )
    characters = {c for text in texts for c in _normalise(text, strip_accents) if not c.isspace()}
    ranked = list(_ranked(counts, documents, min_docs, max_size))
    present = set(ranked)
    for char in sorted(characters):
        for piece in (char, CONTINUATION + char):
            if piece in backbone_vocab and piece not in present and len(ranked) < max_size:
                ranked.append(piece)
                present.add(piece)
    return Vocabulary(
        mode="wordpiece", tokens=tuple(ranked), max_length=max_length, strip_accents=strip_accents
    )


def build_vocabulary(
    texts: Sequence[str],
    *,
    mode: str,
    min_docs: int,
    max_size: int,
    max_length: int,
    backbone: str | None = None,
) -> Vocabulary:
    """Dispatch on ``mode`` (``word`` or ``wordpiece``)."""
    if mode == "word":
        return build_word_vocabulary(
            texts, min_docs=min_docs, max_size=max_size, max_length=max_length
        )
    if mode == "wordpiece":
        return build_wordpiece_vocabulary(
            texts, backbone=backbone, min_docs=min_docs, max_size=max_size, max_length=max_length
        )
    raise ValueError(f"vocabulary mode must be one of {MODES}, got {mode!r}")
