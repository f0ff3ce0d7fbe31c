"""Merging per-item scoring models into shared feature extractors, guided by GW distance.

GW-SMM (issue 4): embed each item's answers with its own model, measure the Gromov-Wasserstein
distance between the items' feature sets, group the closest items (pairs, trios, ...), merge each
group's extractors (average, task arithmetic, TIES; LoRA adapters by SVD or concatenation), keep
every item's head and re-fit it on the merged features. See ``docs/decisions/0005-*.md``.

Modules: :mod:`.config` (settings), :mod:`.models` (artifacts as state dicts, the encoder),
:mod:`.distances`, :mod:`.plans`, :mod:`.merging`, :mod:`.heads`, :mod:`.group` (the merged
artifact and its scorer), :mod:`.pipeline` (end to end), :mod:`.cli` (``python -m ml_core.merge``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ml_core.merge.config import DistanceConfig, FeatureConfig, MergeConfig, PlanConfig
    from ml_core.merge.distances import (
        DistanceMatrix,
        centroid_cosine_matrix,
        draw_heatmap,
        gw_distance,
        gw_matrix,
    )
    from ml_core.merge.group import GroupScorer, export_lora_items, item_version, load_group
    from ml_core.merge.plans import (
        MergePlan,
        PlanError,
        make_plan,
        parse_plan_text,
        random_plan,
        read_plan_file,
    )

# Names are imported on first use: reading and checking a plan (the web process) needs neither
# torch nor POT.
_HOMES = {
    "DistanceConfig": "config",
    "FeatureConfig": "config",
    "MergeConfig": "config",
    "PlanConfig": "config",
    "DistanceMatrix": "distances",
    "centroid_cosine_matrix": "distances",
    "draw_heatmap": "distances",
    "gw_distance": "distances",
    "gw_matrix": "distances",
    "GroupScorer": "group",
    "export_lora_items": "group",
    "item_version": "group",
    "load_group": "group",
    "MergePlan": "plans",
    "PlanError": "plans",
    "make_plan": "plans",
    "parse_plan_text": "plans",
    "random_plan": "plans",
    "read_plan_file": "plans",
}


def __getattr__(name: str) -> object:
    if name not in _HOMES:
        raise AttributeError(f"module 'ml_core.merge' has no attribute {name!r}")
    return getattr(importlib.import_module(f"ml_core.merge.{_HOMES[name]}"), name)


__all__ = [
    "DistanceConfig",
    "DistanceMatrix",
    "FeatureConfig",
    "GroupScorer",
    "MergeConfig",
    "MergePlan",
    "PlanConfig",
    "PlanError",
    "centroid_cosine_matrix",
    "draw_heatmap",
    "export_lora_items",
    "gw_distance",
    "gw_matrix",
    "item_version",
    "load_group",
    "make_plan",
    "parse_plan_text",
    "random_plan",
    "read_plan_file",
]
