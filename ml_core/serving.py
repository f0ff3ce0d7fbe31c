"""One way to serve any model kind: the :class:`Scorer` protocol and the :class:`ServingSet`.

A *scorer* scores a batch of ``(item_key, text)`` requests of the items it holds and says what
it holds and how many bytes it keeps resident. The multi-item
:class:`~ml_core.engine.ScoringEngine` (``head``, ``lora``, merged LoRA groups exported per
item), a merged group's :class:`~ml_core.merge.group.GroupScorer` (``merged``/``full``), a
distilled :class:`~ml_core.distill.scorer.DistilledScorer` and :class:`AutoScorer` (``auto``)
all implement it.

A *loader* puts one item's version into the scorer that serves its kind and takes it out again.
The :class:`ServingSet` keeps, per item, which version it serves and from which loader; a kind
maps to its loader through a registry (``{kind: loader}``), so callers never branch on kinds.
Scoring a mixed batch calls each scorer once with its own requests; ``auto`` items that read
the frozen backbone get their pooled vectors from the shared engine in the same forward passes
as the engine's own items (:meth:`~ml_core.engine.ScoringEngine.score_and_embed`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

from ml_core.answers import clean_answer_text
from ml_core.artifact import ArtifactError
from ml_core.engine import Embedded, ScoreRequest, ScoreResult, ScoringEngine, error_result

if TYPE_CHECKING:
    from ml_core.distill.scorer import DistilledScorer
    from ml_core.merge.group import GroupScorer

logger = logging.getLogger(__name__)


@runtime_checkable
class Scorer(Protocol):
    """Scores answers of the items it holds; never raises for bad input (``error`` is set)."""

    def score_requests(self, requests: Sequence[ScoreRequest]) -> list[ScoreResult]:
        """One result per request, same order; an item it does not hold gives an error result."""
        ...

    def held(self) -> Mapping[str, str]:
        """``item_key -> version label`` of every item it serves."""
        ...

    def resident_bytes(self) -> Mapping[str, int]:
        """Bytes it keeps in memory, by part (e.g. ``backbone``, ``items``)."""
        ...


@runtime_checkable
class BackboneReader(Protocol):
    """A scorer whose models read the frozen backbone's pooled vectors, which a serving set
    computes in the shared engine's forward passes."""

    def texts_to_embed(self, requests: Sequence[ScoreRequest]) -> list[str | None]:
        """Per request, the text whose pooled vector it needs, or None."""
        ...

    def score_embedded(
        self, requests: Sequence[ScoreRequest], embedded: Embedded | None, rows: Sequence[int]
    ) -> list[ScoreResult]:
        """Score ``requests``; row ``j`` of ``embedded`` is the vector of ``requests[rows[j]]``."""
        ...


class VersionLoader(Protocol):
    """Puts item versions into the scorer that serves them (one loader per kind, or shared)."""

    def load(self, item_key: str, version: str, artifact_path: Path) -> Scorer:
        """Serve ``item_key`` at ``version`` (replacing a version it held); returns the scorer
        that now scores it. Raises (``ArtifactError``, ``OSError``...) and changes nothing when
        the artifact cannot be served."""
        ...

    def unload(self, item_key: str) -> None:
        """Stop serving ``item_key`` (no error if it is not held)."""
        ...


@dataclass(frozen=True)
class ServedVersion:
    """What a serving set serves for one item."""

    item_key: str
    kind: str
    version: str
    artifact_path: Path


class LazyEngine:
    """The shared engine, created on first call (in the worker process, after fork)."""

    def __init__(self, create: Callable[[], ScoringEngine]) -> None:
        self._create = create
        self._engine: ScoringEngine | None = None
        self._lock = threading.Lock()

    def __call__(self) -> ScoringEngine:
        with self._lock:
            if self._engine is None:
                self._engine = self._create()
            return self._engine

    def if_loaded(self) -> ScoringEngine | None:
        """The engine if it was created, without creating it."""
        return self._engine


# ---------------------------------------------------------------------------------------------
# Loaders


class EngineLoader:
    """``head``/``lora`` artifacts (and merged LoRA groups exported per item): the shared engine."""

    def __init__(self, engine: Callable[[], ScoringEngine]) -> None:
        self._engine = engine

    def load(self, item_key: str, version: str, artifact_path: Path) -> Scorer:
        engine = self._engine()
        if engine.loaded().get(item_key) != version:
            logger.info("loading %s from %s", version, artifact_path)
            engine.load_item(item_key, Path(artifact_path), version)
        return engine

    def unload(self, item_key: str) -> None:
        self._engine().remove_item(item_key)


