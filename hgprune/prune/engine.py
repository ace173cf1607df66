"""The pruning engine: one call prunes an hourglass to a kept fraction of the original MACs, params or channels.

How (and why it is fast): torch-pruning's ``DependencyGraph`` finds the coupled channel groups once; the criterion
scores every group once; then a bisection over one channel ratio *plans* which channels each group keeps and counts
MACs / params / channels of the plan analytically (conv MACs are ``unit · in · out`` per layer), so no candidate is
ever pruned or deep-copied. Only the chosen plan is applied, with explicit indices via ``get_pruning_group``, which
gives full control over rounding (torch-pruning only rounds down and skips small groups) and leaves the model in the
training mode it had. Final numbers are measured on the pruned model with :mod:`hgprune.profile`.

Which group keeps how many channels (uniform, global or searched) is :mod:`hgprune.prune.allocation`'s concern; the
engine hands it analytic plans and, for ``search``, a way to score a plan on a pruned copy.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any

import numpy as np
import torch
import torch_pruning as tp
from torch import nn

from hgprune.errors import HgpruneError
from hgprune.models.checkpoints import unwrap
from hgprune.models.hourglass import (
    HEAD_PREFIX,
    TRUNK_ROOT,
    HourglassNet,
    base_width,
    model_parts,
    part_of,
    probe_size,
)
from hgprune.profile import conv_macs, conv_pair_macs, count_params
from hgprune.prune import allocation as alloc
from hgprune.prune.bn import recalibrate_bn as _recalibrate_bn
from hgprune.prune.criteria import Criterion, get_criterion, group_layers
from hgprune.prune.targets import ROUND_MODES, SearchResult, round_keep

log = logging.getLogger(__name__)

KINDS = ("macs", "params", "channels")
TRUNK = "trunk"


@dataclass
class PruneResult:
    """What one prune step did. Fractions are relative to the reference (unpruned) model."""

    kept_macs: float
    kept_params: float
    channel_ratio: float
    widths: dict[str, int]
    kept_channels: float = 1.0
    kind: str = "macs"
    target: float = 1.0
    target_met: bool = True
    macs: int = 0
    params: int = 0
    channels: int = 0
    removed_channels: int = 0
    groups_pruned: int = 0
    search_evaluations: int = 0
    planned_fraction: float = 1.0  # the search's analytic count of ``kind``; equals the measured one
    allocation: dict = field(default_factory=dict)  # method, kept channels per part, search candidates if any
    bn_recalibrated: bool = False
    timings: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def model_size(model: nn.Module, input_size: int = 256) -> dict[str, int]:
    """``{"macs", "params", "channels"}`` as the engine counts them: conv MACs, parameters, sum of conv widths."""
    model = unwrap(model)
    return {
        "macs": int(conv_macs(model, input_size)),
        "params": count_params(model),
        "channels": sum(m.out_channels for m in model.modules() if isinstance(m, nn.Conv2d)),
    }


@dataclass
class _Group:
    root: nn.Conv2d
    name: str
    part: str
    width: int
    base_width: int
    order: np.ndarray  # channel indices, least important first
    normalized: np.ndarray  # scores / mean, for global ranking


class _Planner:
    """Counts MACs / params / channels of a plan (kept width per group) without touching the model."""

    def __init__(self, model: nn.Module, groups: list[tuple[_Group, Any]], pair_macs: dict[nn.Module, int]) -> None:
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


def prune_to_target(
    model: nn.Module,
    *,
    criterion: Criterion | str,
    kind: str = "macs",
    kept: float = 0.5,
    reference: dict[str, int] | None = None,
    input_size: int = 256,
    allocation: str | None = None,
    global_ranking: bool | None = None,
    part_ratios: dict[str, float] | None = None,
    max_layer_ratio: float = 0.9,
    round_to: int | None = 8,
    round_mode: str = "nearest",
    prune_trunk: bool = False,
    calibration: Iterable | None = None,
    loss_fn: Callable | None = None,
    tolerance: float = 0.02,
    ratio: float | None = None,
    recalibrate_bn: bool = False,
    search: alloc.SearchSettings | None = None,
    train_set: Any = None,
    seed: int = 0,
    progress: bool = True,
) -> PruneResult:
    """Prune ``model`` in place so that it keeps ``kept`` of the reference's ``kind`` (± ``tolerance``).

    ``reference`` is :func:`model_size` of the unpruned model (default: of ``model`` itself). ``part_ratios`` maps a
    part name (``stem``, ``hg{s}``, ``res{s}``, ``fc{s}``, ``trunk``, or ``*`` for every part not named) to a
    *multiplier* of the searched channel ratio: 0 leaves the part alone, 2 prunes it twice as hard. Parts with a
    multiplier other than 1 are ranked within each group even under ``global`` allocation. ``max_layer_ratio``
    caps what any group loses relative to the unpruned architecture, across all steps. The score heads are never
    pruned; the trunk (every M-wide tensor, coupled by the residual adds) only with ``prune_trunk``.

    ``allocation`` is ``uniform``, ``global`` or ``search`` (:mod:`hgprune.prune.allocation`; the deprecated
    ``global_ranking`` maps ``True`` → ``global``, ``False`` → ``uniform``; neither → ``global``). ``search`` and
    ``recalibrate_bn`` (re-estimate BatchNorm statistics after pruning) read ``train_set`` — the training split,
    never validation data — as ``search`` (:class:`~hgprune.prune.allocation.SearchSettings` or any object with
    its fields) bounds, drawn with ``seed``.

    ``ratio`` skips the search and prunes at that channel ratio (times each part's multiplier) — what a sensitivity
    scan needs; ``kept`` is then only reported against.
    """
    watch = _Stopwatch()
    model = unwrap(model)
    _validate(kind, kept, round_mode, tolerance, max_layer_ratio, round_to)
    if isinstance(criterion, str):
        criterion = get_criterion(criterion)
    multipliers = _part_multipliers(model, part_ratios, prune_trunk)
    allocation = alloc.resolve_allocation(allocation, global_ranking)
    search = search or alloc.SearchSettings()
    data = alloc.TrainingSlice(train_set, search, seed) if recalibrate_bn or allocation == "search" else None
    was_training = model.training
    threads = torch.get_num_threads()
    reference = dict(reference) if reference is not None else model_size(model, input_size)

    try:
        criterion.calibrate(model, calibration, loss_fn)
        watch.lap("calibrate_s")

        torch.set_num_threads(1)  # graph bookkeeping is tiny ops; extra threads only spin on a busy machine
        model.eval()  # tracing must not touch BatchNorm running statistics
        graph, pair_macs = _trace(model, input_size)
        raw_groups = list(graph.get_all_groups(ignored_layers=_heads(model), root_module_types=[nn.Conv2d]))
        watch.lap("graph_s")

        groups = _describe_groups(model, raw_groups, criterion)
        watch.lap("score_s")

        planner = _Planner(model, groups, pair_macs)
        infos = [info for info, _ in groups]
        mult = np.array([multipliers.get(g.part, multipliers["*"]) for g in infos], dtype=np.float64)

        def fraction_of(keep: np.ndarray) -> float:
            return planner.size(keep)[kind] / reference[kind]

        def plan_for(group_mult: np.ndarray, ranking: str, aim: float = tolerance) -> tuple[np.ndarray, SearchResult]:
            """Kept widths within ``aim`` of the target if reachable; ``met`` is judged against ``tolerance``."""
            plan = _plan_fn(infos, group_mult, ranking == "global", max_layer_ratio, round_to, round_mode)
            step_down = partial(_step_down, infos, group_mult, max_layer_ratio, round_to)
            keep, found = alloc.plan_to_target(plan, fraction_of, kept, aim, partial(_step_priority, infos), step_down)
            return keep, dataclasses.replace(found, met=abs(found.fraction - kept) <= tolerance)

        record: dict = {"method": allocation}
        if ratio is not None:
            if not 0 <= ratio <= 1:
                raise HgpruneError(f"prune ratio: must be in [0, 1], got {ratio}")
            keep = _plan_fn(infos, mult, allocation == "global", max_layer_ratio, round_to, round_mode)(ratio)
            at = fraction_of(keep)
            found = SearchResult(ratio, at, 1, abs(at - kept) <= tolerance)
        elif allocation == "search":
            units = [_search_unit(g) if m > 0 else None for g, m in zip(infos, mult)]
            prunable = sorted({u for u in units if u is not None})
            bias = alloc.sensitivity_bias(search.sensitivity, prunable) if search.sensitivity else {}

            def candidate_plan(candidate: alloc.Candidate) -> tuple[np.ndarray, SearchResult]:
                """Planned to a quarter of the tolerance: the proxy favours more MACs, so candidates must not differ
                in size by up to 2 × tolerance (measured: the search otherwise picked plans at the upper edge)."""
                factors = np.array([candidate.factors.get(u, 1.0) if u else 0.0 for u in units])
                group_mult = mult * factors if candidate.ranking == "uniform" else mult
                return plan_for(group_mult, candidate.ranking, aim=tolerance / 4)

            def score(keep: np.ndarray) -> float:
                clone = _pruned_copy(model, groups, keep, input_size)
                torch.set_num_threads(threads)  # scoring is real convolution work
                try:
                    _recalibrate_bn(clone, data.bn_batches())
                    return data.holdout_pckh(clone)
                finally:
                    torch.set_num_threads(1)

            outcome = alloc.search_allocation(
                alloc.sample_candidates(prunable, search, seed, bias),
                candidate_plan,
                score,
                partial(_describe_keep, infos),
                progress=progress,
            )
            keep, found = outcome.keep, outcome.found
            settings = {f.name: getattr(search, f.name) for f in dataclasses.fields(alloc.SearchSettings)}
            record.update(chosen=outcome.chosen, candidates=outcome.candidates, settings=settings)
        else:
            keep, found = plan_for(mult, allocation)
        record["parts"] = _describe_keep(infos, keep)
        watch.lap("search_s")

        removed = groups_pruned = 0
        for (info, group), keep_count in zip(groups, keep):
            n_remove = info.width - int(keep_count)
            if n_remove > 0:
                _prune_group(graph, info, group, info.order[:n_remove])
                removed += n_remove
                groups_pruned += 1
        watch.lap("prune_s")
        if recalibrate_bn:
            torch.set_num_threads(threads)
            _recalibrate_bn(model, data.bn_batches())
            watch.lap("recalibrate_bn_s")
    finally:
        torch.set_num_threads(threads)
        model.train(was_training)

    size = _measured_size(model, pair_macs)
    watch.lap("measure_s")
    fractions = {k: size[k] / reference[k] for k in KINDS}
    met = abs(fractions[kind] - kept) <= tolerance or (found.ratio == 0.0 and fractions[kind] <= kept + tolerance)
    if not met and ratio is None:
        log.warning(
            "prune target %s=%.3f not reached: got %.3f (round_to=%s, max_layer_ratio=%s limit the reachable widths)",
            kind, kept, fractions[kind], round_to, max_layer_ratio,
        )  # fmt: skip
    timings = dict(watch.timings, total_s=sum(watch.timings.values()))
    return PruneResult(
        kept_macs=fractions["macs"],
        kept_params=fractions["params"],
        kept_channels=fractions["channels"],
        channel_ratio=found.ratio,
        widths={n: m.out_channels for n, m in model.named_modules() if isinstance(m, nn.Conv2d)},
        kind=kind,
        target=kept,
        target_met=met,
        macs=size["macs"],
        params=size["params"],
        channels=size["channels"],
        removed_channels=removed,
        groups_pruned=groups_pruned,
        search_evaluations=found.evaluations,
        planned_fraction=found.fraction,
        allocation=record,
        bn_recalibrated=bool(recalibrate_bn),
        timings=timings,
    )


class _Stopwatch:
    """Per-phase wall times, so the benchmark can say where a prune step spends its time."""

    def __init__(self) -> None:
        self.timings: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.timings[name] = now - self._last
        self._last = now


def prune_with(
    model: nn.Module,
    section: Any,
    *,
    kept: float,
    criterion: Criterion | str,
    reference: dict[str, int] | None,
    input_size: int,
    calibration: Iterable | None = None,
    loss_fn: Callable | None = None,
    train_set: Any = None,
    seed: int = 0,
) -> PruneResult:
    """:func:`prune_to_target` driven by a recipe's ``prune`` section (:class:`hgprune.recipe.PruneSection`): the
    one place recipe keys become engine options."""
    return prune_to_target(
        model,
        criterion=criterion,
        kind=section.target.kind,
        kept=kept,
        reference=reference,
        input_size=input_size,
        allocation=section.allocation,
        part_ratios=dict(section.part_ratios) or None,
        max_layer_ratio=section.max_layer_ratio,
        round_to=section.round_to,
        round_mode=section.round_mode,
        prune_trunk=section.prune_trunk,
        calibration=calibration,
        loss_fn=loss_fn,
        tolerance=section.tolerance,
        recalibrate_bn=section.recalibrate_bn,
        search=section.search,
        train_set=train_set,
        seed=seed,
    )


def _validate(kind: str, kept: float, round_mode: str, tolerance: float, max_layer_ratio: float, round_to) -> None:
    if kind not in KINDS:
        raise HgpruneError(f"prune.target kind: unknown {kind!r}; valid: {', '.join(KINDS)}")
    if not 0 < kept <= 1:
        raise HgpruneError(f"prune.target.{kind}: must be in (0, 1], got {kept}")
    if round_mode not in ROUND_MODES:
        raise HgpruneError(f"prune.round_mode: unknown {round_mode!r}; valid: {', '.join(ROUND_MODES)}")
    if not tolerance > 0:
        raise HgpruneError(f"prune.tolerance: must be > 0, got {tolerance}")
    if not 0 <= max_layer_ratio <= 1:
        raise HgpruneError(f"prune.max_layer_ratio: must be in [0, 1], got {max_layer_ratio}")
    if round_to is not None and (int(round_to) != round_to or round_to < 1):
        raise HgpruneError(f"prune.round_to: must be an integer >= 1, got {round_to}")


def _part_multipliers(model: nn.Module, part_ratios: dict[str, float] | None, prune_trunk: bool) -> dict[str, float]:
    """Validated multiplier per part; the trunk gets 0 unless ``prune_trunk``."""
    parts = [p for p in model_parts(model) if not p.startswith("score")] if isinstance(model, HourglassNet) else []
    valid = [*parts, TRUNK, "*"]
    part_ratios = dict(part_ratios or {})
    for key, value in part_ratios.items():
        if key not in valid:
            raise HgpruneError(f"prune.part_ratios.{key}: unknown part; valid: {', '.join(valid)}")
        if not isinstance(value, (int, float)) or value < 0:
            raise HgpruneError(f"prune.part_ratios.{key}: must be a multiplier >= 0, got {value!r}")
    if TRUNK in part_ratios and not prune_trunk:
        raise HgpruneError("prune.part_ratios.trunk: the trunk is only pruned with prune.prune_trunk: true")
    default = float(part_ratios.get("*", 1.0))
    multipliers = {p: float(part_ratios.get(p, default)) for p in parts}
    multipliers[TRUNK] = float(part_ratios.get(TRUNK, default)) if prune_trunk else 0.0
    multipliers["*"] = default
    return multipliers


def _trace(model: nn.Module, input_size: int) -> tuple[Any, dict[nn.Module, int]]:
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


def _heads(model: nn.Module) -> list[nn.Module]:
    """The score heads: one channel per joint, never pruned."""
    return [m for n, m in model.named_modules() if n.startswith(HEAD_PREFIX) and isinstance(m, nn.Conv2d)]


def _measured_size(model: nn.Module, pair_macs: dict[nn.Module, int]) -> dict[str, int]:
    """:func:`model_size` of the pruned model from its real layer widths (same numbers, no forward pass)."""
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    return {
        "macs": int(sum(pair_macs.get(m, 0) * m.in_channels * m.out_channels for m in convs)),
        "params": count_params(model),
        "channels": sum(m.out_channels for m in convs),
    }


def _prune_group(graph: Any, info: _Group, group: Any, channels: np.ndarray) -> None:
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


def _base_width(name: str, model: nn.Module, width: int) -> int:
    """Out-channels of conv ``name`` in the unpruned architecture (a foreign model: its current width)."""
    config = getattr(model, "config", None)
    return base_width(name, config) if isinstance(model, HourglassNet) and config is not None else width


def _describe_groups(model: nn.Module, raw_groups: list, criterion: Criterion) -> list[tuple[_Group, Any]]:
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
        info = _Group(
            root=root,
            name=name,
            part=part,
            width=width,
            base_width=_base_width(name, model, width),
            order=np.argsort(values, kind="stable"),
            normalized=values / mean if mean > 0 else values,
        )
        described.append((info, group))
    return described


def _plan_fn(
    infos: list[_Group],
    mult: np.ndarray,
    global_ranking: bool,
    max_layer_ratio: float,
    round_to: int | None,
    round_mode: str,
) -> Callable[[float], np.ndarray]:
    """``ratio → kept width per group`` for per-group multipliers ``mult``; monotone in ``ratio``, which is what
    makes bisection valid. Under ``global_ranking`` the groups with multiplier 1 pool their normalised scores."""
    widths = np.array([g.width for g in infos], dtype=np.int64)
    min_keep = [_min_keep(g, max_layer_ratio) for g in infos]
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
                keep[i] = round_keep(float(raw[i]), g.width, round_to, round_mode, min_keep[i])
        return keep

    return plan


def _min_keep(info: _Group, max_layer_ratio: float) -> int:
    """Fewest channels a group may keep: ``max_layer_ratio`` is relative to the unpruned architecture."""
    return max(1, math.ceil(info.base_width * (1 - max_layer_ratio) - 1e-9))


def _step_down(
    infos: list[_Group], mult: np.ndarray, max_layer_ratio: float, round_to: int | None, index: int, keep: int
) -> int | None:
    """The next smaller width group ``index`` may take (a multiple of ``round_to``), or None (left alone / floor)."""
    if mult[index] == 0.0:
        return None
    step = max(int(round_to or 1), 1)
    smaller = (keep - 1) // step * step
    return smaller if smaller >= max(_min_keep(infos[index], max_layer_ratio), 1) else None


def _step_priority(infos: list[_Group], index: int, keep_from: int, keep_to: int) -> float:
    """Mean normalised score of the channels group ``index`` loses going from ``keep_from`` to ``keep_to``."""
    g = infos[index]
    lost = g.order[g.width - keep_from : g.width - keep_to]
    return float(np.mean(g.normalized[lost])) if len(lost) else math.inf


def _search_unit(info: _Group) -> str:
    """What the search varies together: a part, with each hourglass level on its own (hg0.level3 is full size)."""
    fields = info.name.split(".")
    if info.part.startswith("hg") and len(fields) > 3 and fields[0] == "hg" and fields[2] == "hg":
        return f"{info.part}.level{fields[3]}"
    return info.part


def _describe_keep(infos: list[_Group], keep: np.ndarray) -> dict[str, dict[str, int]]:
    """Kept / original channels per search unit: what a reader needs to see where a plan cut."""
    parts: dict[str, dict[str, int]] = {}
    for info, k in zip(infos, keep):
        entry = parts.setdefault(_search_unit(info), {"kept": 0, "width": 0})
        entry["kept"] += int(k)
        entry["width"] += info.width
    return parts


def _pruned_copy(model: nn.Module, groups: list[tuple[_Group, Any]], keep: np.ndarray, input_size: int) -> nn.Module:
    """A deep copy of ``model`` pruned to ``keep``; ``model`` is untouched. The copy gets its own graph (groups hold
    module references), and the original's channel order, so it is exactly what pruning ``model`` would give."""
    clone = copy.deepcopy(model)
    graph, _ = _trace(clone, input_size)
    names = dict(clone.named_modules())
    by_root = {}
    for group in graph.get_all_groups(ignored_layers=_heads(clone), root_module_types=[nn.Conv2d]):
        by_root[group[0].dep.target.module] = group
    for (info, _), keep_count in zip(groups, keep):
        n_remove = info.width - int(keep_count)
        if n_remove <= 0:
            continue
        root = names[info.name]
        if root not in by_root:
            raise HgpruneError(f"{info.name}: no matching group in the copy of the model")
        _prune_group(graph, dataclasses.replace(info, root=root), by_root[root], info.order[:n_remove])
    return clone
