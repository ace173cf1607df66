"""Structured pruning of stacked hourglasses: criteria registry, schedules and the prune-to-target engine."""

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
from hgprune.prune.engine import PruneResult, model_size, prune_to_target
from hgprune.prune.targets import round_keep, schedule_targets, search_ratio

__all__ = [
    "CRITERIA",
    "BNGammaCriterion",
    "Criterion",
    "L1Criterion",
    "PruneResult",
    "RandomCriterion",
    "TaylorCriterion",
    "get_criterion",
    "group_layers",
    "model_size",
    "prune_to_target",
    "register_criterion",
    "round_keep",
    "schedule_targets",
    "search_ratio",
]
