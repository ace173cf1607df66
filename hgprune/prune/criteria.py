"""Channel-importance criteria: a plain registry of classes, each scoring one torch-pruning dependency group.

A criterion is any class with ``score(group) -> Tensor`` (one importance value per channel of the group's root, as
``torch_pruning.importance.Importance.__call__`` returns), ``calibrate(model, batches, loss_fn)`` and
``reseed(seed)``. Every prune step calls ``reseed`` (with a seed derived from the recipe seed and the step) and then
``calibrate`` before scoring, and never checks which criterion it holds, so a data-driven criterion needs nothing
more than its own ``calibrate`` and a stochastic one its own ``reseed``. Adding one = a class +
``@register_criterion("name")``; a recipe may also name
``"package.module:ClassName"``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch
import torch_pruning as tp
from torch import nn

from hgprune.errors import HgpruneError

CRITERIA: dict[str, type[Criterion]] = {}


def register_criterion(name: str) -> Callable[[type], type]:
    """Class decorator: make ``name`` usable in recipes and ``get_criterion``."""

    def add(cls: type) -> type:
        if name in CRITERIA and CRITERIA[name] is not cls:
            raise ValueError(f"criterion {name!r} is already registered to {CRITERIA[name].__name__}")
        CRITERIA[name] = cls
        return cls

    return add


def get_criterion(name: str, **kwargs: Any) -> Criterion:
    """An instance of a registered criterion, or of ``"package.module:Class"``; errors list the valid names."""
    if ":" in name:
        module_name, _, class_name = name.partition(":")
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:  # noqa: BLE001 - any import failure is the user's module, reported in one line
            reason = f"{type(exc).__name__}: {exc}".splitlines()[0]
            raise HgpruneError(f"criterion {name!r}: cannot import {module_name!r} ({reason})") from None
        cls = getattr(module, class_name, None)
        if cls is None or not isinstance(cls, type):
            raise HgpruneError(f"criterion {name!r}: module {module_name!r} has no class {class_name!r}")
        if not callable(getattr(cls, "score", None)):
            raise HgpruneError(f"criterion {name!r}: class {class_name!r} has no score(group) method")
    else:
        cls = CRITERIA.get(name)
        if cls is None:
            raise HgpruneError(
                f"unknown criterion {name!r}; valid: {', '.join(sorted(CRITERIA))} or 'package.module:ClassName'"
            )
    try:
        criterion = cls(**kwargs)
    except TypeError as exc:
        raise HgpruneError(f"criterion {name!r}: bad options {sorted(kwargs)} ({exc})") from None
    for hook in ("calibrate", "reseed"):
        if not callable(getattr(criterion, hook, None)):
            # A user class may define only score(); give it the default no-op hooks so callers stay uniform.
            setattr(criterion, hook, getattr(Criterion, hook).__get__(criterion))
    return criterion


def group_layers(group: Any) -> Iterator[tuple[str, nn.Module, list[int], list[int]]]:
    """The parameterised members of a dependency group as ``(role, layer, idxs, root_idxs)``.

    ``role`` is ``"conv_out"`` (the layer's filters produce the channels), ``"conv_in"`` (the layer consumes them) or
    ``"bn"`` (a BatchNorm normalises them). ``idxs`` index the layer's own tensor; ``root_idxs`` index the scores.
    """
    for item in group:
        dep, idxs = item.dep, item.idxs
        layer = dep.target.module
        root_idxs = item.root_idxs if item.root_idxs is not None else idxs
        if isinstance(layer, nn.Conv2d):
            role = "conv_out" if dep.handler == tp.prune_conv_out_channels else "conv_in"
            yield role, layer, list(idxs), list(root_idxs)
        elif isinstance(layer, nn.modules.batchnorm._BatchNorm):
            yield "bn", layer, list(idxs), list(root_idxs)


def group_size(group: Any) -> int:
    """Number of channels of the group's root (the length every score must have)."""
    return len(group[0].idxs)


def _channel_sum(tensor: torch.Tensor, role: str) -> torch.Tensor:
    """Per-channel sum of a conv weight-shaped tensor along the axis ``role`` prunes."""
    if tensor.dim() == 1:
        return tensor
    if role == "conv_in":
        return tensor.transpose(0, 1).flatten(1).sum(1)
    return tensor.flatten(1).sum(1)


class Criterion:
    """Base class: subclasses implement ``score``; data-driven ones also override ``calibrate``."""

    def calibrate(self, model: nn.Module, batches: Iterable | None, loss_fn: Callable | None) -> None:
        """Collect whatever ``score`` needs from data. The engine always calls it; the default needs nothing."""

    def reseed(self, seed: int) -> None:
        """Restart any randomness from ``seed``; called once per prune step. The default has none."""

    def score(self, group: Any) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


@register_criterion("l1")
class L1Criterion(Criterion):
    """Filter L1 norm (Li et al. 2017), averaged over the convs that produce the group's channels."""

    @torch.no_grad()
    def score(self, group: Any) -> torch.Tensor:
        scores = torch.zeros(group_size(group))
        producers = 0
        for role, layer, idxs, root_idxs in group_layers(group):
            if role != "conv_out":
                continue
            filters = layer.weight.detach()[idxs].abs().flatten(1).sum(1).float().cpu()
            scores.index_add_(0, torch.tensor(root_idxs), filters)
            producers += 1
        return scores / max(producers, 1)


@register_criterion("bn_gamma")
class BNGammaCriterion(Criterion):
    """|γ| of the BatchNorms that gate a channel (network slimming, Liu et al. 2017), averaged over them.

    Every group of the hourglass has a BatchNorm; a group without one (a custom model) falls back to ``l1``.
    """

    @torch.no_grad()
    def score(self, group: Any) -> torch.Tensor:
        scores = torch.zeros(group_size(group))
        gates = 0
        for role, layer, idxs, root_idxs in group_layers(group):
            if role == "bn" and layer.affine:
                scores.index_add_(0, torch.tensor(root_idxs), layer.weight.detach()[idxs].abs().float().cpu())
                gates += 1
        if gates == 0:
            return L1Criterion().score(group)
        return scores / gates


@register_criterion("random")
class RandomCriterion(Criterion):
    """Seeded random scores: the control every real criterion has to beat."""

    def __init__(self, seed: int = 0) -> None:
        self.reseed(seed)

    def reseed(self, seed: int) -> None:
        self.seed = int(seed)
        self._generator = torch.Generator().manual_seed(self.seed)

    def score(self, group: Any) -> torch.Tensor:
        return torch.rand(group_size(group), generator=self._generator)


@register_criterion("taylor")
class TaylorCriterion(Criterion):
    """First-order Taylor importance (Molchanov et al. 2019), BatchNorm γ·∂L/∂γ and β·∂L/∂β included.

    ``calibrate`` runs forward+backward on each calibration batch ``(images, targets, target_weight[, meta])`` with
    the model in eval mode (running statistics stay untouched) and accumulates, for every conv filter, conv input
    slice and BN channel, the squared per-batch sum of ``w·∂L/∂w`` over that channel's parameters (weight and bias).
    A group's score is the mean over batches of those squares, summed over the group's members — unlike
    torch-pruning 1.6.1's ``GroupTaylorImportance``, which skips BatchNorm layers entirely.
    """

    def __init__(self) -> None:
        self.stats: dict[tuple[int, str], torch.Tensor] = {}
        self.batches = 0
        self._modules: dict[int, nn.Module] = {}

    def calibrate(self, model: nn.Module, batches: Iterable | None, loss_fn: Callable | None) -> None:
        if batches is None or loss_fn is None:
            raise HgpruneError("criterion 'taylor' needs calibration batches and a loss_fn (prune.calibration_batches)")
        self.stats, self.batches, self._modules = {}, 0, {}
        layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.modules.batchnorm._BatchNorm))]
        saved_grads = {p: p.grad for p in model.parameters()}
        was_training = model.training
        model.eval()
        device = next(model.parameters()).device
        try:
            for batch in batches:
                images, targets, weights = batch[0], batch[1], batch[2]
                model.zero_grad(set_to_none=True)
                with torch.enable_grad():
                    outputs = model(images.to(device))
                    loss = loss_fn(outputs, _to(targets, device), _to(weights, device))
                    loss.backward()
                for layer in layers:
                    self._accumulate(layer)
                self.batches += 1
        finally:
            for p, g in saved_grads.items():
                p.grad = g
            model.train(was_training)
        if self.batches == 0:
            raise HgpruneError("criterion 'taylor': the calibration set yielded no batches")

    @torch.no_grad()
    def _accumulate(self, layer: nn.Module) -> None:
        roles = ("bn",) if isinstance(layer, nn.modules.batchnorm._BatchNorm) else ("conv_out", "conv_in")
        self._modules[id(layer)] = layer
        for role in roles:
            total = None
            for name in ("weight", "bias"):
                param = getattr(layer, name, None)
                if param is None or param.grad is None:
                    continue
                if role == "conv_in" and name == "bias":
                    continue  # a conv's bias belongs to its outputs
                contribution = _channel_sum((param * param.grad).float(), role)
                total = contribution if total is None else total + contribution
            if total is None:
                continue
            key = (id(layer), role)
            squared = total.pow(2).cpu()
            self.stats[key] = self.stats[key] + squared if key in self.stats else squared

    def score(self, group: Any) -> torch.Tensor:
        if not self.stats:
            raise HgpruneError("criterion 'taylor': score() before calibrate(); the engine calibrates first")
        scores = torch.zeros(group_size(group))
        for role, layer, idxs, root_idxs in group_layers(group):
            stat = self.stats.get((id(layer), role))
            if stat is None or self._modules.get(id(layer)) is not layer:
                continue
            scores.index_add_(0, torch.tensor(root_idxs), stat[idxs] / self.batches)
        return scores


def _to(value: Any, device: torch.device) -> Any:
    if torch.is_tensor(value):
        return value.to(device)
    if isinstance(value, (list, tuple)):
        return type(value)(_to(v, device) for v in value)
    return value
