"""Structured pruning of stacked hourglasses: criteria, schedules, allocation and the prune-to-target engine."""

from hgprune.calibration import recalibrate_bn
from hgprune.prune.allocation import ALLOCATIONS, SearchSettings
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
from hgprune.prune.engine import PruneResult, model_size, prune_to_target, prune_with
from hgprune.prune.targets import round_keep, schedule_targets, search_ratio

__all__ = [
    "ALLOCATIONS",
    "CRITERIA",
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
