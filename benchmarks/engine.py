"""Engine overhead: one ``prune_to_target`` step next to raw torch-pruning doing the same channel prune, same run.

For hg1 … hg8 (N=128, M=256, input 256, L1, keep 50 % of conv MACs, trunk and score heads kept, round_to 8), with the
channel allocation pinned the same on both sides (``--allocation``, default ``uniform``):

* **engine** = ``prune_to_target(allocation=A, round_to=8)`` wall time: dependency graph, calibration hook, importance
  of every group, the MACs-target search (bisection over an analytic count), pruning with explicit indices and the
  final measurement;
* **raw tp** = ``tp.pruner.MetaPruner(...)`` + ``pruner.step()`` with ``MagnitudeImportance(p=1)``, the same ignored
  layers, ``round_to=8``, ``global_pruning`` on exactly when A is ``global`` (``uniform``: every group loses the same
  fraction, as the engine's uniform allocation), and the channel ratio the engine's search found (raw torch-pruning
  has no MACs target, so it is handed the answer from one untimed engine run; it does no search at all).

Both sides prune fresh copies built before the timing; they are timed interleaved (:func:`hgprune.timing.
time_interleaved`: each round prunes once with each, in a shuffled order), wall and CPU (process) time, the best of
``--repeats`` rounds after ``--warmup``. Goals (issue 7): engine ÷ raw tp ≤ 1.5 and engine < 10 s for hg8. Writes
``reports/benchmarks/engine.{json,md}``. Usage: ``python -m benchmarks.engine [--archs hg1 hg8] [--repeats 2]
[--allocation uniform|global] [--threads 1] [--device cpu]`` (``--N --M --input-size``: a smaller model, for a
smoke run).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable

import torch
import torch_pruning as tp
from torch import nn

from benchmarks.common import add_model_arguments, environment, environment_md, write_report
from hgprune import build_model
from hgprune.models.hourglass import ARCHS
from hgprune.prune import model_size, prune_to_target
from hgprune.timing import load_average, time_interleaved

KEPT = 0.5
ROUND_TO = 8
ALLOCATIONS = ("uniform", "global")  # the two that raw torch-pruning has (global_pruning False / True)


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


def engine_prune(model: nn.Module, reference: dict, size: int, allocation: str):
    """The engine's step: L1, keep ``KEPT`` of the conv MACs, trunk kept, widths rounded to ``ROUND_TO``."""
    return prune_to_target(model, criterion="l1", kind="macs", kept=KEPT, reference=reference, input_size=size,
                           allocation=allocation, round_to=ROUND_TO, prune_trunk=False, progress=False)  # fmt: skip


def raw_tp_prune(model: nn.Module, ratio: float, allocation: str, device: str) -> None:
    """Raw torch-pruning's step at the engine's ``ratio``, global ranking exactly when ``allocation`` is global."""
    heads = [m for n, m in model.named_modules() if n.startswith("score.")]
    pruner = tp.pruner.MetaPruner(
        model,
        torch.zeros(1, 3, 64, 64, device=device),
        importance=tp.importance.MagnitudeImportance(p=1),
        pruning_ratio=ratio,
        global_pruning=allocation == "global",
        ignored_layers=heads + trunk_producers(model),
        round_to=ROUND_TO,
        output_transform=lambda outputs: sum(o.sum() for o in outputs),
    )
    pruner.step()


def _timed_side(models: list[nn.Module], prune: Callable[[nn.Module], object], log: list[dict]) -> Callable[[], None]:
    """One side of the comparison as a call for the interleaved timer: prune the next prepared model, recording the
    CPU (process) seconds, the model and the result. Pruning needs autograd (torch-pruning traces ``grad_fn``), so
    the call leaves the timer's inference mode."""

    def call() -> None:
        model = models.pop()
        with torch.inference_mode(False):
            cpu = time.process_time()
            result = prune(model)
            log.append({"cpu_s": time.process_time() - cpu, "model": model, "result": result})

    return call


