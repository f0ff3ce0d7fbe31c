"""Distances between feature sets, the plans made from them, and human plan files."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from ml_core.merge.config import DistanceConfig, PlanConfig
from ml_core.merge.distances import (
    DistanceMatrix,
    cached_matrix,
    centroid_cosine_matrix,
    draw_heatmap,
    gw_distance,
    gw_matrix,
    load_matrix,
)
from ml_core.merge.plans import (
    MergePlan,
    PlanError,
    group_sizes,
    make_plan,
    plan_cost,
    random_plan,
    read_plan_file,
    within_cost,
)


def _blobs(seed: int, n: int = 40, dim: int = 8, clusters: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((clusters, dim)) * 6
    return (centers[np.arange(n) % clusters] + rng.standard_normal((n, dim))).astype(np.float32)


def test_gw_is_zero_for_identical_sets_and_invariant_to_rotation() -> None:
    x = _blobs(0)
    assert gw_distance(x, x) == pytest.approx(0.0, abs=1e-9)
    # another model's space: the same answers rotated, scaled and in another order
    rotation, _ = np.linalg.qr(np.random.default_rng(1).standard_normal((8, 8)))
    moved = (3.0 * x @ rotation)[np.random.default_rng(2).permutation(len(x))]
    assert gw_distance(x, moved) < 1e-6


def test_gw_is_larger_for_differently_shaped_sets() -> None:
    one_blob, three_blobs = _blobs(0), _blobs(3, clusters=3)
    same_shape = gw_distance(one_blob, _blobs(5))
    assert gw_distance(one_blob, three_blobs) > 3 * same_shape
    # sets of other sizes and dimensions are comparable too
    assert gw_distance(one_blob, _blobs(4, n=25, dim=5, clusters=3)) > same_shape


def test_gw_matrix_is_symmetric_with_zero_diagonal_and_cosine_baseline_too() -> None:
    features = {f"i{k}": _blobs(k, n=20, clusters=1 + k % 2) for k in range(4)}
    for matrix in (
        gw_matrix(features, DistanceConfig(metric="cosine")),
        centroid_cosine_matrix(features),
    ):
        assert matrix.values.shape == (4, 4)
        assert np.allclose(matrix.values, matrix.values.T)
        assert np.allclose(np.diag(matrix.values), 0.0)


def test_matrix_is_cached_by_item_hashes(tmp_path: Path) -> None:
    features = {"a": _blobs(0, n=15), "b": _blobs(1, n=15)}
    first, hit = cached_matrix("gw", features, {"a": "h1", "b": "h2"}, tmp_path)
    assert not hit
    again, hit = cached_matrix("gw", features, {"a": "h1", "b": "h2"}, tmp_path)
    assert hit and np.allclose(first.values, again.values)
    _, hit = cached_matrix("gw", features, {"a": "h1", "b": "retrained"}, tmp_path)
    assert not hit
    saved = sorted(tmp_path.glob("*.npz"))[0]
    assert load_matrix(saved).item_ids == ("a", "b")
    assert json.loads(saved.with_suffix(".json").read_text())["item_ids"] == ["a", "b"]


def test_heatmap_png_is_written(tmp_path: Path) -> None:
    matrix = gw_matrix({f"i{k}": _blobs(k, n=12) for k in range(3)})
    path = draw_heatmap(matrix, tmp_path / "out" / "gw.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _brute_force(values: np.ndarray, sizes: list[int]) -> float:
    n = len(values)
    best = float("inf")
    for order in itertools.permutations(range(n)):
        groups, start = [], 0
        for size in sizes:
            groups.append(order[start : start + size])
            start += size
        best = min(best, within_cost(values, groups))
    return best


def test_group_sizes_are_balanced() -> None:
    assert group_sizes(12, 3) == [3, 3, 3, 3]
    assert group_sizes(10, 3) == [3, 3, 2, 2]
    assert group_sizes(5, 2) == [2, 2, 1]


@pytest.mark.parametrize("exact_max_items", [14, 0])
def test_plan_minimizes_within_group_distance(exact_max_items: int) -> None:
    rng = np.random.default_rng(7)
    upper = np.triu(rng.random((7, 7)), 1)
    matrix = DistanceMatrix(tuple(f"i{k}" for k in range(7)), upper + upper.T, "test")
    plan = make_plan(matrix, PlanConfig(group_size=3, exact_max_items=exact_max_items, restarts=32))
    assert sorted(len(g) for g in plan.groups) == [2, 2, 3]
    assert plan_cost(plan, matrix) == pytest.approx(_brute_force(matrix.values, [3, 2, 2]))


def test_plan_recovers_planted_trios_in_a_large_set() -> None:
    # 24 items in 8 planted trios: close inside a trio, far across
    n = 24
    rng = np.random.default_rng(3)
    cluster = rng.permutation(n) // 3
    values = np.where(cluster[:, None] == cluster[None, :], 0.1, 1.0) + 0.05 * rng.random((n, n))
    values = (values + values.T) / 2
    np.fill_diagonal(values, 0.0)
    ids = tuple(f"i{k}" for k in range(n))
    plan = make_plan(DistanceMatrix(ids, values, "planted"), PlanConfig(group_size=3, restarts=16))
    found = {frozenset(g) for g in plan.groups}
    planted = {frozenset(ids[i] for i in range(n) if cluster[i] == c) for c in range(8)}
    assert found == planted
    assert random_plan(ids, 3, seed=1).item_ids != plan.item_ids  # the baseline is a different plan


def test_human_plan_files_are_read_and_validated(tmp_path: Path) -> None:
    items = ["a", "b", "c", "d"]
    good = tmp_path / "plan.json"
    good.write_text(json.dumps({"groups": [["a", "b"], ["c", "d"]]}))
    assert read_plan_file(good, items).groups == (("a", "b"), ("c", "d"))
    as_csv = tmp_path / "plan.csv"
    as_csv.write_text("item_id,group\na,1\nc,2\nb,1\nd,2\n")
    assert read_plan_file(as_csv, items) == MergePlan((("a", "b"), ("c", "d")), "human")
    bad_cases = {
        "twice": [["a", "b"], ["b", "c", "d"]],
        "unknown": [["a", "b"], ["c", "d", "x"]],
        "missing": [["a", "b"], ["c"]],
        "empty": [["a", "b", "c", "d"], []],
    }
    for name, groups in bad_cases.items():
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(groups))
        with pytest.raises(PlanError):
            read_plan_file(path, items)
    with pytest.raises(PlanError, match="at most 2"):
        read_plan_file(
            _write(tmp_path / "big.json", [["a", "b", "c"], ["d"]]), items, max_group_size=2
        )
    with pytest.raises(PlanError, match="columns"):
        read_plan_file(_write_text(tmp_path / "bad.csv", "item,grp\na,1\n"), items)


def _write(path: Path, groups: list[list[str]]) -> Path:
    path.write_text(json.dumps(groups))
    return path


def _write_text(path: Path, text: str) -> Path:
    path.write_text(text)
    return path
