"""TF-IDF n-gram features that serving can compute with numpy alone.

:class:`LexicalVectorizer` reproduces scikit-learn's ``TfidfVectorizer`` (lowercase, default
token pattern) for word n-grams and ``char_wb`` n-grams, with one L2-normalised block per
analyzer (as a ``FeatureUnion`` of two vectorizers gives). Fitting and transforming use the same
Python code, so what training saw is what serving computes; the fitted state is a vocabulary and
an idf vector, stored as JSON and float32 arrays (no pickles).

:class:`LinearScorer` is a multinomial linear model over those features (``coef``, ``intercept``),
evaluated on the sparse rows directly.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

_WORD = re.compile(r"(?u)\b\w\w+\b")
_WHITE_SPACES = re.compile(r"\s\s+")
ANALYZERS: tuple[str, ...] = ("word", "char_wb")
KNOWN_WORDS = 2048
"""Words whose ``char_wb`` columns a fitted vectorizer keeps per block, the first seen (common
words come early): each costs ~0.5 KB, so at most ~1 MB per served item; their n-grams are not
made and looked up again (SAF answers: 0.33 -> 0.14 ms per answer and vectorizer)."""


def word_ngrams(text: str, low: int, high: int) -> list[str]:
    """Word n-grams as scikit-learn's ``analyzer="word"`` makes them (lowercased)."""
    tokens = _WORD.findall(text.lower())
    grams = list(tokens) if low == 1 else []
    for n in range(max(low, 2), min(high, len(tokens)) + 1):
        grams.extend(" ".join(tokens[i : i + n]) for i in range(len(tokens) - n + 1))
    return grams


def char_wb_ngrams(text: str, low: int, high: int) -> list[str]:
    """Character n-grams inside space-padded words, as scikit-learn's ``analyzer="char_wb"``."""
    grams: list[str] = []
    for word in _WHITE_SPACES.sub(" ", text.lower()).split():
        padded = f" {word} "
        length = len(padded)
        for n in range(low, high + 1):
            if n >= length:  # a word no longer than n counts once (scikit-learn does the same)
                grams.append(padded)
                break
            grams.extend([padded[i : i + n] for i in range(length - n + 1)])
    return grams


def _analyze(text: str, analyzer: str, low: int, high: int) -> list[str]:
    if analyzer == "word":
        return word_ngrams(text, low, high)
    if analyzer == "char_wb":
        return char_wb_ngrams(text, low, high)
    raise ValueError(f"analyzer must be one of {ANALYZERS}, got {analyzer!r}")


@dataclass(frozen=True)
class SparseRows:
    """CSR rows: ``indices[indptr[i]:indptr[i+1]]`` with ``data`` the values of row ``i``."""

    indptr: np.ndarray
    indices: np.ndarray
    data: np.ndarray
    width: int

    def __len__(self) -> int:
        return len(self.indptr) - 1

    def to_scipy(self) -> object:
        """A ``scipy.sparse.csr_matrix`` (training only; serving stays on numpy)."""
        from scipy import sparse

        return sparse.csr_matrix(
            (self.data, self.indices, self.indptr), shape=(len(self), self.width)
        )


@dataclass(frozen=True)
class _Block:
    analyzer: str
    low: int
    high: int
    vocabulary: dict[str, int]
    idf: np.ndarray
    known: dict[str, tuple[int, ...]] = field(default_factory=dict)
    """``char_wb`` only: per word, the columns of its n-grams (a word's n-grams do not depend
    on its neighbours); filled while transforming, up to ``KNOWN_WORDS`` words."""

    def columns(self, text: str) -> list[int | None]:
        """The vocabulary column of each n-gram of ``text`` (None: not in the vocabulary)."""
        if self.analyzer != "char_wb":
            return list(
                map(self.vocabulary.get, _analyze(text, self.analyzer, self.low, self.high))
            )
        out: list[int | None] = []
        for word in text.lower().split():
            found = self.known.get(word)
            if found is None:
                grams = char_wb_ngrams(word, self.low, self.high)
                found = tuple(c for c in map(self.vocabulary.get, grams) if c is not None)
                if len(self.known) < KNOWN_WORDS:
                    self.known[word] = found
            out.extend(found)
        return out


