"""Latency targets met? hg8 pruned to 50 % and 25 % of its latency on ONNX Runtime and eager PyTorch, measured.

Per scale (paper: hg8 N=128 M=256 at 256 px; sweep: hg8 N=16 M=32 at 64 px, depth 3) and per runtime (``ort``,
``torch``), hg8 is pruned in one step to ``--kept`` of its *predicted* latency with the latency target's engine
(``prune_to_target(cost_model=LatencyCost(table), depth="all")``: stacks, blocks and channel widths, widths snapped to
the table's multiple), next to today's MACs-targeted default at the same fraction (channels only, uniform, round_to
16; 4 at sweep scale, the sweep recipe's: 16 leaves an M=32 model no width to cut). Every model of a scale is then
measured in one interleaved pass on both runtimes (idle check, median and p90, load recorded), with the INT8 ONNX
Runtime export of the ORT 25 % model beside them (the end-to-end goal).

The parents are untrained (latency does not depend on the weights), so the depth units are ranked by the data-free
``position`` importance and channels by ``l1``; a real run ranks depth units by their measured loss, which changes
which units go, not how many milliseconds the plan is predicted to cost.

Goals (issue 31), all read from this one run:

- each latency target met within +5 %: measured latency <= 1.05 × kept × the parent's, i.e. >= 1.9× / >= 3.8× faster;
- end to end, unpruned eager → pruned INT8 ORT at the 25 % ORT target: >= 15×;
- search cost: a latency-targeted prune step takes <= 2× a MACs-targeted one (same model, both timed here).

The latency tables must exist (``python -m benchmarks.latency_model`` calibrates and caches them, or
``hgprune latency calibrate``). Usage, on an idle machine::

    python -m benchmarks.latency_targets [--scale paper --scale sweep] [--threads 2] [--repeats 10] [--warmup 3]

Writes reports/benchmarks/latency_targets.{json,md}.
"""

from __future__ import annotations

import argparse
import copy
import json
import shlex
import sys
import time
from pathlib import Path

import torch

from benchmarks.common import timer
from benchmarks.latency import int8
from benchmarks.latency_model import SCALES
from hgprune.errors import HgpruneError
from hgprune.export import fold_batchnorm
from hgprune.export import runtime as rt
from hgprune.fsutil import atomic_write_text
from hgprune.latency import LatencyCost, TimingSettings, get_runtime, load_table, parent_config
from hgprune.latency.measure import prepare
from hgprune.models import HourglassNet
from hgprune.profile import conv_macs
from hgprune.prune import model_size, prune_to_target
from hgprune.timing import check_idle, cpu_model, load_average, summarise, time_interleaved, versions

NAME = "latency_targets"
OUT = Path(__file__).resolve().parents[1] / "reports" / "benchmarks"
RUNTIMES = ("ort", "torch")
TOLERANCE = 1.05  # a target is met when measured <= 1.05 × kept × parent
GOAL_END_TO_END, GOAL_SEARCH = 15.0, 2.0


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=f"python -m benchmarks.{NAME}", description=__doc__.splitlines()[0])
    parser.add_argument("--scale", action="append", choices=SCALES, help="default: paper and sweep")
    parser.add_argument("--kept", type=float, nargs="+", default=[0.5, 0.25])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--max-load", type=float, default=0.5)
    parser.add_argument("--force", action="store_true", help="time even on a busy machine (the record says so)")
    parser.add_argument("--device", default="cpu", help="cpu only (accepted for make bench)")
    parser.add_argument("--out-dir", type=Path, default=OUT)
    return parser.parse_args(argv)


ROUND_TO = {"paper": 16, "sweep": 4, "tiny": 2}  # the MACs default's round_to: the default recipe's; the sweep recipe's


