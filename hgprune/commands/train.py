"""``hgprune train``: the seed's train_mpii.py, flag for flag, plus SynthPose, devices, AMP, seeds and torchrun.

Writes the seed's files into ``--checkpoint``: checkpoint.pth.tar every epoch, model_best.pth.tar (best validation
PCKh, mpii protocol), checkpoint_{E}.pth.tar every ``--snapshot`` epochs, log.csv and log.txt — atomically, and
only on rank 0 under ``torchrun``.
"""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path

from hgprune.data import TARGET_WEIGHTS
from hgprune.errors import HgpruneError
from hgprune.models import ARCHS
from hgprune.models.normalization import NORMALIZATIONS


def parse_input_shape(value: str | list[str]) -> int:
    """``(256, 256)``, ``256,256``, ``256 256``, ``256x256`` or ``256`` → 256 (the model's input is square)."""
    text = " ".join(value) if isinstance(value, list) else str(value)
    sides = [int(v) for v in re.findall(r"\d+", text)]
    if not sides or len(sides) > 2 or re.sub(r"[\d\s,()\[\]xX]", "", text):
        raise HgpruneError(f"--input_shape: expected H,W such as '(256, 256)' or '256,256', got {text!r}")
    if len(set(sides)) != 1:
        raise HgpruneError(f"--input_shape: the hourglass input must be square, got {sides[0]}x{sides[1]}")
    if sides[0] < 64 or sides[0] % 64:
        raise HgpruneError(f"--input_shape: must be a multiple of 64 (depth-4 hourglass), got {sides[0]}")
    return sides[0]


