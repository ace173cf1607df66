"""``hgprune profile``: parameters, MACs from two counters, per-part breakdown, latency, memory."""

from __future__ import annotations

import argparse

from hgprune.commands.common import add_model_source, flag_names, model_from_args, print_json
from hgprune.errors import HgpruneError
from hgprune.models.hourglass import check_input_size
from hgprune.settings import Batch, InputSide, Real, Repeats, Threads, Warmup, flag

# Bounds of the measurement flags, checked before the model is built or anything is timed.


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_source(parser)
    parser.add_argument("--input-size", **flag(InputSide), help="square input side (default: the model's, 256)")
    parser.add_argument("--batch-size", **flag(Batch, 1))
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:k]")
    parser.add_argument("--threads", **flag(Threads), help="CPU threads for the latency measurement")
    parser.add_argument("--repeats", **flag(Repeats, 10), help="timed repeats (after --warmup)")
    parser.add_argument("--warmup", **flag(Warmup, 2))
    parser.add_argument(
        "--max-seconds",
        **flag(Real(0, 86400, lo_open=True), 8.0),
        help="stop timing after this long once 3 repeats are in (default 8)",
    )
    parser.add_argument("--no-latency", action="store_true", help="skip the latency measurement")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def main(args: argparse.Namespace) -> int:
    from hgprune.profile import profile_model

    model = model_from_args(args)
    size = model.config.input_size if args.input_size is None else args.input_size
    with flag_names(input_size="--input-size"):
        check_input_size(size, model.config.depth)
    if args.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise HgpruneError("--device cuda: no CUDA device is available here; use --device cpu")
    prof = profile_model(
        model,
        input_size=size,
        batch_size=args.batch_size,
        device=args.device,
        latency=not args.no_latency,
        warmup=args.warmup,
        repeats=args.repeats,
        threads=args.threads,
        max_seconds=args.max_seconds,
    )
    if args.json:
        print_json(prof.to_dict())
        return 0
    print(f"{prof.arch} @ {prof.input_size}x{prof.input_size}")
    print(f"  params            {prof.params:>16,}")
    print(f"  MACs (fvcore)     {prof.macs_fvcore:>16,}   canonical; counts BN and upsampling")
    if prof.macs_thop is not None:
        print(f"  MACs (thop)       {prof.macs_thop:>16,}   differs by {100 * prof.macs_counters_rel_diff:.2f} %")
    print(f"  MACs (convs only) {prof.conv_macs:>16,}")
    if prof.latency:
        lat = prof.latency
        print(
            f"  latency           {lat.median_ms:>13.2f} ms   median of {lat.repeats} (p90 {lat.p90_ms:.2f} ms), "
            f"batch {lat.batch_size}, {lat.threads} threads, {lat.device}"
        )
    for key, value in prof.memory.items():
        print(f"  {key:<17} {value / 2**20:>13.1f} MiB")
    if prof.parts:
        print("  part       MACs (fvcore)        params")
        for part, row in prof.parts.items():
            print(f"  {part:<8} {row['macs_fvcore']:>15,} {row['params']:>13,}")
    return 0
