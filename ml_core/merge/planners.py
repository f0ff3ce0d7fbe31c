"""The planners a merge job can run: which distance, on which features, makes each plan.

``gw`` (GW on each item's own features, max-normalized intra-set distances: the method the
training worker runs), ``gw-mean`` (mean-normalized, scale-free), ``gw-labels`` (label-aware GW:
the intra-set cost mixes feature and score differences), ``gw-pretrained`` (GW on the pretrained
backbone's features), ``centroid_cosine`` (own features) and ``centroid-pretrained`` (one shared
space). Random plans (``random-<n>``) have the same group sizes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ml_core.merge.config import DistanceConfig, PlanConfig
from ml_core.merge.distances import DistanceMatrix, cached_matrix, draw_heatmap
from ml_core.merge.plans import MergePlan, make_plan, plan_cost, random_plan


@dataclass(frozen=True)
class Planner:
    """One distance between items: its kind, the features it reads and its normalization."""

    kind: str
    extractor: str  # own: each item's own model; pretrained: the backbone as published
    normalize: str = "max"
    uses_labels: bool = False

    def distance_config(self, label_weight: float) -> DistanceConfig:
        weight = label_weight if self.uses_labels else 0.0
        return DistanceConfig(normalize=self.normalize, label_weight=weight)


PLANNERS: dict[str, Planner] = {
    "gw": Planner("gw", "own"),
    "gw-mean": Planner("gw", "own", normalize="mean"),
    "gw-labels": Planner("gw", "own", uses_labels=True),
    "gw-pretrained": Planner("gw", "pretrained"),
    "centroid_cosine": Planner("centroid_cosine", "own"),
    "centroid-pretrained": Planner("centroid_cosine", "pretrained"),
}
HEATMAP_TITLES = {"gw": "GW distance between items"}


@dataclass(frozen=True)
class PlannerInputs:
    """What the planners read: each item's feature sample under its own model and the backbone,
    its scores (0..1) for label-aware GW, and what decided the features (the cache key)."""

    own: Mapping[str, np.ndarray]
    pretrained: Mapping[str, np.ndarray]
    scores: Mapping[str, np.ndarray]
    item_hashes: Mapping[str, str]
    feature_settings: Mapping[str, object]


def planner_matrices(
    names: Sequence[str],
    inputs: PlannerInputs,
    label_weight: float,
    cache_dir: Path,
    heatmap_dir: Path,
) -> dict[str, tuple[DistanceMatrix, bool]]:
    """Each named planner's distance matrix (cached under ``cache_dir``) and whether it was
    cached; a heatmap ``heatmap-<name>.png`` of each is drawn in ``heatmap_dir``."""
    out: dict[str, tuple[DistanceMatrix, bool]] = {}
    for name in names:
        planner = PLANNERS[name]
        own = planner.extractor == "own"
        matrix, cached = cached_matrix(
            planner.kind,
            inputs.own if own else inputs.pretrained,
            inputs.item_hashes,
            cache_dir,
            config=planner.distance_config(label_weight),
            feature_settings={**inputs.feature_settings, "extractor": planner.extractor},
            labels=inputs.scores if planner.uses_labels else None,
        )
        title = HEATMAP_TITLES.get(name, f"{name} distance")
        draw_heatmap(matrix, heatmap_dir / f"heatmap-{name}.png", title=title)
        out[name] = (matrix, cached)
    return out


def comparison_plans(
    job_plan: MergePlan,
    matrices: Mapping[str, DistanceMatrix],
    item_ids: Sequence[str],
    config: PlanConfig,
    random_plans: int,
) -> dict[str, MergePlan]:
    """The job's plan first (named by its source), then every other planner's plan, then
    ``random_plans`` random ones (seeds ``config.seed``, ``config.seed + 1``, ...)."""
    plans = {job_plan.source: job_plan}
    for name, matrix in matrices.items():
        plans.setdefault(name, make_plan(matrix, config, name))
    for r in range(random_plans):
        plans[f"random-{r}"] = random_plan(list(item_ids), config.group_size, config.seed + r)
    return plans


def plan_summary(plan: MergePlan, matrices: Mapping[str, DistanceMatrix]) -> dict[str, object]:
    """The plan with its total within-group GW distance (and centroid-cosine, when measured)."""
    out = {**plan.to_json(), "gw_cost": plan_cost(plan, matrices["gw"])}
    if "centroid_cosine" in matrices:
        out["cosine_cost"] = plan_cost(plan, matrices["centroid_cosine"])
    return out
