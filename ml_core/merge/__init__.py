"""Merging per-item scoring models into shared feature extractors, guided by GW distance.

GW-SMM (issue 4): embed each item's answers with its own model, measure the Gromov-Wasserstein
distance between the items' feature sets, group the closest items (pairs, trios, ...), merge each
group's extractors (average, task arithmetic, TIES; LoRA adapters by SVD or concatenation), keep
every item's head and re-fit it on the merged features. See ``docs/decisions/0005-*.md``.

Modules: :mod:`.config` (settings), :mod:`.models` (artifacts as state dicts, the encoder),
:mod:`.distances`, :mod:`.plans`, :mod:`.merging`, :mod:`.heads`, :mod:`.group` (the merged
artifact and its scorer), :mod:`.pipeline` (end to end), :mod:`.cli` (``python -m ml_core.merge``).
"""

from ml_core.merge.config import DistanceConfig, FeatureConfig, MergeConfig, PlanConfig
from ml_core.merge.distances import (
    DistanceMatrix,
    centroid_cosine_matrix,
    draw_heatmap,
    gw_distance,
    gw_matrix,
)
from ml_core.merge.group import GroupScorer, export_lora_items, item_version, load_group
from ml_core.merge.plans import MergePlan, PlanError, make_plan, random_plan, read_plan_file

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
    "random_plan",
    "read_plan_file",
]
