"""Latency of unpruned hourglasses at the sweep's narrow widths: is ONNX Runtime slower for narrow models?

The sweep's idle latency pass (``reports/sweep_hg1_hg8/report.md``) found most pruned and scratch models *slower*
in ONNX Runtime than their unpruned parents (N=16, M=32). This times freshly initialised, unpruned models of one
architecture at several uniform widths (``NxM``) side by side: the sweep's own (16x32, 12x22, 10x22, 8x14), 16x24 and
narrower ones whose trunk and bottleneck widths (M, M/2) are multiples of 8 (8x16, 16x16). Each width runs eager
and in ONNX Runtime, every configuration once per round in a shuffled order, median of the timed rounds. Refuses
a busy machine (``hgprune.timing.check_idle``). Writes ``widths.{json,md}`` into ``--out``.

    OMP_NUM_THREADS=1 python -m studies.sweep_hg1_hg8.widths [--arch hg8] [--widths 16x32 8x16 ...] [--out DIR]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from functools import partial
from pathlib import Path

import torch

from benchmarks.common import SPIN, environment, environment_md, md_table, write_report
from hgprune.errors import HgpruneError
from hgprune.export import build_export
from hgprune.export import runtime as rt
from hgprune.models.hourglass import build_model, parse_arch
from hgprune.profile import fvcore_macs
from hgprune.timing import check_idle, load_average, time_interleaved

SCRIPT = "studies.sweep_hg1_hg8.widths"  # run as ``python -m studies.sweep_hg1_hg8.widths``
DEFAULT_WIDTHS = ["16x32", "16x24", "12x22", "10x22", "8x14", "8x16", "16x16"]


def parse_width(text: str) -> tuple[int, int]:
    """``"12x22"`` -> (12, 22)."""
    try:
        n, m = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"width {text!r} must look like NxM, e.g. 12x22") from None
    return n, m


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=SCRIPT, description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="hg8", help="hg1 … hg8")
    parser.add_argument("--widths", nargs="+", type=parse_width, default=[parse_width(w) for w in DEFAULT_WIDTHS])
    parser.add_argument("--depth", type=int, default=3)
    parser.add_argument("--input-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=30, help="timed rounds")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--max-load", type=float, default=0.5, help="refuse above this 1-minute load average")
    parser.add_argument("--force", action="store_true", help="time even on a busy machine")
    parser.add_argument("--out", type=Path, default=Path("reports/sweep_hg1_hg8"))
    args = parser.parse_args(argv)
    try:
        parse_arch(args.arch)
    except HgpruneError as exc:
        parser.error(f"--arch: {exc}")
    if args.repeats < 1 or args.warmup < 0 or args.threads < 1:
        parser.error("--repeats and --threads must be at least 1, --warmup at least 0")
    return args


def aligned(m: int) -> bool:
    """The trunk (M) and the bottleneck interiors (M/2), where nearly all the MACs are, are multiples of 8."""
    return m % 16 == 0


def configurations(args: argparse.Namespace, workdir: Path) -> tuple[list, torch.Tensor]:
    """Eager and ORT of each width: (width, backend, callable, MACs) entries, and the one input they all get."""
    example = torch.randn(1, 3, args.input_size, args.input_size, generator=torch.Generator().manual_seed(0))
    found = []
    for n, m in args.widths:
        torch.manual_seed(0)
        model = build_model(args.arch, N=n, M=m, depth=args.depth, input_size=args.input_size).eval()
        macs = fvcore_macs(model, args.input_size)
        _, graph = build_export(model, "onnx", workdir / f"{n}x{m}.onnx", args.input_size, dynamic_batch=False)
        session = rt.ort_runner(rt.ort_session(graph, args.threads, "all", SPIN))
        found += [((n, m), "eager", model, macs), ((n, m), "ort", session, macs)]
    return found, example


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    try:
        load_before = load_average()
        check_idle(load_before, args.max_load, args.force)
        with rt.torch_threads(args.threads), tempfile.TemporaryDirectory() as tmp:
            env = environment("cpu", argv=["-m", SCRIPT, *argv])
            found, example = configurations(args, Path(tmp))
            times = time_interleaved([partial(fn, example) for _, _, fn, _ in found], args.warmup, args.repeats)
        load_after = load_average()
    except HgpruneError as exc:
        print(f"{SCRIPT}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    medians = {(width, backend): statistics.median(t) for (width, backend, _, _), t in zip(found, times, strict=True)}
    macs = {width: value for width, _, _, value in found}
    rows = [
        {"N": n, "M": m, "aligned_to_8": aligned(m), "mmacs": macs[(n, m)] / 1e6,
         "eager_ms": medians[((n, m), "eager")], "ort_ms": medians[((n, m), "ort")]}
        for n, m in args.widths
    ]  # fmt: skip
    table = md_table(
        ["N", "M", "M and M/2 multiples of 8", "MMACs", "eager ms (median)", "ORT ms (median)"],
        [[r["N"], r["M"], "yes" if r["aligned_to_8"] else "no", r["mmacs"], r["eager_ms"], r["ort_ms"]] for r in rows],
    )
    markdown = (
        f"# Latency of unpruned {args.arch} at narrow widths (depth {args.depth}, {args.input_size} px)\n\n"
        f"Freshly initialised models, batch 1, {args.threads} thread(s), median of {args.repeats} interleaved rounds "
        f"after {args.warmup} warm-up round(s); 1-minute load {load_before[0] if load_before else '?'} before, "
        f"{load_after[0] if load_after else '?'} after.\n\n{table}\n## Environment\n\n{environment_md(env)}"
    )
    data = {"environment": env, "load_before": load_before, "load_after": load_after, "rows": rows}
    _, md_path = write_report("widths", data, markdown, args.out)
    print(f"wrote {md_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
