"""A latency pass over finished runs: every checkpointed step timed on each runtime asked for, all configurations
interleaved in one set of rounds, written as ``RUN/latency.json`` (:class:`hgprune.report.runs.LatencyPass`), the
file ``hgprune report`` reads. Also the same for loose checkpoints (printed, not written)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from hgprune.errors import HgpruneError
from hgprune.export.core import model_input_size
from hgprune.fsutil import atomic_write_text
from hgprune.latency.measure import Timed, TimingRecord, TimingSettings, prepare, time_calls
from hgprune.latency.runtimes import Runtime
from hgprune.models.checkpoints import load_checkpoint
from hgprune.report.runs import LatencyPass, StepLatency, find_run_dirs
from hgprune.rundir import RunDir
from hgprune.timing import check_idle, load_average

Progress = Callable[[str, int, int], None]


@dataclass
class Configuration:
    """One thing timed per round: a model (a run's step, or a checkpoint) on one runtime."""

    source: Path  # run directory or checkpoint file
    step: int | None  # the run's step; None for a checkpoint
    runtime: Runtime
    input_size: int
    call: Callable[[], object]


def _models(paths: Sequence[str | Path]) -> list[tuple[Path, int | None, nn.Module]]:
    """(run directory, step, model) for every checkpointed step of every run, (file, None, model) for checkpoints."""
    found = []
    for path in paths:
        if not Path(path).exists():
            raise HgpruneError(f"{path}: no such checkpoint or run directory")
    files = [Path(p) for p in paths if Path(p).is_file()]
    dirs = [p for p in paths if not Path(p).is_file()]
    for path in files:
        model, _ = load_checkpoint(path)  # weights only: never unpickles code
        found.append((path, None, model.eval()))
    seen: set[Path] = set()
    for root in find_run_dirs(dirs) if dirs else []:
        if root.resolve() in seen:  # the same run named twice, or through a link (a study's shared run): timed once
            continue
        seen.add(root.resolve())
        run = RunDir(root)
        steps = run.completed_steps()
        if not steps:
            raise HgpruneError(f"{run.checkpoints}: no step checkpoints (step_XXX.pt) to time; is {root} finished?")
        for step in steps:
            model, _ = load_checkpoint(run.step_checkpoint(step))
            found.append((root, step, model.eval()))
    return found


def measure_paths(
    paths: Sequence[str | Path],
    runtimes: Sequence[Runtime],
    settings: TimingSettings,
    progress: Progress | None = None,
) -> tuple[list[Configuration], list[Timed], TimingRecord]:
    """Time every step of every run directory (and every checkpoint file) on every runtime, interleaved."""
    check_idle(load_average(), settings.max_load, settings.force)  # before any export: refuse early
    models = _models(paths)
    configurations = []
    total = len(models) * len(runtimes)
    for source, step, model in models:
        size = model_input_size(model, None)
        for runtime in runtimes:
            configurations.append(Configuration(source, step, runtime, size, prepare(runtime, model, size, settings)))
            if progress:
                progress("prepare", len(configurations), total)
    calls = [(f"{c.source}:{c.step}:{c.runtime.name}", c.call) for c in configurations]
    timed, record = time_calls(calls, settings, progress and (lambda d, t: progress("time", d, t)), checked=True)
    return configurations, timed, record


def latency_passes(
    configurations: list[Configuration],
    timed: list[Timed],
    record: TimingRecord,
    settings: TimingSettings,
    command: str,
) -> dict[Path, LatencyPass]:
    """One :class:`LatencyPass` per run directory: its steps' medians and p90s per runtime."""
    per_step: dict[Path, dict[int, dict[str, float]]] = {}
    sizes: dict[Path, int] = {}
    described: dict[Path, dict[str, str]] = {}
    for config, result in zip(configurations, timed, strict=True):
        if config.step is None:
            continue
        fields = per_step.setdefault(config.source, {}).setdefault(config.step, {})
        fields[f"{config.runtime.field}_ms"] = result.median_ms
        fields[f"{config.runtime.field}_p90_ms"] = result.p90_ms
        sizes[config.source] = config.input_size
        described.setdefault(config.source, {})[config.runtime.field] = config.runtime.describe(settings.threads)
    return {
        root: LatencyPass(
            command=command,
            load_before=record.load_before,
            load_after=record.load_after,
            steps={step: StepLatency(**fields) for step, fields in steps.items()},
            settings={
                **settings.to_dict(),
                "input_size": sizes[root],
                "runtimes": described[root],
                "order": record.environment.get("order"),
            },  # fmt: skip
            environment=record.environment,
        )
        for root, steps in per_step.items()
    }


def write_passes(passes: dict[Path, LatencyPass]) -> list[Path]:
    """Write each run's ``latency.json`` atomically (replacing an earlier pass)."""
    written = []
    for root, measured in passes.items():
        path = RunDir(root).latency_json
        atomic_write_text(path, measured.to_json())
        written.append(path)
    return written
