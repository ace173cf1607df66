"""Train the baselines a sweep imports, one ``hgprune train`` run per architecture, validated every epoch.

A sweep whose ``baseline.checkpoint`` contains ``{arch}`` (``recipes/sweep_hg1_hg8.yaml``) prunes one imported
baseline per architecture. This script trains them with the recipe's own settings (model widths, data, seed,
``baseline.train``), so the recipe stays the one home of those facts, and ``hgprune train`` logs PCKh every epoch,
which the plateau rule of the sweep report needs. Each run resumes from its last epoch; finished ones are skipped.

    OMP_NUM_THREADS=1 python scripts/sweep_parents.py recipes/sweep_hg1_hg8.yaml [--arch hg1 hg2 ...] [--dry-run]
    python scripts/sweep_parents.py recipes/sweep_hg1_hg8.yaml --summary     # Markdown: each baseline vs the rule
    python scripts/sweep_parents.py recipes/sweep_hg1_hg8.yaml --diagnose    # Markdown: PCKh per stack, train vs val
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import subprocess
import sys
from pathlib import Path

from hgprune.data import limit_dataset
from hgprune.errors import HgpruneError
from hgprune.models import build_model, load_model
from hgprune.pipeline import Pipeline
from hgprune.profile import conv_macs
from hgprune.recipe import load_recipe
from hgprune.sweep import ARCH_FIELD
from hgprune.train import evaluate_model
from hgprune.train.plateau import PLATEAU_GAIN, plateau


def train_command(recipe, arch: str, root: str | None = None) -> tuple[list[str], Path]:
    """The ``hgprune train`` command that writes ``recipe.baseline.checkpoint`` for ``arch`` (or
    ``root/{arch}/checkpoint.pth.tar``), and its directory."""
    checkpoint = f"{root}/{ARCH_FIELD}/checkpoint.pth.tar" if root else recipe.baseline.checkpoint
    if not checkpoint or ARCH_FIELD not in checkpoint:
        raise SystemExit(f"baseline.checkpoint must contain {ARCH_FIELD} (one per architecture), got {checkpoint!r}")
    out = Path(checkpoint.replace(ARCH_FIELD, arch)).parent
    m, d, t = recipe.model, recipe.data, recipe.baseline.train
    if d.dataset != "synthpose":
        raise SystemExit(f"data.dataset: this script trains SynthPose baselines, got {d.dataset!r}")
    cmd = [sys.executable, "-m", "hgprune", "train", "--dataset", "synthpose",
           "--synth-train", str(d.synth.num_train), "--synth-val", str(d.synth.num_val),
           "--synth-size", str(d.synth.size), "--synth-seed", str(d.synth.seed),
           "--arch", arch, "--N", str(m.N), "--M", str(m.M), "--depth", str(m.depth),
           "--input_shape", str(m.input_size),
           "--epochs", str(t.epochs), "--lr", str(t.lr), "--momentum", str(t.momentum),
           "--weight-decay", str(t.weight_decay), "--gamma", str(t.gamma), "--train-batch", str(t.batch_size),
           "--test-batch", str(recipe.eval.batch_size), "--workers", str(d.workers), "--seed", str(recipe.seed),
           "--checkpoint", str(out)]  # fmt: skip
    if t.schedule:
        cmd += ["--schedule", *map(str, t.schedule)]
    if not d.augment:
        cmd.append("--no-augment")
    if t.precise_bn:
        cmd += ["--precise-bn", str(t.precise_bn)]
    return cmd, out


def epochs_done(out: Path) -> int:
    log = out / "log.csv"
    if not log.exists():
        return 0
    with open(log) as handle:
        return sum(1 for _ in csv.DictReader(handle))


def loss_ratio(out: Path) -> float:
    """Validation loss (eval mode, BatchNorm running statistics) ÷ training loss (batch statistics) of the last epoch:
    about 1 for a healthy model; far above 1 when BatchNorm's running statistics do not describe what the layers see,
    as at 1×1 hourglass bottoms (a depth-4 hourglass on 64-px inputs)."""
    with open(out / "log.csv") as handle:
        last = list(csv.DictReader(handle))[-1]
    return float(last["val_loss"]) / float(last["loss"])


def summary(recipe, archs: list[str], root: str | None = None) -> str:
    """A Markdown table: every baseline's epochs, final PCKh, the plateau rule (the last 20 % of epochs add less
    than PLATEAU_GAIN) and the last epoch's validation ÷ training loss."""
    lines = [f"| arch | MMACs | epochs (of {recipe.baseline.train.epochs}) | final PCKh | gain over last 20 % "
             "| at plateau | val ÷ train loss |", "|---|---|---|---|---|---|---|"]  # fmt: skip
    m = recipe.model
    for arch in archs:
        out = train_command(recipe, arch, root)[1]
        model = build_model(arch, N=m.N, M=m.M, num_joints=m.num_joints, input_size=m.input_size, depth=m.depth)
        mmacs = f"{conv_macs(model, m.input_size) / 1e6:.1f}"
        if epochs_done(out) == 0:
            lines.append(f"| {arch} | {mmacs} | 0 | | | not trained | |")
            continue
        p = plateau(out / "log.csv")
        done = p.epochs >= recipe.baseline.train.epochs
        verdict = ("yes" if p.at_plateau else f"**no** (≥ {PLATEAU_GAIN})") if done else "still training"
        ratio = loss_ratio(out)
        lines.append(
            f"| {arch} | {mmacs} | {p.epochs} | {p.final:.2f} | {p.gain_last_20pct:+.2f} | {verdict} | {ratio:.2f} |"
        )
    return "\n".join(lines)


