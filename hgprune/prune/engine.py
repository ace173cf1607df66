"""The pruning engine: one call prunes an hourglass to a kept fraction of the original MACs, params or channels.

How (and why it is fast): torch-pruning's ``DependencyGraph`` finds the coupled channel groups once; the criterion
scores every group once; then a bisection over one channel ratio *plans* which channels each group keeps and counts
MACs / params / channels of the plan analytically (conv MACs are ``unit · in · out`` per layer), so no candidate is
ever pruned or deep-copied. Only the chosen plan is applied, with explicit indices via ``get_pruning_group``, which
gives full control over rounding (torch-pruning only rounds down and skips small groups) and leaves the model in the
training mode it had. Final numbers are measured on the pruned model with :mod:`hgprune.profile`.

With ``depth`` other than ``none``, whole stacks and residual blocks go first (:mod:`hgprune.prune.depth` plans
which, with a cost model from :mod:`hgprune.prune.cost`), then channels meet the target on what remains; a
depth-pruned model records what it lost in its config.

One prune step has one shape: :func:`plan_prune` (the planner) decides the depth units and each group's channel
cuts that meet the target under a cost model and returns a :class:`PrunePlan`; :func:`apply_plan` (the engine)
carries it out and measures; :func:`prune_to_target` is the two in a row. Channel groups (torch-pruning's graph)
live in :mod:`hgprune.prune.graph`; plans' analytic costs in :mod:`hgprune.prune.planning`. Which group keeps how
many channels (uniform, global or searched) is :mod:`hgprune.prune.allocation`'s concern; the planner hands it
analytic plans and, for ``search``, a way to score a plan on a pruned copy.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any

import numpy as np
import torch
from torch import nn

from hgprune.calibration import recalibrate_bn as _recalibrate_bn
from hgprune.errors import HgpruneError
from hgprune.models.checkpoints import unwrap
from hgprune.models.hourglass import (
    HourglassNet,
    model_parts,
)
from hgprune.profile import conv_macs, count_params
from hgprune.prune import allocation as alloc
from hgprune.prune.cost import COSTS, CostModel, get_cost
from hgprune.prune.criteria import Criterion, get_criterion
from hgprune.prune.depth import DEPTH_MODES, Importance, plan_depth, remove_units, remove_units_
from hgprune.prune.graph import (
    TRUNK,
    describe_groups,
    groups_by_name,
    heads,
    measured_size,
    prune_group,
    pruned_copy,
    trace,
)
from hgprune.prune.planning import Group, Planner, describe_keep, ratio_plan, search_unit, step_down, step_priority
from hgprune.prune.targets import SearchResult
from hgprune.settings import PRUNE_KINDS, PruneSection, SearchSettings, TargetSection

log = logging.getLogger(__name__)

KINDS = PRUNE_KINDS
DEFAULTS = PruneSection()  # the engine's defaults are the recipe's


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
    removed_units: list[str] = field(default_factory=list)  # depth pruning: stacks / blocks removed by this step
    depth: dict = field(default_factory=dict)  # the depth plan (hgprune.prune.depth.DepthPlan.to_dict) if any
    kept_cost: float | None = None  # kept fraction of a cost model's cost (e.g. predicted latency), when kind is one

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
class _Planned:
    """What the planner traced, kept with the plan: applied to the model it was planned on, the engine reuses the
    graph and groups instead of tracing again; ``data`` and ``cost_model`` are the ones the plan was made with."""

    model: nn.Module
    graph: Any
    groups: list
    pair_macs: dict
    data: Any
    cost_model: CostModel | None


@dataclass
class PrunePlan:
    """What one prune step will do, decided without touching the model: the depth units it removes, then the
    channels each coupled group loses (by the group's root conv name, in the depth-pruned model), and what the plan
    is predicted to cost. :func:`apply_plan` carries it out."""

    kind: str  # what the target counts: macs, params, channels or a cost model's name (e.g. latency)
    target: float  # kept fraction of the reference's ``kind`` aimed at
    tolerance: float
    reference: dict[str, float]  # the unpruned model's sizes (and cost under ``kind``)
    input_size: int = 256
    removed_units: list[str] = field(default_factory=list)  # stacks / blocks (hgprune.prune.depth)
    keep: dict[str, int] = field(default_factory=dict)  # channels kept per group (root conv name)
    remove: dict[str, list[int]] = field(default_factory=dict)  # channel indices each group loses
    predicted_fraction: float = 1.0  # planned kept fraction of ``kind`` (analytic for macs/params/channels)
    ratio: float = 0.0  # the channel ratio found
    evaluations: int = 0  # plans counted by the search
    met: bool = True  # the prediction is within tolerance
    fixed_ratio: bool = False  # planned at a given channel ratio (a sensitivity scan): the target is only reported
    allocation: dict = field(default_factory=dict)  # method, kept channels per part, search candidates, depth plan
    depth: dict = field(default_factory=dict)  # hgprune.prune.depth.DepthPlan.to_dict() when depth pruning ran
    timings: dict[str, float] = field(default_factory=dict)
    _planned: _Planned | None = field(default=None, repr=False, compare=False)  # what apply_plan may reuse

    @property
    def predicted_cost(self) -> float:
        return self.predicted_fraction * self.reference[self.kind]

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if not f.name.startswith("_")}


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
    depth: str = DEFAULTS.depth,
    depth_importance: str | Importance = DEFAULTS.depth_importance,
    cost_model: CostModel | None = None,
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

    ``depth`` (``none``, ``blocks``, ``stacks``, ``all``) first removes whole residual blocks and/or stacks, ranked by
    ``depth_importance`` (:data:`hgprune.prune.depth.IMPORTANCES`; ``loss`` reads ``train_set``), while the cost
    stays at or above the target; channels then meet the target on what remains. ``cost_model`` (default: the
    registered one named ``kind``, :data:`hgprune.prune.cost.COSTS`) is what the target counts; a cost model of
    another name (e.g. latency) is planned by measuring pruned copies, and ``reference[kind]`` must then hold the
    unpruned model's cost. A cost model's ``snap``, when set, replaces ``round_to``.
    """
    model = unwrap(model)
    options = dict(locals())
    del options["model"], options["recalibrate_bn"]
    if recalibrate_bn is None:
        recalibrate_bn = DEFAULTS.recalibrate_bn and train_set is not None
    plan = plan_prune(model, **options)
    data = plan._planned.data if plan._planned is not None else None
    if recalibrate_bn and data is None:
        data = alloc.TrainingSlice(train_set, search or SearchSettings(), seed)
    return apply_plan(model, plan, bn_batches=data.bn_batches() if recalibrate_bn else None)


def plan_prune(
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
    search: SearchSettings | None = None,
    train_set: Any = None,
    seed: int = 0,
    progress: bool = True,
    depth: str = DEFAULTS.depth,
    depth_importance: str | Importance = DEFAULTS.depth_importance,
    cost_model: CostModel | None = None,
) -> PrunePlan:
    """The planner: depth units and per-group channel cuts that meet the target together, as a :class:`PrunePlan`
    (options as :func:`prune_to_target`). ``model`` is not modified: with depth units to remove, channels are planned
    on a depth-pruned copy."""
    watch = _Stopwatch()
    model = unwrap(model)
    if cost_model is not None:
        kind = cost_model.name
        round_to = cost_model.snap or round_to
    _validate(kind, kept, allocation, round_mode, tolerance, max_layer_ratio, round_to, search, depth, cost_model)
    if ratio is not None and not 0 <= ratio <= 1:
        raise HgpruneError(f"prune ratio: must be in [0, 1], got {ratio}")
    if isinstance(criterion, str):
        criterion = get_criterion(criterion)
    search = search or SearchSettings()
    was_training = model.training
    threads = torch.get_num_threads()
    reference = dict(reference) if reference is not None else model_size(model, input_size)
    if cost_model is None and (depth != "none" or kind not in KINDS):
        cost_model = get_cost(kind, input_size)
    if kind not in reference:
        reference[kind] = cost_model.cost(model)
    data = alloc.TrainingSlice(train_set, search, seed) if train_set is not None else None
    if allocation == "search" and data is None:
        data = alloc.TrainingSlice(train_set, search, seed)  # raises its one-line error

    depth_plan = None
    work = model
    if depth != "none":
        model.eval()
        try:
            depth_plan = plan_depth(
                model, depth, cost_model, kept * reference[kind], tolerance * reference[kind], depth_importance, data
            )
        finally:
            model.train(was_training)
        if depth_plan.units:
            work = remove_units(model, depth_plan.units)  # channels are planned on what depth pruning leaves
        watch.lap("depth_s")
    multipliers = _part_multipliers(work, part_ratios, prune_trunk)

    try:
        criterion.calibrate(work, calibration, loss_fn)
        watch.lap("calibrate_s")

        torch.set_num_threads(1)  # graph bookkeeping is tiny ops; extra threads only spin on a busy machine
        work.eval()  # tracing must not touch BatchNorm running statistics
        graph, pair_macs = trace(work, input_size)
        raw_groups = list(graph.get_all_groups(ignored_layers=heads(work), root_module_types=[nn.Conv2d]))
        watch.lap("graph_s")

        groups = describe_groups(work, raw_groups, criterion)
        watch.lap("score_s")

        planner = Planner(work, groups, pair_macs)
        infos = [info for info, _ in groups]
        mult = np.array([multipliers.get(g.part, multipliers["*"]) for g in infos], dtype=np.float64)

        def fraction_of(keep: np.ndarray) -> float:
            if kind in KINDS:
                return planner.size(keep)[kind] / reference[kind]
            return cost_model.cost(pruned_copy(work, groups, keep, input_size)) / reference[kind]  # measured

        def plan_for(group_mult: np.ndarray, ranking: str, aim: float = tolerance) -> tuple[np.ndarray, SearchResult]:
            """Kept widths within ``aim`` of the target if reachable; ``met`` is judged against ``tolerance``."""
            plan = ratio_plan(infos, group_mult, ranking == "global", max_layer_ratio, round_to, round_mode)
            down = partial(step_down, infos, group_mult, max_layer_ratio, round_to)
            keep, found = alloc.plan_to_target(plan, fraction_of, kept, aim, partial(step_priority, infos), down)
            return keep, dataclasses.replace(found, met=abs(found.fraction - kept) <= tolerance)

        record: dict = {"method": allocation}
        if depth_plan is not None:
            record["depth"] = depth_plan.to_dict()
        if ratio is not None:
            keep = ratio_plan(infos, mult, allocation == "global", max_layer_ratio, round_to, round_mode)(ratio)
            at = fraction_of(keep)
            found = SearchResult(ratio, at, 1, abs(at - kept) <= tolerance)
        elif allocation == "search":
            # candidates are planned to a quarter of the tolerance: the proxy favours more MACs, so candidates must
            # not differ in size by up to 2 × tolerance (measured: the search otherwise picked plans at the upper edge)
            near = partial(plan_for, aim=tolerance / 4)
            searched = _search_plan(work, groups, mult, near, search, data, seed, input_size, threads, progress)
            keep, found, details = searched
            record.update(details)
        else:
            keep, found = plan_for(mult, allocation)
        record["parts"] = describe_keep(infos, keep)
        watch.lap("search_s")
    finally:
        torch.set_num_threads(threads)
        work.train(was_training)

    return PrunePlan(
        kind=kind,
        target=kept,
        tolerance=tolerance,
        reference=reference,
        input_size=input_size,
        removed_units=list(depth_plan.units) if depth_plan else [],
        keep={info.name: int(k) for info, k in zip(infos, keep)},
        remove={info.name: sorted(int(c) for c in info.order[: info.width - int(k)]) for info, k in zip(infos, keep)},
        predicted_fraction=found.fraction,
        ratio=found.ratio,
        evaluations=found.evaluations,
        met=found.met,
        fixed_ratio=ratio is not None,
        allocation=record,
        depth=depth_plan.to_dict() if depth_plan else {},
        timings=dict(watch.timings),
        _planned=_Planned(work, graph, groups, pair_macs, data, cost_model),
    )


def apply_plan(
    model: nn.Module, plan: PrunePlan, bn_batches: Iterable | None = None, cost_model: CostModel | None = None
) -> PruneResult:
    """The engine: carry out ``plan`` on ``model`` in place — remove its depth units, then the planned channels of
    each group — re-estimate BatchNorm statistics on ``bn_batches`` if given, and measure the result (a plan for
    another cost than macs/params/channels is measured with ``cost_model``, by default the one it was planned with).
    ``model`` must be the model planned on or one of the same architecture and widths."""
    watch = _Stopwatch()
    model = unwrap(model)
    was_training = model.training
    threads = torch.get_num_threads()
    planned = plan._planned
    cost_model = cost_model or (planned.cost_model if planned is not None else None)
    if plan.kind not in KINDS and cost_model is None:
        raise HgpruneError(f"apply_plan: a {plan.kind} plan needs its cost model (cost_model=...) to measure")
    try:
        torch.set_num_threads(1)
        model.eval()
        if plan.removed_units:
            remove_units_(model, plan.removed_units)
        if planned is not None and planned.model is model:  # planned on this very model: reuse graph and groups
            graph, groups, pair_macs = planned.graph, planned.groups, planned.pair_macs
        else:
            graph, pair_macs = trace(model, plan.input_size)
            groups = groups_by_name(model, graph, plan.keep, plan.remove)
        watch.lap("graph_s")
        removed = groups_pruned = 0
        for info, group in groups:
            channels = plan.remove.get(info.name, [])
            if channels:
                prune_group(graph, info, group, np.asarray(channels))
                removed += len(channels)
                groups_pruned += 1
        watch.lap("prune_s")
        if bn_batches is not None:
            torch.set_num_threads(threads)
            _recalibrate_bn(model, bn_batches)
            watch.lap("recalibrate_bn_s")
    finally:
        torch.set_num_threads(threads)
        model.train(was_training)

    size = measured_size(model, pair_macs)
    watch.lap("measure_s")
    kind, kept, tolerance, reference = plan.kind, plan.target, plan.tolerance, plan.reference
    fractions = {k: size[k] / reference[k] for k in KINDS}
    if kind not in KINDS:
        fractions[kind] = cost_model.cost(model) / reference[kind]
    met = abs(fractions[kind] - kept) <= tolerance or (plan.ratio == 0.0 and fractions[kind] <= kept + tolerance)
    if not met and not plan.fixed_ratio:
        log.warning(
            "prune target %s=%.3f not reached: got %.3f (round_to and max_layer_ratio limit the reachable widths)",
            kind, kept, fractions[kind],
        )  # fmt: skip
    timings = {**plan.timings, **watch.timings}
    timings["total_s"] = sum(timings.values())
    return PruneResult(
        kept_macs=fractions["macs"],
        kept_params=fractions["params"],
        kept_channels=fractions["channels"],
        channel_ratio=plan.ratio,
        widths={n: m.out_channels for n, m in model.named_modules() if isinstance(m, nn.Conv2d)},
        kind=kind,
        target=kept,
        target_met=met,
        macs=size["macs"],
        params=size["params"],
        channels=size["channels"],
        removed_channels=removed,
        groups_pruned=groups_pruned,
        search_evaluations=plan.evaluations,
        planned_fraction=plan.predicted_fraction,
        allocation=plan.allocation,
        bn_recalibrated=bn_batches is not None,
        timings=timings,
        removed_units=list(plan.removed_units),
        depth=plan.depth,
        kept_cost=None if kind in KINDS else fractions[kind],
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
        clone = pruned_copy(model, groups, keep, input_size)
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
        depth=section.depth,
        depth_importance=section.depth_importance,
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
    cost_model: CostModel | None = None,
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
        cost_model=cost_model,
        **prune_options(section),
    )


def _validate(
    kind: str, kept: float, allocation: str, round_mode: str, tolerance: float, max_layer_ratio: float, round_to,
    search, depth: str = "none", cost_model: CostModel | None = None,
) -> None:  # fmt: skip
    """The engine's options, checked by their one definition (:class:`hgprune.settings.PruneSection`)."""
    if kind not in KINDS and cost_model is None and kind not in COSTS:
        raise HgpruneError(f"prune.target.kind: unknown {kind!r}; valid: {', '.join(KINDS)}")
    if depth not in DEPTH_MODES:
        raise HgpruneError(f"prune.depth: unknown {depth!r}; valid: {', '.join(DEPTH_MODES)}")
    if depth != "none" and kind == "channels":
        raise HgpruneError("prune.depth: depth pruning needs a macs or params target (or a latency one), not channels")
    options = dict(allocation=allocation, round_mode=round_mode, tolerance=tolerance, max_layer_ratio=max_layer_ratio)
    if round_to is not None:
        options["round_to"] = round_to
    PruneSection(target=TargetSection(kind=kind if kind in KINDS else "macs", kept=kept), **options)
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
