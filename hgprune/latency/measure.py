"""Measuring latency: models on runtimes, timed only through :mod:`hgprune.timing` (idle check, interleaved rounds,
median and p90, the load before and after recorded)."""

from __future__ import annotations

import copy
import datetime
import os
import platform
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from hgprune.errors import HgpruneError
from hgprune.export import runtime as rt
from hgprune.latency.runtimes import SPIN, Runtime
from hgprune.timing import (
    ORDER_SEED,
    SETTLE_MS,
    check_idle,
    cpu_model,
    load_average,
    summarise,
    time_interleaved,
    versions,
)


@dataclass(frozen=True)
class TimingSettings:
    """How a timing pass runs: rounds, threads, batch and the idle check."""

    warmup: int = 5
    repeats: int = 20
    threads: int = 1
    batch: int = 1
    max_load: float = 0.5
    force: bool = False
    device: str = "cpu"  # eager PyTorch only: cpu or cuda[:k] (ort is CPU, cuda-graph the current GPU)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Timed:
    """One configuration's timed rounds, summarised (ms)."""

    label: str
    median_ms: float
    p90_ms: float
    min_ms: float
    rounds: int


@dataclass
class TimingRecord:
    """What a timing pass records beside its numbers, so a latency can be interpreted later."""

    load_before: list[float]
    load_after: list[float] = field(default_factory=list)
    environment: dict = field(default_factory=dict)


def environment(threads: int) -> dict:
    """The machine, versions and thread settings a timing ran with."""
    return {
        "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "cpu": cpu_model(), "logical_cpus": os.cpu_count()},
        "versions": versions(),
        "threads": {
            "intra_op": threads,
            "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
            "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY"),
        },
        "order": f"interleaved rounds, order shuffled each round (seed {ORDER_SEED})",
        "settle_ms": SETTLE_MS,
        "ort_allow_spinning": SPIN,
    }


def time_calls(
    calls: Sequence[tuple[str, Callable[[], object]]],
    settings: TimingSettings,
    progress: Callable[[int, int], None] | None = None,
    checked: bool = False,
) -> tuple[list[Timed], TimingRecord]:
    """Time prepared calls in interleaved rounds after the idle check (refuses on a busy machine, nothing timed).

    ``checked``: the caller checked the machine was idle before preparing the calls; the load average then includes
    this process's own exports and tracing, so it is recorded, not checked again."""
    record = TimingRecord(load_before=load_average())
    if not checked:
        check_idle(record.load_before, settings.max_load, settings.force)
    with rt.torch_threads(settings.threads):
        record.environment = environment(settings.threads)
        times = time_interleaved([call for _, call in calls], settings.warmup, settings.repeats, progress)
    record.load_after = load_average()
    timed = [Timed(label, **summarise(values)) for (label, _), values in zip(calls, times, strict=True)]
    return timed, record


def prepare(runtime: Runtime, model: nn.Module, input_size: int, settings: TimingSettings) -> Callable[[], object]:
    """``runtime``'s call of ``model`` (export, session or graph built once, with the pass's threads)."""
    if runtime.name == "torch" and settings.device != "cpu":
        model = copy.deepcopy(model).to(check_device(settings.device))
    with rt.torch_threads(settings.threads), torch.inference_mode(False):
        return runtime.prepare(model, input_size, settings.batch, settings.threads)


def check_device(device: str) -> torch.device:
    """``cpu`` or an available ``cuda[:k]``, else a one-line error naming it."""
    if device != "cpu" and not (device.startswith("cuda") and torch.cuda.is_available()):
        raise HgpruneError(f"device: {device!r} is not available here (expected cpu, or cuda[:k] where a GPU exists)")
    try:
        return torch.device(device)
    except RuntimeError:
        raise HgpruneError(f"device: {device!r} is not a device (expected cpu or cuda[:k])") from None


def measure_models(
    models: Sequence[nn.Module],
    runtime: Runtime,
    input_size: int,
    settings: TimingSettings,
    progress: Callable[[int, int], None] | None = None,
    checked: bool = False,
) -> tuple[list[Timed], TimingRecord]:
    """Median and p90 latency of each model on ``runtime``, all timed in the same interleaved rounds
    (``checked``: as for :func:`time_calls`, the caller checked the machine was idle before building the models)."""
    calls = [(str(i), prepare(runtime, model, input_size, settings)) for i, model in enumerate(models)]
    return time_calls(calls, settings, progress, checked=checked)
