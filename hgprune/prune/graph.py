"""Channel groups of a model as the engine sees them: torch-pruning's dependency graph traced once, each coupled group
described (part, width, the criterion's ranking), and channels removed from a group, in the model or in a copy.

Split from :mod:`hgprune.prune.engine` so the planner (which reads groups) and the engine (which prunes them) share
one home for the torch-pruning specifics.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import numpy as np
import torch
import torch_pruning as tp
from torch import nn

from hgprune.errors import HgpruneError
from hgprune.models.hourglass import HEAD_PREFIX, TRUNK_ROOT, HourglassNet, base_width, model_parts, part_of, probe_size
from hgprune.profile import conv_pair_macs, count_params
from hgprune.prune.criteria import Criterion, group_layers
from hgprune.prune.planning import Group

TRUNK = "trunk"


def trace(model: nn.Module, input_size: int) -> tuple[Any, dict[nn.Module, int]]:
    """Dependency graph from one forward at the smallest valid size, plus every conv's MACs per (in × out) channel
    pair (:func:`hgprune.profile.conv_pair_macs`), which makes every later MACs count pure arithmetic."""
    modules = dict(model.named_modules())
    try:
        pair_macs = {modules[name]: pair for name, pair in conv_pair_macs(model, input_size).items()}
    except HgpruneError as exc:
        raise HgpruneError(f"model.{exc}") from None
    probe = probe_size(getattr(getattr(model, "config", None), "depth", 4))
    graph = tp.DependencyGraph().build_dependency(
        model,
        example_inputs=torch.zeros(1, 3, probe, probe, device=next(model.parameters()).device),
        forward_fn=lambda net, x: net(x),  # tp would first try net(*x), a partial unbatched forward
        output_transform=lambda outputs: sum(o.sum() for o in outputs),
        verbose=False,
    )
    return graph, pair_macs


def heads(model: nn.Module) -> list[nn.Module]:
    """The score heads: one channel per joint, never pruned."""
    return [m for n, m in model.named_modules() if n.startswith(HEAD_PREFIX) and isinstance(m, nn.Conv2d)]


def measured_size(model: nn.Module, pair_macs: dict[nn.Module, int]) -> dict[str, int]:
    """:func:`model_size` of the pruned model from its real layer widths (same numbers, no forward pass)."""
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    return {
        "macs": int(sum(pair_macs.get(m, 0) * m.in_channels * m.out_channels for m in convs)),
        "params": count_params(model),
        "channels": sum(m.out_channels for m in convs),
    }


def prune_group(graph: Any, info: Group, group: Any, channels: np.ndarray) -> None:
    """Remove root ``channels`` from every member of the group, reusing the group already built for scoring.

    Asking the graph again (``get_pruning_group``) would re-walk all of it for every group; groups are disjoint, so
    pruning one never shifts another's indices.
    """
    doomed = {int(c) for c in channels}
    if any(item.dep.target.type == tp.ops.OPTYPE.PARAMETER for item in group):
        graph.get_pruning_group(info.root, tp.prune_conv_out_channels, sorted(doomed)).prune()
        return
    for item in group:
        roots = item.root_idxs if item.root_idxs is not None else item.idxs
        idxs = sorted({int(i) for i, r in zip(item.idxs, roots) if int(r) in doomed})
        if idxs:
            item.dep(idxs)


def group_base_width(name: str, model: nn.Module, width: int) -> int:
    """Out-channels of conv ``name`` in the unpruned architecture (a foreign model: its current width)."""
    config = getattr(model, "config", None)
    return base_width(name, config) if isinstance(model, HourglassNet) and config is not None else width


def describe_groups(model: nn.Module, raw_groups: list, criterion: Criterion) -> list[tuple[Group, Any]]:
    names = {m: n for n, m in model.named_modules()}
    parts = model_parts(model) if isinstance(model, HourglassNet) else {}
    described = []
    for group in raw_groups:
        root = group[0].dep.target.module
        name = names[root]
        producers = [names[layer] for role, layer, _, _ in group_layers(group) if role == "conv_out"]
        part = TRUNK if TRUNK_ROOT in producers else (part_of(name, parts) or "*")
        width = len(group[0].idxs)
        scores = criterion.score(group)
        scores = torch.as_tensor(scores).detach().float().cpu().reshape(-1)
        if scores.numel() != width:
            raise HgpruneError(
                f"criterion {type(criterion).__name__} returned {scores.numel()} scores for {name} "
                f"({width} channels); score(group) must return one value per channel"
            )
        if not torch.isfinite(scores).all():
            raise HgpruneError(f"criterion {type(criterion).__name__} returned non-finite scores for {name}")
        values = scores.numpy().astype(np.float64)
        mean = float(values.mean())
        info = Group(
            root=root,
            name=name,
            part=part,
            width=width,
            base_width=group_base_width(name, model, width),
            order=np.argsort(values, kind="stable"),
            normalized=values / mean if mean > 0 else values,
        )
        described.append((info, group))
    return described


def pruned_copy(model: nn.Module, groups: list[tuple[Group, Any]], keep: np.ndarray, input_size: int) -> nn.Module:
    """A deep copy of ``model`` pruned to ``keep``; ``model`` is untouched. The copy gets its own graph (groups hold
    module references), and the original's channel order, so it is exactly what pruning ``model`` would give."""
    clone = copy.deepcopy(model)
    graph, _ = trace(clone, input_size)
    names = dict(clone.named_modules())
    by_root = {}
    for group in graph.get_all_groups(ignored_layers=heads(clone), root_module_types=[nn.Conv2d]):
        by_root[group[0].dep.target.module] = group
    for (info, _), keep_count in zip(groups, keep):
        n_remove = info.width - int(keep_count)
        if n_remove <= 0:
            continue
        root = names[info.name]
        if root not in by_root:
            raise HgpruneError(f"{info.name}: no matching group in the copy of the model")
        prune_group(graph, dataclasses.replace(info, root=root), by_root[root], info.order[:n_remove])
    return clone


def groups_by_name(
    model: nn.Module, graph: Any, keep: dict[str, int], remove: dict[str, list[int]]
) -> list[tuple[Group, Any]]:
    """``model``'s coupled groups matched by root name to the groups a plan (``keep``, ``remove``) was made for."""
    names = {m: n for n, m in model.named_modules()}
    found = []
    for group in graph.get_all_groups(ignored_layers=heads(model), root_module_types=[nn.Conv2d]):
        root = group[0].dep.target.module
        width = len(group[0].idxs)
        name = names[root]
        if name not in keep or width != keep[name] + len(remove.get(name, [])):
            raise HgpruneError(f"{name}: the model does not match the plan (plan it on this model)")
        found.append((Group(root, name, "", width, width, np.arange(width), np.ones(width)), group))
    if len(found) != len(keep):
        raise HgpruneError(f"the model has {len(found)} channel groups, the plan {len(keep)}")
    return found