def prune_step(
    parent: HourglassNet, size: int, kept: float, cost: LatencyCost | None, round_to: int
) -> tuple[HourglassNet, dict]:
    """One prune step of a copy of ``parent``: to ``kept`` of its predicted latency (``cost``) with depth and
    widths (snapped to the table's multiple), or (``cost`` None) to ``kept`` of its MACs with today's default
    (channels only, ``round_to``); returns the model and what it did."""
    model = copy.deepcopy(parent)
    options = dict(criterion="l1", kept=kept, input_size=size, progress=False, round_to=round_to)
    started = time.perf_counter()
    if cost is None:
        result = prune_to_target(model, kind="macs", **options)
    else:
        reference = {**model_size(parent, size), cost.name: cost.cost(parent)}
        result = prune_to_target(model, reference=reference, cost_model=cost, depth="all",
                                 depth_importance="position", **options)  # fmt: skip
    seconds = time.perf_counter() - started
    record = {"prune_s": round(seconds, 3), "kept_macs": round(result.kept_macs, 4),
              "removed_units": len(result.removed_units), "predicted_kept": result.kept_cost}  # fmt: skip
    return model.eval(), record


def run_scale(scale: str, args: argparse.Namespace) -> dict:
    arch, N, M, size, depth = SCALES[scale]
    config = parent_config(arch, N, M, size, depth)
    torch.manual_seed(0)
    parent = HourglassNet(config).eval()
    models: dict[str, tuple[HourglassNet, dict]] = {"parent": (parent, {"kept_macs": 1.0})}
    costs = {}
    for runtime in RUNTIMES:
        costs[runtime] = LatencyCost(load_table(runtime, config, args.threads, 1, size))
        for kept in args.kept:
            models[f"latency-{runtime}-{kept:g}"] = prune_step(parent, size, kept, costs[runtime], ROUND_TO[scale])
    for kept in args.kept:
        models[f"macs-{kept:g}"] = prune_step(parent, size, kept, None, ROUND_TO[scale])
    settings = TimingSettings(warmup=args.warmup, repeats=args.repeats, threads=args.threads, force=True)
    calls, labels = [], []
    for name, (model, _) in models.items():
        for runtime in RUNTIMES:
            calls.append(prepare(get_runtime(runtime), model, size, settings))
            labels.append((name, runtime))
    quarter = f"latency-ort-{min(args.kept):g}"
    deployable, _ = fold_batchnorm(models[quarter][0])
    session = rt.ort_session(int8(rt.onnx_bytes(deployable, size)), args.threads, "all", True)
    runner, example = rt.ort_runner(session), torch.rand(1, 3, size, size)
    calls.append(lambda: runner(example))
    labels.append((quarter, "ort-int8"))
    load_before = load_average()
    with rt.torch_threads(args.threads):
        times = time_interleaved(calls, args.warmup, args.repeats)
    measured = {label: summarise(t) for label, t in zip(labels, times, strict=True)}
    rows = []
    for name, (model, record) in models.items():
        row = {"model": name, "conv_macs": conv_macs(model, size), **record}
        for runtime in RUNTIMES:
            row[f"{runtime}_ms"] = round(measured[(name, runtime)]["median_ms"], 4)
            row[f"{runtime}_p90_ms"] = round(measured[(name, runtime)]["p90_ms"], 4)
            row[f"{runtime}_predicted_ms"] = round(costs[runtime].cost(model), 4)
        rows.append(row)
    parent_row = rows[0]
    checks = []
    for row in rows[1:]:
        kind, *rest = row["model"].split("-")
        runtime = rest[0] if kind == "latency" else None
        kept = float(rest[-1])
        for rt_name in RUNTIMES:
            ratio = row[f"{rt_name}_ms"] / parent_row[f"{rt_name}_ms"]
            row[f"{rt_name}_kept"] = round(ratio, 4)
            row[f"{rt_name}_speedup"] = round(1 / ratio, 3)
        if runtime is not None:
            measured_kept = row[f"{runtime}_kept"]
            checks.append({"goal": f"{scale}: {runtime} latency target {kept:g}", "measured_kept": measured_kept,
                           "limit": round(TOLERANCE * kept, 4), "met": measured_kept <= TOLERANCE * kept})  # fmt: skip
    int8_ms = measured[(quarter, "ort-int8")]["median_ms"]
    end_to_end = parent_row["torch_ms"] / int8_ms
    checks.append(
        {
            "goal": f"{scale}: eager parent → INT8 ORT at the {min(args.kept):g} ORT target",
            "measured": round(end_to_end, 2),
            "limit": GOAL_END_TO_END,
            "met": end_to_end >= GOAL_END_TO_END,
        }
    )
    for kept in args.kept:
        macs_s = models[f"macs-{kept:g}"][1]["prune_s"]
        for runtime in RUNTIMES:
            ratio = models[f"latency-{runtime}-{kept:g}"][1]["prune_s"] / macs_s
            checks.append(
                {
                    "goal": f"{scale}: search cost, {runtime} latency step ÷ MACs step at {kept:g}",
                    "measured": round(ratio, 2),
                    "limit": GOAL_SEARCH,
                    "met": ratio <= GOAL_SEARCH,
                }
            )
    return {"scale": scale, "model": dict(arch=arch, N=N, M=M, input_size=size, depth=depth), "rows": rows,
            "int8_ms": round(int8_ms, 4), "end_to_end": round(end_to_end, 2), "checks": checks,
            "load_before": load_before, "load_after": load_average(),
            "snap": {r: costs[r].snap for r in RUNTIMES}}  # fmt: skip


