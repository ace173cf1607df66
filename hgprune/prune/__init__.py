"""Structured pruning of stacked hourglasses: criteria, schedules, allocation, depth units, cost models, the planner
(:func:`plan_prune` → :class:`PrunePlan`) and the engine that applies a plan (:func:`apply_plan`)."""

from hgprune.calibration import recalibrate_bn
from hgprune.prune.allocation import ALLOCATIONS, SearchSettings
from hgprune.prune.cost import COSTS, CostModel, get_cost
from hgprune.prune.criteria import (
    CRITERIA,
    BNGammaCriterion,
    Criterion,
    L1Criterion,
    RandomCriterion,
    TaylorCriterion,
    get_criterion,
    group_layers,
    register_criterion,
)
from hgprune.prune.depth import IMPORTANCES, DepthPlan, plan_depth, removable_units, remove_units
from hgprune.prune.engine import (
    PrunePlan,
    PruneResult,
    apply_plan,
    model_size,
    plan_prune,
    prune_to_target,
    prune_with,
)
from hgprune.prune.targets import round_keep, schedule_targets, search_ratio

__all__ = [
    "ALLOCATIONS",
    "COSTS",
    "CRITERIA",
    "IMPORTANCES",
    "CostModel",
    "DepthPlan",
    "PrunePlan",
    "apply_plan",
    "get_cost",
    "plan_depth",
    "plan_prune",
    "removable_units",
    "remove_units",
    "BNGammaCriterion",
    "Criterion",
    "L1Criterion",
    "PruneResult",
    "RandomCriterion",
    "SearchSettings",
    "TaylorCriterion",
    "get_criterion",
    "group_layers",
    "model_size",
    "prune_to_target",
    "prune_with",
    "recalibrate_bn",
    "register_criterion",
    "round_keep",
    "schedule_targets",
    "search_ratio",
]
