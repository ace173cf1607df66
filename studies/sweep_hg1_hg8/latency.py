"""Latency of finished runs, measured afterwards in a pass of its own: every checkpointed step, eager PyTorch and ORT.

A sweep's runs are made with ``profile.latency: false``: timings taken while other runs train measure the load, not
the model. This pass times them later on an idle machine, to the project's standard:

* it refuses to start (one line, exit 2, nothing written) when the 1-minute load average is above ``--max-load``,
  unless ``--force``, and records the load average before and after the timing, the settings, versions and command;
* every step with a checkpoint (``checkpoints/step_XXX.pt``) of every run is loaded with hgprune's own loader
  (weights only) at its config's input size and timed as eager PyTorch (``model.eval()``, ``torch.inference_mode``)
  and as ONNX Runtime (hgprune's parity-checked ONNX export, BatchNorm folded; CPU provider, ``--threads`` intra-op
  threads);
* all (run, step, backend) configurations are timed round-robin: each round runs every one once, in a seeded
  shuffled order so no configuration always follows the same neighbour; median and p90 over ``--repeats`` rounds
  after ``--warmup`` rounds.

Writes ``RUN/latency.json`` per run (:class:`hgprune.report.runs.LatencyPass`), which ``hgprune report`` reads where a
run's ``metrics.csv`` has no latency. Usage::

    python -m studies.sweep_hg1_hg8.latency RUN_DIR [RUN_DIR ...] [--repeats 20] [--warmup 5] [--threads 1] [--batch 1]
        [--max-load 0.5] [--force]

A directory of run directories (a sweep's ``--out``) expands to its runs, as in ``hgprune report``.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from benchmarks.common import SPIN, environment
from hgprune.errors import HgpruneError
from hgprune.export import build_export
from hgprune.export import runtime as rt
from hgprune.export.core import model_input_size
from hgprune.fsutil import atomic_write_text
from hgprune.models.checkpoints import load_checkpoint
from hgprune.report.runs import LatencyPass, StepLatency, find_run_dirs
from hgprune.rundir import RunDir
from hgprune.timing import ORDER_SEED, check_idle, load_average, time_interleaved

SCRIPT = "studies.sweep_hg1_hg8.latency"  # run as ``python -m studies.sweep_hg1_hg8.latency``
BACKENDS = ("eager", "ort")  # StepLatency's fields are {backend}_ms and {backend}_p90_ms


@dataclass
class Configuration:
    """One thing timed per round: a step of a run on one backend, with its input."""

    run: RunDir
    step: int
    backend: str
    fn: Callable[[torch.Tensor], object]
    example: torch.Tensor
    input_size: int


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=SCRIPT, description=__doc__.splitlines()[0])
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run directories, or a sweep directory of runs")
    parser.add_argument("--repeats", type=int, default=20, help="timed rounds (the standard is at least 20)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed rounds first")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op and ORT intra-op threads")
    parser.add_argument("--batch", type=int, default=1, help="images per forward pass")
    parser.add_argument("--max-load", type=float, default=0.5, help="refuse above this 1-minute load average")
    parser.add_argument("--force", action="store_true", help="time even when the load average is above --max-load")
    args = parser.parse_args(argv)
    for flag, value, low in (("--repeats", args.repeats, 1), ("--warmup", args.warmup, 0),
                             ("--threads", args.threads, 1), ("--batch", args.batch, 1)):  # fmt: skip
        if value < low:
            parser.error(f"{flag} must be at least {low}, got {value}")
    if not 0 <= args.max_load < math.inf:
        parser.error(f"--max-load must be a finite number >= 0, got {args.max_load}")
    return args


def step_configurations(run: RunDir, step: int, threads: int, batch: int) -> list[Configuration]:
    """Eager and ONNX Runtime of one step's checkpoint, both fed the same seeded batch."""
    checkpoint = run.step_checkpoint(step)
    model, _ = load_checkpoint(checkpoint)  # weights only: never unpickles code
    model.eval()
    size = model_input_size(model, None)
    _, graph = build_export(model, "onnx", checkpoint.with_suffix(".onnx"), size, dynamic_batch=batch != 1)
    session = rt.ort_session(graph, threads, "all", SPIN)
    example = torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(step))
    return [
        Configuration(run, step, "eager", model, example, size),
        Configuration(run, step, "ort", rt.ort_runner(session), example, size),
    ]


def build_configurations(runs: list[RunDir], threads: int, batch: int) -> list[Configuration]:
    todo = []
    for run in runs:
        steps = run.completed_steps()
        if not steps:
            raise HgpruneError(f"{run.checkpoints}: no step checkpoints (step_XXX.pt) to time; is {run.root} finished?")
        todo += [(run, step) for step in steps]
    configurations = []
    for run, step in tqdm(todo, desc="load + export", unit="step", leave=False):
        configurations += step_configurations(run, step, threads, batch)
    return configurations


def latency_passes(
    configurations: list[Configuration], times: list[list[float]], common: dict, settings: dict
) -> dict[Path, LatencyPass]:
    """One :class:`LatencyPass` per run directory, its steps' medians and p90s."""
    per_step: dict[Path, dict[int, dict[str, float]]] = {}
    sizes: dict[Path, int] = {}
    for config, values in zip(configurations, times, strict=True):
        fields = per_step.setdefault(config.run.root, {}).setdefault(config.step, {})
        fields[f"{config.backend}_ms"] = statistics.median(values)
        fields[f"{config.backend}_p90_ms"] = float(np.percentile(values, 90))
        sizes[config.run.root] = config.input_size
    return {
        root: LatencyPass(
            steps={step: StepLatency(**fields) for step, fields in steps.items()},
            settings={**settings, "input_size": sizes[root]},
            **common,
        )
        for root, steps in per_step.items()
    }


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    try:
        load_before = load_average()
        check_idle(load_before, args.max_load, args.force)
        runs = [RunDir(path) for path in find_run_dirs(args.run_dirs)]
        with rt.torch_threads(args.threads):
            env = environment("cpu", argv=["-m", SCRIPT, *argv])
            configurations = build_configurations(runs, args.threads, args.batch)
            print(f"timing {len(configurations)} configurations of {len(runs)} run(s): {args.warmup} warm-up + "
                  f"{args.repeats} timed rounds", flush=True)  # fmt: skip
            times = time_interleaved([partial(c.fn, c.example) for c in configurations], args.warmup, args.repeats)
        load_after = load_average()
    except HgpruneError as exc:
        print(f"{SCRIPT}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    settings = {
        "repeats": args.repeats,
        "warmup": args.warmup,
        "threads": args.threads,
        "batch": args.batch,
        "max_load": args.max_load,
        "forced": args.force,
        "order": f"round-robin over {len(configurations)} (run, step, backend) configurations, shuffled each round "
        f"(seed {ORDER_SEED})",
        "eager": "checkpoint as loaded (BatchNorm unfolded), model.eval(), torch.inference_mode",
        "ort": f"hgprune ONNX export (BatchNorm folded, opset 17, parity-checked), CPUExecutionProvider, graph "
        f"optimisation all, intra-op threads {args.threads}, allow_spinning {SPIN}",
    }
    common = {"command": env["command"], "load_before": load_before, "load_after": load_after, "environment": env}
    for root, measured in latency_passes(configurations, times, common, settings).items():
        path = RunDir(root).latency_json
        atomic_write_text(path, measured.to_json())
        print(f"wrote {path} ({len(measured.steps)} step(s))")
    print(f"load average before {load_before}, after {load_after}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