TRAIN_SAMPLE = 1000  # training images scored by --diagnose (the first ones, never augmented)


def diagnose(recipe, archs: list[str], root: str | None = None) -> str:
    """A Markdown table that tells under- from over-fitting when a deeper baseline scores lower: validation PCKh of
    every stack's heatmaps (the last is what counts) and the final stack's PCKh on the first TRAIN_SAMPLE training
    images, scored exactly as validation is (no augmentation, no flip test), of the checkpoint the sweep imports."""
    plain = dataclasses.replace(recipe, data=dataclasses.replace(recipe.data, augment=False))
    lines = [f"| arch | validation PCKh, stack 1 → last | train PCKh (first {TRAIN_SAMPLE:,}) | train − val |",
             "|---|---|---|---|"]  # fmt: skip
    batch, device = recipe.eval.batch_size, recipe.device
    for arch in archs:
        out = train_command(recipe, arch, root)[1]
        if epochs_done(out) < recipe.baseline.train.epochs:
            lines.append(f"| {arch} | not trained | | |")
            continue
        try:
            model = load_model(out / "checkpoint.pth.tar")
        except HgpruneError as exc:  # e.g. a diverged baseline with non-finite weights: say so in its row
            lines.append(f"| {arch} | {str(exc).replace('|', '/')} | | |")
            continue
        data = Pipeline.from_recipe(plain, model.config.normalization)
        stacks = [evaluate_model(model, data.val_set, batch, device, stack=k).mpii.mean
                  for k in range(model.config.num_outputs)]  # fmt: skip
        train = evaluate_model(model, limit_dataset(data.train_set, TRAIN_SAMPLE), batch, device).mpii.mean
        per_stack = " → ".join(f"{v:.2f}" for v in stacks)
        lines.append(f"| {arch} | {per_stack} | {train:.2f} | {train - stacks[-1]:+.2f} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipe")
    parser.add_argument("--arch", nargs="+", help="default: the recipe's sweep.arch")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="recipe override, as hgprune run --set (e.g. seed=1, baseline.train.precise_bn=250)")
    parser.add_argument("--root", help="write ROOT/{arch}/ instead of the recipe's baseline.checkpoint folder")
    parser.add_argument("--dry-run", action="store_true", help="print the commands, train nothing")
    parser.add_argument("--summary", action="store_true", help="print each baseline's plateau check, train nothing")
    parser.add_argument(
        "--diagnose",
        action="store_true",
        help="print each trained baseline's PCKh per stack and on training images, train nothing",
    )
    args = parser.parse_args()
    try:
        recipe = load_recipe(args.recipe, args.overrides)
    except HgpruneError as exc:
        raise SystemExit(f"error: {exc}") from None
    archs = args.arch or (recipe.sweep.arch if recipe.sweep else None) or [recipe.model.arch]
    if args.summary or args.diagnose:
        print(summary(recipe, archs, args.root) if args.summary else diagnose(recipe, archs, args.root))
        return 0
    for arch in archs:
        cmd, out = train_command(recipe, arch, args.root)
        done = epochs_done(out)
        if done >= recipe.baseline.train.epochs:
            print(f"{arch}: done ({done} epochs)", flush=True)
            continue
        if (out / "checkpoint.pth.tar").exists():
            cmd += ["--resume", str(out / "checkpoint.pth.tar")]
        print(" ".join(cmd), flush=True)
        if not args.dry_run and subprocess.run(cmd).returncode != 0:
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
