"""Argument helpers shared by several sub-commands."""

from __future__ import annotations

import argparse
import json
import sys

from hgprune.errors import HgpruneError
from hgprune.models import ARCHS, HourglassNet, build_model, load_model


def add_model_source(parser: argparse.ArgumentParser, positional: bool = True) -> None:
    """``MODEL`` checkpoint or ``--arch/--N/--M/--num-joints`` to build an unpruned model."""
    if positional:
        parser.add_argument("model", nargs="?", help="checkpoint (hgprune, seed .pth.tar, or plain state dict)")
    parser.add_argument("--arch", choices=ARCHS, help="build an unpruned model instead of loading a checkpoint")
    parser.add_argument("--N", type=int, default=128, help="stem width (default 128)")
    parser.add_argument("--M", type=int, default=256, help="trunk width (default 256)")
    parser.add_argument("--num-joints", type=int, default=16)


def model_from_args(args: argparse.Namespace) -> HourglassNet:
    checkpoint = getattr(args, "model", None)
    if checkpoint and args.arch:
        raise HgpruneError("give either a checkpoint or --arch, not both")
    if checkpoint:
        return load_model(checkpoint)
    if not args.arch:
        raise HgpruneError("no model: give a checkpoint path or --arch hg1..hg8")
    return build_model(args.arch, N=args.N, M=args.M, num_joints=args.num_joints)


def print_json(obj) -> None:
    json.dump(obj, sys.stdout, indent=2)
    sys.stdout.write("\n")
