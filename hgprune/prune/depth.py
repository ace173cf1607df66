"""Depth pruning: remove whole stacks and identity-skip residual blocks, not only channels.

Fewer layers mean fewer kernels, which is what makes a model faster where channel pruning barely does (batch 1,
small feature maps, GPUs; issue 30). A stacked hourglass is well suited: every stack ends in a supervised
prediction and every bottleneck in the hourglasses and in ``res`` has an identity skip, so removing a stack or a
block leaves a valid network.

- **Units** (:func:`removable_units`): ``stack.{s}`` and block names such as ``hg.0.hg.3.1.0`` or ``res.0.0``.
- **Removal** (:func:`remove_units`, in place :func:`remove_units_`): the model's config records what was removed,
  kept modules keep their state-dict keys, so a depth-pruned checkpoint rebuilds from its config.
- **Importance** (:data:`IMPORTANCES`, a plain-dict registry like the criteria): ``loss`` measures the held-out
  loss increase when a unit is removed, after BatchNorm re-estimation, on a slice of the *training* split;
  ``position`` is a data-free ranking (trailing stacks first) for previews and tests; ``random`` a seeded shuffle,
  the control a measured importance has to beat.
- **Plan** (:func:`plan_depth`): units removed, least important per unit of cost saved first, while the cost stays
  at or above the target; the engine's channel pruning then covers what remains.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from hgprune.calibration import recalibrate_bn
from hgprune.errors import HgpruneError
from hgprune.models.checkpoints import unwrap
from hgprune.models.hourglass import HourglassNet, block_names, block_stack, depth_removed_modules
from hgprune.prune.cost import CostModel

DEPTH_MODES = ("none", "blocks", "stacks", "all")
STACK = "stack."


def removable_units(model: nn.Module, mode: str = "all") -> list[str]:
    """The units ``model`` can still lose under ``mode``: kept stacks (``stack.{s}``, none when one is left) and
    the kept blocks of kept stacks."""
    if mode not in DEPTH_MODES:
        raise HgpruneError(f"prune.depth: unknown {mode!r}; valid: {', '.join(DEPTH_MODES)}")
    model = unwrap(model)
    if mode == "none" or not isinstance(model, HourglassNet):
        return []
    config = model.config
    units = []
    if mode in ("stacks", "all") and config.num_outputs > 1:
        units += [f"{STACK}{s}" for s in config.kept_stacks]
    if mode in ("blocks", "all"):
        gone = set(config.removed_blocks)
        units += [b for b in block_names(config) if b not in gone and block_stack(b) in config.kept_stacks]
    return units


def depth_config(config, units: Sequence[str]):
    """``config`` with ``units`` removed as well (blocks inside a removed stack are dropped: the stack covers them);
    an invalid unit or removing every stack raises a one-line error."""
    stacks = set(config.removed_stacks)
    blocks = list(config.removed_blocks)
    for unit in units:
        if unit.startswith(STACK):
            index = unit[len(STACK) :]
            if not index.isdigit():
                raise HgpruneError(f"depth unit {unit!r}: expected stack.<index>")
            stacks.add(int(index))
        elif unit not in blocks:
            blocks.append(unit)
    blocks = [b for b in blocks if _stack_of(b) not in stacks]
    return dataclasses.replace(config, removed_stacks=tuple(sorted(stacks)), removed_blocks=tuple(blocks))


def remove_units_(model: nn.Module, units: Sequence[str]) -> nn.Module:
    """Remove ``units`` from ``model`` in place (removed modules become ``nn.Identity``; weights of the rest kept)."""
    model = unwrap(model)
    if not isinstance(model, HourglassNet):
        raise HgpruneError(f"depth pruning needs an HourglassNet, got {type(model).__name__}")
    if units:
        model.apply_depth(depth_config(model.config, units))
    return model


def remove_units(model: nn.Module, units: Sequence[str]) -> HourglassNet:
    """A copy of ``model`` with ``units`` removed; ``model`` is untouched. What is removed is not copied (a planner
    copies an hg8 that keeps two stacks at the cost of two)."""
    model = unwrap(model)
    if not isinstance(model, HourglassNet):
        return remove_units_(model, units)  # its one-line error, before anything is copied
    gone = depth_removed_modules(depth_config(model.config, units))
    memo = {id(model.get_submodule(name)): nn.Identity() for name in gone}
    return remove_units_(copy.deepcopy(model, memo), units)


def _stack_of(name: str) -> int | None:
    """The stack a block name lies in, or None for a name that is no block (the config's check reports it)."""
    fields = name.split(".")
    return int(fields[1]) if len(fields) > 1 and fields[1].isdigit() else None


def stack_units(units: Sequence[str]) -> list[int]:
    return [int(u[len(STACK) :]) for u in units if u.startswith(STACK)]


# -- importance ----------------------------------------------------------------------------------------------------


class Importance:
    """Scores removable units: higher = more harm when removed. ``needs_data``: reads the training slice."""

    needs_data = False

    def __call__(self, model: nn.Module, units: Sequence[str], data: Any) -> dict[str, float]:
        raise NotImplementedError


IMPORTANCES: dict[str, type[Importance]] = {}


def register_importance(name: str) -> Callable[[type[Importance]], type[Importance]]:
    def add(cls: type[Importance]) -> type[Importance]:
        IMPORTANCES[name] = cls
        return cls

    return add


def get_importance(name: str | Importance) -> Importance:
    """A registered importance by name, ``"package.module:Class"``, or an instance (returned as is); errors list
    the valid names."""
    if isinstance(name, Importance):
        return name
    if ":" in name:
        module_name, _, class_name = name.partition(":")
        try:
            cls = getattr(importlib.import_module(module_name), class_name, None)
        except Exception as exc:  # noqa: BLE001 - any import failure is the user's module, reported in one line
            reason = f"{type(exc).__name__}: {exc}".splitlines()[0]
            raise HgpruneError(f"prune.depth_importance {name!r}: cannot import {module_name!r} ({reason})") from None
        if not isinstance(cls, type) or not callable(cls):
            raise HgpruneError(f"prune.depth_importance {name!r}: {module_name!r} has no class {class_name!r}")
        return cls()
    if name not in IMPORTANCES:
        valid = ", ".join(IMPORTANCES)
        raise HgpruneError(f"prune.depth_importance: unknown {name!r}; valid: {valid} or 'package.module:ClassName'")
    return IMPORTANCES[name]()


@register_importance("loss")
class LossImportance(Importance):
    """Held-out loss increase (last output vs. the target heatmaps) when the unit alone is removed, after BatchNorm
    re-estimation of both the model and the candidate on the same training batches."""

    needs_data = True

    def __call__(self, model: nn.Module, units: Sequence[str], data: Any) -> dict[str, float]:
        if data is None:
            raise HgpruneError("prune.depth_importance loss: needs the training split (train_set)")
        base = copy.deepcopy(unwrap(model))
        recalibrate_bn(base, data.bn_batches())
        reference = data.holdout_loss(base)
        scores = {}
        for unit in units:
            candidate = remove_units(base, [unit])
            recalibrate_bn(candidate, data.bn_batches())
            scores[unit] = data.holdout_loss(candidate) - reference
        return scores


@register_importance("position")
class PositionImportance(Importance):
    """Data-free: trailing stacks first (keeping the first K stacks is the classic way to shorten an hourglass), and
    a block half as important as its stack."""

    def __call__(self, model: nn.Module, units: Sequence[str], data: Any) -> dict[str, float]:
        stacks = unwrap(model).config.num_stacks
        scores = {}
        for unit in units:
            s = int(unit[len(STACK) :]) if unit.startswith(STACK) else block_stack(unit)
            scores[unit] = (stacks - s) / stacks * (1.0 if unit.startswith(STACK) else 0.5)
        return scores


@register_importance("random")
class RandomImportance(Importance):
    """The control for depth: a seeded shuffle of the units (scores 1/n, 2/n, …, 1 in a random order), which the
    planner then weighs by cost saved like any importance. Seeded by ``seed``, else by the training slice's seed
    (the engine's per-step seed), else by torch's generator (which a run seeds per step)."""

    def __init__(self, seed: int | None = None) -> None:
        self.seed = seed

    def __call__(self, model: nn.Module, units: Sequence[str], data: Any) -> dict[str, float]:
        seed = self.seed if self.seed is not None else getattr(data, "seed", None)
        if seed is None:
            seed = int(torch.randint(0, 2**62, (1,)).item())
        order = torch.randperm(len(units), generator=torch.Generator().manual_seed(int(seed))).tolist()
        return {unit: (rank + 1) / len(units) for unit, rank in zip(units, order, strict=True)}


# -- plan ----------------------------------------------------------------------------------------------------------


@dataclass
class DepthPlan:
    """What depth pruning removes in one step and what it predicts; ``units`` in the order they were chosen."""

    mode: str
    units: list[str] = field(default_factory=list)
    cost_before: float = 0.0
    predicted_cost: float = 0.0  # additive prediction from each unit's own saving
    target_cost: float = 0.0
    importance: dict[str, float] = field(default_factory=dict)
    saving: dict[str, float] = field(default_factory=dict)  # cost saved by removing the unit alone

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def unit_modules(config, unit: str) -> list[str]:
    """Module-name prefixes a unit's removal takes away: what :func:`depth_removed_modules` adds when ``unit`` goes
    (a block; or a stack's hourglass, ``res``, ``fc``, head and merge, plus the previous kept stack's merge when the
    stack is the last kept one: nothing reads it any more)."""
    gone = set(depth_removed_modules(config))
    return [name for name in depth_removed_modules(depth_config(config, [unit])) if name not in gone]


def unit_savings(model: nn.Module, units: Sequence[str], cost_model: CostModel) -> tuple[float, dict[str, float]]:
    """The model's cost and the cost each unit saves when removed alone: summed from ``module_costs`` when the cost
    model offers it (additive costs: MACs, params, the latency model's operator sums; one trace of the model), else
    measured on one candidate per unit."""
    model = unwrap(model)
    before = cost_model.cost(model)
    per_module = getattr(cost_model, "module_costs", None)
    if per_module is None:
        return before, {u: before - cost_model.cost(remove_units(model, [u])) for u in units}
    costs = per_module(model)
    savings = {}
    for unit in units:
        prefixes = unit_modules(model.config, unit)
        savings[unit] = sum(
            v for name, v in costs.items() if any(name == p or name.startswith(p + ".") for p in prefixes)
        )
    return before, savings


def plan_depth(
    model: nn.Module,
    mode: str,
    cost_model: CostModel,
    target_cost: float,
    tolerance_cost: float,
    importance: str | Importance = "loss",
    data: Any = None,
) -> DepthPlan:
    """Units to remove so the cost comes down towards ``target_cost`` without going below it by more than
    ``tolerance_cost``: least important per unit of cost saved first (a unit whose saving overshoots is skipped,
    a smaller one may still fit). The channel step then meets the target on what remains."""
    units = removable_units(model, mode)
    plan = DepthPlan(mode=mode, target_cost=float(target_cost))
    if not units:
        before = cost_model.cost(unwrap(model))
        plan.cost_before = plan.predicted_cost = before
        return plan
    scorer = get_importance(importance)
    before, saving = unit_savings(model, units, cost_model)
    scores = scorer(model, units, data)
    plan.cost_before, plan.saving = before, saving
    plan.importance = {u: float(v) for u, v in scores.items()}
    order = sorted(units, key=lambda u: (max(scores[u], 0.0) / max(saving[u], 1e-12), -saving[u], units.index(u)))
    config = unwrap(model).config
    cost = before
    chosen: list[str] = []
    for unit in order:
        if cost <= target_cost:
            break
        gone = set(stack_units(chosen))
        if not unit.startswith(STACK) and block_stack(unit) in gone:
            continue  # its stack is already gone
        own = saving[unit]
        if unit.startswith(STACK):  # blocks of this stack chosen earlier are already saved
            stack = int(unit[len(STACK) :])
            own -= sum(saving[b] for b in chosen if not b.startswith(STACK) and block_stack(b) == stack)
        if cost - own < target_cost - tolerance_cost or own <= 0:
            continue
        try:
            depth_config(config, [*chosen, unit])
        except HgpruneError:  # e.g. the last remaining stack
            continue
        chosen.append(unit)
        cost -= own
    plan.units = chosen
    plan.predicted_cost = cost if math.isfinite(cost) else before
    return plan


def preview_depth(
    config, mode: str, cost_model: CostModel, targets: Sequence[float], tolerance: float
) -> list[list[str]]:
    """Units each scheduled step would remove from an unpruned ``config``, ranked by ``position`` (no weights, no
    data: built on the meta device), for ``--dry-run``; a real run ranks by its measured importance."""
    with torch.device("meta"):
        model = HourglassNet(config)
    reference = cost_model.cost(model)
    steps = []
    for kept in targets:
        plan = plan_depth(model, mode, cost_model, kept * reference, tolerance * reference, "position")
        remove_units_(model, plan.units)
        steps.append(plan.units)
    return steps


def describe_units(units: Sequence[str]) -> str:
    """``stack.7, stack.6 + 12 blocks (res.0.0, …)``: what a step removed, short enough for a log line."""
    stacks = [u for u in units if u.startswith(STACK)]
    blocks = [u for u in units if not u.startswith(STACK)]
    parts = [", ".join(stacks)] if stacks else []
    if blocks:
        shown = ", ".join(blocks[:3]) + (", …" if len(blocks) > 3 else "")
        parts.append(f"{len(blocks)} block(s) ({shown})")
    return " + ".join(parts) or "nothing"
