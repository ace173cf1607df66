"""``hgprune train``: the seed's train_mpii.py, flag for flag, plus SynthPose, devices, AMP, seeds and torchrun.

Writes the seed's files into ``--checkpoint``: checkpoint.pth.tar every epoch, model_best.pth.tar (best validation
PCKh, mpii protocol), checkpoint_{E}.pth.tar every ``--snapshot`` epochs, log.csv and log.txt — atomically, and
only on rank 0 under ``torchrun``.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import torch

from hgprune.commands.common import add_data_arguments, check_device, datasets_from_args, parse_input_shape
from hgprune.errors import HgpruneError
from hgprune.models import ARCHS, build_model, load_model
from hgprune.models.hourglass import bottom_warning
from hgprune.models.normalization import NORMALIZATIONS
from hgprune.settings import MAX_DEPTH, Epochs, Int, Width, Workers, default_of, flag, mirror
from hgprune.tracking import require_tensorboard, train_tracker
from hgprune.train import TrainConfig, Trainer
from hgprune.train import distributed as ddp
from hgprune.train.checkpointing import (
    load_training_checkpoint,
    read_log,
    save_training_checkpoint,
    training_payload,
    write_logs,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--arch", "-a", choices=ARCHS, default=None, help="number of stacks (default hg8)")
    parser.add_argument(
        "--input_shape", "--input-shape", dest="input_shape", nargs="+", default=["256"],
        help="input (H, W), e.g. '(256, 256)', 256,256 or 256 256; must be square (default 256)",
    )  # fmt: skip
    parser.add_argument(
        "--workers", "-j", **flag(Workers), default=min(4, os.cpu_count() or 1), help="DataLoader workers"
    )
    parser.add_argument("--epochs", **flag(Epochs, 100))
    parser.add_argument("--resume", default="", help="training checkpoint to resume (model, optimizer, epoch, best)")
    parser.add_argument(
        "--start-epoch", "--start_epoch", dest="start_epoch", **flag(Epochs),
        help="epoch to continue from (default: 0, or the --resume checkpoint's)",
    )  # fmt: skip
    parser.add_argument("--train-batch", "--train_batch", dest="train_batch", **mirror(TrainConfig, "batch_size"))
    parser.add_argument("--test-batch", "--test_batch", dest="test_batch", **mirror(TrainConfig, "test_batch_size"))
    parser.add_argument("--lr", "--learning-rate", **mirror(TrainConfig, "lr"))
    parser.add_argument("--momentum", **mirror(TrainConfig, "momentum"))
    parser.add_argument(
        "--weight-decay", "--weight_decay", "--wd", dest="weight_decay", **mirror(TrainConfig, "weight_decay")
    )
    parser.add_argument(
        "--schedule",
        **flag(Epochs, list(default_of(TrainConfig, "schedule"))),
        nargs="+",
        help="epochs where lr *= gamma",
    )
    parser.add_argument("--gamma", **mirror(TrainConfig, "gamma"))
    parser.add_argument("--checkpoint", "-c", default="checkpoint", help="directory for checkpoints and logs")
    parser.add_argument("--snapshot", **flag(Epochs, 0), help="also keep checkpoint_{E}.pth.tar every E epochs")
    parser.add_argument("--N", **flag(Width, 128), help="stem width (default 128, as the seed)")
    parser.add_argument("--M", **flag(Width, 128), help="trunk width (default 128, as the seed)")
    parser.add_argument("--depth", **flag(Int(1, MAX_DEPTH), 4),
                        help="levels per hourglass (default 4, as the seed: a 256-px input bottoms out at 4x4, a "
                        "64-px one at 1x1)")  # fmt: skip
    parser.add_argument(
        "--normalization", choices=tuple(NORMALIZATIONS), default="seed",
        help="input normalisation the new model is trained with and carries (default seed: the seed's mean, no "
        "std division, so the model also runs in the seed's code)",
    )  # fmt: skip
    add_data_arguments(parser)
    parser.add_argument("--amp", action="store_true", help="mixed precision (CUDA only)")
    parser.add_argument("--flip-test", "--flip_test", dest="flip_test", action="store_true")
    parser.add_argument(
        "--bn-l1", "--bn_l1", dest="bn_l1", **mirror(TrainConfig, "bn_l1"), help="L1 penalty on BN gammas"
    )
    parser.add_argument(
        "--precise-bn", dest="precise_bn", **mirror(TrainConfig, "precise_bn"), metavar="BATCHES",
        help="before each validation, re-estimate BatchNorm statistics exactly over this many training batches "
        "(PreciseBN; default 0: the running averages, as the seed)",
    )  # fmt: skip
    parser.add_argument(
        "--no-augment", dest="augment", action="store_false",
        help="no random augmentation of the training split (SynthPose already draws random poses)",
    )  # fmt: skip
    parser.add_argument(
        "--tensorboard", action="store_true", help="also write TensorBoard event files into --checkpoint/tensorboard"
    )


def main(args: argparse.Namespace) -> int:
    input_size = parse_input_shape(args.input_shape)
    if args.tensorboard:
        require_tensorboard()  # before any data is built or generated
    check_device(args.device)
    device = ddp.init_from_env(args.device)
    try:
        return _train(args, input_size, device)
    finally:
        ddp.shutdown()


def _train(args: argparse.Namespace, input_size: int, device: str) -> int:
    cfg = TrainConfig(
        epochs=args.epochs,
        lr=args.lr,
        momentum=args.momentum,
        weight_decay=args.weight_decay,
        schedule=tuple(args.schedule),
        gamma=args.gamma,
        batch_size=args.train_batch,
        test_batch_size=args.test_batch,
        workers=args.workers,
        device=device,
        amp=args.amp,
        seed=args.seed,
        bn_l1=args.bn_l1,
        flip_test=args.flip_test,
        precise_bn=args.precise_bn,
    )
    state = None
    if args.resume:
        state = load_training_checkpoint(args.resume)
        model = load_model(args.resume)
        if args.arch and model.config.arch != args.arch:
            raise HgpruneError(f"{args.resume}: checkpoint is {model.config.arch}, but --arch {args.arch} was given")
    else:
        torch.manual_seed(args.seed)  # the initial weights are part of what --seed reproduces
        model = build_model(
            args.arch or "hg8", N=args.N, M=args.M, input_size=input_size, depth=args.depth,
            normalization=args.normalization,
        )  # fmt: skip
        if (warning := bottom_warning(model.config)) and ddp.is_main():
            print(f"warning: {warning}", flush=True)
    datasets = datasets_from_args(args, input_size, ("train", "val"), model.config.normalization)
    trainer = Trainer(model, datasets["train"], datasets["val"], cfg)
    start_epoch, best_acc = 0, 0.0
    if state is not None:
        trainer.load_state_dict(state)
        start_epoch, best_acc = state["epoch"], state["best_acc"]
    if args.start_epoch is not None:
        start_epoch = args.start_epoch
    out_dir = Path(args.checkpoint)
    main_rank = ddp.is_main()
    rows = read_log(out_dir / "log.csv", start_epoch) if state is not None and main_rank else []
    best = {"acc": best_acc}
    tracker = train_tracker(vars(args) | cfg.to_dict(), out_dir) if args.tensorboard and main_rank else None
    if main_rank:
        out_dir.mkdir(parents=True, exist_ok=True)
        print(
            f"training {model.config.arch} N={model.config.N} M={model.config.M} at {input_size}px on {args.dataset} "
            f"({len(datasets['train'])} train / {len(datasets['val'])} val) for epochs {start_epoch + 1}..{cfg.epochs}"
            f" on {device}"
            + (f" x{ddp.world_size()} processes" if ddp.is_distributed() else "")
            + f"; input normalisation {model.config.normalization.describe()}",
            flush=True,
        )

    def on_epoch_end(row: dict) -> None:
        is_best = row["pckh"] > best["acc"]
        best["acc"] = max(best["acc"], row["pckh"])
        if not main_rank:
            return
        payload = training_payload(
            model, epoch=row["epoch"], best_acc=best["acc"], trainer_state=trainer.state_dict(),
            train_config=cfg.to_dict(),
        )  # fmt: skip
        save_training_checkpoint(payload, out_dir, is_best=is_best, snapshot=args.snapshot)
        rows.append(row)
        write_logs(out_dir, rows)
        if tracker is not None:
            tracker.epoch(row)
        print(
            f"epoch {row['epoch']:>3}/{cfg.epochs}  lr {row['lr']:.3g}  loss {row['loss']:.6f}  "
            f"val_loss {row['val_loss']:.6f}  PCKh {row['pckh']:.2f} (seed {row['pckh_seed']:.2f})  "
            f"best {best['acc']:.2f}{'*' if is_best else ''}  {row['wall_s']:.1f} s",
            flush=True,
        )

    trainer.fit(start_epoch=start_epoch, on_epoch_end=on_epoch_end)
    if tracker is not None:
        tracker.close()
    if main_rank:
        print(f"best validation PCKh {best['acc']:.2f}; files in {out_dir}")
    return 0