class _GroupServing:
    """The items one merged group folder serves here, with the labels they are served under."""

    def __init__(self, scorer: GroupScorer) -> None:
        self.scorer = scorer
        self.items: dict[str, str] = {}

    def score_requests(self, requests: Sequence[ScoreRequest]) -> list[ScoreResult]:
        return self.scorer.score_requests(requests, self.items)

    def held(self) -> Mapping[str, str]:
        return dict(self.items)

    def resident_bytes(self) -> Mapping[str, int]:
        return self.scorer.resident_bytes()


class GroupLoader:
    """Merged ``full`` groups and unmerged ``full`` models (a group of one): one
    :class:`~ml_core.merge.group.GroupScorer` (a whole encoder) per folder, loaded on first use
    and dropped as soon as none of its items is served from it."""

    def __init__(self, open_group: Callable[[Path], GroupScorer]) -> None:
        self._open = open_group
        self._groups: dict[str, _GroupServing] = {}
        self._where: dict[str, str] = {}  # item key -> folder
        self._lock = threading.Lock()

    def load(self, item_key: str, version: str, artifact_path: Path) -> Scorer:
        folder = str(Path(artifact_path).resolve())
        with self._lock:
            held = self._groups.get(folder)
            if held is None:
                logger.info("loading merged group %s for %s", folder, version)
                held = _GroupServing(self._open(Path(folder)))
            if item_key not in held.scorer.item_ids:
                raise ArtifactError(f"item {item_key!r} is not in the merged group at {folder}")
            self._groups[folder] = held
            previous = self._where.get(item_key)
            if previous is not None and previous != folder:
                self._leave(item_key)
            held.items[item_key] = version
            self._where[item_key] = folder
            return held

    def unload(self, item_key: str) -> None:
        with self._lock:
            self._leave(item_key)

    def _leave(self, item_key: str) -> None:
        folder = self._where.pop(item_key, None)
        group = self._groups.get(folder) if folder else None
        if group is None:
            return
        group.items.pop(item_key, None)
        if not group.items:
            logger.info("dropping merged group %s: no item is served from it", folder)
            del self._groups[folder]  # type: ignore[arg-type]


class RoutingLoader:
    """``merged`` versions: a group folder goes to the group loader, a per-item export (a merged
    LoRA group written as ``lora`` artifacts) to the engine."""

    def __init__(self, choose: Callable[[Path], VersionLoader]) -> None:
        self._choose = choose
        self._by_item: dict[str, VersionLoader] = {}

    def load(self, item_key: str, version: str, artifact_path: Path) -> Scorer:
        loader = self._choose(Path(artifact_path))
        scorer = loader.load(item_key, version, artifact_path)
        previous = self._by_item.get(item_key)
        if previous is not None and previous is not loader:
            previous.unload(item_key)
        self._by_item[item_key] = loader
        return scorer

    def unload(self, item_key: str) -> None:
        loader = self._by_item.pop(item_key, None)
        if loader is not None:
            loader.unload(item_key)


class _StudentServing:
    """One distilled student served under its item key and version label."""

    def __init__(self, item_key: str, version: str, student: DistilledScorer) -> None:
        self.item_key, self.version, self.student = item_key, version, student

    def score_requests(self, requests: Sequence[ScoreRequest]) -> list[ScoreResult]:
        return self.student.score_requests(requests, {self.item_key: self.version})

    def held(self) -> Mapping[str, str]:
        return {self.item_key: self.version}

    def resident_bytes(self) -> Mapping[str, int]:
        return self.student.resident_bytes()


class StudentLoader:
    """``distilled`` versions: one ONNX student per item, apart from the backbone."""

    def __init__(self, open_student: Callable[[Path], DistilledScorer]) -> None:
        self._open = open_student

    def load(self, item_key: str, version: str, artifact_path: Path) -> Scorer:
        logger.info("loading student %s from %s", version, artifact_path)
        return _StudentServing(item_key, version, self._open(Path(artifact_path)))

    def unload(self, item_key: str) -> None:
        pass  # the serving set drops its only reference


class AutoModelLike(Protocol):
    """What :class:`AutoScorer` needs of ``ml_core.auto.AutoModel``."""

    version: str
    labels: tuple[int, ...]
    pooling: str
    normalize_embeddings: bool
    backbone_fingerprint: str
    needs_embeddings: bool

    def probabilities(self, texts: Sequence[str], embeddings: np.ndarray | None) -> np.ndarray: ...

    def decode(self, probabilities: np.ndarray) -> np.ndarray:
        """Class indices of the served scores."""
        ...


