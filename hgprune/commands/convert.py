"""``hgprune convert SRC DST``: a foreign checkpoint (seed training checkpoint, plain state dict) → hgprune format."""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from hgprune.commands.common import flag_names
from hgprune.errors import HgpruneError
from hgprune.models.checkpoints import load_checkpoint, save_model


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("src", help="seed .pth.tar, plain state dict, or hgprune checkpoint")
    parser.add_argument("dst", help="output path (hgprune format, loadable with weights_only=True)")
    parser.add_argument("--input-size", type=int, default=None, help="input size to record (default 256)")
    parser.add_argument("--force", action="store_true", help="overwrite DST if it exists")


def main(args: argparse.Namespace) -> int:
    dst = Path(args.dst)
    if dst.exists() and not args.force:
        raise HgpruneError(f"{dst}: already exists; pass --force to overwrite")
    model, info = load_checkpoint(args.src)
    if args.input_size is not None:
        with flag_names(**{"model.input_size": "--input-size"}):
            model.config = replace(model.config, input_size=args.input_size)
    meta = {"converted_from": str(args.src), "source_format": info["source"], **(info.get("meta") or {})}
    save_model(model, dst, meta=meta)
    cfg = model.config
    print(f"wrote {dst}: {cfg.arch} N={cfg.N} M={cfg.M} joints={cfg.num_joints} (from {info['source']} checkpoint)")
    return 0
