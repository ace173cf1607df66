"""Plans: how many channels each coupled group keeps, and what that plan costs, without touching the model.

A plan is one kept width per group (an integer array in the groups' order). :class:`Planner` counts the MACs,
params and channels of any plan analytically (conv MACs are ``unit · in · out`` per layer), so a search can try
thousands of plans in milliseconds; :func:`ratio_plan` turns one channel ratio into a plan (uniform or pooled
global ranking, rounding, per-layer floors) monotonically, which is what makes bisection over the ratio valid.
The engine (:mod:`hgprune.prune.engine`) builds the groups and applies the chosen plan.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from torch import nn

from hgprune.errors import HgpruneError
from hgprune.profile import count_params
from hgprune.prune.criteria import group_layers
from hgprune.prune.targets import round_keep


@dataclass
class Group:
    """One coupled channel group as the planner sees it: its root conv, part, width and channel ranking."""

    root: nn.Conv2d
    name: str
    part: str
    width: int
    base_width: int
    order: np.ndarray  # channel indices, least important first
    normalized: np.ndarray  # scores / mean, for global ranking


class Planner:
    """Counts MACs / params / channels of a plan (kept width per group) without touching the model."""

    def __init__(self, model: nn.Module, groups: list[tuple[Group, Any]], pair_macs: dict[nn.Module, int]) -> None:
        convs = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
        bns = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        conv_index = {m: i for i, (_, m) in enumerate(convs)}
        bn_index = {m: i for i, (_, m) in enumerate(bns)}
        self.out0 = np.array([m.out_channels for _, m in convs], dtype=np.int64)
        self.in0 = np.array([m.in_channels for _, m in convs], dtype=np.int64)
        if any(m.groups != 1 for _, m in convs):
            raise HgpruneError("grouped convolutions are not supported by the pruning engine")
        self.kernel = np.array([math.prod(m.kernel_size) for _, m in convs], dtype=np.int64)
        self.bias = np.array([m.bias is not None for _, m in convs], dtype=np.int64)
        self.mac_unit = np.array([pair_macs.get(m, 0) for _, m in convs], dtype=np.float64)
        self.bn0 = np.array([m.num_features for _, m in bns], dtype=np.int64)
        self.bn_params = np.array([2 if m.affine else 0 for _, m in bns], dtype=np.int64)
        self.out_group = np.full(len(convs), -1)
        self.in_group = np.full(len(convs), -1)
        self.bn_group = np.full(len(bns), -1)
        self.widths = np.array([g.width for g, _ in groups], dtype=np.int64)
        for gi, (info, group) in enumerate(groups):
            for role, layer, idxs, _ in group_layers(group):
                if len(idxs) != info.width:
                    raise HgpruneError(f"{info.name}: coupled layer with a non 1:1 channel mapping is not supported")
                if role == "bn":
                    self.bn_group[bn_index[layer]] = gi
                elif role == "conv_out":
                    self.out_group[conv_index[layer]] = gi
                else:
                    self.in_group[conv_index[layer]] = gi
        conv_param = int(np.sum(self.in0 * self.out0 * self.kernel + self.out0 * self.bias))
        self.other_params = count_params(model) - conv_param - int(np.sum(self.bn0 * self.bn_params))

    def size(self, keep: np.ndarray) -> dict[str, float]:
        removed = np.append(self.widths - keep, 0)  # index -1 → no group → nothing removed
        out = self.out0 - removed[self.out_group]
        inp = self.in0 - removed[self.in_group]
        bn = self.bn0 - removed[self.bn_group]
        return {
            "macs": float(np.sum(self.mac_unit * inp * out)),
            "params": float(np.sum(inp * out * self.kernel + out * self.bias) + np.sum(bn * self.bn_params))
            + self.other_params,
            "channels": float(np.sum(out)),
        }


def ratio_plan(
    infos: list[Group],
    mult: np.ndarray,
    global_ranking: bool,
    max_layer_ratio: float,
    round_to: int | None,
    round_mode: str,
) -> Callable[[float], np.ndarray]:
    """``ratio → kept width per group`` for per-group multipliers ``mult``; monotone in ``ratio``, which is what
    makes bisection valid. Under ``global_ranking`` the groups with multiplier 1 pool their normalised scores."""
    widths = np.array([g.width for g in infos], dtype=np.int64)
    floors = [min_keep(g, max_layer_ratio) for g in infos]
    pooled = [i for i, m in enumerate(mult) if m == 1.0] if global_ranking else []
    if pooled:
        scores = np.concatenate([infos[i].normalized for i in pooled])
        owners = np.concatenate([np.full(infos[i].width, k) for k, i in enumerate(pooled)])
        ranked_owners = owners[np.argsort(scores, kind="stable")]
    pooled_set = set(pooled)

    def plan(ratio: float) -> np.ndarray:
        raw = widths * (1.0 - np.minimum(ratio * mult, 1.0))
        if pooled:
            n = int(math.floor(ratio * len(ranked_owners) + 1e-9))
            removed = np.bincount(ranked_owners[:n], minlength=len(pooled))
            for k, i in enumerate(pooled):
                raw[i] = widths[i] - removed[k]
        keep = np.empty(len(infos), dtype=np.int64)
        for i, g in enumerate(infos):
            if mult[i] == 0.0 and i not in pooled_set:
                keep[i] = g.width
            else:
                keep[i] = round_keep(float(raw[i]), g.width, round_to, round_mode, floors[i])
        return keep

    return plan


def min_keep(info: Group, max_layer_ratio: float) -> int:
    """Fewest channels a group may keep: ``max_layer_ratio`` is relative to the unpruned architecture."""
    return max(1, math.ceil(info.base_width * (1 - max_layer_ratio) - 1e-9))


def step_down(
    infos: list[Group], mult: np.ndarray, max_layer_ratio: float, round_to: int | None, index: int, keep: int
) -> int | None:
    """The next smaller width group ``index`` may take (a multiple of ``round_to``), or None (left alone / floor)."""
    if mult[index] == 0.0:
        return None
    step = max(int(round_to or 1), 1)
    smaller = (keep - 1) // step * step
    return smaller if smaller >= max(min_keep(infos[index], max_layer_ratio), 1) else None


def step_priority(infos: list[Group], index: int, keep_from: int, keep_to: int) -> float:
    """Mean normalised score of the channels group ``index`` loses going from ``keep_from`` to ``keep_to``."""
    g = infos[index]
    lost = g.order[g.width - keep_from : g.width - keep_to]
    return float(np.mean(g.normalized[lost])) if len(lost) else math.inf


def search_unit(info: Group) -> str:
    """What the search varies together: a part, with each hourglass level on its own (hg0.level3 is full size)."""
    fields = info.name.split(".")
    if info.part.startswith("hg") and len(fields) > 3 and fields[0] == "hg" and fields[2] == "hg":
        return f"{info.part}.level{fields[3]}"
    return info.part


def describe_keep(infos: list[Group], keep: np.ndarray) -> dict[str, dict[str, int]]:
    """Kept / original channels per search unit: what a reader needs to see where a plan cut."""
    parts: dict[str, dict[str, int]] = {}
    for info, k in zip(infos, keep):
        entry = parts.setdefault(search_unit(info), {"kept": 0, "width": 0})
        entry["kept"] += int(k)
        entry["width"] += info.width
    return parts
