"""Merge plans: a partition of the items into groups whose models become one shared extractor.

A plan from a distance matrix has ``ceil(n / group_size)`` groups whose sizes differ by at most
one (so 12 items in trios are 4 trios, 10 items are 3+3+2+2) and minimizes the total pairwise
distance inside groups. Fixing the sizes fixes the storage saving; the optimizer only decides who
shares. Small sets are solved exactly (dynamic programming over subsets); larger ones by random
restarts of a swap local search. A human plan is read from JSON or CSV and validated.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ml_core.merge.config import PlanConfig

if TYPE_CHECKING:  # POT imports torch; plans are also read and checked by the web process
    from ml_core.merge.distances import DistanceMatrix


class PlanError(ValueError):
    """A plan (usually a human plan file) does not partition the items."""


@dataclass(frozen=True)
class MergePlan:
    """Groups of item ids; ``source`` says where it came from (``gw``, ``human``, ...)."""

    groups: tuple[tuple[str, ...], ...]
    source: str

    @property
    def item_ids(self) -> tuple[str, ...]:
        return tuple(item for group in self.groups for item in group)

    def to_json(self) -> dict[str, object]:
        return {"source": self.source, "groups": [list(g) for g in self.groups]}


def group_sizes(n: int, group_size: int) -> list[int]:
    """Sizes of the ``ceil(n / group_size)`` groups, as equal as possible, largest first."""
    if n == 0:
        return []
    groups = math.ceil(n / group_size)
    base, extra = divmod(n, groups)
    return [base + 1] * extra + [base] * (groups - extra)


def within_cost(values: np.ndarray, groups: Sequence[Sequence[int]]) -> float:
    """Sum of the pairwise distances inside every group."""
    return float(sum(values[i, j] for group in groups for i, j in itertools.combinations(group, 2)))


def plan_cost(plan: MergePlan, matrix: DistanceMatrix) -> float:
    """Total within-group distance of ``plan`` measured with ``matrix``."""
    return within_cost(matrix.values, [[matrix.index(item) for item in g] for g in plan.groups])


def make_plan(
    matrix: DistanceMatrix, config: PlanConfig | None = None, source: str | None = None
) -> MergePlan:
    """The plan minimizing within-group distance (exact up to ``config.exact_max_items``)."""
    config = config or PlanConfig()
    config.validate()
    n = len(matrix.item_ids)
    sizes = group_sizes(n, config.group_size)
    if n <= config.exact_max_items:
        groups = _exact(matrix.values, sizes)
    else:
        groups = _local_search(matrix.values, sizes, config.restarts, config.seed)
    ordered = sorted((sorted(g) for g in groups), key=lambda g: g[0])
    return MergePlan(
        tuple(tuple(matrix.item_ids[i] for i in g) for g in ordered), source or matrix.kind
    )


def _exact(values: np.ndarray, sizes: Sequence[int]) -> list[list[int]]:
    """Optimal partition by memoized search: the lowest free item always opens the next group."""
    n = values.shape[0]
    big = max(sizes) if sizes else 0
    small = min(sizes) if sizes else 0
    n_big = sum(1 for s in sizes if s == big) if big != small else len(sizes)

    @cache
    def solve(
        free: int, bigs_left: int, smalls_left: int
    ) -> tuple[float, tuple[tuple[int, ...], ...]]:
        if free == 0:
            return 0.0, ()
        first = (free & -free).bit_length() - 1
        others = [i for i in range(first + 1, n) if free >> i & 1]
        best: tuple[float, tuple[tuple[int, ...], ...]] = (math.inf, ())
        options = []
        if bigs_left:
            options.append((big, bigs_left - 1, smalls_left))
        if smalls_left and small != big:
            options.append((small, bigs_left, smalls_left - 1))
        for size, next_bigs, next_smalls in options:
            for companions in itertools.combinations(others, size - 1):
                group = (first, *companions)
                mask = free
                for i in group:
                    mask &= ~(1 << i)
                rest_cost, rest = solve(mask, next_bigs, next_smalls)
                cost = rest_cost + sum(values[i, j] for i, j in itertools.combinations(group, 2))
                if cost < best[0]:
                    best = (cost, (group, *rest))
        return best

    _, groups = solve((1 << n) - 1, n_big, len(sizes) - n_big if big != small else 0)
    return [list(g) for g in groups]


def _local_search(
    values: np.ndarray, sizes: Sequence[int], restarts: int, seed: int
) -> list[list[int]]:
    """Best of ``restarts`` random partitions, each improved by item swaps until none helps."""
    n = values.shape[0]
    rng = random.Random(seed)
    best_groups: list[list[int]] = []
    best_cost = math.inf
    for _ in range(restarts):
        order = list(range(n))
        rng.shuffle(order)
        groups: list[list[int]] = []
        start = 0
        for size in sizes:
            groups.append(order[start : start + size])
            start += size
        improved = True
        while improved:
            improved = False
            for a, b in itertools.combinations(range(len(groups)), 2):
                for x_pos, y_pos in itertools.product(range(len(groups[a])), range(len(groups[b]))):
                    x, y = groups[a][x_pos], groups[b][y_pos]
                    rest_a = [i for i in groups[a] if i != x]
                    rest_b = [i for i in groups[b] if i != y]
                    # the change of within-group cost when x and y trade places
                    delta = (
                        values[y, rest_a].sum()
                        + values[x, rest_b].sum()
                        - values[x, rest_a].sum()
                        - values[y, rest_b].sum()
                    )
                    if delta < -1e-12:
                        groups[a][x_pos], groups[b][y_pos] = y, x
                        improved = True
        cost = within_cost(values, groups)
        if cost < best_cost:
            best_cost, best_groups = cost, [list(g) for g in groups]
    return best_groups


def random_plan(item_ids: Sequence[str], group_size: int, seed: int) -> MergePlan:
    """A uniformly random partition with the same group sizes as an optimized plan."""
    order = list(item_ids)
    random.Random(seed).shuffle(order)
    groups = []
    start = 0
    for size in group_sizes(len(order), group_size):
        groups.append(tuple(sorted(order[start : start + size])))
        start += size
    return MergePlan(tuple(sorted(groups)), f"random-{seed}")


def read_plan_file(
    path: Path, item_ids: Sequence[str] | None = None, max_group_size: int | None = None
) -> MergePlan:
    """Read a human plan file (``.json`` or ``.csv``, see :func:`parse_plan_text`) and validate it."""
    path = Path(path)
    if not path.is_file():
        raise PlanError(f"plan file {path} does not exist")
    try:
        return parse_plan_text(
            path.read_text(encoding="utf-8-sig"),
            item_ids,
            max_group_size,
            csv_format=path.suffix.lower() == ".csv",
        )
    except PlanError as exc:
        raise PlanError(f"{path}: {exc}") from exc


def parse_plan_text(
    text: str,
    item_ids: Sequence[str] | None = None,
    max_group_size: int | None = None,
    *,
    csv_format: bool | None = None,
) -> MergePlan:
    """Parse a human plan and validate it against ``item_ids`` (when given).

    JSON: ``{"groups": [["a", "b"], ["c"]]}`` or a bare list of lists. CSV: columns
    ``item_id,group`` (one row per item; rows with the same ``group`` value merge).
    ``csv_format`` None guesses: text starting with ``{`` or ``[`` is JSON. Raises
    :class:`PlanError` for an unknown or repeated item, a missing item, an empty group, or a group
    larger than ``max_group_size``.
    """
    text = text.lstrip("\ufeff")
    if csv_format is None:
        csv_format = not text.lstrip().startswith(("{", "["))
    groups: list[list[str]]
    if csv_format:
        reader = csv.DictReader(io.StringIO(text.strip()))
        if reader.fieldnames is None or not {"item_id", "group"} <= {
            name.strip() for name in reader.fieldnames
        }:
            raise PlanError("a CSV plan needs the columns item_id and group")
        by_group: dict[str, list[str]] = {}
        for row_number, row in enumerate(reader, start=2):
            row = {(k or "").strip(): v for k, v in row.items()}
            item, group = (row.get("item_id") or "").strip(), (row.get("group") or "").strip()
            if not item or not group:
                raise PlanError(f"row {row_number}: item_id and group must not be empty")
            by_group.setdefault(group, []).append(item)
        groups = list(by_group.values())
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise PlanError(f"not valid JSON: {exc}") from exc
        raw = data.get("groups") if isinstance(data, dict) else data
        if not isinstance(raw, list) or not all(isinstance(g, list) for g in raw):
            raise PlanError('expected {"groups": [[item, ...], ...]} or a list of lists')
        groups = [[str(item) for item in g] for g in raw]
    return validate_plan(
        MergePlan(tuple(tuple(g) for g in groups), "human"), item_ids, max_group_size
    )


def validate_plan(
    plan: MergePlan, item_ids: Sequence[str] | None = None, max_group_size: int | None = None
) -> MergePlan:
    """Return ``plan`` if it partitions ``item_ids``; else raise :class:`PlanError` saying why."""
    seen: set[str] = set()
    for number, group in enumerate(plan.groups, start=1):
        if not group:
            raise PlanError(f"group {number} is empty")
        if max_group_size is not None and len(group) > max_group_size:
            raise PlanError(
                f"group {number} has {len(group)} items; at most {max_group_size} allowed"
            )
        for item in group:
            if item in seen:
                raise PlanError(f"item {item!r} is in more than one group")
            seen.add(item)
    if item_ids is not None:
        known = set(item_ids)
        unknown = sorted(seen - known)
        if unknown:
            raise PlanError(f"unknown item ids in the plan: {unknown}")
        missing = sorted(known - seen)
        if missing:
            raise PlanError(f"items missing from the plan: {missing}")
    return plan
