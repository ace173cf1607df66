"""Exact BatchNorm folding for inference.

The hourglass is *pre-activation*: most BatchNorms sit after an add and before a ReLU and a convolution, so they
cannot be folded into the convolution that precedes them. A BN folds exactly only when the convolution's output goes
to that BN and nowhere else (``conv1→bn1`` of the stem, ``fc[i]``, and inside every bottleneck ``conv1→bn2`` and
``conv2→bn3``). Rather than hard-code those names, :func:`foldable_pairs` reads them off a ``torch.fx`` trace, so the
rule also holds for pruned models and any other network that traces.
"""

from __future__ import annotations

import copy

import torch
import torch.fx as fx
from torch import nn

from hgprune.errors import HgpruneError


def foldable_pairs(model: nn.Module) -> list[tuple[str, str]]:
    """``(conv_name, bn_name)`` pairs where the conv's only consumer is the BN, each module called exactly once."""
    try:
        graph = fx.symbolic_trace(model).graph
    except Exception as exc:  # fx raises many types for untraceable code
        first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise HgpruneError(
            f"cannot trace {type(model).__name__} to find foldable BatchNorms ({first}); use --no-fold-bn"
        ) from None
    modules = dict(model.named_modules())
    calls: dict[str, int] = {}
    for node in graph.nodes:
        if node.op == "call_module":
            calls[node.target] = calls.get(node.target, 0) + 1
    pairs = []
    for node in graph.nodes:
        if node.op != "call_module" or not isinstance(modules.get(node.target), nn.Conv2d):
            continue
        users = list(node.users)
        if len(users) != 1 or users[0].op != "call_module":
            continue
        bn_name = users[0].target
        bn = modules.get(bn_name)
        if not isinstance(bn, nn.BatchNorm2d) or not bn.track_running_stats or bn.running_mean is None:
            continue
        if calls[node.target] != 1 or calls[bn_name] != 1 or users[0].args[0] is not node:
            continue  # shared weights or BN reused elsewhere: folding would change another call site
        pairs.append((node.target, bn_name))
    return pairs


@torch.no_grad()
def fold_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> None:
    """Absorb ``bn`` (eval statistics) into ``conv`` in place; computed in float64 to keep the fold exact."""
    gamma = bn.weight.double() if bn.weight is not None else torch.ones_like(bn.running_var, dtype=torch.float64)
    beta = bn.bias.double() if bn.bias is not None else torch.zeros_like(gamma)
    scale = gamma / torch.sqrt(bn.running_var.double() + bn.eps)
    bias = conv.bias.double() if conv.bias is not None else torch.zeros_like(scale)
    new_weight = conv.weight.double() * scale.view(-1, 1, 1, 1)
    new_bias = (bias - bn.running_mean.double()) * scale + beta
    conv.weight.copy_(new_weight.to(conv.weight.dtype))
    if conv.bias is None:
        conv.bias = nn.Parameter(new_bias.to(conv.weight.dtype))
    else:
        conv.bias.copy_(new_bias.to(conv.bias.dtype))


def _set_submodule(root: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, child, new)


def fold_batchnorm(model: nn.Module) -> tuple[nn.Module, list[tuple[str, str]]]:
    """A folded *copy* of ``model`` in eval mode (folded BNs become ``nn.Identity``) and the pairs folded.

    The caller's model is never modified, so it can serve as the reference the export is checked against.
    """
    folded = copy.deepcopy(model).eval()
    pairs = foldable_pairs(folded)
    for conv_name, bn_name in pairs:
        fold_conv_bn(folded.get_submodule(conv_name), folded.get_submodule(bn_name))
        _set_submodule(folded, bn_name, nn.Identity())
    return folded, pairs
