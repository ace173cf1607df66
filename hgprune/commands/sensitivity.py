"""``hgprune sensitivity SOURCE``: per-part PCKh drop without fine-tuning (CSV + heatmap)."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from hgprune.commands.common import flag_names
from hgprune.errors import HgpruneError
from hgprune.models.checkpoints import load_checkpoint
from hgprune.pipeline import Pipeline
from hgprune.recipe import load_recipe
from hgprune.rundir import RunDir
from hgprune.sensitivity import evaluator, sensitivity_scan, write_sensitivity
from hgprune.settings import Real, flag
from hgprune.train.losses import heatmap_loss


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", help="a run directory (uses its recipe and unpruned step 0) or a recipe YAML")
    parser.add_argument("--checkpoint", help="model to analyse (default: the run's step 0 / recipe baseline)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY.PATH=VALUE", help="recipe override")
    parser.add_argument(
        "--ratios",
        **flag(Real(0, 1, lo_open=True)),
        nargs="+",
        default=[0.25, 0.5, 0.75],
        help="channel ratios removed",
    )
    parser.add_argument("--parts", nargs="+", help="parts to scan (default: stem and every hg/res/fc part)")
    parser.add_argument("--criterion", help="ranking criterion (default: the recipe's)")
    parser.add_argument("--out", help="output directory (default: SOURCE/sensitivity or runs/<name>/sensitivity)")


def main(args: argparse.Namespace) -> int:

    source = Path(args.source)
    if source.is_dir():
        layout = RunDir(source)
        if not layout.recipe.exists():
            raise HgpruneError(f"{source}: not a run directory (no {layout.recipe.name})")
        recipe = layout.read_recipe()
        if args.set:
            raise HgpruneError("--set: not allowed with a run directory (its recipe is fixed); pass the recipe file")
        checkpoint = args.checkpoint or layout.step_checkpoint(0)
        out = Path(args.out or source / "sensitivity")
    else:
        recipe = load_recipe(source, args.set)
        checkpoint = args.checkpoint or recipe.baseline.checkpoint
        out = Path(args.out or Path("runs") / recipe.name / "sensitivity")
    if not checkpoint:
        raise HgpruneError(f"{source}: no model to analyse; pass --checkpoint or set baseline.checkpoint")
    model, _ = load_checkpoint(checkpoint)
    pipeline = Pipeline.from_recipe(recipe, model.config.normalization)
    criterion = args.criterion or recipe.prune.criterion
    with flag_names(ratios="--ratios", parts="--parts"):
        table = sensitivity_scan(
            model,
            evaluator(pipeline.val_set, recipe.eval.batch_size, recipe.device, recipe.eval.flip_test),
            parts=args.parts,
            ratios=args.ratios,
            criterion=criterion,
            input_size=recipe.model.input_size,
            round_to=1,
            calibration=pipeline.calibration_batches(0),
            loss_fn=heatmap_loss,
        )
    command = "hgprune " + shlex.join(sys.argv[1:])
    paths = write_sensitivity(table, out, command)
    worst = table[table["part"] != "none"].sort_values("pckh_drop", ascending=False).head(3)
    print(table.to_string(index=False))
    print(
        "most sensitive: "
        + ", ".join(f"{r.part} @ {100 * r.ratio:.0f} % (-{r.pckh_drop:.1f})" for r in worst.itertuples())
    )
    print(f"wrote {', '.join(str(p) for p in paths)}")
    return 0
