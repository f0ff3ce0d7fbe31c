"""Answer groups: an item's answers grouped by how alike they are, so an instructor can score a
group in one action, and the human-scored answers most like a given one ("scored like these").

Vectors: the encoder's. The scoring worker stores, per answer, the pooled backbone vector the
model scored (``pack_vector``: L2-normalised float16, 768 bytes for MiniLM); answers scored by
the same model version are grouped by them, read back from the database, no model in the web
process. Answers without a stored vector (scored before vectors were kept, by a kind that
computes none such as a distilled student, or by another version) fall back to TF-IDF of word
1-2-grams and character 3-5-grams, grouped among themselves. On SAF the encoder's groups agree
better with the human scores than TF-IDF's at the same number of groups
(``benchmarks/grouping.py --compare``; ADR 0012).

Grouping: agglomerative clustering, average linkage on cosine distance, cut at a distance
threshold. No number of groups to guess, deterministic, and for n answers it needs n² distances:
1,000 answers are about 4 MB and well under a second (``benchmarks/grouping.py``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.sparse import csr_matrix, hstack
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.preprocessing import normalize

DEFAULT_DISTANCE = 0.6
"""TF-IDF: cosine distance at which groups stop merging: answers of one group share most of
their words and word pieces; rephrasings with other words stay apart."""
ENCODER_DISTANCE = 0.15
"""Encoder vectors: cosine distance at which groups stop merging. Sentence vectors of answers
to one question are all close (SAF saf-de-1: half the pairs under 0.50 apart); 0.15 keeps a
group to answers that say the same thing (purity 0.86 against the human scores there)."""


def pack_vector(vector: object) -> bytes | None:
    """A pooled vector as stored on a submission: L2-normalised float16 bytes (None if the
    vector is missing, empty, not finite or zero)."""
    if vector is None:
        return None
    array = np.asarray(vector, dtype=np.float32).ravel()
    norm = float(np.linalg.norm(array)) if array.size else 0.0
    if not np.isfinite(array).all() or norm == 0.0:
        return None
    return (array / norm).astype(np.float16).tobytes()


def unpack_vector(data: bytes | memoryview | None) -> np.ndarray | None:
    """A stored vector as float32 (None for none)."""
    if not data:
        return None
    return np.frombuffer(bytes(data), dtype=np.float16).astype(np.float32)


def answer_vectors(texts: Sequence[str], fit_on: Sequence[str] = ()) -> csr_matrix:
    """L2-normalised sparse TF-IDF rows of ``texts``, with the vocabulary of ``texts`` and
    ``fit_on`` together."""
    corpus = [t or "" for t in texts] + [t or "" for t in fit_on]
    if not any(t.strip() for t in corpus):
        return csr_matrix((len(texts), 1))
    words = TfidfVectorizer(
        analyzer="word", ngram_range=(1, 2), sublinear_tf=True, token_pattern=r"(?u)\b\w+\b"
    )
    pieces = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), sublinear_tf=True)
    matrix = hstack([words.fit_transform(corpus), pieces.fit_transform(corpus)]).tocsr()
    return normalize(matrix)[: len(texts)]


def group_indices(
    vectors: csr_matrix | np.ndarray, max_distance: float = DEFAULT_DISTANCE
) -> list[list[int]]:
    """Indices of ``vectors`` (unit rows, sparse or dense) grouped by average-linkage
    agglomerative clustering on cosine distance, cut at ``max_distance``; largest groups first,
    then by first index."""
    n = vectors.shape[0]
    if n == 0:
        return []
    if n == 1:
        return [[0]]
    labels = fcluster(_average_linkage(vectors), t=max_distance, criterion="distance")
    return _by_label(labels)


def split_indices(vectors: csr_matrix | np.ndarray) -> list[list[int]]:
    """Indices of ``vectors`` (unit rows, at least two) in the two groups the top of the same
    dendrogram separates: a tighter cut of one group. One group when they cannot be told apart
    (all identical)."""
    labels = fcluster(_average_linkage(vectors), t=2, criterion="maxclust")
    return _by_label(labels)


def _average_linkage(vectors: csr_matrix | np.ndarray) -> np.ndarray:
    """Average linkage on the condensed cosine distances of unit rows (1 - dot product)."""
    n = vectors.shape[0]
    product = vectors @ vectors.T
    similarity = np.clip(product.toarray() if hasattr(product, "toarray") else product, -1.0, 1.0)
    distances = 1.0 - similarity[np.triu_indices(n, k=1)]
    np.clip(distances, 0.0, 2.0, out=distances)
    return np.asarray(linkage(distances, method="average"))


def _by_label(labels: np.ndarray) -> list[list[int]]:
    groups: dict[int, list[int]] = {}
    for index, label in enumerate(labels):
        groups.setdefault(int(label), []).append(index)
    return sorted(groups.values(), key=lambda g: (-len(g), g[0]))


@dataclass
class Member:
    key: str
    text: str
    score: int | None
    confidence: float | None
    final_score: int | None = None
    vector: bytes | memoryview | None = None
    space: str = ""
    """What the vector is comparable within (the model version that computed it)."""


@dataclass
class AnswerGroup:
    """One group: its members least confident first, its size and the spread of its scores."""

    number: int
    members: list[Member] = field(default_factory=list)

    @property
    def size(self) -> int:
        return len(self.members)

    @property
    def scores(self) -> dict[int, int]:
        """How many members have each (final) score."""
        out: dict[int, int] = {}
        for m in self.members:
            if m.final_score is not None:
                out[m.final_score] = out.get(m.final_score, 0) + 1
        return dict(sorted(out.items()))

    @property
    def spread(self) -> str:
        scores = [m.final_score for m in self.members if m.final_score is not None]
        if not scores:
            return "-"
        low, high = min(scores), max(scores)
        return f"{low}" if low == high else f"{low}–{high}"

    @property
    def lowest_confidence(self) -> float:
        values = [m.confidence for m in self.members if m.confidence is not None]
        return min(values) if values else 1.0


def _encoder_members(members: Sequence[Member]) -> tuple[list[int], np.ndarray | None]:
    """Indices of the members grouped by encoder vector (those of the most common vector space
    with a stored vector of the common length) and their vectors."""
    unpacked = [unpack_vector(m.vector) for m in members]
    spaces = Counter(
        (m.space, v.shape[0]) for m, v in zip(members, unpacked, strict=True) if v is not None
    )
    if not spaces:
        return [], None
    space, size = spaces.most_common(1)[0][0]
    chosen = [
        i
        for i, (m, v) in enumerate(zip(members, unpacked, strict=True))
        if v is not None and m.space == space and v.shape[0] == size
    ]
    return chosen, np.stack([unpacked[i] for i in chosen])  # type: ignore[misc]


def group_members(
    members: Sequence[Member],
    max_distance: float = DEFAULT_DISTANCE,
    encoder_distance: float = ENCODER_DISTANCE,
) -> list[list[int]]:
    """Indices of ``members`` in groups: by encoder vector where stored (one vector space),
    the rest by TF-IDF of their text."""
    with_vectors, vectors = _encoder_members(members)
    rest = sorted(set(range(len(members))) - set(with_vectors))
    groups: list[list[int]] = []
    if vectors is not None and len(with_vectors) > 1:
        groups += [[with_vectors[i] for i in g] for g in group_indices(vectors, encoder_distance)]
    elif with_vectors:
        rest = sorted(rest + with_vectors)
    if rest:
        texts = answer_vectors([members[i].text for i in rest])
        groups += [[rest[i] for i in g] for g in group_indices(texts, max_distance)]
    return groups


def group_anchor(keys: Collection[str]) -> str:
    """What names a group (its members' keys) across page loads: its first key and its size (a
    group split from it has the same first key or another, and fewer members)."""
    return f"{min(keys)}:{len(keys)}"


def _split_in_two(members: Sequence[Member]) -> list[list[int]]:
    """Indices of ``members`` split by a tighter cut: encoder vectors when all of them have one
    in one space, else TF-IDF of their text."""
    with_vectors, vectors = _encoder_members(members)
    if vectors is not None and len(with_vectors) == len(members):
        return [[with_vectors[i] for i in g] for g in split_indices(vectors)]
    return split_indices(answer_vectors([m.text for m in members]))


def _apply_splits(
    members: Sequence[Member], groups: Sequence[list[int]], split: Collection[str]
) -> list[list[int]]:
    """Each group whose anchor is in ``split`` replaced by its two halves, and so on down."""
    done: list[list[int]] = []
    todo = list(groups)
    while todo:
        group = todo.pop()
        if len(group) < 2 or group_anchor([members[i].key for i in group]) not in split:
            done.append(group)
            continue
        halves = _split_in_two([members[i] for i in group])
        if len(halves) < 2:
            done.append(group)  # identical answers: nothing to split
            continue
        todo += [[group[i] for i in half] for half in halves]
    return done


def _edited_groups(
    members: Sequence[Member],
    max_distance: float,
    apart: Sequence[Sequence[str]],
    split: Collection[str],
) -> list[list[int]]:
    """Indices in groups: the answers moved ``apart`` (lists of keys) each form their own group,
    the others are grouped (:func:`group_members`), then the groups named in ``split`` split."""
    position = {m.key: i for i, m in enumerate(members)}
    taken: set[int] = set()
    pulled: list[list[int]] = []
    for keys in apart:
        chosen = [position[k] for k in dict.fromkeys(keys) if k in position]
        chosen = [i for i in chosen if i not in taken]
        if chosen:
            pulled.append(chosen)
            taken.update(chosen)
    rest = [i for i in range(len(members)) if i not in taken]
    grouped = group_members([members[i] for i in rest], max_distance)
    groups = [[rest[i] for i in g] for g in grouped] + pulled
    return _apply_splits(members, groups, set(split))


def build_groups(
    members: Sequence[Member],
    max_distance: float = DEFAULT_DISTANCE,
    *,
    apart: Sequence[Sequence[str]] = (),
    split: Collection[str] = (),
) -> list[AnswerGroup]:
    """``members`` grouped (:func:`group_members`); the answers moved ``apart`` (lists of keys)
    each a group of their own, and the groups whose :func:`group_anchor` is in ``split`` cut
    tighter; groups with the least confident member first, each group's members least
    confident first."""
    groups = []
    for indices in _edited_groups(members, max_distance, apart, split):
        chosen = sorted(
            (members[i] for i in indices),
            key=lambda m: (m.confidence if m.confidence is not None else 1.0, m.key),
        )
        groups.append(AnswerGroup(number=0, members=chosen))
    groups.sort(key=lambda g: (g.lowest_confidence, -g.size))
    for number, group in enumerate(groups, start=1):
        group.number = number
    return groups


@dataclass(frozen=True)
class Neighbour:
    text: str
    score: int
    similarity: float
    source: str


def most_similar(
    text: str, scored: Sequence[tuple[str, int, str]], count: int = 3
) -> list[Neighbour]:
    """The ``count`` human-scored answers (text, score, source) most like ``text``."""
    if not scored:
        return []
    vectors = answer_vectors([text], fit_on=[s[0] for s in scored])
    others = answer_vectors([s[0] for s in scored], fit_on=[text])
    similarity = (others @ vectors[0].T).toarray().ravel()
    order = np.argsort(-similarity, kind="stable")[:count]
    return [
        Neighbour(scored[i][0], scored[i][1], float(similarity[i]), scored[i][2]) for i in order
    ]