def measure_arch(arch: str, args: argparse.Namespace) -> dict:
    """Engine and raw tp on ``arch``, interleaved: the best wall and CPU time of each, and what each kept."""
    size, rounds = args.input_size, args.warmup + args.repeats

    def build() -> nn.Module:
        torch.manual_seed(0)
        return build_model(arch, N=args.N, M=args.M, input_size=size).to(args.device)

    reference = model_size(build(), size)  # measured once per run at the baseline, not per step
    ratio = engine_prune(build(), reference, size, args.allocation).channel_ratio  # untimed: raw tp's answer
    engine_log: list[dict] = []
    tp_log: list[dict] = []
    calls = [
        _timed_side([build() for _ in range(rounds)], lambda m: engine_prune(m, reference, size, args.allocation),
                    engine_log),
        _timed_side([build() for _ in range(rounds)], lambda m: raw_tp_prune(m, ratio, args.allocation, args.device),
                    tp_log),
    ]  # fmt: skip
    wall_ms = time_interleaved(calls, args.warmup, args.repeats, settle_ms=0)  # each call prunes a fresh model
    engine_runs = [dict(entry, wall_s=ms / 1e3) for entry, ms in zip(engine_log[args.warmup :], wall_ms[0])]
    tp_runs = [dict(entry, wall_s=ms / 1e3) for entry, ms in zip(tp_log[args.warmup :], wall_ms[1])]
    best_engine = min(engine_runs, key=lambda r: r["wall_s"])
    best_tp = min(tp_runs, key=lambda r: r["wall_s"])
    result = best_engine["result"]
    engine = {
        "wall_s": best_engine["wall_s"],
        "cpu_s": min(r["cpu_s"] for r in engine_runs),
        "wall_s_runs": [r["wall_s"] for r in engine_runs],
        "kept_macs": result.kept_macs,
        "kept_params": result.kept_params,
        "channel_ratio": result.channel_ratio,
        "search_evaluations": result.search_evaluations,
        "phases_s": {k: round(v, 4) for k, v in result.timings.items()},
    }
    raw = {
        "wall_s": best_tp["wall_s"],
        "cpu_s": min(r["cpu_s"] for r in tp_runs),
        "wall_s_runs": [r["wall_s"] for r in tp_runs],
        "pruning_ratio": ratio,
        "global_pruning": args.allocation == "global",
        "kept_macs": model_size(best_tp["model"], size)["macs"] / reference["macs"],
    }
    return {
        "arch": arch,
        "engine": engine,
        "raw_tp": raw,
        "wall_ratio": engine["wall_s"] / raw["wall_s"],
        "cpu_ratio": engine["cpu_s"] / raw["cpu_s"],
    }


def markdown(report: dict) -> str:
    st, env = report["settings"], report["environment"]
    lines = [
        "# Engine overhead: `prune_to_target` vs raw torch-pruning",
        "",
        environment_md(env).rstrip("\n"),
        f"- Load average at end (1/5/15 min): {', '.join(f'{x:.1f}' for x in report['load_average_at_end'])}",
        "",
        f"Setting: N={st['N']}, M={st['M']}, input {st['input_size']}, L1, keep {KEPT:.0%} of conv MACs, round_to "
        f"{ROUND_TO}, trunk and score heads kept, allocation **{st['allocation']}** on both sides (raw tp "
        f"`global_pruning={st['allocation'] == 'global'}`); best of {st['repeats']} interleaved rounds after "
        f"{st['warmup']} warm-up round(s). Raw tp gets the engine's channel ratio (no search).",
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
    hg8 = goals["hg8_under_10s_met"]
    lines += [
        "",
        f"Goals: engine ÷ raw tp ≤ 1.5 on every arch — **{'met' if goals['ratio_met'] else 'missed'}** "
        f"(worst wall ratio {goals['worst_wall_ratio']:.2f}); hg8 under 10 s — "
        f"**{'n/a' if hg8 is None else 'met' if hg8 else 'missed'}**"
        f" ({goals['hg8_wall_s'] if goals['hg8_wall_s'] is not None else 'not run'} s wall).",
        "",
        "Engine phases for the largest model (s): "
        + ", ".join(f"{k} {v:.2f}" for k, v in report["results"][-1]["engine"]["phases_s"].items()),
        "",
        "Threads: both sides run with the thread count above (default 1). The engine itself switches to one thread "
        "for its graph bookkeeping (tiny tensor ops); on a shared 2-core machine a second OpenMP thread only "
        "spins: raw tp with 2 threads took several times longer wall and CPU time while other work ran. "
        "CPU (process) time is the steadier comparison when the machine is loaded.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", nargs="+", default=list(ARCHS), choices=ARCHS)
    parser.add_argument("--allocation", default="uniform", choices=ALLOCATIONS, help="pinned on both sides")
    parser.add_argument("--repeats", type=int, default=2, help="timed rounds per arch (best of)")
    parser.add_argument("--warmup", type=int, default=0, help="untimed rounds per arch first")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    add_model_arguments(parser, N=128, M=256, input_size=256)
    parser.add_argument("--out-dir", default=None, help="report directory (default reports/benchmarks)")
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.warmup < 0:
        parser.error("--repeats must be at least 1 and --warmup at least 0")
    torch.set_num_threads(args.threads)
    settings = {k: getattr(args, k) for k in ("archs", "allocation", "repeats", "warmup", "threads", "N", "M")}
    report = {
        "benchmark": "engine",
        "environment": environment(args.device),
        "settings": {**settings, "input_size": args.input_size, "kept": KEPT, "round_to": ROUND_TO},
        "results": [],
    }
    for arch in args.archs:
        row = measure_arch(arch, args)
        report["results"].append(row)
        e, t = row["engine"], row["raw_tp"]
        print(
            f"{arch}: engine {e['wall_s']:.2f} s (cpu {e['cpu_s']:.2f}), raw tp {t['wall_s']:.2f} s "
            f"(cpu {t['cpu_s']:.2f}), ratio {row['wall_ratio']:.2f}, kept MACs {e['kept_macs']:.3f} / "
            f"{t['kept_macs']:.3f}",
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
    report["load_average_at_end"] = load_average()
    json_path, md_path = write_report("engine", report, markdown(report), args.out_dir)
    print(f"wrote {json_path} and {md_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
