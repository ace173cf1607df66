"""SynthPose difficulty calibration: a learning curve of a model trained from scratch, PCKh every few steps.

A deliberately minimal loop (RMSprop, MSE on annotated joints summed over stacks) for exploring difficulty settings
quickly; the calibration table in docs/data.md comes from `hgprune run recipes/quickstart.yaml --set prune.steps=0`.
Defaults = the quickstart's reference (hg1 N=32 M=64 at 64×64, 4,000 images of 96 px, no extra augmentation):

    python -m studies.calibrate_synthpose.run --steps 2000 --eval-every 500 --threads 1
    python -m studies.calibrate_synthpose.run --steps 2000 --synth '{"clutter": 18, "max_distractors": 2}' --augment
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from hgprune import build_model
from hgprune.data import build_dataset
from hgprune.metrics import decode_heatmaps, pckh, to_image_coords


def evaluate(model, dataset, batch_size: int = 64) -> dict:
    model.eval()
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False)
    preds = []
    with torch.no_grad():
        for images, _, _, meta in loader:
            heatmaps = model(images)[-1]
            coords, _ = decode_heatmaps(heatmaps)
            preds.append(to_image_coords(coords, meta["center"], meta["scale"], dataset.output_size, meta["rotation"]))
    import numpy as np

    gt = dataset.ground_truth()
    pred = np.concatenate(preds)
    scores = {p: pckh(pred, gt.joints, gt.missing, gt.headboxes, protocol=p).to_dict() for p in ("mpii", "seed")}
    scores["pckh@1.0"] = pckh(pred, gt.joints, gt.missing, gt.headboxes, threshold=1.0).mean  # gross errors
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--arch", default="hg1")
    parser.add_argument("--N", type=int, default=32)
    parser.add_argument("--M", type=int, default=64)
    parser.add_argument("--input-size", type=int, default=64)
    parser.add_argument("--image-size", type=int, default=96, help="SynthPose image side")
    parser.add_argument("--num-train", type=int, default=4000)
    parser.add_argument("--num-val", type=int, default=300)
    parser.add_argument("--seconds", type=float, default=120.0, help="training wall-clock budget")
    parser.add_argument("--steps", type=int, default=0, help="train this many steps instead (ignores --seconds)")
    parser.add_argument("--decay-at", type=int, default=0, help="multiply the lr by 0.1 after this many steps")
    parser.add_argument("--eval-every", type=int, default=0, help="also evaluate every this many steps")
    parser.add_argument("--lr", type=float, default=2.5e-3)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--augment", action="store_true", help="add the seed's augmentation (off in the quickstart)")
    parser.add_argument("--synth", type=json.loads, default={}, help='SynthPose parameters as JSON: {"clutter": 18}')
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    synth = {"num_train": args.num_train, "num_val": args.num_val, "size": args.image_size, **args.synth}
    t0 = time.time()
    train = build_dataset(
        "synthpose", "train", input_size=args.input_size, synth=synth, seed=args.seed, augment=args.augment
    )
    val = build_dataset("synthpose", "val", input_size=args.input_size, synth=synth, seed=args.seed)
    gen_s = time.time() - t0
    model = build_model(args.arch, N=args.N, M=args.M, input_size=args.input_size)
    opt = torch.optim.RMSprop(model.parameters(), lr=args.lr)
    loader = torch.utils.data.DataLoader(train, batch_size=args.batch_size, shuffle=True, drop_last=True)
    start, cpu_start, steps, loss_value, curve = time.time(), time.process_time(), 0, float("nan"), []

    def done() -> bool:
        return steps >= args.steps if args.steps else time.time() - start >= args.seconds

    while not done():
        model.train()
        for images, target, weight, _ in loader:
            outputs = model(images)
            w = weight[:, :, None, None]
            loss = sum(((o - target) ** 2 * w).mean() for o in outputs)
            opt.zero_grad()
            loss.backward()
            opt.step()
            steps += 1
            if args.decay_at and steps == args.decay_at:
                for group in opt.param_groups:
                    group["lr"] *= 0.1
            loss_value = float(loss.detach())
            if args.eval_every and steps % args.eval_every == 0:
                curve.append((steps, evaluate(model, val)["mpii"]["mean"]))
                print(json.dumps({"steps": steps, "pckh_mpii": curve[-1][1], "cpu_s": time.process_time() - cpu_start}))
                model.train()
            if done():
                break
    train_s, cpu_s = time.time() - start, time.process_time() - cpu_start
    scores = evaluate(model, val)
    result = {
        "model": f"{args.arch} N={args.N} M={args.M} @ {args.input_size}",
        "generation_s": round(gen_s, 1),
        "train_s": round(train_s, 1),
        "train_cpu_s": round(cpu_s, 1),
        "curve": curve,
        "steps": steps,
        "epochs": round(steps * args.batch_size / len(train), 2),
        "final_loss": loss_value,
        "pckh_mpii": scores["mpii"]["mean"],
        "pckh_seed": scores["seed"]["mean"],
        "pckh@0.1": scores["mpii"]["pckh@0.1"],
        "pckh@1.0": scores["pckh@1.0"],
        "groups": scores["mpii"]["groups"],
        "args": vars(args),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