@dataclass(frozen=True)
class _AutoItem:
    version: str
    model: AutoModelLike
    nbytes: int


def load_auto_model(artifact_path: Path) -> AutoModelLike:
    """``ml_core.auto.AutoModel.load`` (imported here: scikit-learn loads only where used)."""
    from ml_core.auto import AutoModel

    model: AutoModelLike = AutoModel.load(Path(artifact_path))
    return model


class AutoScorer:
    """``auto`` items: each item's own lexical + embedding model on the shared engine's pooled
    backbone vectors. Thread-safe (items are swapped copy-on-write).

    Used alone, :meth:`score_requests` asks the engine for the vectors; in a
    :class:`ServingSet` they come from the same forward passes as every other item's answers
    (:meth:`texts_to_embed`, :meth:`score_embedded`).
    """

    def __init__(
        self,
        engine: Callable[[], ScoringEngine],
        open_model: Callable[[Path], AutoModelLike] = load_auto_model,
    ) -> None:
        self._engine = engine
        self._open = open_model
        self._items: Mapping[str, _AutoItem] = {}
        self._lock = threading.Lock()

    # loader side
    def load(self, item_key: str, version: str, artifact_path: Path) -> AutoScorer:
        current = self._items.get(item_key)
        if current is not None and current.version == version:
            return self
        logger.info("loading %s from %s", version, artifact_path)
        model = self._open(Path(artifact_path))
        if model.needs_embeddings:
            engine = self._engine()
            if model.backbone_fingerprint != engine.fingerprint:
                raise ArtifactError(
                    f"auto model {artifact_path} was trained on backbone "
                    f"{model.backbone_fingerprint}, but the engine runs {engine.fingerprint}"
                )
            if model.pooling != engine.pooling:
                raise ArtifactError(
                    f"auto model {artifact_path} uses {model.pooling!r} pooling; the engine "
                    f"uses {engine.pooling!r}"
                )
        nbytes = sum(f.stat().st_size for f in Path(artifact_path).rglob("*") if f.is_file())
        with self._lock:
            self._items = {**self._items, item_key: _AutoItem(version, model, nbytes)}
        return self

    def unload(self, item_key: str) -> None:
        with self._lock:
            self._items = {k: v for k, v in self._items.items() if k != item_key}

    # scorer side
    def held(self) -> Mapping[str, str]:
        return {key: item.version for key, item in self._items.items()}

    def resident_bytes(self) -> Mapping[str, int]:
        # the artifacts' size on disk: their estimators hold about as much in memory
        return {"items": sum(item.nbytes for item in self._items.values())}

    def texts_to_embed(self, requests: Sequence[ScoreRequest]) -> list[str | None]:
        """Per request, the cleaned answer whose backbone vector its model reads, or None."""
        items = self._items
        out: list[str | None] = []
        for request in requests:
            item = items.get(request.item_key)
            text, problem = clean_answer_text(getattr(request, "text", None))
            out.append(text if item and item.model.needs_embeddings and not problem else None)
        return out

    def score_requests(self, requests: Sequence[ScoreRequest]) -> list[ScoreResult]:
        wanted = self.texts_to_embed(requests)
        rows = [i for i, text in enumerate(wanted) if text is not None]
        embedded: Embedded | None = None
        if rows:
            embedded = self._engine().score_and_embed([], [str(wanted[i]) for i in rows])[1]
        return self.score_embedded(requests, embedded, rows)

    def score_embedded(
        self, requests: Sequence[ScoreRequest], embedded: Embedded | None, rows: Sequence[int]
    ) -> list[ScoreResult]:
        """Score with the vectors of ``requests[rows[j]]`` in ``embedded`` row ``j``."""
        items = self._items
        vector_of = {position: j for j, position in enumerate(rows)}
        results: list[ScoreResult | None] = [None] * len(requests)
        by_item: dict[str, list[tuple[int, str]]] = {}
        for position, request in enumerate(requests):
            key = str(getattr(request, "item_key", ""))
            text, problem = clean_answer_text(getattr(request, "text", None))
            item = items.get(key)
            if item is None:
                results[position] = error_result(key, f"unknown item {key!r}")
            elif problem is not None:
                results[position] = error_result(key, problem, item.version)
            elif item.model.needs_embeddings and (
                embedded is None
                or position not in vector_of
                or not np.isfinite(embedded.vectors[vector_of[position]]).all()
            ):
                results[position] = error_result(key, "scoring failed: no embedding", item.version)
            else:
                by_item.setdefault(key, []).append((position, text))
        for key, rows_of_item in by_item.items():
            item = items[key]
            texts = [text for _, text in rows_of_item]
            vectors: np.ndarray | None = None
            truncated = [False] * len(rows_of_item)
            if item.model.needs_embeddings and embedded is not None:
                picked = [vector_of[position] for position, _ in rows_of_item]
                # pooled and not normalised, as the model was trained on (it normalises them)
                vectors = embedded.vectors[picked].astype(np.float32)
                truncated = [bool(embedded.truncated[j]) for j in picked]
            try:
                probabilities = np.asarray(item.model.probabilities(texts, vectors), dtype=float)
                scores = np.asarray(item.model.decode(probabilities)).astype(int)
                if len(scores) and not 0 <= scores.min() <= scores.max() < len(item.model.labels):
                    raise ValueError("decoded a class outside the model's labels")
            except Exception as exc:  # noqa: BLE001 - report per answer, keep serving
                logger.exception("auto model %s failed", item.version)
                for position, _ in rows_of_item:
                    results[position] = error_result(
                        key, f"scoring failed: {type(exc).__name__}: {exc}", item.version
                    )
                continue
            labels = item.model.labels
            for row, (position, _) in enumerate(rows_of_item):
                chosen = int(scores[row])  # a class index
                probs = probabilities[row]
                results[position] = ScoreResult(
                    item_key=key,
                    score=int(labels[chosen]),
                    probabilities=tuple(float(p) for p in probs),
                    # the probability of the class posted, not the top one (cut points may differ)
                    confidence=float(probs[chosen]),
                    model_version=item.version,
                    truncated=truncated[row],
                )
        return [r if r is not None else error_result("", "internal error") for r in results]


