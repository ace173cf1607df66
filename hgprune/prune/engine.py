"""The pruning engine: one call prunes an hourglass to a kept fraction of the original MACs, params or channels.

How (and why it is fast): torch-pruning's ``DependencyGraph`` finds the coupled channel groups once; the criterion
scores every group once; then a bisection over one channel ratio *plans* which channels each group keeps and counts
MACs / params / channels of the plan analytically (conv MACs are ``unit · in · out`` per layer), so no candidate is
ever pruned or deep-copied. Only the chosen plan is applied, with explicit indices via ``get_pruning_group``, which
gives full control over rounding (torch-pruning only rounds down and skips small groups) and leaves the model in the
training mode it had. Final numbers are measured on the pruned model with :mod:`hgprune.profile`.

Plans and their analytic costs live in :mod:`hgprune.prune.planning`. Which group keeps how many channels (uniform,
global or searched) is :mod:`hgprune.prune.allocation`'s concern; the engine hands it analytic plans and, for
``search``, a way to score a plan on a pruned copy.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any

import numpy as np
import torch
import torch_pruning as tp
from torch import nn

from hgprune.calibration import recalibrate_bn as _recalibrate_bn
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
from hgprune.prune.criteria import Criterion, get_criterion, group_layers
from hgprune.prune.planning import Group, Planner, describe_keep, ratio_plan, search_unit, step_down, step_priority
from hgprune.prune.targets import SearchResult
from hgprune.settings import PRUNE_KINDS, PruneSection, SearchSettings, TargetSection

log = logging.getLogger(__name__)

KINDS = PRUNE_KINDS
DEFAULTS = PruneSection()  # the engine's defaults are the recipe's
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


def prune_to_target(
    model: nn.Module,
    *,
    criterion: Criterion | str,
    kind: str = "macs",
    kept: float = 0.5,
    reference: dict[str, int] | None = None,
    input_size: int = 256,
    allocation: str = DEFAULTS.allocation,
    part_ratios: dict[str, float] | None = None,
    max_layer_ratio: float = DEFAULTS.max_layer_ratio,
    round_to: int | None = DEFAULTS.round_to,
    round_mode: str = DEFAULTS.round_mode,
    prune_trunk: bool = DEFAULTS.prune_trunk,
    calibration: Iterable | None = None,
    loss_fn: Callable | None = None,
    tolerance: float = DEFAULTS.tolerance,
    ratio: float | None = None,
    recalibrate_bn: bool | None = None,
    search: SearchSettings | None = None,
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

    ``allocation`` is ``uniform``, ``global`` or ``search`` (:mod:`hgprune.prune.allocation`). ``search`` and
    ``recalibrate_bn`` (re-estimate BatchNorm statistics after pruning) read ``train_set`` — the training split,
    never validation data — as ``search`` (:class:`~hgprune.settings.SearchSettings`) bounds, drawn with ``seed``.
    ``recalibrate_bn=None`` means the recipe's default (re-estimate) when a ``train_set`` is given, else no.
    Every default here is the recipe's (:class:`hgprune.settings.PruneSection`).

    ``ratio`` skips the search and prunes at that channel ratio (times each part's multiplier) — what a sensitivity
    scan needs; ``kept`` is then only reported against.
    """
    watch = _Stopwatch()
    model = unwrap(model)
    _validate(kind, kept, allocation, round_mode, tolerance, max_layer_ratio, round_to, search)
    if isinstance(criterion, str):
        criterion = get_criterion(criterion)
    multipliers = _part_multipliers(model, part_ratios, prune_trunk)
    search = search or SearchSettings()
    if recalibrate_bn is None:
        recalibrate_bn = DEFAULTS.recalibrate_bn and train_set is not None
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

        planner = Planner(model, groups, pair_macs)
        infos = [info for info, _ in groups]
        mult = np.array([multipliers.get(g.part, multipliers["*"]) for g in infos], dtype=np.float64)

        def fraction_of(keep: np.ndarray) -> float:
            return planner.size(keep)[kind] / reference[kind]

        def plan_for(group_mult: np.ndarray, ranking: str, aim: float = tolerance) -> tuple[np.ndarray, SearchResult]:
            """Kept widths within ``aim`` of the target if reachable; ``met`` is judged against ``tolerance``."""
            plan = ratio_plan(infos, group_mult, ranking == "global", max_layer_ratio, round_to, round_mode)
            down = partial(step_down, infos, group_mult, max_layer_ratio, round_to)
            keep, found = alloc.plan_to_target(plan, fraction_of, kept, aim, partial(step_priority, infos), down)
            return keep, dataclasses.replace(found, met=abs(found.fraction - kept) <= tolerance)

        record: dict = {"method": allocation}
        if ratio is not None:
            if not 0 <= ratio <= 1:
                raise HgpruneError(f"prune ratio: must be in [0, 1], got {ratio}")
            keep = ratio_plan(infos, mult, allocation == "global", max_layer_ratio, round_to, round_mode)(ratio)
            at = fraction_of(keep)
            found = SearchResult(ratio, at, 1, abs(at - kept) <= tolerance)
        elif allocation == "search":
            # candidates are planned to a quarter of the tolerance: the proxy favours more MACs, so candidates must
            # not differ in size by up to 2 × tolerance (measured: the search otherwise picked plans at the upper edge)
            near = partial(plan_for, aim=tolerance / 4)
            searched = _search_plan(model, groups, mult, near, search, data, seed, input_size, threads, progress)
            keep, found, details = searched
            record.update(details)
        else:
            keep, found = plan_for(mult, allocation)
        record["parts"] = describe_keep(infos, keep)
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


