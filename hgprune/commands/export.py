"""``hgprune export CHECKPOINT --format hgprune|torchscript|onnx``: a deployable model, checked against PyTorch."""

from __future__ import annotations

import argparse
from pathlib import Path

from hgprune.errors import HgpruneError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from hgprune.export import FORMATS, ORT_LEVELS

    parser.add_argument("checkpoint", help="checkpoint (hgprune, seed .pth.tar or plain state dict; pruned ok)")
    parser.add_argument("--format", required=True, choices=FORMATS, help="output format")
    parser.add_argument("--out", help="output path (default: CHECKPOINT's name with .pt / .torchscript.pt / .onnx)")
    parser.add_argument("--input-size", type=int, default=None, help="square input side (default: the model's)")
    parser.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")
    parser.add_argument("--tolerance", type=float, default=1e-4, help="max abs difference allowed vs PyTorch")
    parser.add_argument("--no-fold-bn", action="store_true", help="keep BatchNorm layers (TorchScript / ONNX)")
    parser.add_argument("--no-freeze", action="store_true", help="TorchScript: do not torch.jit.freeze the trace")
    parser.add_argument("--static-batch", action="store_true", help="ONNX: fix the batch axis to 1")
    parser.add_argument("--ort-opt", choices=ORT_LEVELS, default="all", help="ORT graph optimisation for timing")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for the timing (default: torch's)")
    parser.add_argument("--repeats", type=int, default=10, help="timed runs per runtime (median reported)")
    parser.add_argument("--no-latency", action="store_true", help="skip timing")
    parser.add_argument("--force", action="store_true", help="overwrite --out if it exists")


def default_out(checkpoint: Path, fmt: str) -> Path:
    from hgprune.export import SUFFIXES

    stem = checkpoint.name.removesuffix(".pth.tar").removesuffix(".tar").removesuffix(".pth").removesuffix(".pt")
    suffix = ".export.pt" if fmt == "hgprune" else SUFFIXES[fmt]
    return checkpoint.with_name(stem + suffix)


def main(args: argparse.Namespace) -> int:
    from hgprune import load_model
    from hgprune.export import export_model, require_deploy

    source = Path(args.checkpoint)
    out = Path(args.out) if args.out else default_out(source, args.format)
    if args.format == "onnx":
        require_deploy()
    if out.resolve() == source.resolve():
        raise HgpruneError(f"{out}: is the input checkpoint; choose another --out")
    if out.exists() and not args.force:
        raise HgpruneError(f"{out}: already exists; pass --force to overwrite")
    if args.tolerance <= 0:
        raise HgpruneError(f"--tolerance: must be > 0, got {args.tolerance}")
    model = load_model(source)
    result = export_model(
        model,
        args.format,
        out,
        args.input_size,
        fold_bn=not args.no_fold_bn,
        freeze=not args.no_freeze,
        opset=args.opset,
        dynamic_batch=not args.static_batch,
        tolerance=args.tolerance,
        time_runtime=not args.no_latency,
        repeats=args.repeats,
        threads=args.threads,
        ort_optimization=args.ort_opt,
        meta={"exported_from": str(source)},
    )
    cfg = model.config
    print(f"wrote {out} ({args.format}, {result.size_bytes / 2**20:.1f} MiB): {cfg.arch} @ {result.input_size}px")
    if args.format != "hgprune":
        print(f"  BatchNorms folded  {result.folded_bn}")
    print(
        f"  max abs diff       {result.max_abs_diff:.3g} vs PyTorch on {result.checked_inputs} random inputs "
        f"(tolerance {result.tolerance:g})"
    )
    for runtime_name, ms in result.latency_ms.items():
        print(f"  {runtime_name:<18} {ms:8.2f} ms   median of {args.repeats}, batch 1, {result.threads} threads")
    if result.speedup:
        print(f"  speedup vs eager   {result.speedup:8.2f}x")
    return 0
