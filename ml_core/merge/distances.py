"""Distances between items: Gromov-Wasserstein between their answers' feature sets, and baselines.

Each item's answers are embedded by that item's own model, so two items' features live in
different spaces; GW compares the *shape* of the two sets (their intra-set distance matrices)
without any correspondence between the spaces. Baselines: cosine distance between the centroids
(which assumes the spaces are comparable) and random distances (a random plan).

The matrix is cached as ``distances-<key>.npz`` plus a JSON sidecar; the key hashes the
artifacts' content hashes, the item order and the settings, so a retrained item invalidates it.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import ot

from ml_core.merge.config import DISTANCES, DistanceConfig


@dataclass(frozen=True)
class DistanceMatrix:
    """Symmetric ``[n, n]`` distances (zero diagonal) between ``item_ids``, in that order."""

    item_ids: tuple[str, ...]
    values: np.ndarray
    kind: str
    seconds: float = 0.0

    def index(self, item_id: str) -> int:
        return self.item_ids.index(item_id)


def intra_distances(
    features: np.ndarray, config: DistanceConfig, labels: np.ndarray | None = None
) -> np.ndarray:
    """Normalized ``[n, n]`` distance matrix inside one feature set.

    With ``config.label_weight`` > 0 and ``labels`` (each answer's score as a fraction of the
    item's maximum, in [0, 1]) the cost is ``(1 - w) * features + w * |score difference|``.
    """
    x = np.asarray(features, dtype=np.float64)
    if config.metric == "cosine":
        x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        matrix = np.clip(1.0 - x @ x.T, 0.0, 2.0)
    else:
        squared = (x * x).sum(axis=1)
        matrix = np.sqrt(np.maximum(squared[:, None] + squared[None, :] - 2.0 * x @ x.T, 0.0))
    np.fill_diagonal(matrix, 0.0)
    # models differ in feature scale; normalizing makes GW compare structure, not scale
    scale = (
        matrix.max() if config.normalize == "max" else matrix[~np.eye(len(x), dtype=bool)].mean()
    )
    matrix = matrix / scale if scale > 0 else matrix
    if labels is not None and config.label_weight > 0:
        y = np.asarray(labels, dtype=np.float64).reshape(-1)
        if y.shape[0] != x.shape[0]:
            raise ValueError(f"{y.shape[0]} labels for {x.shape[0]} feature rows")
        w = config.label_weight
        matrix = (1.0 - w) * matrix + w * np.abs(y[:, None] - y[None, :])
    return matrix


def gw_distance(
    first: np.ndarray, second: np.ndarray, config: DistanceConfig | None = None
) -> float:
    """Gromov-Wasserstein discrepancy (square loss, uniform weights) of two feature sets.

    Feature sets may differ in size and dimension. Identical sets give ~0.
    """
    config = config or DistanceConfig()
    return _gw_from_intra(intra_distances(first, config), intra_distances(second, config), config)


def _gw_from_intra(c1: np.ndarray, c2: np.ndarray, config: DistanceConfig) -> float:
    p = ot.unif(c1.shape[0])
    q = ot.unif(c2.shape[0])
    value = ot.gromov.gromov_wasserstein2(
        c1, c2, p, q, loss_fun="square_loss", max_iter=config.max_iter, tol_rel=config.tol
    )
    return max(0.0, float(value))


def gw_matrix(
    features: Mapping[str, np.ndarray],
    config: DistanceConfig | None = None,
    labels: Mapping[str, np.ndarray] | None = None,
) -> DistanceMatrix:
    """All-pairs GW distances; intra-set matrices are computed once per item.

    ``labels`` (item -> score fractions of the feature rows) are used when
    ``config.label_weight`` > 0.
    """
    config = config or DistanceConfig()
    config.validate()
    started = time.perf_counter()
    item_ids = tuple(features)
    intra = [
        intra_distances(features[item], config, labels.get(item) if labels else None)
        for item in item_ids
    ]
    values = np.zeros((len(item_ids), len(item_ids)))
    for i, j in itertools.combinations(range(len(item_ids)), 2):
        values[i, j] = values[j, i] = _gw_from_intra(intra[i], intra[j], config)
    return DistanceMatrix(item_ids, values, "gw", time.perf_counter() - started)


def centroid_cosine_matrix(features: Mapping[str, np.ndarray]) -> DistanceMatrix:
    """``1 - cos`` between the items' mean feature vectors (baseline; assumes shared spaces)."""
    started = time.perf_counter()
    item_ids = tuple(features)
    centroids = np.stack(
        [np.asarray(features[item], dtype=np.float64).mean(axis=0) for item in item_ids]
    )
    centroids /= np.maximum(np.linalg.norm(centroids, axis=1, keepdims=True), 1e-12)
    values = np.clip(1.0 - centroids @ centroids.T, 0.0, 2.0)
    np.fill_diagonal(values, 0.0)
    return DistanceMatrix(item_ids, values, "centroid_cosine", time.perf_counter() - started)


def random_matrix(item_ids: Sequence[str], seed: int = 0) -> DistanceMatrix:
    """Symmetric uniform random distances: planning on them gives a random plan."""
    rng = np.random.default_rng(seed)
    n = len(item_ids)
    upper = np.triu(rng.random((n, n)), k=1)
    return DistanceMatrix(tuple(item_ids), upper + upper.T, "random")


def distance_matrix(
    kind: str,
    features: Mapping[str, np.ndarray],
    config: DistanceConfig | None = None,
    seed: int = 0,
    labels: Mapping[str, np.ndarray] | None = None,
) -> DistanceMatrix:
    """Dispatch on ``kind`` (one of :data:`~ml_core.merge.config.DISTANCES`)."""
    if kind == "gw":
        return gw_matrix(features, config, labels)
    if kind == "centroid_cosine":
        return centroid_cosine_matrix(features)
    if kind == "random":
        return random_matrix(tuple(features), seed)
    raise ValueError(f"distance kind must be one of {DISTANCES}, got {kind!r}")


# --------------------------------------------------------------------------------------------
# Cache


def cache_key(kind: str, item_hashes: Mapping[str, str], settings: Mapping[str, object]) -> str:
    """Hex key of a matrix: the items (in order) with their artifact hashes and the settings."""
    payload = json.dumps(
        {"kind": kind, "items": list(item_hashes.items()), "settings": dict(settings)},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:20]


def save_matrix(
    matrix: DistanceMatrix, path: Path, metadata: Mapping[str, object] | None = None
) -> None:
    """Write ``<path>.npz`` (values, item ids) and ``<path>.json`` (ids, kind, seconds, metadata)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path.with_suffix(".npz"), values=matrix.values, item_ids=np.array(matrix.item_ids))
    sidecar = {
        "kind": matrix.kind,
        "item_ids": list(matrix.item_ids),
        "seconds": matrix.seconds,
        "values": matrix.values.round(8).tolist(),
        **dict(metadata or {}),
    }
    path.with_suffix(".json").write_text(json.dumps(sidecar, indent=2, default=str) + "\n")


def load_matrix(path: Path) -> DistanceMatrix:
    """Read a matrix written by :func:`save_matrix` (``path`` with or without suffix)."""
    path = Path(path)
    with np.load(path.with_suffix(".npz")) as data:
        values = np.asarray(data["values"], dtype=np.float64)
        item_ids = tuple(str(i) for i in data["item_ids"])
    sidecar = path.with_suffix(".json")
    meta = json.loads(sidecar.read_text()) if sidecar.is_file() else {}
    return DistanceMatrix(
        item_ids, values, str(meta.get("kind", "unknown")), float(meta.get("seconds", 0.0))
    )


def cached_matrix(
    kind: str,
    features: Mapping[str, np.ndarray],
    item_hashes: Mapping[str, str],
    cache_dir: Path,
    *,
    config: DistanceConfig | None = None,
    feature_settings: Mapping[str, object] | None = None,
    seed: int = 0,
    labels: Mapping[str, np.ndarray] | None = None,
) -> tuple[DistanceMatrix, bool]:
    """The matrix from ``cache_dir`` if its key matches, else computed and cached; (matrix, hit).

    ``feature_settings`` must say everything that decides the features (and labels) besides the
    artifacts, e.g. which model embedded them.
    """
    config = config or DistanceConfig()
    settings = {
        "distance": asdict(config),
        "features": dict(feature_settings or {}),
        "seed": seed,
        "labels": labels is not None and config.label_weight > 0,
    }
    key = cache_key(kind, {i: item_hashes[i] for i in features}, settings)
    path = Path(cache_dir) / f"distances-{kind}-{key}"
    if path.with_suffix(".npz").is_file():
        return load_matrix(path), True
    matrix = distance_matrix(kind, features, config, seed, labels)
    save_matrix(matrix, path, {"key": key, "item_hashes": dict(item_hashes), "settings": settings})
    return matrix, False


def draw_heatmap(matrix: DistanceMatrix, path: Path, title: str | None = None) -> Path:
    """Save the matrix as a labelled heatmap PNG (matplotlib, Agg: no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(matrix.item_ids)
    size = max(4.0, 0.32 * n + 2.5)
    figure, axes = plt.subplots(figsize=(size + 1.0, size))
    image = axes.imshow(matrix.values, cmap="viridis")
    axes.set_xticks(range(n), labels=matrix.item_ids, rotation=90, fontsize=7)
    axes.set_yticks(range(n), labels=matrix.item_ids, fontsize=7)
    axes.set_title(title or f"{matrix.kind} distance between items")
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04)
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
