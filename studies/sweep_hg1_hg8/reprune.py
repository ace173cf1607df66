"""A finished run's pruning step again, without its fine-tuning: the model between pruning and fine-tuning.

``hgprune run`` measures each step after its fine-tuning only. To see what a step's pruning itself did (how much of
the previous step's accuracy survives the cut and the BatchNorm re-estimation, before training repairs it), this
re-does step K of a run directory from its ``checkpoints/step_{K-1}.pt`` with the run's own resolved recipe and seeds
(:func:`hgprune.stages.prune_only`, the runner's code), and saves the pruned model. Score it with
``python -m studies.sweep_hg1_hg8.sides`` (PCKh, and whether it still tells left from right)::

    python -m studies.sweep_hg1_hg8.reprune runs/sweep_hg1_hg8/hg6-taylor-25 --step 2 --out runs/diag/hg6-taylor-25-2.pt
    python -m studies.sweep_hg1_hg8.sides runs/diag/hg6-taylor-25-2.pt runs/sweep_hg1_hg8/hg6-taylor-25/checkpoints/*.pt

The re-run must keep the widths the run recorded (``allocation_step_K.json``), or it refuses to write anything.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from hgprune.errors import HgpruneError
from hgprune.models import save_model
from hgprune.models.checkpoints import load_checkpoint
from hgprune.prune import schedule_targets
from hgprune.recipe import recipe_from_resolved
from hgprune.rundir import RunDir
from hgprune.stages import RunContext, prune_only, reference_sizes


def reprune(run: Path, step: int, out: Path) -> None:
    """Prune ``run``'s step ``step - 1`` model as its step ``step`` did and save it to ``out``."""
    rundir = RunDir(run)
    if not rundir.recipe.exists():
        raise HgpruneError(f"{run}: not a run directory (no {rundir.recipe.name})")
    recipe = recipe_from_resolved(rundir.recipe.read_text())
    targets = schedule_targets(recipe.prune.target.kept, recipe.prune.steps, kind=recipe.prune.schedule)
    if not 1 <= step <= len(targets):
        raise HgpruneError(f"--step {step}: {run} has pruning steps 1 to {len(targets)}")
    previous = rundir.step_checkpoint(step - 1)
    if not previous.exists():
        raise HgpruneError(f"{previous}: missing; the run has not finished step {step - 1}")
    parent, info = load_checkpoint(rundir.step_checkpoint(0))
    reference = reference_sizes(parent, info["meta"]["row"], recipe.model.input_size)
    model, _ = load_checkpoint(previous)
    ctx = RunContext(recipe, rundir, normalization=model.config.normalization)  # only reads the run directory
    result = prune_only(ctx, model, step, targets[step - 1], reference)
    recorded = rundir.allocation_file(step)
    if recorded.exists():
        mine = json.loads(json.dumps(result.allocation, default=str))
        theirs = json.loads(recorded.read_text())
        if mine != theirs:
            raise HgpruneError(f"{recorded}: the run kept other widths than this re-run (another code version?)")
    out.parent.mkdir(parents=True, exist_ok=True)
    save_model(model.eval(), out, meta={"step": step, "run": str(run), "note": "pruned, not fine-tuned"})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a run directory with checkpoints/step_*.pt")
    parser.add_argument("--step", type=int, required=True, help="the pruning step to re-do (1 = the first)")
    parser.add_argument("--out", type=Path, required=True, help="where to save the pruned model (.pt)")
    args = parser.parse_args(argv)
    try:
        reprune(args.run, args.step, args.out)
    except HgpruneError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
