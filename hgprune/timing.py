"""The one home of how hgprune times things: the idle check, the interleaved timer and the machine record.

A latency is only meaningful on an idle machine, with the configurations being compared interleaved (each round runs
every configuration once, in a freshly shuffled order) and with the load, CPU model, thread counts and library versions
recorded beside it. ``hgprune latency``, the latency model's calibration and every benchmark time through here.
"""

from __future__ import annotations

import importlib.metadata
import math
import os
import platform
import random
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from hgprune.errors import HgpruneError

PACKAGES = ("hgprune", "torch", "torch-pruning", "numpy", "fvcore", "thop", "onnx", "onnxruntime")
ORDER_SEED = 0  # the seed of the shuffled order of every interleaved timing round
DEFAULT_MAX_LOAD = 0.5  # 1-minute load average above which a timing pass refuses to start (without force)
# Before each timed call its configuration runs untimed for at least this long (and at least once). Without it,
# interleaving measures the neighbours: ONNX Runtime gives each session its own thread pool, whose workers keep
# spinning after a call, so the next session's call shared the cores with them (hg8 at the sweep's size: 1.8 ms
# alone, 4-6 ms interleaved, 2026-12-07). 10 ms was not enough with 8-31 sessions (one of 8 models 3.7 ms against
# 2.0 alone); 50 ms matched every model timed alone. Settled, each call runs as in a deployment serving one model.
SETTLE_MS = 50.0


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), or the platform's processor string."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def versions(packages: Iterable[str] = PACKAGES) -> dict[str, str]:
    """Python's and each installed package's version (packages that are not installed are left out)."""
    found = {"python": platform.python_version()}
    for name in packages:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return found


def load_average() -> list[float]:
    """The 1-, 5- and 15-minute load averages, rounded; empty where the platform has none."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):
        return []


def check_idle(loads: list[float], max_load: float = DEFAULT_MAX_LOAD, force: bool = False) -> None:
    """A timing pass's precondition: an idle machine (or an explicit ``force``)."""
    if force:
        return
    if not loads:
        raise HgpruneError("cannot read the load average on this platform; check the machine is idle and add --force")
    if loads[0] > max_load:
        raise HgpruneError(
            f"1-minute load average {loads[0]:.2f} is above --max-load {max_load:g}: the machine is busy, so timings "
            "would measure the other jobs; wait until it is idle (or add --force); nothing was written"
        )


def time_interleaved(
    calls: Sequence[Callable[[], object]],
    warmup: int,
    repeats: int,
    progress: Callable[[int, int], None] | None = None,
    *,
    clock: Callable[[Callable[[], object]], float] | None = None,
    settle_ms: float = SETTLE_MS,
) -> list[list[float]]:
    """Milliseconds per timed round for each call. Every round runs each call once, in an order shuffled anew per round
    (seeded with ``ORDER_SEED``), so no configuration always runs first or after the same neighbour; the first
    ``warmup`` rounds are not kept. Before each timed call the same call runs untimed until ``settle_ms`` of wall time
    have passed (at least once when ``settle_ms`` > 0), so the previous configuration's threads have gone quiet and
    this one's are running (see :data:`SETTLE_MS`). ``progress(done, total)`` is called after each round.
    ``clock(call)`` runs one call and returns its milliseconds (default: host wall time, ``time.perf_counter``; a GPU
    benchmark passes one that reads CUDA events)."""
    import torch

    measure = clock or _wall_ms

    times: list[list[float]] = [[] for _ in calls]
    order = list(range(len(calls)))
    shuffle = random.Random(ORDER_SEED).shuffle
    total = warmup + repeats
    with torch.inference_mode():
        for round_index in range(total):
            shuffle(order)
            for i in order:
                settle(calls[i], settle_ms)
                elapsed = measure(calls[i])
                if round_index >= warmup:
                    times[i].append(elapsed)
            if progress is not None:
                progress(round_index + 1, total)
    return times


def settle(call: Callable[[], object], settle_ms: float) -> int:
    """Run ``call`` untimed until ``settle_ms`` of wall time have passed (at least once if positive); the count."""
    if settle_ms <= 0:
        return 0
    runs, deadline = 0, time.perf_counter() + settle_ms / 1e3
    while runs == 0 or time.perf_counter() < deadline:
        call()
        runs += 1
    return runs


def _wall_ms(call: Callable[[], object]) -> float:
    started = time.perf_counter()
    call()
    return (time.perf_counter() - started) * 1e3


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0–100) by linear interpolation between order statistics; NaN for no values."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    position = (len(ordered) - 1) * q / 100
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summarise(times_ms: Sequence[float]) -> dict[str, float]:
    """Median, p90, min and count of one configuration's timed rounds, in milliseconds."""
    return {
        "median_ms": percentile(times_ms, 50),
        "p90_ms": percentile(times_ms, 90),
        "min_ms": min(times_ms) if times_ms else math.nan,
        "rounds": len(times_ms),
    }
