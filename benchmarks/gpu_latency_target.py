"""GPU check of the latency model (one short script: GPU time is scarce): hg8 at paper scale, fp16 CUDA graph, batch 1.

1. Calibrates the ``cuda-graph`` latency model on this GPU and judges it on ``--candidates`` random depth-and-width
   candidates (as ``benchmarks.latency_model`` does on CPU).
2. Stand-in for the planner (until the latency target is wired into the search): among ``--pool`` random candidates,
   the one the model predicts closest to 0.5 of the parent's latency is measured against the parent in the same
   interleaved pass. Goal (issue 31): <= 0.55 of the parent (today, 50 % of the MACs gives 0.96).

Usage: ``python -m benchmarks.gpu_latency_target [--candidates 20] [--pool 200]``; without a GPU it stops with a
one-line error. Writes reports/benchmarks/gpu_latency_target.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import random
import sys

from benchmarks.latency_model import OUT, evaluate
from hgprune.errors import HgpruneError
from hgprune.fsutil import atomic_write_text
from hgprune.latency import LatencyCost, LatencyTable, TimingSettings, get_runtime, parent_config
from hgprune.latency.candidates import random_candidate
from hgprune.latency.measure import measure_models
from hgprune.models.hourglass import HourglassNet
from hgprune.timing import cpu_model, versions

NAME = "gpu_latency_target"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m benchmarks.{NAME}")
    parser.add_argument("--candidates", type=int, default=20)
    parser.add_argument("--calibration-candidates", type=int, default=30)
    parser.add_argument("--pool", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    settings = dict(scale="paper", threads=1, batch=1, max_load=float("inf"), force=True)  # the GPU is what is timed
    try:
        runtime = get_runtime("cuda-graph")  # one-line error without a GPU
        namespace = argparse.Namespace(**vars(args), **{k: v for k, v in settings.items() if k != "scale"})
        accuracy = evaluate("paper", "cuda-graph", namespace)
        table = LatencyTable.read(accuracy["table"])
        cost = LatencyCost(table)
        parent_cfg = parent_config("hg8", 128, 256, 256, 4)
        parent = HourglassNet(parent_cfg).eval()
        rng = random.Random(2000)
        pool = [random_candidate(parent_cfg, rng, table.snap) for _ in range(args.pool)]
        goal = 0.5 * cost.cost(parent)
        chosen = min(pool, key=lambda m: abs(cost.cost(m) - goal))
        timing = TimingSettings(args.warmup, args.repeats, 1, 1, float("inf"), True)
        (measured_parent, measured_chosen), record = measure_models([parent, chosen], runtime, 256, timing)
    except HgpruneError as exc:
        print(f"{NAME}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    ratio = measured_chosen.median_ms / measured_parent.median_ms
    data = {"gpu": runtime.version(), "cpu": cpu_model(), "versions": versions(), "accuracy": accuracy,
            "target": {"predicted_ratio": cost.cost(chosen) / cost.cost(parent), "measured_ratio": ratio,
                       "parent_ms": measured_parent.median_ms, "chosen_ms": measured_chosen.median_ms,
                       "goal": "<= 0.55", "met": ratio <= 0.55,
                       "load": [record.load_before, record.load_after]}}  # fmt: skip
    atomic_write_text(f"{args.out}/{NAME}.json", json.dumps(data, indent=2, default=str) + "\n")
    atomic_write_text(f"{args.out}/{NAME}.md", f"# {NAME}\n\n- {data['gpu']}\n- latency model: median abs error "
                      f"{accuracy['median_abs_error']:.1%}, worst {accuracy['worst_abs_error']:.1%}\n- candidate "
                      f"predicted at 0.5 of the parent measured at {ratio:.2f} (goal <= 0.55: "
                      f"{'met' if ratio <= 0.55 else 'missed'})\n")  # fmt: skip
    print(f"measured ratio {ratio:.2f}; wrote {args.out}/{NAME}.json and .md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
