"""What ``hgprune run --dry-run`` shows: each entry's checks, allocation and planned steps, without data or training.

:func:`dry_run_lines` yields the lines the command prints; a recipe that cannot run raises
:class:`~hgprune.errors.HgpruneError` before any line about it is shown.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import torch

from hgprune.data import mpii_paths
from hgprune.errors import HgpruneError
from hgprune.latency import LatencyCost, load_table
from hgprune.models import HourglassNet, build_model, model_parts, probe_size
from hgprune.prune import get_criterion, model_size, prune_to_target, schedule_targets
from hgprune.prune.allocation import read_sensitivity
from hgprune.prune.depth import describe_units
from hgprune.prune.engine import plan_prune, prune_options
from hgprune.settings import Recipe, as_plain
from hgprune.stages import LATENCY, family_config, plan

ALLOCATION_NOTES = {
    "uniform": "every prunable group loses the same fraction, ranked within the group",
    "global": "scores / group mean pooled across groups: the widths follow the trained weights (chosen at run time)",
    "search": "{candidates} candidates (uniform, global, sampled per-part widths) scored after BN re-estimation on "
    "{batches} training batches, PCKh on {holdout} held-out training samples; chosen at run time",
}


def dry_run_lines(recipe: Recipe, entries: list[tuple[str, Recipe]], out: Path) -> Iterator[str]:
    """Lines describing each of ``entries`` (name, recipe) of ``recipe`` run into ``out``."""
    previews: dict[str, str] = {}  # uniform plans, shown for a single run only (see allocation_lines)
    for name, entry in entries:
        if entry.prune.steps:
            get_criterion(entry.prune.criterion)  # unknown names / bad module:Class fail here, before any training
        check_inputs(entry)
        produced_here = entry.baseline.checkpoint and Path(entry.baseline.checkpoint).is_relative_to(out)
        if entry.baseline.checkpoint and not produced_here and not Path(entry.baseline.checkpoint).exists():
            yield f"warning: baseline.checkpoint {entry.baseline.checkpoint} does not exist here"
        if entry.data.dataset == "mpii":
            annotations, image_path = mpii_paths(entry.data.annotations, entry.data.image_path, where=f"{name}: data.")
            for key, value in (("annotations", annotations), ("image_path", image_path)):
                if not Path(value).exists():
                    yield f"warning: data.{key} {value} does not exist here"
        target = entry.prune.target
        yield (
            f"{name}: {entry.model.arch} N={entry.model.N} M={entry.model.M} @ {entry.model.input_size}, "
            f"criterion {entry.prune.criterion}, keep {100 * target.kept:.0f} % of {target.kind} "
            f"in {entry.prune.steps} {entry.prune.schedule} step(s) → {out if recipe.sweep is None else out / name}"
        )
        if entry.prune.steps:
            for line in allocation_lines(entry, previews if len(entries) == 1 else None):
                yield f"  {line}"
        if entry.prune.steps and target.kind == LATENCY:
            for line in latency_lines(entry):
                yield f"  {line}"
        yield f"  {'step':>4} {'kept':>6} {'MACs (conv)':>16} {'params':>14}  note"
        for row in plan(entry):
            macs = f"{row['macs']:,.0f}" if row["macs"] is not None else "-"
            params = f"{row['params']:,.0f}" if row["params"] is not None else "-"
            yield f"  {row['step']:>4} {row['kept']:>6.3f} {macs:>16} {params:>14}  {row['note']}"


def latency_lines(entry: Recipe) -> list[str]:
    """A latency target's plan per step, from this machine's calibrated table: the predicted latency, the depth
    units removed and the kept channels per part. Each step is planned from the unpruned, untrained model with the
    data-free ``position`` importance and the ``l1`` criterion: the run plans each step from the previous one and
    ranks units by their measured importance, so its choices may differ; the predicted latencies are the table's."""
    p, m = entry.prune, entry.model
    target = p.target
    model = HourglassNet(m.hourglass_config())
    threads = target.threads or torch.get_num_threads()
    try:
        table = load_table(target.runtime, family_config(model.config), threads, target.batch)
    except HgpruneError as exc:
        return [f"latency: {exc} (the run calibrates one at its start, on an idle machine)"]
    cost = LatencyCost(table)
    base = cost.cost(model)
    budget = target.budget_ms if target.budget_ms is not None else target.kept * base
    kept = min(1.0, budget / base)
    lines = [
        f"latency model: {target.runtime}, {threads} thread(s), batch {target.batch}, snap {cost.snap}: baseline "
        f"{base:.3f} ms predicted, budget {budget:.3f} ms (kept {kept:.3f})",
    ]
    reference = {**model_size(model, m.input_size), cost.name: base}
    options = {k: v for k, v in prune_options(p).items() if k not in ("recalibrate_bn", "search")}
    options.update(kind=cost.name, depth_importance="position")
    for step, fraction in enumerate(schedule_targets(kept, p.steps, kind=p.schedule), 1):
        planned = plan_prune(model, criterion="l1", kept=fraction, reference=reference, input_size=m.input_size,
                             cost_model=cost, progress=False, **options)  # fmt: skip
        totals: dict[str, list[int]] = {}
        for unit, v in planned.allocation.get("parts", {}).items():
            part = totals.setdefault(unit.split(".")[0], [0, 0])
            part[0], part[1] = part[0] + v["kept"], part[1] + v["width"]
        widths = ", ".join(f"{name} {k}/{w}" for name, (k, w) in totals.items() if w)
        lines.append(
            f"step {step}: target {fraction * base:.3f} ms, predicted {planned.predicted_fraction * base:.3f} ms; "
            f"removes {describe_units(planned.removed_units) or 'nothing'}; kept/original channels: {widths}"
        )
    return lines


