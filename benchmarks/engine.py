"""Engine overhead: one ``prune_to_target`` step next to raw torch-pruning doing the same channel prune, same run.

For hg1 … hg8 (N=128, M=256, input 256, L1, keep 50 % of conv MACs, trunk and score heads kept, round_to 8):

* **engine** = ``prune_to_target`` wall time: dependency graph, calibration hook, importance of every group, the
  MACs-target search (bisection over an analytic count), pruning with explicit indices and the final measurement;
* **raw tp** = ``tp.pruner.MetaPruner(...)`` + ``pruner.step()`` with ``MagnitudeImportance(p=1)``, global ranking,
  the same ignored layers, ``round_to=8`` and the channel ratio the engine's search found (raw torch-pruning has no
  MACs target, so it is handed the answer; it does no search at all).

Both are timed as wall and CPU (process) time, alternating, the best of ``--repeats``. Goals (issue 7): engine ÷ raw
tp ≤ 1.5 and engine < 10 s for hg8. Writes ``reports/benchmarks/engine.{json,md}``.
Usage: ``python benchmarks/engine.py [--archs hg1 hg8] [--repeats 1] [--threads 2] [--device cpu]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from importlib import metadata
from pathlib import Path

import numpy
import torch
import torch_pruning as tp
from torch import nn

from hgprune import __version__, build_model
from hgprune.fsutil import atomic_write_text
from hgprune.models.hourglass import ARCHS
from hgprune.prune import model_size, prune_to_target

ROOT = Path(__file__).resolve().parents[1]
KEPT = 0.5
ROUND_TO = 8


def trunk_producers(model: nn.Module) -> list[nn.Module]:
    """Convs whose outputs are the M-wide trunk (ignored so raw tp leaves the trunk alone, like the engine)."""
    names = []
    for name, module in model.named_modules():
        if not isinstance(module, nn.Conv2d):
            continue
        in_trunk_block = name.startswith(("layer3.", "hg.", "res.")) and name.endswith(("conv3", "downsample.0"))
        if in_trunk_block or name.startswith(("fc_.", "score_.")):
            names.append(module)
    return names


def timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    value = fn()
    return value, time.perf_counter() - wall, time.process_time() - cpu


def run_engine(arch: str, device: str) -> dict:
    torch.manual_seed(0)
    model = build_model(arch, N=128, M=256, input_size=256).to(device)
    reference = model_size(model, 256)  # measured once per run at the baseline, not per step
    result, wall, cpu = timed(
        lambda: prune_to_target(model, criterion="l1", kind="macs", kept=KEPT, reference=reference, input_size=256)
    )
    return {
        "wall_s": wall,
        "cpu_s": cpu,
        "kept_macs": result.kept_macs,
        "kept_params": result.kept_params,
        "channel_ratio": result.channel_ratio,
        "search_evaluations": result.search_evaluations,
        "phases_s": {k: round(v, 4) for k, v in result.timings.items()},
    }


def run_raw_tp(arch: str, ratio: float, device: str) -> dict:
    torch.manual_seed(0)
    model = build_model(arch, N=128, M=256, input_size=256).to(device)
    reference = model_size(model, 256)
    heads = [m for n, m in model.named_modules() if n.startswith("score.")]

    def prune() -> None:
        pruner = tp.pruner.MetaPruner(
            model,
            torch.zeros(1, 3, 64, 64, device=device),
            importance=tp.importance.MagnitudeImportance(p=1),
            pruning_ratio=ratio,
            global_pruning=True,
            ignored_layers=heads + trunk_producers(model),
            round_to=ROUND_TO,
            output_transform=lambda outputs: sum(o.sum() for o in outputs),
        )
        pruner.step()

    _, wall, cpu = timed(prune)
    after = model_size(model, 256)
    return {"wall_s": wall, "cpu_s": cpu, "kept_macs": after["macs"] / reference["macs"]}


def machine() -> dict:
    model_name = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model_name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": model_name,
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "load_average_at_start": list(os.getloadavg()),
    }


def markdown(report: dict) -> str:
    lines = [
        "# Engine overhead: `prune_to_target` vs raw torch-pruning",
        "",
        f"Command: `{report['command']}`  ",
        f"Machine: {report['machine']['cpu']} ({report['machine']['cpu_count']} CPUs), torch threads "
        f"{report['threads']}, device {report['device']}, load average at start "
        f"{report['machine']['load_average_at_start'][0]:.1f}, at end {report['load_average_at_end'][0]:.1f}  ",
        f"Versions: hgprune {report['versions']['hgprune']}, torch {report['versions']['torch']}, "
        f"torch-pruning {report['versions']['torch_pruning']}, Python {report['versions']['python']}",
        "",
        f"Setting: N=128, M=256, input 256, L1, keep {KEPT:.0%} of conv MACs, round_to {ROUND_TO}, trunk and score "
        f"heads kept; best of {report['repeats']} (alternating). Raw tp gets the engine's channel ratio (no search).",
        "",
        "| arch | engine wall s | raw tp wall s | wall ratio | engine CPU s | raw tp CPU s | CPU ratio "
        "| engine kept MACs | tp kept MACs | search evals |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in report["results"]:
        e, t = row["engine"], row["raw_tp"]
        lines.append(
            f"| {row['arch']} | {e['wall_s']:.2f} | {t['wall_s']:.2f} | {row['wall_ratio']:.2f} | {e['cpu_s']:.2f} "
            f"| {t['cpu_s']:.2f} | {row['cpu_ratio']:.2f} | {e['kept_macs']:.3f} | {t['kept_macs']:.3f} "
            f"| {e['search_evaluations']} |"
        )
    goals = report["goals"]
    lines += [
        "",
        f"Goals: engine ÷ raw tp ≤ 1.5 on every arch — **{'met' if goals['ratio_met'] else 'missed'}** "
        f"(worst wall ratio {goals['worst_wall_ratio']:.2f}); hg8 under 10 s — "
        f"**{'met' if goals['hg8_under_10s_met'] else 'missed' if goals['hg8_under_10s_met'] is not None else 'n/a'}**"
        f" ({goals['hg8_wall_s'] if goals['hg8_wall_s'] is not None else 'not run'} s wall).",
        "",
        "Engine phases for the largest model (s): "
        + ", ".join(f"{k} {v:.2f}" for k, v in report["results"][-1]["engine"]["phases_s"].items()),
        "",
        "Threads: both sides run with the thread count above (default 1). The engine itself switches to one thread "
        "for its graph bookkeeping (tiny tensor ops); on this shared 2-core machine a second OpenMP thread only "
        "spins: raw tp with 2 threads took several times longer wall and CPU time while other work ran. "
        "CPU (process) time is the steadier comparison when the machine is loaded.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", nargs="+", default=list(ARCHS), choices=ARCHS)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default=str(ROOT / "reports" / "benchmarks"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    report = {
        "benchmark": "engine",
        "command": " ".join([Path(sys.executable).name, "benchmarks/engine.py", *(argv or sys.argv[1:])]),
        "machine": machine(),
        "threads": torch.get_num_threads(),
        "device": args.device,
        "repeats": args.repeats,
        "versions": {
            "hgprune": __version__,
            "torch": torch.__version__,
            "torch_pruning": metadata.version("torch-pruning"),  # tp.__version__ still says 1.6.0 in 1.6.1
            "numpy": numpy.__version__,
            "python": platform.python_version(),
        },
        "results": [],
    }
    for arch in args.archs:
        engine_runs, tp_runs = [], []
        for _ in range(args.repeats):
            engine_runs.append(run_engine(arch, args.device))
            tp_runs.append(run_raw_tp(arch, engine_runs[-1]["channel_ratio"], args.device))
        engine = min(engine_runs, key=lambda r: r["wall_s"])
        raw = min(tp_runs, key=lambda r: r["wall_s"])
        row = {
            "arch": arch,
            "engine": engine,
            "raw_tp": raw,
            "wall_ratio": engine["wall_s"] / raw["wall_s"],
            "cpu_ratio": min(r["cpu_s"] for r in engine_runs) / min(r["cpu_s"] for r in tp_runs),
        }
        report["results"].append(row)
        print(
            f"{arch}: engine {engine['wall_s']:.2f} s (cpu {engine['cpu_s']:.2f}), raw tp {raw['wall_s']:.2f} s "
            f"(cpu {raw['cpu_s']:.2f}), ratio {row['wall_ratio']:.2f}, kept MACs {engine['kept_macs']:.3f}",
            flush=True,
        )
    hg8 = next((r for r in report["results"] if r["arch"] == "hg8"), None)
    worst = max(r["wall_ratio"] for r in report["results"])
    report["goals"] = {
        "worst_wall_ratio": worst,
        "ratio_met": worst <= 1.5,
        "hg8_wall_s": round(hg8["engine"]["wall_s"], 2) if hg8 else None,
        "hg8_under_10s_met": (hg8["engine"]["wall_s"] < 10) if hg8 else None,
    }
    report["load_average_at_end"] = list(os.getloadavg())
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "engine.json", json.dumps(report, indent=2) + "\n")
    atomic_write_text(out / "engine.md", markdown(report))
    print(f"wrote {out / 'engine.json'} and {out / 'engine.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
