"""PreciseBN on a trained hourglass checkpoint: PCKh with BatchNorm statistics re-estimated from the training stream
that ``hgprune train --precise-bn B`` uses after epoch E, for several B and E; optionally save the checkpoint.

The sweep's hg8 parent (``reports/sweep_hg1_hg8/precise_bn_check/``): how many batches make the estimate stable, and
the parent as ``--precise-bn 250`` would have left it after its 30th epoch (its weights are those of the run).

    OMP_NUM_THREADS=1 python scripts/precise_bn_check.py reports/sweep_hg1_hg8/parents/hg8/checkpoint.pth.tar \\
        --runs 64:29 64:28 64:27 250:29 250:28 [--save 250:29 runs/diag/hg8_pbn_posthoc]
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path

import torch

from hgprune.fsutil import safe_torch_load
from hgprune.models import load_model
from hgprune.pipeline import Pipeline
from hgprune.recipe import load_recipe
from hgprune.train import TrainConfig, Trainer, evaluate_model

SWEEP = "recipes/sweep_hg1_hg8.yaml"  # the data, batch size and seed the sweep's baselines were trained with


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--runs", nargs="+", default=["250:29"], metavar="BATCHES:EPOCH")
    parser.add_argument("--save", nargs=2, metavar=("BATCHES:EPOCH", "DIR"), help="write DIR/checkpoint.pth.tar")
    args = parser.parse_args()
    r = load_recipe(SWEEP)
    base = load_model(args.checkpoint)
    data = Pipeline.from_recipe(r, base.config.normalization)
    print(f"running averages: PCKh {evaluate_model(base, data.val_set, batch_size=r.eval.batch_size).mpii.mean:.2f}")
    for spec in args.runs + ([args.save[0]] if args.save else []):
        batches, epoch = map(int, spec.split(":"))
        model = copy.deepcopy(base)
        cfg = TrainConfig(epochs=epoch + 1, batch_size=r.baseline.train.batch_size, seed=r.seed, precise_bn=batches)
        Trainer(model, data.train_set, data.val_set, cfg).precise_bn(epoch)
        pckh = evaluate_model(model, data.val_set, batch_size=r.eval.batch_size).mpii.mean
        print(f"PreciseBN {batches} batches, stream of epoch index {epoch}: PCKh {pckh:.2f}", flush=True)
    if args.save:
        raw = safe_torch_load(args.checkpoint)
        state = model.state_dict()
        raw["state_dict"] = {k: state[k.removeprefix("module.")] for k in raw["state_dict"]}
        out = Path(args.save[1])
        out.mkdir(parents=True, exist_ok=True)
        torch.save(raw, out / "checkpoint.pth.tar")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
