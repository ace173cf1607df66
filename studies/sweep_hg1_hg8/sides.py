"""Does each model tell left from right? PCKh of its predictions as made and with every left/right pair exchanged.

A model that cannot tell the sides apart puts both joints of a pair on one spot (or picks a side by chance), so
exchanging its left and right predictions changes nothing; one that can loses most of its paired joints.
:func:`hgprune.train.sides_swapped` computes the exchanged score from the same predictions. Used on the hg1–hg8
sweep, where the narrow models trained from scratch stall at about 60 PCKh (reports/sweep_hg1_hg8/STATUS.md)::

    python -m studies.sweep_hg1_hg8.sides runs/sweep_hg1_hg8/hg*-* \
        reports/sweep_hg1_hg8/parents/hg*/checkpoint.pth.tar \
        --recipe recipes/sweep_hg1_hg8.yaml --out reports/sweep_hg1_hg8

A run directory stands for its final model (``final/model.pt``); a file is a checkpoint. Every model is scored on
the validation split of ``--recipe``'s data section (the sweep's entries share it), without flip test. Writes
``sides.md`` and ``sides.json`` into ``--out``.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from benchmarks.common import environment, environment_md, md_table, write_report
from hgprune.errors import HgpruneError
from hgprune.models import load_model
from hgprune.pipeline import Pipeline
from hgprune.recipe import load_recipe
from hgprune.train import evaluate_model, sides_swapped

PAIRED = ("Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle")


def model_path(path: Path) -> Path:
    """A run directory's final model, or the checkpoint file itself."""
    if path.is_dir():
        final = path / "final" / "model.pt"
        if not final.exists():
            raise HgpruneError(f"{path}: no final/model.pt (an unfinished run?)")
        return final
    if not path.exists():
        raise HgpruneError(f"{path}: no such run directory or checkpoint")
    return path


def label(path: Path) -> str:
    """``hg3-scratch-50`` for a run directory, ``hg3-scratch-50 step 1`` for its ``checkpoints/step_001.pt``,
    ``hg3 (parent)`` for ``parents/hg3/checkpoint.pth.tar``, else the file's folder and name."""
    if path.is_dir():
        return path.name
    if path.parent.parent.name == "parents":
        return f"{path.parent.name} (parent)"
    if path.parent.name == "checkpoints" and path.name.startswith("step_") and path.stem[5:].isdigit():
        return f"{path.parent.parent.name} step {int(path.stem[5:])}"
    return f"{path.parent.name}/{path.name}"


def measure(paths: list[Path], recipe) -> list[dict]:
    plain = dataclasses.replace(recipe, data=dataclasses.replace(recipe.data, augment=False))
    rows, pipelines = [], {}
    for path in paths:
        file = model_path(path)
        model = load_model(file)
        key = model.config.normalization.describe()  # the input normalisation its weights were trained with
        if key not in pipelines:
            pipelines[key] = Pipeline.from_recipe(plain, model.config.normalization)
        data = pipelines[key]
        result = evaluate_model(model, data.val_set, recipe.eval.batch_size, recipe.device)
        swapped = sides_swapped(result, data.val_set)
        paired = [result.mpii.groups[g] for g in PAIRED]
        paired_swapped = [swapped.groups[g] for g in PAIRED]
        rows.append(
            {
                "model": label(path),
                "path": str(file),
                "pckh": result.mpii.mean,
                "pckh_sides_exchanged": swapped.mean,
                "paired_joints": sum(paired) / len(paired),
                "paired_joints_exchanged": sum(paired_swapped) / len(paired_swapped),
            }
        )
    return rows


def markdown(rows: list[dict], env: dict, recipe_path: str) -> str:
    table = md_table(
        ["model", "PCKh", "PCKh, sides exchanged", "paired joints", "paired joints, sides exchanged", "drop"],
        [
            (
                r["model"],
                f"{r['pckh']:.2f}",
                f"{r['pckh_sides_exchanged']:.2f}",
                f"{r['paired_joints']:.1f}",
                f"{r['paired_joints_exchanged']:.1f}",
                f"{r['paired_joints'] - r['paired_joints_exchanged']:+.1f}",
            )
            for r in rows
        ],  # fmt: skip
    )
    return (
        "# Left/right: does each model tell the sides apart?\n\n"
        f"Validation split of `{recipe_path}`'s data, no flip test. *Paired joints* = mean PCKh of the six left/right "
        "joint groups (shoulders … ankles); *sides exchanged* scores the same predictions with every left joint "
        "swapped for its right twin. A model that tells the sides apart loses most of its paired joints when they "
        "are exchanged (large drop); one that does not scores the same either way (drop near 0).\n\n"
        f"{table}\n{environment_md(env)}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", type=Path, help="run directories (final model) or checkpoint files")
    parser.add_argument("--recipe", default="recipes/sweep_hg1_hg8.yaml", help="whose data section to score on")
    parser.add_argument("--out", type=Path, default=Path("reports/sweep_hg1_hg8"))
    args = parser.parse_args(argv)
    try:
        recipe = load_recipe(args.recipe)
        env = environment(recipe.device, None if argv is None else ["-m", "studies.sweep_hg1_hg8.sides", *argv])
        rows = measure(args.models, recipe)
    except HgpruneError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    json_path, md_path = write_report("sides", {"environment": env, "rows": rows},
                                      markdown(rows, env, args.recipe), args.out)  # fmt: skip
    print(f"wrote {md_path} and {json_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
