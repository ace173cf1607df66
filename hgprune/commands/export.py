"""``hgprune export CHECKPOINT --format hgprune|torchscript|onnx``: a deployable model, checked against PyTorch.

``--format onnx --quantize int8 --calibration RECIPE_OR_DATASET`` writes a static INT8 graph instead, only when its
validation PCKh is within ``--max-pckh-drop`` of the FP32 graph's (``--force`` writes it anyway).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from hgprune.commands.common import flag_names
from hgprune.errors import HgpruneError
from hgprune.settings import PCKH_DROP, InputSide, Int, Real, Repeats, Samples, Threads, flag


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from hgprune.export import FORMATS, ORT_LEVELS

    parser.add_argument("checkpoint", help="checkpoint (hgprune, seed .pth.tar or plain state dict; pruned ok)")
    parser.add_argument("--format", required=True, choices=FORMATS, help="output format")
    parser.add_argument("--out", help="output path (default: CHECKPOINT's name with .pt / .torchscript.pt / .onnx)")
    parser.add_argument("--input-size", **flag(InputSide), help="square input side (default: the model's)")
    parser.add_argument("--opset", **flag(Int(7, 100), 17), help="ONNX opset (default 17)")
    parser.add_argument(
        "--tolerance", **flag(Real(0, 1e3, lo_open=True), 1e-4), help="max abs difference allowed vs PyTorch"
    )
    parser.add_argument("--no-fold-bn", action="store_true", help="keep BatchNorm layers (TorchScript / ONNX)")
    parser.add_argument("--no-freeze", action="store_true", help="TorchScript: do not torch.jit.freeze the trace")
    parser.add_argument("--static-batch", action="store_true", help="ONNX: fix the batch axis to 1")
    parser.add_argument("--ort-opt", choices=ORT_LEVELS, default="all", help="ORT graph optimisation for timing")
    parser.add_argument("--threads", **flag(Threads), help="CPU threads for the timing (default: torch's)")
    parser.add_argument("--repeats", **flag(Repeats, 10), help="timed runs per runtime (median reported)")
    parser.add_argument("--no-latency", action="store_true", help="skip timing")
    parser.add_argument("--force", action="store_true", help="overwrite --out; with --quantize also ignore the gate")
    from hgprune.export.quantize import CALIBRATION_METHODS

    parser.add_argument("--quantize", choices=("int8",), help="ONNX only: static INT8 (QDQ, per-channel weights)")
    parser.add_argument("--calibration", help="--quantize: recipe YAML, annotations JSON or SynthPose folder")
    parser.add_argument("--calibration-images", **flag(Samples, 128), help="training crops for calibration")
    parser.add_argument("--calibration-method", choices=CALIBRATION_METHODS, default="minmax")
    parser.add_argument("--max-pckh-drop", **flag(PCKH_DROP, 1.0), help="--quantize: largest PCKh loss to accept")


def default_out(checkpoint: Path, fmt: str, quantize: str | None = None) -> Path:
    from hgprune.export import SUFFIXES

    stem = checkpoint.name.removesuffix(".pth.tar").removesuffix(".tar").removesuffix(".pth").removesuffix(".pt")
    suffix = ".export.pt" if fmt == "hgprune" else SUFFIXES[fmt]
    if quantize:
        suffix = f".{quantize}{suffix}"
    return checkpoint.with_name(stem + suffix)


def main(args: argparse.Namespace) -> int:
    with flag_names(input_size="--input-size"):
        return _main(args)


def _main(args: argparse.Namespace) -> int:
    from hgprune import load_model
    from hgprune.export import export_model, require_deploy

    source = Path(args.checkpoint)
    out = Path(args.out) if args.out else default_out(source, args.format, args.quantize)
    if args.quantize:
        _check_quantize_args(args)
    if args.format == "onnx":
        require_deploy()
    if out.resolve() == source.resolve():
        raise HgpruneError(f"{out}: is the input checkpoint; choose another --out")
    if out.exists() and not args.force:
        raise HgpruneError(f"{out}: already exists; pass --force to overwrite")
    model = load_model(source)
    if args.quantize:
        return _quantize(model, out, args)
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


def _check_quantize_args(args: argparse.Namespace) -> None:
    if args.format != "onnx":
        raise HgpruneError(f"--quantize {args.quantize}: needs --format onnx, got --format {args.format}")
    if not args.calibration:
        raise HgpruneError("--quantize: needs --calibration RECIPE.yaml or an annotations file / SynthPose folder")
    if not Path(args.calibration).exists():
        raise HgpruneError(f"--calibration: {args.calibration} not found")


def _quantize(model, out: Path, args: argparse.Namespace) -> int:
    from hgprune.export.quantize import quantize_model

    result = quantize_model(
        model, out, args.calibration, calibration_images=args.calibration_images, max_pckh_drop=args.max_pckh_drop,
        force=args.force, input_size=args.input_size, method=args.calibration_method, opset=args.opset,
        threads=args.threads, repeats=args.repeats, time_runtime=not args.no_latency,
    )  # fmt: skip
    print(f"INT8 (QDQ, per-channel weights, {args.calibration_method} calibration on {result.calibration_images} "
          f"training crops of {args.calibration}); validation: {result.validation_images} people")  # fmt: skip
    print(f"  PCKh FP32          {result.pckh_fp32:8.2f}")
    print(f"  PCKh INT8          {result.pckh_int8:8.2f}")
    print(f"  PCKh drop          {result.pckh_drop:8.2f}   (max {result.max_pckh_drop:g})")
    for name, ms in result.latency_ms.items():
        print(f"  {name:<18} {ms:8.2f} ms   median of {args.repeats}, batch 1, {result.threads} threads")
    print(f"  size FP32 / INT8   {result.size_bytes_fp32 / 2**20:.2f} / {result.size_bytes_int8 / 2**20:.2f} MiB")
    if not result.written:
        raise HgpruneError(
            f"{out}: not written: INT8 loses {result.pckh_drop:.2f} PCKh (> --max-pckh-drop {result.max_pckh_drop:g}); "
            "calibrate on more images, raise --max-pckh-drop or pass --force"
        )
    gate = "forced past the gate" if result.pckh_drop > result.max_pckh_drop else "within the gate"
    print(f"wrote {out} (onnx int8, {result.size_bytes_int8 / 2**20:.1f} MiB), {gate}")
    return 0
