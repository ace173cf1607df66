"""Cost models: what a prune target counts. A MACs target and a latency target are the same search with another cost.

A cost model is any object with ``name``, ``snap`` and ``cost(model) -> float`` (:class:`CostModel`): the absolute
cost of a candidate model at the input size — conv MACs, parameters, or (``hgprune latency``'s ``LatencyCost``)
milliseconds on a runtime. ``snap`` is the channel multiple the runtime runs fast; when set, the planner rounds kept
widths to it instead of the recipe's ``round_to``. An additive cost may also offer ``module_costs(model) -> {module
name: cost}``; the depth planner then prices every unit from one call instead of one candidate per unit.

:data:`COSTS` is a plain-dict registry of factories ``(input_size) -> CostModel``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from torch import nn

from hgprune.errors import HgpruneError
from hgprune.models.checkpoints import unwrap
from hgprune.profile import conv_macs, count_params


@runtime_checkable
class CostModel(Protocol):
    """The cost of a candidate model; lower is what pruning buys."""

    name: str
    snap: int | None

    def cost(self, model: nn.Module) -> float: ...


@dataclass(frozen=True)
class MacsCost:
    """Conv MACs at ``input_size`` (:func:`hgprune.profile.conv_macs`): what ``prune.target.macs`` counts."""

    input_size: int = 256
    name: str = "macs"
    snap: int | None = None

    def cost(self, model: nn.Module) -> float:
        return float(conv_macs(unwrap(model), self.input_size))

    def module_costs(self, model: nn.Module) -> dict[str, float]:
        return {k: float(v) for k, v in conv_macs(unwrap(model), self.input_size, by_module=True).items()}


@dataclass(frozen=True)
class ParamsCost:
    """Parameter count: what ``prune.target.params`` counts (independent of the input size)."""

    input_size: int = 256
    name: str = "params"
    snap: int | None = None

    def cost(self, model: nn.Module) -> float:
        return float(count_params(unwrap(model)))

    def module_costs(self, model: nn.Module) -> dict[str, float]:
        return {n: float(sum(p.numel() for p in m.parameters(recurse=False))) for n, m in unwrap(model).named_modules()}


COSTS: dict[str, Callable[[int], CostModel]] = {
    "macs": lambda input_size: MacsCost(input_size),
    "params": lambda input_size: ParamsCost(input_size),
}


def get_cost(name: str, input_size: int = 256) -> CostModel:
    """The registered cost model ``name`` at ``input_size``, with an error listing the valid names."""
    if name not in COSTS:
        raise HgpruneError(f"prune.target kind: no cost model {name!r}; valid: {', '.join(COSTS)}")
    return COSTS[name](input_size)
