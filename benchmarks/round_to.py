"""Channel alignment for deployment: hg8 pruned to 25 % of its MACs with widths rounded to 8, 16 or 32 (issue 13).

Every width is kept at a multiple of ``round_to`` (AVX-512 holds 16 floats); each model runs on the eager fast path
(BatchNorm folded, channels_last, inference mode) and in ONNX Runtime, all configurations interleaved round by
round, and each model's latency is divided by its own MACs so models of slightly different size compare fairly
(ms per GMAC, lower is better). Writes ``reports/benchmarks/round_to_{PCT}.{json,md}``.

    OMP_WAIT_POLICY=PASSIVE python benchmarks/round_to.py [--round-to 8 16 32] [--repeats 10] [--threads 2]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import SPIN, environment, environment_md, md_table, write_report  # noqa: E402

from hgprune import build_model  # noqa: E402
from hgprune.export import fold_batchnorm  # noqa: E402
from hgprune.export import runtime as rt  # noqa: E402
from hgprune.profile import fvcore_macs  # noqa: E402
from hgprune.prune import prune_to_target  # noqa: E402


def pruned(base: torch.nn.Module, kept: float, size: int, round_to: int) -> torch.nn.Module:
    """The benchmark's pruning (same as benchmarks/latency.py): L1, uniform ratio including the trunk."""
    model = copy.deepcopy(base)
    prune_to_target(model, criterion="l1", kind="macs", kept=kept, input_size=size, allocation="uniform",
                    prune_trunk=True, round_to=round_to, tolerance=0.01)  # fmt: skip
    return model.eval()


def fast_path(model: torch.nn.Module):
    """BatchNorm folded (where exact) and channels_last: the predictor's torch backend."""
    folded, _ = fold_batchnorm(model)
    folded = folded.to(memory_format=torch.channels_last)
    return lambda x: folded(x.contiguous(memory_format=torch.channels_last))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--round-to", type=int, nargs="+", default=[8, 16, 32])
    parser.add_argument("--kept", type=float, default=0.25)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    env = environment()
    torch.set_num_threads(args.threads)
    size = 256
    base = build_model("hg8", N=128, M=256, input_size=size).eval()
    configs, macs = {}, {}
    for k in args.round_to:
        print(f"pruning with round_to {k} …", flush=True)
        model = pruned(base, args.kept, size, k)
        macs[k] = fvcore_macs(model, size)
        folded, _ = fold_batchnorm(model)
        configs[(k, "eager fast path")] = fast_path(model)
        configs[(k, "ORT")] = rt.ort_runner(
            rt.ort_session(rt.onnx_bytes(folded, size, dynamic_batch=False), args.threads, "all", SPIN)
        )
    x = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(0))
    times: dict = {key: [] for key in configs}
    with torch.inference_mode():
        for r in range(args.warmup + args.repeats):
            for key, fn in configs.items():
                started = time.perf_counter()
                fn(x)
                if r >= args.warmup:
                    times[key].append(1000 * (time.perf_counter() - started))
            print(f"  round {r + 1}/{args.warmup + args.repeats}", flush=True)
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
        f"# Channel alignment: round_to 8 / 16 / 32 (hg8 N=128 M=256 at {round(100 * args.kept)} % MACs)\n\n"
        f"Pruning: L1, uniform channel ratio incl. the trunk, kept {args.kept} of the conv MACs; batch 1, 256², "
        f"{args.threads} threads, median of {args.repeats} interleaved rounds after {args.warmup} warm-up rounds. "
        "Eager fast path = BatchNorm folded + channels_last + inference mode.\n\n"
        + md_table(["round_to", "backend", "fvcore GMACs", "median ms", "min ms", "ms per GMAC"], rows)
        + "\nLowest ms per GMAC: "
        + ", ".join(f"{b} round_to {d['round_to']}" for b, d in best.items())
        + "\n\n## Environment\n\n"
        + environment_md(env)
    )
    write_report(f"round_to_{round(100 * args.kept)}", {"environment": env, "results": data, "args": vars(args)}, md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
