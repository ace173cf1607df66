"""Calibrating a latency model on this machine: the runtime's preferred channel multiple, then the parent and random
depth-and-width candidates measured in one interleaved pass, and the fit of :data:`FEATURES` to them."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from hgprune.errors import HgpruneError
from hgprune.latency.candidates import random_candidate
from hgprune.latency.measure import TimingSettings, prepare, time_calls
from hgprune.latency.runtimes import Runtime, get_runtime
from hgprune.latency.structure import features, total_macs, trace_ops
from hgprune.latency.table import (
    LatencyTable,
    Sample,
    family_of,
    fingerprint,
    fit_coefficients,
    model_key,
    table_path,
)
from hgprune.models.hourglass import Bottleneck, HourglassConfig, HourglassNet, parse_arch
from hgprune.timing import check_idle, load_average

SNAP_MULTIPLES = (2, 4, 8, 16)
SNAP_GAIN = 1.05  # aligned widths must run this much faster per MAC for a multiple to be preferred
SNAP_WIDTHS = 48  # interior widths probed, ending at the parent's: three multiples of 16 at least, where wide enough
SNAP_MIN_ALIGNED = 3  # a multiple is judged on at least this many aligned widths, never on the full width alone


@dataclass(frozen=True)
class CalibrationSettings:
    """What a calibration measures: ``candidates`` random candidates besides the parent, drawn with ``seed``."""

    candidates: int = 30
    seed: int = 0
    timing: TimingSettings = TimingSettings()


# progress(stage, done, total): stage is "prepare" or "time"
Progress = Callable[[str, int, int], None]


class _Probe(nn.Module):
    """A trunk stand-in at the hourglass's resolution with an interior of ``planes`` channels: what widths cost."""

    def __init__(self, trunk: int, planes: int) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, trunk, kernel_size=4, stride=4)
        self.blocks = nn.Sequential(Bottleneck(trunk, trunk // 2), Bottleneck(trunk, trunk // 2))
        for block in self.blocks:
            block.conv1 = nn.Conv2d(trunk, planes, 1)
            block.bn2, block.conv2 = nn.BatchNorm2d(planes), nn.Conv2d(planes, planes, 3, padding=1)
            block.bn3, block.conv3 = nn.BatchNorm2d(planes), nn.Conv2d(planes, trunk, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.stem(x))


def snap_gains(ms_per_mmac: dict[int, float]) -> dict[int, float]:
    """Per multiple m: mean ms per MMAC of widths not divisible by m ÷ that of widths divisible by m. Multiples with
    fewer than ``SNAP_MIN_ALIGNED`` aligned widths are not judged: the parent's own (full) width runs fastest per MAC
    anyway, and a multiple as coarse as the width itself would leave a planner no widths to choose from."""
    gains = {}
    for multiple in SNAP_MULTIPLES:
        aligned = [v for w, v in ms_per_mmac.items() if w % multiple == 0]
        other = [v for w, v in ms_per_mmac.items() if w % multiple]
        if len(aligned) >= SNAP_MIN_ALIGNED and other:
            gains[multiple] = (sum(other) / len(other)) / (sum(aligned) / len(aligned))
    return gains


def choose_snap(gains: dict[int, float]) -> int | None:
    """The smallest multiple within 5 % of the best gain, if the best gain is worth snapping for (else None)."""
    if not gains or max(gains.values()) < SNAP_GAIN:
        return None
    best = max(gains.values())
    return min(m for m, gain in gains.items() if gain >= best / SNAP_GAIN)


def probe_snap(
    runtime: Runtime, parent: HourglassConfig, timing: TimingSettings, progress: Progress | None = None
) -> tuple[int | None, dict]:
    """Measure interior widths just below the parent's: which channel multiple the runtime runs fast."""
    top = parent.M // 2
    widths = list(range(max(2, top - SNAP_WIDTHS + 1), top + 1))
    size = parent.input_size
    calls = []
    for done, width in enumerate(widths, 1):
        probe = _Probe(parent.M, width).eval()
        calls.append((str(width), prepare(runtime, probe, size, timing), total_macs(trace_ops(probe, size)) / 1e6))
        if progress:
            progress("prepare snap probe", done, len(widths))
    timed, _ = time_calls([(label, call) for label, call, _ in calls], timing,
                          progress and (lambda d, t: progress("time snap probe", d, t)), checked=True)  # fmt: skip
    per_mmac = {int(t.label): t.median_ms / macs for t, (_, _, macs) in zip(timed, calls, strict=True)}
    gains = snap_gains(per_mmac)
    snap = choose_snap(gains)
    return snap, {"ms_per_mmac": per_mmac, "gains": gains, "rule": f"smallest multiple within {SNAP_GAIN:g}x of the "
                  f"best gain, if the best is >= {SNAP_GAIN:g}"}  # fmt: skip


def describe(model: HourglassNet) -> str:
    identities = sum(isinstance(m, nn.Identity) for m in model.modules())
    return f"{model.config.arch} N={model.config.N} M={model.config.M}, {identities} block(s) removed"


def calibrate(
    runtime_name: str,
    parent: HourglassConfig,
    settings: CalibrationSettings = CalibrationSettings(),
    progress: Progress | None = None,
    snap: int | None | str = "probe",
) -> LatencyTable:
    """A latency table of ``runtime_name`` for models of ``parent``'s family on this machine (not saved)."""
    runtime = get_runtime(runtime_name)
    timing = settings.timing
    load_before = load_average()
    check_idle(load_before, timing.max_load, timing.force)
    probe: dict = {}
    if snap == "probe":
        snap, probe = probe_snap(runtime, parent, timing, progress)
    rng = random.Random(settings.seed)
    models = [HourglassNet(parent).eval()] + [random_candidate(parent, rng, snap) for _ in range(settings.candidates)]
    calls = []
    for done, model in enumerate(models, 1):
        calls.append((describe(model), prepare(runtime, model, parent.input_size, timing)))
        if progress:
            progress("prepare candidates", done, len(models))
    timed, record = time_calls(
        calls, timing, progress and (lambda d, t: progress("time candidates", d, t)), checked=True
    )  # the idle check ran before the snap probe and the exports
    samples = [
        Sample(model_key(model, parent.input_size, timing.batch),
               features(trace_ops(model, parent.input_size, timing.batch), snap), t.median_ms, t.p90_ms, t.label)
        for model, t in zip(models, timed, strict=True)
    ]  # fmt: skip
    coefficients = fit_coefficients([s.features for s in samples], [s.median_ms for s in samples])
    return LatencyTable(
        fingerprint=fingerprint(runtime, timing.threads, timing.batch, parent.input_size, timing.device),
        family=family_of(parent),
        snap=snap,
        coefficients=coefficients,
        samples=samples,
        snap_probe=probe,
        record={"load_before": load_before, "load_after": record.load_after, "timing": timing.to_dict(),
                "candidates": settings.candidates, "seed": settings.seed, "environment": record.environment},
    )  # fmt: skip


def load_table(
    runtime_name: str,
    parent: HourglassConfig,
    threads: int,
    batch: int,
    input_size: int | None = None,
    root: Path | None = None,
    device: str = "cpu",
) -> LatencyTable:
    """The cached table for this machine, runtime, threads, batch, input size and family; a one-line error when it
    is missing, corrupt or from another machine or set-up."""
    runtime = get_runtime(runtime_name)
    size = input_size or parent.input_size
    family = family_of(parent)
    path = table_path(runtime.name, threads, batch, size, family, root, device)
    if not path.exists():
        raise HgpruneError(
            f"{path}: no latency table for {runtime.name} ({threads} thread(s), batch {batch}, {size} px, "
            f"{family['arch']} N={family['N']} M={family['M']}) on this machine; build one with 'hgprune latency "
            f"calibrate --runtime {runtime.name} --threads {threads} --batch {batch}' and the model's --arch/--N/--M"
        )
    return LatencyTable.read(path, fingerprint(runtime, threads, batch, size, device), family)


def load_or_calibrate(
    runtime_name: str,
    parent: HourglassConfig,
    settings: CalibrationSettings,
    root: Path | None = None,
    recalibrate: bool = False,
    progress: Progress | None = None,
) -> tuple[LatencyTable, Path, bool]:
    """The cached table, or a fresh calibration (saved) when there is none, it is unusable, or ``recalibrate``;
    returns (table, its path, whether it was calibrated now). A stale or foreign table is replaced, never used."""
    timing = settings.timing
    path = table_path(
        runtime_name, timing.threads, timing.batch, parent.input_size, family_of(parent), root, timing.device
    )
    if not recalibrate:
        try:
            table = load_table(runtime_name, parent, timing.threads, timing.batch, root=root, device=timing.device)
            return table, path, False
        except HgpruneError:
            pass
    table = calibrate(runtime_name, parent, settings, progress)
    table.save(path)
    return table, path, True


def parent_config(arch: str, N: int, M: int, input_size: int, depth: int, num_joints: int = 16) -> HourglassConfig:
    """The unpruned configuration a calibration is for (the model family)."""
    return HourglassConfig(parse_arch(arch), N=N, M=M, num_joints=num_joints, depth=depth, input_size=input_size)