def parse_bool(value: str) -> bool:
    """The seed's ``--visualize True`` / ``False`` (also 1/0, yes/no)."""
    lowered = str(value).strip().lower()
    if lowered in ("true", "1", "yes", "y", "on"):
        return True
    if lowered in ("false", "0", "no", "n", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected True or False, got {value!r}")


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    """Dataset flags shared by ``train`` and ``evaluate``."""
    parser.add_argument("--dataset", choices=("mpii", "synthpose"), default="mpii")
    parser.add_argument("--image-path", "--image_path", dest="image_path", help="directory of the dataset's images")
    parser.add_argument("--annotations", help="annotation JSON (the seed's mpii_annotations.json[.gz] or HRNet's)")
    parser.add_argument(
        "--data-root", "--data_root", dest="data_root", help="SynthPose cache directory (default $HGPRUNE_CACHE)"
    )
    parser.add_argument("--synth-train", "--synth_train", dest="synth_train", type=int, help="SynthPose train size")
    parser.add_argument("--synth-val", "--synth_val", dest="synth_val", type=int, help="SynthPose validation size")
    parser.add_argument("--synth-size", "--synth_size", dest="synth_size", type=int, help="SynthPose image side (px)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:k] (under torchrun: each rank's LOCAL_RANK GPU)")
    parser.add_argument(
        "--seed", type=int, default=0, help="seeds the initial weights, data order, augmentation and SynthPose"
    )
    parser.add_argument(
        "--target-weight", "--target_weight", dest="target_weight", choices=TARGET_WEIGHTS, default="visible",
        help="joint loss weights: visible = MPII's visibility flag, as the seed (default); annotated = every "
        "annotated joint",
    )  # fmt: skip


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--arch", "-a", choices=ARCHS, default=None, help="number of stacks (default hg8)")
    parser.add_argument(
        "--input_shape", "--input-shape", dest="input_shape", nargs="+", default=["256"],
        help="input (H, W), e.g. '(256, 256)', 256,256 or 256 256; must be square (default 256)",
    )  # fmt: skip
    parser.add_argument("--workers", "-j", type=int, default=min(4, os.cpu_count() or 1), help="DataLoader workers")
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--resume", default="", help="training checkpoint to resume (model, optimizer, epoch, best)")
    parser.add_argument(
        "--start-epoch", "--start_epoch", dest="start_epoch", type=int, default=None,
        help="epoch to continue from (default: 0, or the --resume checkpoint's)",
    )  # fmt: skip
    parser.add_argument("--train-batch", "--train_batch", dest="train_batch", type=int, default=6)
    parser.add_argument("--test-batch", "--test_batch", dest="test_batch", type=int, default=6)
    parser.add_argument("--lr", "--learning-rate", type=float, default=2.5e-4)
    parser.add_argument("--momentum", type=float, default=0.0)
    parser.add_argument("--weight-decay", "--weight_decay", "--wd", dest="weight_decay", type=float, default=0.0)
    parser.add_argument("--schedule", type=int, nargs="+", default=[60, 90], help="epochs where lr *= gamma")
    parser.add_argument("--gamma", type=float, default=0.1)
    parser.add_argument("--checkpoint", "-c", default="checkpoint", help="directory for checkpoints and logs")
    parser.add_argument("--snapshot", type=int, default=0, help="also keep checkpoint_{E}.pth.tar every E epochs")
    parser.add_argument("--N", type=int, default=128, help="stem width (default 128, as the seed)")
    parser.add_argument("--M", type=int, default=128, help="trunk width (default 128, as the seed)")
    parser.add_argument(
        "--normalization", choices=tuple(NORMALIZATIONS), default="seed",
        help="input normalisation the new model is trained with and carries (default seed: the seed's mean, no "
        "std division, so the model also runs in the seed's code)",
    )  # fmt: skip
    add_data_arguments(parser)
    parser.add_argument("--amp", action="store_true", help="mixed precision (CUDA only)")
    parser.add_argument("--flip-test", "--flip_test", dest="flip_test", action="store_true")
    parser.add_argument("--bn-l1", "--bn_l1", dest="bn_l1", type=float, default=0.0, help="L1 penalty on BN gammas")


def synth_options(args: argparse.Namespace) -> dict | None:
    synth = {}
    if args.synth_train is not None:
        synth["num_train"] = args.synth_train
    if args.synth_val is not None:
        synth["num_val"] = args.synth_val
    if getattr(args, "synth_size", None) is not None:
        synth["size"] = args.synth_size
    return synth or None


def build_datasets(args: argparse.Namespace, input_size: int, splits: tuple[str, ...], normalization) -> dict:
    """Datasets per split, normalised as the model expects; under torchrun rank 0 goes first so a SynthPose cache
    is generated only once."""
    from hgprune.data import build_dataset
    from hgprune.train import distributed as ddp

    annotations, image_path, cache_dir = args.annotations, args.image_path, args.data_root
    if args.dataset == "mpii" and not annotations and not image_path:
        raise HgpruneError("--image-path: required for MPII (the folder of MPII images; annotations default to the "
                           "file hgprune ships, as in the seed)")  # fmt: skip
    generated = Path(args.data_root or ".") / "annotations.json"
    if args.dataset == "synthpose" and annotations is None and args.data_root and generated.is_file():
        annotations, image_path, cache_dir = generated, image_path or generated.parent / "images", None  # data synth

    def build():
        return {
            split: build_dataset(
                args.dataset,
                split,
                input_size=input_size,
                annotations=annotations,
                image_path=image_path,
                synth=synth_options(args),
                cache_dir=cache_dir,
                seed=args.seed,
                normalization=normalization,
                target_weight=getattr(args, "target_weight", "visible"),
            )
            for split in splits
        }

    if not ddp.is_distributed():
        return build()
    import torch.distributed as dist

    datasets = build() if ddp.is_main() else None
    dist.barrier()
    return datasets if datasets is not None else build()


def check_device(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise HgpruneError(f"--device {device}: no CUDA device is available here; use --device cpu")
    elif device != "cpu":
        raise HgpruneError(f"--device: expected cpu or cuda[:k], got {device!r}")


def main(args: argparse.Namespace) -> int:
    from hgprune.train import distributed as ddp

    input_size = parse_input_shape(args.input_shape)
    check_device(args.device)
    device = ddp.init_from_env(args.device)
    try:
        return _train(args, input_size, device)
    finally:
        ddp.shutdown()


def _train(args: argparse.Namespace, input_size: int, device: str) -> int:
    import torch

    from hgprune.models import build_model, load_model
    from hgprune.train import TrainConfig, Trainer
    from hgprune.train import distributed as ddp
    from hgprune.train.checkpointing import (
        load_training_checkpoint,
        read_log,
        save_training_checkpoint,
        training_payload,
        write_logs,
    )

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
            args.arch or "hg8", N=args.N, M=args.M, input_size=input_size, normalization=args.normalization
        )
    datasets = build_datasets(args, input_size, ("train", "val"), model.config.normalization)
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
        print(
            f"epoch {row['epoch']:>3}/{cfg.epochs}  lr {row['lr']:.3g}  loss {row['loss']:.6f}  "
            f"val_loss {row['val_loss']:.6f}  PCKh {row['pckh']:.2f} (seed {row['pckh_seed']:.2f})  "
            f"best {best['acc']:.2f}{'*' if is_best else ''}  {row['wall_s']:.1f} s",
            flush=True,
        )

    trainer.fit(start_epoch=start_epoch, on_epoch_end=on_epoch_end)
    if main_rank:
        print(f"best validation PCKh {best['acc']:.2f}; files in {out_dir}")
    return 0
