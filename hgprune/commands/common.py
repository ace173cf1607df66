"""Argument helpers shared by several sub-commands."""

from __future__ import annotations

import argparse
import json
import re
import sys
from contextlib import contextmanager

import torch

from hgprune.data import TARGET_WEIGHTS, build_datasets
from hgprune.errors import HgpruneError
from hgprune.models import ARCHS, HourglassNet, build_model, check_input_size, load_model
from hgprune.settings import MAX_JOINTS, Int, Samples, Seed, SynthSection, Width, field_types, flag
from hgprune.train import distributed as ddp

SYNTH = field_types(SynthSection)


def add_model_source(parser: argparse.ArgumentParser, positional: bool = True) -> None:
    """``MODEL`` checkpoint or ``--arch/--N/--M/--num-joints`` to build an unpruned model."""
    if positional:
        parser.add_argument("model", nargs="?", help="checkpoint (hgprune, seed .pth.tar, or plain state dict)")
    parser.add_argument("--arch", choices=ARCHS, help="build an unpruned model instead of loading a checkpoint")
    parser.add_argument("--N", **flag(Width, 128), help="stem width (default 128)")
    parser.add_argument("--M", **flag(Width, 256), help="trunk width (default 256)")
    parser.add_argument("--num-joints", **flag(Int(1, MAX_JOINTS), 16))


def model_from_args(args: argparse.Namespace) -> HourglassNet:
    checkpoint = getattr(args, "model", None)
    if checkpoint and args.arch:
        raise HgpruneError("give either a checkpoint or --arch, not both")
    if checkpoint:
        return load_model(checkpoint)
    if not args.arch:
        raise HgpruneError("no model: give a checkpoint path or --arch hg1..hg8")
    return build_model(args.arch, N=args.N, M=args.M, num_joints=args.num_joints)


@contextmanager
def flag_names(**flags: str):
    """Library errors name values (``ratios: …``); on the command line, name the flag instead (``--ratios: …``)."""
    try:
        yield
    except HgpruneError as exc:
        key, sep, rest = str(exc).partition(": ")
        if sep and key in flags:
            raise HgpruneError(f"{flags[key]}: {rest}") from None
        raise


def parse_input_shape(value: str | list[str]) -> int:
    """``(256, 256)``, ``256,256``, ``256 256``, ``256x256`` or ``256`` → 256 (the model's input is square)."""
    text = " ".join(value) if isinstance(value, list) else str(value)
    sides = [int(v) for v in re.findall(r"\d+", text)]
    if not sides or len(sides) > 2 or re.sub(r"[\d\s,()\[\]xX]", "", text):
        raise HgpruneError(f"--input_shape: expected H,W such as '(256, 256)' or '256,256', got {text!r}")
    if len(set(sides)) != 1:
        raise HgpruneError(f"--input_shape: the hourglass input must be square, got {sides[0]}x{sides[1]}")
    with flag_names(input_size="--input_shape"):
        return check_input_size(sides[0])


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
    parser.add_argument(
        "--synth-train", "--synth_train", dest="synth_train", **flag(Samples), help="SynthPose train size"
    )
    parser.add_argument(
        "--synth-val", "--synth_val", dest="synth_val", **flag(Samples), help="SynthPose validation size"
    )
    parser.add_argument(
        "--synth-size", "--synth_size", dest="synth_size", **flag(SYNTH["size"]), help="SynthPose image side (px)"
    )
    parser.add_argument(
        "--synth-seed", "--synth_seed", dest="synth_seed", **flag(Seed),
        help="SynthPose generation seed (default: --seed), to train several seeds on the same images",
    )  # fmt: skip
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:k] (under torchrun: each rank's LOCAL_RANK GPU)")
    parser.add_argument(
        "--seed", **flag(Seed, 0), help="seeds the initial weights, data order, augmentation and SynthPose"
    )
    parser.add_argument(
        "--target-weight", "--target_weight", dest="target_weight", choices=TARGET_WEIGHTS, default="visible",
        help="joint loss weights: visible = MPII's visibility flag, as the seed (default); annotated = every "
        "annotated joint",
    )  # fmt: skip


def synth_options(args: argparse.Namespace) -> dict | None:
    """SynthPose generation parameters given on the command line (None: the defaults)."""
    given = {"num_train": args.synth_train, "num_val": args.synth_val, "size": getattr(args, "synth_size", None)}
    given["seed"] = getattr(args, "synth_seed", None)
    synth = {k: v for k, v in given.items() if v is not None}
    return synth or None


def datasets_from_args(args: argparse.Namespace, input_size: int, splits: tuple[str, ...], normalization) -> dict:
    """Datasets per split from the data flags, normalised as the model expects; under torchrun rank 0 builds first
    so a SynthPose cache is generated only once."""
    if args.dataset == "mpii" and not args.annotations and not args.image_path:
        raise HgpruneError("--image-path: required for MPII (the folder of MPII images; annotations default to the "
                           "file hgprune ships, as in the seed)")  # fmt: skip
    return ddp.main_first(
        lambda: build_datasets(
            args.dataset,
            splits,
            input_size=input_size,
            normalization=normalization,
            augment=None if getattr(args, "augment", True) else False,
            annotations=args.annotations,
            image_path=args.image_path,
            data_root=args.data_root,
            synth=synth_options(args),
            seed=args.seed,
            target_weight=getattr(args, "target_weight", "visible"),
        )
    )


def check_device(device: str) -> None:
    """``cpu`` or ``cuda[:k]`` where CUDA exists."""
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise HgpruneError(f"--device {device}: no CUDA device is available here; use --device cpu")
    elif device != "cpu":
        raise HgpruneError(f"--device: expected cpu or cuda[:k], got {device!r}")


def print_json(obj) -> None:
    json.dump(obj, sys.stdout, indent=2)
    sys.stdout.write("\n")
