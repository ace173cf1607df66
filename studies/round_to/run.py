"""Channel alignment for deployment: hg8 pruned to 25 % of its MACs with widths rounded to 8, 16 or 32 (issue 13).

Every width is kept at a multiple of ``round_to`` (AVX-512 holds 16 floats); each model runs on the eager fast path
(BatchNorm folded, channels_last, inference mode) and in ONNX Runtime, all configurations interleaved round by
round (:func:`hgprune.timing.time_interleaved`), and each model's latency is divided by its own MACs so models of
slightly different size compare fairly (ms per GMAC, lower is better). Writes
``reports/benchmarks/round_to_{PCT}.{json,md}``.

    OMP_WAIT_POLICY=PASSIVE python -m studies.round_to.run [--round-to 8 16 32] [--kept 0.25] [--repeats 10]
        [--threads 2] [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from functools import partial

import torch

from benchmarks.common import (
    SPIN,
    add_model_arguments,
    environment,
    environment_md,
    md_table,
    prune_copy,
    write_report,
)
from hgprune import build_model
from hgprune.export import fold_batchnorm
from hgprune.export import runtime as rt
from hgprune.profile import fvcore_macs
from hgprune.timing import time_interleaved


def fast_path(model: torch.nn.Module):
    """BatchNorm folded (where exact) and channels_last: the predictor's torch backend."""
    folded, _ = fold_batchnorm(model)
    folded = folded.to(memory_format=torch.channels_last)
    return lambda x: folded(x.contiguous(memory_format=torch.channels_last))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--round-to", type=int, nargs="+", default=[8, 16, 32])
    parser.add_argument("--kept", type=float, default=0.25)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    add_model_arguments(parser)
    parser.add_argument("--out-dir", default=None, help="report directory (default reports/benchmarks)")
    parser.add_argument("--quick", action="store_true", help="hg1 N=16 M=32 64 px smoke run")
    args = parser.parse_args(argv)
    if args.quick:
        args.arch, args.N, args.M, args.input_size = "hg1", 16, 32, 64
    env = environment()
    torch.set_num_threads(args.threads)
    size = args.input_size
    base = build_model(args.arch, N=args.N, M=args.M, input_size=size).eval()
    configs, macs = {}, {}
    for k in args.round_to:
        print(f"pruning with round_to {k} …", flush=True)
        model, _ = prune_copy(base, args.kept, size, k)  # the speed benchmarks' pruning (benchmarks.common)
        macs[k] = fvcore_macs(model, size)
        folded, _ = fold_batchnorm(model)
        configs[(k, "eager fast path")] = fast_path(model)
        configs[(k, "ORT")] = rt.ort_runner(
            rt.ort_session(rt.onnx_bytes(folded, size, dynamic_batch=False), args.threads, "all", SPIN)
        )
    x = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(0))
    samples = time_interleaved(
        [partial(fn, x) for fn in configs.values()],
        args.warmup,
        args.repeats,
        progress=lambda done, total: print(f"  round {done}/{total}", flush=True),
    )
    times = dict(zip(configs, samples, strict=True))
    rows, data = [], []
    for (k, backend), values in times.items():
        median = statistics.median(values)
        per_gmac = median / (macs[k] / 1e9)
        data.append({"round_to": k, "backend": backend, "median_ms": median, "min_ms": min(values),
                     "fvcore_gmacs": macs[k] / 1e9, "ms_per_gmac": per_gmac})  # fmt: skip
        rows.append([k, backend, f"{macs[k] / 1e9:.2f}", f"{median:.1f}", f"{min(values):.1f}", f"{per_gmac:.1f}"])
    best = {
        b: min((d for d in data if d["backend"] == b), key=lambda d: d["ms_per_gmac"])
        for b in ("eager fast path", "ORT")
    }
    md = (
        f"# Channel alignment: round_to {' / '.join(map(str, args.round_to))} ({args.arch} N={args.N} M={args.M} at "
        f"{round(100 * args.kept)} % MACs)\n\n"
        f"Pruning: L1, uniform channel ratio incl. the trunk, kept {args.kept} of the conv MACs; batch 1, {size}², "
        f"{args.threads} threads, median of {args.repeats} interleaved rounds after {args.warmup} warm-up rounds. "
        "Eager fast path = BatchNorm folded + channels_last + inference mode.\n\n"
        + md_table(["round_to", "backend", "fvcore GMACs", "median ms", "min ms", "ms per GMAC"], rows)
        + "\nLowest ms per GMAC: "
        + ", ".join(f"{b} round_to {d['round_to']}" for b, d in best.items())
        + "\n\n## Environment\n\n"
        + environment_md(env)
    )
    name = f"round_to_{round(100 * args.kept)}"
    write_report(name, {"environment": env, "results": data, "args": vars(args)}, md, args.out_dir)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
