"""Depth pruning vs channel-only pruning of hg8: speedup per MACs saved, eager PyTorch and ONNX Runtime (issue 30).

For each scale, the unpruned hg8 and hg8 pruned to 50 % and 25 % of its conv MACs three ways — channels only (the
default recipe's settings: uniform allocation, ``round_to`` 16, trunk kept), ``depth: stacks`` and ``depth: all``
(stacks / blocks first, ranked by the data-free ``position`` importance since the weights are untrained, then
channels for the rest) — are timed interleaved in one run at batch 1 with ``--threads`` threads, eager (BatchNorm
folded) and in ONNX Runtime. Speedup efficiency = speedup ÷ MACs reduction = speedup × kept MACs; the goal is ≥ 0.9.

    python -m benchmarks.depth                      # paper (N=128 M=256, 256 px) and sweep (N=16 M=32, 64 px, depth 3)
    python -m benchmarks.depth --tiny --force       # a smoke test on a tiny hg2 (numbers meaningless)

Writes ``reports/benchmarks/depth.{json,md}`` (``--out`` to change) with the load, CPU model, threads and versions.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from benchmarks.common import timer
from hgprune.errors import HgpruneError
from hgprune.export import runtime as rt
from hgprune.export.fold import fold_batchnorm
from hgprune.fsutil import atomic_write_text
from hgprune.models import build_model
from hgprune.profile import conv_macs
from hgprune.prune import prune_to_target
from hgprune.timing import check_idle, cpu_model, load_average, summarise, time_interleaved, versions

SCALES = {
    "paper": {"arch": "hg8", "N": 128, "M": 256, "input_size": 256, "depth": 4},
    "sweep": {"arch": "hg8", "N": 16, "M": 32, "input_size": 64, "depth": 3, "round_to": 4},  # the sweep recipe's
    "tiny": {"arch": "hg2", "N": 8, "M": 16, "input_size": 64, "depth": 2},  # --tiny: tests the script only
}
TARGETS = (0.5, 0.25)
METHODS = {"channels": "none", "depth-stacks": "stacks", "depth-all": "all"}  # name → prune.depth
GOAL = 0.9
ROUND_TO = 16  # the default recipe's


def pruned_models(scale: dict, round_to: int) -> dict[str, tuple[torch.nn.Module, float, list[str]]]:
    """``{name: (model in eval mode, kept MACs, removed units)}``: the parent and each method at each target."""
    torch.manual_seed(0)
    parent = build_model(**{k: v for k, v in scale.items() if k != "round_to"}).eval()
    size = scale["input_size"]
    base = conv_macs(parent, size)
    models = {"parent": (parent, 1.0, [])}
    for method, depth in METHODS.items():
        for kept in TARGETS:
            torch.manual_seed(0)
            model = build_model(**{k: v for k, v in scale.items() if k != "round_to"})
            model.load_state_dict(parent.state_dict())
            result = prune_to_target(
                model, criterion="l1", kind="macs", kept=kept, input_size=size, allocation="uniform",
                round_to=round_to, depth=depth, depth_importance="position", progress=False,
            )  # fmt: skip
            models[f"{method}@{kept:g}"] = (model.eval(), conv_macs(model, size) / base, result.removed_units)
    return models


def build_configs(models: dict, size: int, threads: int) -> tuple[dict, dict]:
    """``{model/runtime: fn}``: eager (BatchNorm folded) and ONNX Runtime, and each model's ORT-vs-eager parity
    (largest difference relative to the largest output; an export above 1e-3 stops the benchmark)."""
    configs, parity = {}, {}
    example = torch.randn(1, 3, size, size)
    for name, (model, _, _) in models.items():
        folded, _ = fold_batchnorm(model)
        configs[f"{name}/eager"] = folded
        session = rt.ort_session(rt.onnx_bytes(folded, size, dynamic_batch=False), threads)
        configs[f"{name}/ort"] = rt.ort_runner(session)
        with torch.no_grad():
            ref = model(example)
            got = rt.as_list(configs[f"{name}/ort"](example))
        scale = max(1.0, max(float(r.abs().max()) for r in ref))
        parity[name] = max(float((torch.as_tensor(g) - r).abs().max()) for g, r in zip(got, ref)) / scale
        if not parity[name] <= 1e-3:
            raise HgpruneError(f"{name}: ONNX Runtime differs from eager by {parity[name]:.2e} (relative)")
    return configs, parity


def measure(scale_name: str, warmup: int, repeats: int, threads: int, round_to: int) -> dict:
    scale = SCALES[scale_name]
    size = scale["input_size"]
    models = pruned_models(scale, scale.get("round_to", round_to))
    configs, parity = build_configs(models, size, threads)
    x = torch.randn(1, 3, size, size)
    calls = [lambda fn=fn: fn(x) for fn in configs.values()]
    times = time_interleaved(calls, warmup, repeats)
    stats = {name: summarise(t) for name, t in zip(configs, times)}
    rows = []
    for name, (_, kept_macs, removed) in models.items():
        row = {"model": name, "kept_macs": round(kept_macs, 4), "removed": removed, "ort_parity": parity[name]}
        for runtime in ("eager", "ort"):
            median = stats[f"{name}/{runtime}"]["median_ms"]
            speedup = stats[f"parent/{runtime}"]["median_ms"] / median
            row[runtime] = {**stats[f"{name}/{runtime}"], "speedup": speedup, "efficiency": speedup * kept_macs}
        rows.append(row)
    return {"scale": scale_name, "config": scale, "rows": rows}


def to_markdown(report: dict) -> str:
    lines = [
        "# Depth pruning vs channel-only pruning (hg8)",
        "",
        f"Batch 1, {report['threads']} threads, {report['repeats']} interleaved rounds after {report['warmup']} "
        f"warm-up; load before {report['load_before']}, after {report['load_after']}; {report['cpu']}"
        + (f"; each call settled {report['timer']['settle_ms']:g} ms first" if report.get("timer") else "")
        + ".",
        "Speedup efficiency = speedup × kept MACs (goal ≥ 0.9). Channels: uniform, round_to "
        f"{report['round_to']}, trunk kept. Depth: units first (position importance), channels for the rest.",
        "",
    ]
    for scale in report["scales"]:
        c = scale["config"]
        lines += [f"## {scale['scale']}: {c['arch']} N={c['N']} M={c['M']}, {c['input_size']} px, depth {c['depth']}"]
        lines += ["", "| model | kept MACs | eager ms | eager speedup (eff.) | ORT ms | ORT speedup (eff.) | removed |"]
        lines += ["|---|---|---|---|---|---|---|"]
        for r in scale["rows"]:
            e, o = r["eager"], r["ort"]
            removed = ", ".join(u for u in r["removed"] if u.startswith("stack."))
            blocks = sum(1 for u in r["removed"] if not u.startswith("stack."))
            removed = " + ".join(filter(None, [removed, f"{blocks} blocks" if blocks else ""])) or "-"
            lines.append(
                f"| {r['model']} | {r['kept_macs']:.3f} | {e['median_ms']:.2f} | {e['speedup']:.2f}× "
                f"({e['efficiency']:.2f}) | {o['median_ms']:.2f} | {o['speedup']:.2f}× ({o['efficiency']:.2f}) "
                f"| {removed} |"
            )
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", default="paper,sweep", help="comma-separated: paper, sweep")
    parser.add_argument("--tiny", action="store_true", help="a tiny hg2 only: tests the script, numbers meaningless")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--round-to", type=int, default=ROUND_TO)
    parser.add_argument("--max-load", type=float, default=0.5)
    parser.add_argument("--force", action="store_true", help="time even on a busy machine")
    parser.add_argument("--out", default="reports/benchmarks", help="folder for depth.json and depth.md")
    args = parser.parse_args(argv)
    scales = ["tiny"] if args.tiny else [s.strip() for s in args.scales.split(",")]
    unknown = [s for s in scales if s not in SCALES or s == "tiny" and not args.tiny]
    if unknown:
        raise SystemExit(f"--scales: unknown {unknown[0]!r}; valid: paper, sweep")
    loads = load_average()
    try:
        check_idle(loads, args.max_load, args.force)
    except HgpruneError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    report = {
        "threads": args.threads, "warmup": args.warmup, "repeats": args.repeats,
        "round_to": {name: SCALES[name].get("round_to", args.round_to) for name in scales},
        "load_before": loads, "cpu": cpu_model(), "versions": versions(), "goal_efficiency": GOAL,
        "timer": timer(),
        "scales": [measure(s, args.warmup, args.repeats, args.threads, args.round_to) for s in scales],
    }  # fmt: skip
    report["load_after"] = load_average()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "depth.json", json.dumps(report, indent=2) + "\n")
    atomic_write_text(out / "depth.md", to_markdown(report) + "\n")
    print(to_markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