# ---------------------------------------------------------------------------------------------
# The serving set


@dataclass
class _Held:
    served: ServedVersion
    loader: VersionLoader
    scorer: Scorer


@dataclass
class ServingSet:
    """Every item's served version, loaded, swapped and retired by (item, kind, version, path).

    ``loaders`` maps each model kind to the loader that serves it; ``engine`` (optional) is the
    shared engine whose forward passes also give :class:`BackboneReader` scorers (``auto``
    items) their vectors.
    Thread-safe: scoring reads one consistent map of items while versions change.
    """

    loaders: Mapping[str, VersionLoader]
    engine: LazyEngine | None = None
    _held: Mapping[str, _Held] = field(default_factory=dict, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    last_retired_check: float = field(default=0.0, init=False)
    """When :meth:`retire_except` last ran (``time.monotonic()``), for callers that run it
    periodically."""

    @property
    def kinds(self) -> tuple[str, ...]:
        return tuple(self.loaders)

    def ensure(self, item_key: str, kind: str, version: str, artifact_path: str | Path) -> None:
        """Serve ``version`` for the item (a no-op when it already does); the previous version
        keeps serving if this one cannot be loaded (the error is raised)."""
        path = Path(artifact_path)
        wanted = ServedVersion(item_key, kind, version, path)
        current = self._held.get(item_key)
        if current is not None and current.served == wanted:
            return
        loader = self.loaders.get(kind)
        if loader is None:
            raise ArtifactError(f"no loader serves model kind {kind!r} (known: {self.kinds})")
        with self._lock:
            current = self._held.get(item_key)
            if current is not None and current.served == wanted:
                return
            scorer = loader.load(item_key, version, path)
            if (
                current is not None
                and current.loader is not loader
                and current.scorer is not scorer  # e.g. head -> merged LoRA export: same engine
            ):
                current.loader.unload(item_key)
            self._held = {**self._held, item_key: _Held(wanted, loader, scorer)}

    def retire(self, item_key: str) -> bool:
        """Stop serving the item and free what only it used; False if it was not served."""
        with self._lock:
            current = self._held.get(item_key)
            if current is None:
                return False
            current.loader.unload(item_key)
            self._held = {k: v for k, v in self._held.items() if k != item_key}
            return True

    def retire_except(self, active: Mapping[str, str]) -> int:
        """Retire every item whose served version is not ``active[item]``; returns how many."""
        stale = [key for key, held in self._held.items() if active.get(key) != held.served.version]
        return sum(self.retire(key) for key in stale)

    def served(self) -> dict[str, ServedVersion]:
        """What is served, per item."""
        return {key: held.served for key, held in self._held.items()}

    def scorers(self) -> list[Scorer]:
        """The distinct scorers serving at least one item."""
        unique: dict[int, Scorer] = {}
        for held in self._held.values():
            unique.setdefault(id(held.scorer), held.scorer)
        return list(unique.values())

    def resident_bytes(self) -> dict[str, int]:
        """Bytes held, by scorer type and part (``ScoringEngine.backbone``, ...), summed."""
        out: dict[str, int] = {}
        for scorer in self.scorers():
            for part, nbytes in scorer.resident_bytes().items():
                name = f"{type(scorer).__name__.lstrip('_')}.{part}"
                out[name] = out.get(name, 0) + int(nbytes)
        return out

    def score(self, requests: Sequence[ScoreRequest]) -> list[ScoreResult]:
        """Score any mix of items: each scorer once with its own requests; the engine's items and
        the backbone vectors of ``auto`` items in the same forward passes. One result per
        request, same order; an item not served gives an error result."""
        held = self._held
        results: list[ScoreResult | None] = [None] * len(requests)
        groups: dict[int, tuple[Scorer, list[int]]] = {}
        for position, request in enumerate(requests):
            entry = held.get(getattr(request, "item_key", ""))
            if entry is None:
                key = getattr(request, "item_key", "")
                results[position] = error_result(str(key), f"item {key!r} is not served here")
                continue
            groups.setdefault(id(entry.scorer), (entry.scorer, []))[1].append(position)

        engine = self._engine_if_serving(groups)
        readers: list[tuple[BackboneReader, list[int], list[int], int]] = []
        texts: list[str] = []
        engine_positions: list[int] = []
        for scorer, positions in groups.values():
            if scorer is engine:
                engine_positions = positions
            elif isinstance(scorer, BackboneReader) and self.engine is not None:
                wanted = scorer.texts_to_embed([requests[p] for p in positions])
                rows = [j for j, text in enumerate(wanted) if text is not None]
                readers.append((scorer, positions, rows, len(texts)))
                texts.extend(str(wanted[j]) for j in rows)
        embedded: Embedded | None = None
        if texts or engine_positions:
            if engine is not None:
                provider = engine
            else:
                assert self.engine is not None  # texts only come with an engine
                provider = self.engine()
            scored, embedded = provider.score_and_embed(
                [requests[p] for p in engine_positions], texts
            )
            for position, result in zip(engine_positions, scored, strict=True):
                results[position] = result
        for reader, positions, rows, first in readers:
            part = None
            if embedded is not None and rows:
                end = first + len(rows)
                part = Embedded(embedded.vectors[first:end], embedded.truncated[first:end])
            own = [requests[p] for p in positions]
            for position, result in zip(
                positions, reader.score_embedded(own, part, rows), strict=True
            ):
                results[position] = result
            if part is not None:  # the plain backbone vector each answer was scored from
                for j, row in enumerate(rows):
                    position = positions[row]
                    found = results[position]
                    if (
                        found is not None
                        and found.error is None
                        and np.isfinite(part.vectors[j]).all()
                    ):
                        results[position] = replace(found, vector=part.vectors[j].copy())
        done = {id(reader) for reader, _, _, _ in readers} | {id(engine)}
        for key, (scorer, positions) in groups.items():
            if key in done:
                continue
            scored = scorer.score_requests([requests[p] for p in positions])
            for position, result in zip(positions, scored, strict=True):
                results[position] = result
        return [r if r is not None else error_result("", "internal error") for r in results]

    @staticmethod
    def _engine_if_serving(
        groups: Mapping[int, tuple[Scorer, list[int]]],
    ) -> ScoringEngine | None:
        for scorer, _ in groups.values():
            if isinstance(scorer, ScoringEngine):
                return scorer
        return None


def default_loaders(
    engine: Callable[[], ScoringEngine],
    open_group: Callable[[Path], GroupScorer],
    open_student: Callable[[Path], DistilledScorer],
    open_auto: Callable[[Path], AutoModelLike] = load_auto_model,
) -> dict[str, VersionLoader]:
    """The registry of every model kind Scorebridge trains: kind -> loader."""
    from ml_core.merge.group import is_group_folder

    on_engine = EngineLoader(engine)
    groups = GroupLoader(open_group)
    on_own_encoder: dict[str, bool] = {}  # artifact folders never change: read each once

    def merged_home(path: Path) -> VersionLoader:
        key = str(Path(path).resolve())
        if key not in on_own_encoder:
            on_own_encoder[key] = is_group_folder(Path(path))
        return groups if on_own_encoder[key] else on_engine

    routed = RoutingLoader(merged_home)
    return {
        "head": on_engine,
        "lora": on_engine,
        "merged": routed,
        "full": routed,
        "distilled": StudentLoader(open_student),
        "auto": AutoScorer(engine, open_auto),
    }
