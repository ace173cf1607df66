"""Sweeps: one recipe with a ``sweep`` section expands into a grid of ordinary runs plus the seed's approach.

Every entry has a stable name (``hg2-l1-50``, ``hg2-scratch-50``) so a cluster scheduler can run entries on
different machines with ``--only NAME`` and ``hgprune report`` can merge their run directories afterwards.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import replace
from pathlib import Path

from hgprune.errors import HgpruneError
from hgprune.models import ARCHS, build_model, probe_size
from hgprune.models.checkpoints import load_checkpoint
from hgprune.profile import conv_macs
from hgprune.recipe import BASELINE, SCRATCH, Recipe
from hgprune.rundir import RunDir
from hgprune.train.checkpointing import CHECKPOINT, check_finished

ARCH_FIELD = "{arch}"  # in a sweep's baseline.checkpoint: replaced by each architecture's name


def expand(recipe: Recipe, out: Path | None = None) -> list[tuple[str, Recipe]]:
    """``[(entry_name, recipe_without_sweep), …]``; a recipe without ``sweep`` is its own single entry.

    When the baseline is trained from scratch, each architecture's baseline is trained once, by an entry
    ``{arch}-baseline`` (no pruning steps) listed before the entries that prune it; those load its final model from
    ``out/{arch}-baseline/final/model.pt``. Run the baseline entries first when spreading a sweep over machines.
    A ``baseline.checkpoint`` containing ``{arch}`` names one imported baseline per architecture instead (e.g. the
    ``hgprune train`` runs of ``scripts/sweep_parents.py``, validated every epoch).
    """
    sweep = recipe.sweep
    if sweep is None:
        return [(recipe.name, recipe)]
    archs = sweep.arch or [recipe.model.arch]
    criteria = sweep.criterion or [recipe.prune.criterion]
    kept_values = sweep.kept or [recipe.prune.target.kept]
    for i, kept in enumerate(kept_values):
        if not 0 < kept <= 1:
            raise HgpruneError(f"sweep.kept[{i}]: must be in (0, 1], got {kept}")
    base = replace(recipe, sweep=None)
    out = Path(out) if out is not None else Path("runs") / recipe.name
    entries = []
    for arch in archs:
        if arch not in ARCHS:
            raise HgpruneError(f"sweep.arch: unknown architecture {arch!r}; valid: {', '.join(ARCHS)}")
        arch_base = replace(base, model=replace(base.model, arch=arch))
        if base.baseline.checkpoint is not None and ARCH_FIELD in base.baseline.checkpoint:
            own = base.baseline.checkpoint.replace(ARCH_FIELD, arch)
            arch_base = replace(arch_base, baseline=replace(base.baseline, checkpoint=own))
        if base.baseline.checkpoint is None:
            name = f"{arch}-baseline"
            entries.append((name, replace(arch_base, name=name, role=BASELINE, prune=replace(base.prune, steps=0))))
            shared = replace(base.baseline, checkpoint=str(RunDir(out / name).final_model))
            arch_base = replace(arch_base, baseline=shared)
        for criterion in criteria:
            for kept in kept_values:
                name = f"{arch}-{_slug(criterion)}-{round(100 * kept)}"
                entry = replace(
                    arch_base,
                    name=name,
                    prune=replace(base.prune, criterion=criterion, target=replace(base.prune.target, kept=kept)),
                )
                entries.append((name, entry))
        if sweep.scratch:
            for kept in kept_values:
                name = f"{arch}-scratch-{round(100 * kept)}"
                entries.append((name, scratch_recipe(arch_base, kept, name)))
    names = [n for n, _ in entries]
    if len(set(names)) != len(names):
        raise HgpruneError("sweep: entries collide after naming; list each arch/criterion/kept value once")
    return entries


def _slug(criterion: str) -> str:
    return criterion.rsplit(":", 1)[-1].replace(".", "_").lower()


@functools.lru_cache(maxsize=4096)
def _width_macs(arch: str, N: int, M: int, num_joints: int, depth: int) -> int:
    """Conv MACs of one width, at the smallest valid input (every conv's MACs scale with the input area alike, so the
    ratio between widths is the same at any size). Cached: the width search of every budget and architecture of a
    sweep, which each ``--only`` launch expands in full, meets the same few (N, M) pairs again and again."""
    size = probe_size(depth)
    model = build_model(arch, N=N, M=M, num_joints=num_joints, input_size=size, depth=depth)
    return conv_macs(model, size)


def scratch_recipe(recipe: Recipe, kept: float, name: str) -> Recipe:
    """The seed's approach for a budget: a uniformly narrower N/M model trained from scratch, same total epochs.

    The width multiplier is searched so the model's conv MACs match ``kept`` of the unpruned model's; N and M stay
    even. Expressed as an ordinary recipe with zero pruning steps.
    """
    m = recipe.model

    def macs(width: float) -> tuple[int, int, int]:
        N, M = max(2, 2 * round(m.N * width / 2)), max(2, 2 * round(m.M * width / 2))
        return _width_macs(m.arch, N, M, m.num_joints, m.depth), N, M

    reference, _, _ = macs(1.0)
    low, high = 0.05, 1.0
    for _ in range(30):
        mid = (low + high) / 2
        if macs(mid)[0] > kept * reference:
            high = mid
        else:
            low = mid
    candidates = [macs(low), macs(high)]
    _, N, M = min(candidates, key=lambda c: abs(c[0] - kept * reference))
    f = recipe.finetune
    total_epochs = recipe.baseline.train.epochs + recipe.prune.steps * f.epochs_per_step + f.final_epochs
    baseline = dataclasses.replace(
        recipe.baseline, checkpoint=None, train=replace(recipe.baseline.train, epochs=total_epochs)
    )
    return replace(
        recipe,
        name=name,
        model=replace(m, N=N, M=M),
        baseline=baseline,
        role=SCRATCH,
        prune=replace(recipe.prune, steps=0, target=replace(recipe.prune.target, kept=kept)),
    )


def check_imported_baselines(selected: list) -> None:
    """Refuse a sweep before its first entry starts when an imported baseline is an unfinished ``hgprune train``
    checkpoint (``check_finished``) or another architecture than its entry's, rather than hours later when that
    entry's turn comes. Only files named
    ``checkpoint.pth.tar`` can be unfinished; the sweep's own baselines (``final/model.pt``) and missing files are
    left to their entries."""
    checked = set()
    for _, entry in selected:
        path = entry.baseline.checkpoint
        if not path or path in checked or Path(path).name != CHECKPOINT or not Path(path).is_file():
            continue
        checked.add(path)
        check_finished(path, load_checkpoint(path, expect=entry.model.hourglass_config())[1]["meta"])