class LexicalVectorizer:
    """Word + character TF-IDF features; ``blocks`` are ``(analyzer, min_n, max_n)``.

    Defaults are the issue-13 baseline: word 1-2-grams and ``char_wb`` 2-5-grams, raw term
    counts, smoothed idf ``ln((1 + n) / (1 + df)) + 1``, each block L2-normalised. ``min_df``
    drops n-grams seen in fewer training answers; ``sublinear_tf`` uses ``1 + ln(tf)``.
    """

    def __init__(
        self,
        blocks: Sequence[tuple[str, int, int]] = (("word", 1, 2), ("char_wb", 2, 5)),
        *,
        min_df: int = 1,
        sublinear_tf: bool = False,
    ) -> None:
        for analyzer, low, high in blocks:
            if analyzer not in ANALYZERS or not 1 <= low <= high:
                raise ValueError(f"bad n-gram block {(analyzer, low, high)!r}")
        self.spec = tuple((str(a), int(lo), int(hi)) for a, lo, hi in blocks)
        self.min_df = int(min_df)
        self.sublinear_tf = bool(sublinear_tf)
        self._blocks: list[_Block] = []

    @property
    def fitted(self) -> bool:
        return bool(self._blocks)

    @property
    def width(self) -> int:
        return sum(len(b.vocabulary) for b in self._blocks)

    def fit(self, texts: Sequence[str]) -> LexicalVectorizer:
        """Learn vocabulary and idf from ``texts`` (the training answers)."""
        n = len(texts)
        blocks: list[_Block] = []
        for analyzer, low, high in self.spec:
            document_frequency: Counter[str] = Counter()
            for text in texts:
                document_frequency.update(set(_analyze(text, analyzer, low, high)))
            kept = sorted(g for g, df in document_frequency.items() if df >= self.min_df)
            vocabulary = {g: i for i, g in enumerate(kept)}
            df = np.array([document_frequency[g] for g in kept], dtype=np.float64)
            idf = (np.log((1.0 + n) / (1.0 + df)) + 1.0).astype(np.float64)
            blocks.append(_Block(analyzer, low, high, vocabulary, idf))
        self._blocks = blocks
        return self

    def transform(self, texts: Sequence[str]) -> SparseRows:
        """TF-IDF rows of ``texts`` (unknown n-grams are ignored)."""
        if not self._blocks:
            raise ValueError("LexicalVectorizer is not fitted")
        indptr = [0]
        indices: list[int] = []
        data: list[float] = []
        for text in texts:
            offset = 0
            for block in self._blocks:
                # look up and count in C (map + Counter); unknown n-grams count under None
                counts: Counter[int | None] = Counter(block.columns(text))
                counts.pop(None, None)
                if counts:
                    columns = np.fromiter(counts.keys(), dtype=np.int64, count=len(counts))
                    tf = np.fromiter(counts.values(), dtype=np.float64, count=len(counts))
                    if self.sublinear_tf:
                        tf = 1.0 + np.log(tf)
                    values = tf * block.idf[columns]
                    norm = math.sqrt(float((values * values).sum()))
                    if norm > 0:
                        values /= norm
                    order = np.argsort(columns)
                    indices.extend((columns[order] + offset).tolist())
                    data.extend(values[order].tolist())
                offset += len(block.vocabulary)
            indptr.append(len(indices))
        return SparseRows(
            indptr=np.asarray(indptr, dtype=np.int64),
            indices=np.asarray(indices, dtype=np.int64),
            data=np.asarray(data, dtype=np.float64),
            width=self.width,
        )

    def fit_transform(self, texts: Sequence[str]) -> SparseRows:
        return self.fit(texts).transform(texts)

    # -- storage -----------------------------------------------------------------------------

    def state(self) -> tuple[dict[str, object], dict[str, np.ndarray]]:
        """(JSON-able description with the vocabularies, arrays) to store the fitted vectorizer."""
        description: dict[str, object] = {
            "min_df": self.min_df,
            "sublinear_tf": self.sublinear_tf,
            "blocks": [
                {
                    "analyzer": b.analyzer,
                    "ngram_range": [b.low, b.high],
                    # the n-grams in column order: list position = column within the block
                    "vocabulary": [
                        g for g, _ in sorted(b.vocabulary.items(), key=lambda kv: kv[1])
                    ],
                }
                for b in self._blocks
            ],
        }
        arrays = {f"lexical.idf.{i}": b.idf.astype(np.float32) for i, b in enumerate(self._blocks)}
        return description, arrays

    @classmethod
    def from_state(
        cls, description: Mapping[str, object], arrays: Mapping[str, np.ndarray]
    ) -> LexicalVectorizer:
        raw_blocks = description["blocks"]
        if not isinstance(raw_blocks, list):
            raise ValueError("lexical state: 'blocks' must be a list")
        spec = [
            (str(b["analyzer"]), int(b["ngram_range"][0]), int(b["ngram_range"][1]))
            for b in raw_blocks
        ]
        vectorizer = cls(
            spec,
            min_df=int(description.get("min_df", 1)),  # type: ignore[call-overload]
            sublinear_tf=bool(description.get("sublinear_tf", False)),
        )
        blocks = []
        for i, (raw, (analyzer, low, high)) in enumerate(zip(raw_blocks, spec, strict=True)):
            vocabulary = {str(g): j for j, g in enumerate(raw["vocabulary"])}
            idf = np.asarray(arrays[f"lexical.idf.{i}"], dtype=np.float64)
            if idf.shape != (len(vocabulary),):
                raise ValueError(f"lexical state: block {i} idf does not match its vocabulary")
            blocks.append(_Block(analyzer, low, high, vocabulary, idf))
        vectorizer._blocks = blocks
        return vectorizer


def linear_logits(rows: SparseRows, coef: np.ndarray, intercept: np.ndarray) -> np.ndarray:
    """``rows @ coef.T + intercept`` for sparse rows: ``[n, classes]``."""
    out = np.tile(np.asarray(intercept, dtype=np.float64), (len(rows), 1))
    weights = np.asarray(coef, dtype=np.float64)
    for i in range(len(rows)):
        start, stop = int(rows.indptr[i]), int(rows.indptr[i + 1])
        if stop > start:
            out[i] += weights[:, rows.indices[start:stop]] @ rows.data[start:stop]
    return out


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax, numerically stable."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return np.asarray(exp / exp.sum(axis=1, keepdims=True))
