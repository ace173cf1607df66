"""Profiler speed: wall time of a full ``hgprune profile`` of hg8 (params, fvcore + thop MACs, conv MACs, per-part
breakdown, memory, latency), with each stage timed alone. Goal (issue 7): ≤ 15 s for hg8 on this 2-core CPU.

Also checks issue 5's "MACs from both counters within 1 % of each other". Writes
``reports/benchmarks/profile.{json,md}``. Usage: ``python -m benchmarks.profiler [--arch hg8] [--threads 2]
[--repeats 10 --warmup 2 --max-seconds 8] [--no-cli]`` (the defaults are the CLI's own). Named ``profiler``, not
``profile``, so that it never shadows the standard library's ``profile`` module.

The stages are timed once each, one after another (wall time of one call, :func:`timed`): they are parts of one
profile, not configurations compared against each other, so they are not interleaved.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import torch

from benchmarks.common import ROOT, add_model_arguments, environment, environment_md, md_table, write_report
from hgprune import build_model
from hgprune.profile import (
    _memory,
    conv_macs,
    count_params,
    fvcore_macs,
    model_latency,
    profile_model,
    thop_macs,
)

GOAL_S = 15.0


def timed(fn):
    """``fn()``'s value and the wall seconds of that one call."""
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_model_arguments(parser)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=10, help="latency repeats (the CLI default)")
    parser.add_argument("--warmup", type=int, default=2, help="latency warm-up runs (the CLI default)")
    parser.add_argument("--max-seconds", type=float, default=8.0, help="latency time budget (the CLI default)")
    parser.add_argument("--fast-repeats", type=int, default=5, help="second run: fewer latency repeats")
    parser.add_argument("--fast-warmup", type=int, default=1, help="second run: fewer warm-up runs")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-cli", action="store_true", help="skip timing the `hgprune profile` command itself")
    parser.add_argument("--out-dir", default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    env = environment(args.device)
    size = args.input_size
    model, build_s = timed(lambda: build_model(args.arch, N=args.N, M=args.M, input_size=size).eval())
    prof, total_s = timed(
        lambda: profile_model(
            model,
            size,
            device=args.device,
            warmup=args.warmup,
            repeats=args.repeats,
            threads=args.threads,
            max_seconds=args.max_seconds,
        )
    )
    _, fast_s = timed(
        lambda: profile_model(
            model, size, device=args.device, warmup=args.fast_warmup, repeats=args.fast_repeats, threads=args.threads
        )
    )
    stages = {"build_model": build_s}
    _, stages["params"] = timed(lambda: count_params(model))
    _, stages["fvcore_macs (by module)"] = timed(lambda: fvcore_macs(model, size, by_module=True))
    _, stages["thop_macs"] = timed(lambda: thop_macs(model, size))
    _, stages["conv_macs"] = timed(lambda: conv_macs(model, size, by_module=True))
    _, stages["memory"] = timed(lambda: _memory(model, size, 1))
    _, stages["latency"] = timed(
        lambda: model_latency(model, size, 1, args.device, args.warmup, args.repeats, threads=args.threads)
    )
    cli = None
    if not args.no_cli:
        command = [sys.executable, "-m", "hgprune", "profile", "--arch", args.arch, "--N", str(args.N), "--M",
                   str(args.M), "--input-size", str(size), "--threads", str(args.threads), "--json"]  # fmt: skip
        done, cli_s = timed(lambda: subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True))
        cli = {"command": " ".join(command[1:]), "wall_s": cli_s, "params": json.loads(done.stdout)["params"]}
    lat = prof.latency
    report = {
        "benchmark": "profile",
        "environment": env,
        "settings": vars(args),
        "profile_model_wall_s": total_s,
        "goal_s": GOAL_S,
        "goal_met": total_s <= GOAL_S,
        "fast_profile_wall_s": fast_s,
        "fast_goal_met": fast_s <= GOAL_S,
        "stages_s": stages,
        "cli": cli,
        "result": {
            "params": prof.params,
            "macs_fvcore": prof.macs_fvcore,
            "macs_thop": prof.macs_thop,
            "conv_macs": prof.conv_macs,
            "macs_counters_rel_diff": prof.macs_counters_rel_diff,
            "counters_within_1pct": (prof.macs_counters_rel_diff or 0) <= 0.01,
            "latency_median_ms": lat.median_ms if lat else None,
            "latency_repeats": lat.repeats if lat else None,
        },
    }
    markdown = to_markdown(report)
    write_report("profile", report, markdown, args.out_dir)
    print(markdown)
    return 0


def to_markdown(report: dict) -> str:
    st, res = report["settings"], report["result"]
    verdict = "met" if report["goal_met"] else "missed"
    lines = [
        "# Profiler benchmark\n",
        f"Full `profile_model` of {st['arch']} N={st['N']} M={st['M']} at {st['input_size']}×{st['input_size']}, "
        f"{st['threads']} threads, latency {st['warmup']} warm-up + {st['repeats']} repeats (the CLI defaults).\n",
        f"**Wall time: {report['profile_model_wall_s']:.1f} s** (goal ≤ {report['goal_s']:.0f} s: {verdict}).",
        f"With `--warmup {st['fast_warmup']} --repeats {st['fast_repeats']}`: {report['fast_profile_wall_s']:.1f} s "
        f"(goal {'met' if report['fast_goal_met'] else 'missed'}). Everything but the latency measurement takes "
        f"{sum(v for k, v in report['stages_s'].items() if k != 'latency'):.1f} s; latency costs one forward pass per "
        "warm-up or repeat.",
    ]
    if report["cli"]:
        lines.append(f"`{report['cli']['command']}` end to end (new process, imports included): "
                     f"{report['cli']['wall_s']:.1f} s.")  # fmt: skip
    lines.append(
        "\nThe machine is shared with other jobs (load average below), which inflates the latency stage most.\n"
    )
    lines.append(environment_md(report["environment"]))
    lines.append("\n## Stages, each timed alone\n")
    lines.append(md_table(["stage", "seconds"], list(report["stages_s"].items())))
    lines.append("\n## Result\n")
    rel = res["macs_counters_rel_diff"]
    lines.append(
        md_table(
            ["params", "fvcore MACs", "thop MACs", "conv MACs", "fvcore vs thop", "latency median (ms)"],
            [
                [
                    f"{res['params']:,}",
                    f"{res['macs_fvcore']:,}",
                    f"{res['macs_thop']:,}",
                    f"{res['conv_macs']:,}",
                    f"{100 * rel:.2f} %" if rel is not None else "",
                    res["latency_median_ms"],
                ]
            ],
        )  # fmt: skip
    )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