def markdown(report: dict) -> str:
    lines = [
        "# Latency targets: hg8 pruned to a measured latency budget (issue 31)",
        "",
        f"Command: `{report['command']}`  ",
        f"Machine: {report['cpu']}, {report['threads']} threads, batch 1; load before/after each scale in the JSON; "
        f"versions: {', '.join(f'{k} {v}' for k, v in report['versions'].items())}.",
        "",
        "Parents untrained (latency does not depend on weights); depth units ranked by `position`, channels by `l1`.",
        "",
    ]
    for scale in report["scales"]:
        m = scale["model"]
        lines += [
            f"## {scale['scale']}: hg8 N={m['N']} M={m['M']} at {m['input_size']} px, depth {m['depth']} "
            f"(snap: {scale['snap']}; load {scale['load_before']} → {scale['load_after']})",
            "",
            "| model | kept MACs | depth units removed | ORT ms (pred.) | ORT speedup | eager ms (pred.) "
            "| eager speedup | prune s |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for row in scale["rows"]:
            lines.append(
                f"| {row['model']} | {row['kept_macs']:.3f} | {row.get('removed_units', 0)} | {row['ort_ms']:.2f} "
                f"({row['ort_predicted_ms']:.2f}) | {row.get('ort_speedup', 1.0):.2f}× | {row['torch_ms']:.2f} "
                f"({row['torch_predicted_ms']:.2f}) | {row.get('torch_speedup', 1.0):.2f}× | {row.get('prune_s', '')} |"
            )
        lines += ["", f"INT8 ORT of the ORT 25 % model: {scale['int8_ms']:.2f} ms.", "", "| goal | measured | limit "
                  "| met |", "|---|---|---|---|"]  # fmt: skip
        for check in scale["checks"]:
            value = check.get("measured", check.get("measured_kept"))
            lines.append(
                f"| {check['goal']} | {value} | {check['limit']} | {'**met**' if check['met'] else 'missed'} |"
            )
        lines.append("")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        check_idle(load_average(), args.max_load, args.force)
        scales = [run_scale(scale, args) for scale in (args.scale or ["paper", "sweep"])]
    except HgpruneError as exc:
        print(f"{NAME}: error: {exc}", file=sys.stderr)
        return 2
    report = {
        "command": shlex.join(["python", "-m", f"benchmarks.{NAME}", *(sys.argv[1:] if argv is None else argv)]),
        "cpu": cpu_model(),
        "threads": args.threads,
        "versions": versions(),
        "timer": timer(),
        "forced": args.force,
        "scales": scales,
    }
    args.out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out_dir / f"{NAME}.json", json.dumps(report, indent=2) + "\n")
    atomic_write_text(args.out_dir / f"{NAME}.md", markdown(report))
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