def _search_plan(
    model: nn.Module,
    groups: list[tuple[Group, Any]],
    mult: np.ndarray,
    plan_for: Callable[..., tuple[np.ndarray, SearchResult]],
    search: SearchSettings,
    data: alloc.TrainingSlice,
    seed: int,
    input_size: int,
    threads: int,
    progress: bool = True,
) -> tuple[np.ndarray, SearchResult, dict]:
    """``allocation: search``: sampled per-unit allocations, each planned by ``plan_for(mult, ranking)``, scored on a
    pruned copy (BatchNorm re-estimated, PCKh on the held-out training slice) with ``threads`` threads; returns the
    best plan, its search result and what the run directory records."""
    infos = [info for info, _ in groups]
    units = [search_unit(g) if m > 0 else None for g, m in zip(infos, mult)]
    prunable = sorted({u for u in units if u is not None})
    bias = alloc.sensitivity_bias(search.sensitivity, prunable) if search.sensitivity else {}

    def candidate_plan(candidate: alloc.Candidate) -> tuple[np.ndarray, SearchResult]:
        factors = np.array([candidate.factors.get(u, 1.0) if u else 0.0 for u in units])
        group_mult = mult * factors if candidate.ranking == "uniform" else mult
        return plan_for(group_mult, candidate.ranking)

    def score(keep: np.ndarray) -> float:
        clone = _pruned_copy(model, groups, keep, input_size)
        torch.set_num_threads(threads)  # scoring is real convolution work; planning runs on one thread
        try:
            _recalibrate_bn(clone, data.bn_batches())
            return data.holdout_pckh(clone)
        finally:
            torch.set_num_threads(1)

    outcome = alloc.search_allocation(
        alloc.sample_candidates(prunable, search, seed, bias),
        candidate_plan,
        score,
        partial(describe_keep, infos),
        progress=progress,
    )
    settings = {f.name: getattr(search, f.name) for f in dataclasses.fields(SearchSettings)}
    return outcome.keep, outcome.found, dict(chosen=outcome.chosen, candidates=outcome.candidates, settings=settings)


class _Stopwatch:
    """Per-phase wall times, so the benchmark can say where a prune step spends its time."""

    def __init__(self) -> None:
        self.timings: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.timings[name] = now - self._last
        self._last = now


def prune_options(section: PruneSection) -> dict[str, Any]:
    """The engine options a recipe's ``prune`` section sets: the one place recipe keys become engine options (the
    run, ``--dry-run``'s preview and its cache key all read them here)."""
    return dict(
        kind=section.target.kind,
        allocation=section.allocation,
        part_ratios=dict(section.part_ratios) or None,
        max_layer_ratio=section.max_layer_ratio,
        round_to=section.round_to,
        round_mode=section.round_mode,
        prune_trunk=section.prune_trunk,
        tolerance=section.tolerance,
        recalibrate_bn=section.recalibrate_bn,
        search=section.search,
    )


def prune_with(
    model: nn.Module,
    section: PruneSection,
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
    """:func:`prune_to_target` driven by a recipe's ``prune`` section (:func:`prune_options`)."""
    return prune_to_target(
        model,
        criterion=criterion,
        kept=kept,
        reference=reference,
        input_size=input_size,
        calibration=calibration,
        loss_fn=loss_fn,
        train_set=train_set,
        seed=seed,
        **prune_options(section),
    )


def _validate(
    kind: str, kept: float, allocation: str, round_mode: str, tolerance: float, max_layer_ratio: float, round_to, search
) -> None:
    """The engine's options, checked by their one definition (:class:`hgprune.settings.PruneSection`)."""
    if kind not in KINDS:
        raise HgpruneError(f"prune.target.kind: unknown {kind!r}; valid: {', '.join(KINDS)}")
    options = dict(allocation=allocation, round_mode=round_mode, tolerance=tolerance, max_layer_ratio=max_layer_ratio)
    if round_to is not None:
        options["round_to"] = round_to
    PruneSection(target=TargetSection(kind=kind, kept=kept), **options)
    if search is not None and not isinstance(search, SearchSettings):
        raise HgpruneError(f"prune.search: must be a SearchSettings, got {type(search).__name__}")


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


def _prune_group(graph: Any, info: Group, group: Any, channels: np.ndarray) -> None:
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


def _describe_groups(model: nn.Module, raw_groups: list, criterion: Criterion) -> list[tuple[Group, Any]]:
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
            base_width=_base_width(name, model, width),
            order=np.argsort(values, kind="stable"),
            normalized=values / mean if mean > 0 else values,
        )
        described.append((info, group))
    return described


def _pruned_copy(model: nn.Module, groups: list[tuple[Group, Any]], keep: np.ndarray, input_size: int) -> nn.Module:
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