def check_inputs(recipe: Recipe) -> None:
    """Files a recipe names that are read only late in a run, read now: a bad one fails before any training."""
    search = recipe.prune.search
    if recipe.prune.steps and recipe.prune.allocation == "search" and search.sensitivity:
        read_sensitivity(search.sensitivity)


def preview_key(entry: Recipe) -> str:
    """What the uniform preview depends on: the model section and every engine option the prune section sets."""
    options = {**prune_options(entry.prune), "allocation": "uniform", "kept": entry.prune.target.kept}
    options = {k: as_plain(v) if hasattr(v, "__dataclass_fields__") else v for k, v in options.items()}
    return json.dumps({"model": as_plain(entry.model), "prune": options}, sort_keys=True, default=str)


def allocation_lines(entry: Recipe, previews: dict[str, str] | None) -> list[str]:
    """The allocation the run will use and, with ``previews`` (a cache), the uniform plan's kept channels per part
    at the final target.

    The uniform plan depends on the architecture only, so it is computed on an untrained model of the recipe's
    shape — a few seconds for hg8, which is why sweeps (``previews=None``) show the allocation only."""
    p, m = entry.prune, entry.model
    lines = [f"allocation: {p.allocation} — {ALLOCATION_NOTES[p.allocation].format(**vars(p.search))}"]
    if p.recalibrate_bn:
        lines.append(f"BatchNorm statistics re-estimated after every prune on {p.search.batches} training batches")
    if previews is None or p.target.kind == LATENCY:  # a latency target's widths are listed per step
        return lines
    key = preview_key(entry)
    if key not in previews:
        # every conv's MACs scale with the input area alike, so the smallest valid size gives the same fractions
        size = probe_size(m.depth)
        model = build_model(m.arch, N=m.N, M=m.M, num_joints=m.num_joints, input_size=size, depth=m.depth)
        options = {**prune_options(p), "allocation": "uniform", "recalibrate_bn": False, "search": None}
        options["depth"] = "none"  # the channel preview; depth units are listed per step
        result = prune_to_target(model, criterion="l1", kept=p.target.kept, input_size=size, **options)
        totals: dict[str, list[int]] = {name: [0, 0] for name in [*model_parts(model), "trunk"]}
        for unit, v in result.allocation["parts"].items():  # hourglass levels summed into their part
            totals[unit.split(".")[0]][0] += v["kept"]
            totals[unit.split(".")[0]][1] += v["width"]
        parts = ", ".join(f"{name} {kept}/{width}" for name, (kept, width) in totals.items() if width)
        previews[key] = f"{parts} (kept {p.target.kind} {result.planned_fraction:.3f})"
    label = "plan" if p.allocation == "uniform" else "uniform plan for comparison"
    if p.depth != "none":
        label += f" (channels only; depth {p.depth} removes the units listed per step below first)"
    lines.append(f"{label} at the final target, kept/original channels per part: {previews[key]}")
    return lines
