"""Parameters, MACs (fvcore and thop, plus a fast exact conv counter), latency and memory of a model.

MACs: one multiply-add = 1. fvcore is the canonical counter (it traces functional ops such as the hourglass
upsampling); thop hooks leaf modules and misses ``F.interpolate``. Their disagreement is reported, not hidden.
:func:`conv_macs` counts convolutions analytically from one tiny forward pass; it is what the pruning engine calls in
its search loops because it takes milliseconds even for hg8.
"""

from __future__ import annotations

import copy
import logging
import math
import statistics
import time
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from hgprune.models.hourglass import HourglassNet, check_input_size, model_parts, probe_size


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _example(
    model: nn.Module, input_size: int, batch_size: int = 1, device: str | torch.device = "cpu"
) -> torch.Tensor:
    return torch.zeros(batch_size, 3, input_size, input_size, device=device)


def conv_pair_macs(model: nn.Module, input_size: int = 256) -> dict[str, int]:
    """Conv MACs per (input channel × output channel) pair of every conv at ``input_size``, by module name.

    Feature-map sizes never change with pruning and every map of the hourglass scales with the input area, so one
    forward at the smallest valid size (:func:`~hgprune.models.probe_size`) times ``(size / probe)²`` is exact, and
    a conv's MACs at any width are ``pair · in · out``. The engine plans with these; :func:`conv_macs` sums them.
    """
    depth = getattr(getattr(model, "config", None), "depth", 4)
    probe = probe_size(depth)
    scale = (check_input_size(input_size, depth) // probe) ** 2
    pairs: dict[str, int] = {}
    handles = []

    def hook(name: str):
        def _count(module: nn.Conv2d, _inputs, output: torch.Tensor) -> None:
            per_pair = math.prod(module.kernel_size) // module.groups * output.shape[-1] * output.shape[-2] * scale
            pairs[name] = pairs.get(name, 0) + per_pair

        return _count

    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            handles.append(module.register_forward_hook(hook(name)))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            param = next(model.parameters())
            model(_example(model, probe, device=param.device))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return pairs


def conv_macs(model: nn.Module, input_size: int = 256, by_module: bool = False) -> int | dict[str, int]:
    """Exact conv MACs at ``input_size`` (see :func:`conv_pair_macs`), in total or by module name."""
    modules = dict(model.named_modules())
    counts = {
        n: pair * modules[n].in_channels * modules[n].out_channels
        for n, pair in conv_pair_macs(model, input_size).items()
    }
    return counts if by_module else sum(counts.values())


def fvcore_macs(model: nn.Module, input_size: int = 256, by_module: bool = False) -> int | dict[str, int]:
    from fvcore.nn import FlopCountAnalysis

    logging.getLogger("fvcore").setLevel(logging.ERROR)
    was_training = model.training
    model.eval()
    try:
        param = next(model.parameters())
        analysis = FlopCountAnalysis(model, _example(model, input_size, device=param.device))
        analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False).tracer_warnings("none")
        return dict(analysis.by_module()) if by_module else int(analysis.total())
    finally:
        model.train(was_training)


def thop_macs(model: nn.Module, input_size: int = 256) -> int:
    import thop

    clone = copy.deepcopy(model).eval()
    param = next(clone.parameters())
    with torch.no_grad():
        macs, _ = thop.profile(clone, inputs=(_example(clone, input_size, device=param.device),), verbose=False)
    return int(macs)


@dataclass
class Latency:
    median_ms: float
    p90_ms: float
    mean_ms: float
    repeats: int
    warmup: int
    batch_size: int
    threads: int
    device: str


def measure_latency(
    fn,
    example: torch.Tensor,
    warmup: int = 3,
    repeats: int = 10,
    max_seconds: float | None = None,
) -> list[float]:
    """Wall-clock times (ms) of ``fn(example)``; CUDA is synchronised around every call."""
    cuda = example.is_cuda
    with torch.inference_mode():
        for _ in range(warmup):
            fn(example)
        if cuda:
            torch.cuda.synchronize()
        times = []
        start_all = time.perf_counter()
        for _ in range(repeats):
            start = time.perf_counter()
            fn(example)
            if cuda:
                torch.cuda.synchronize()
            times.append((time.perf_counter() - start) * 1e3)
            if max_seconds is not None and time.perf_counter() - start_all > max_seconds and len(times) >= 3:
                break
    return times


def model_latency(
    model: nn.Module,
    input_size: int = 256,
    batch_size: int = 1,
    device: str = "cpu",
    warmup: int = 3,
    repeats: int = 10,
    threads: int | None = None,
    max_seconds: float | None = 20.0,
) -> Latency:
    if threads:
        torch.set_num_threads(threads)
    model = model.to(device).eval()
    example = _example(model, input_size, batch_size, device)
    times = measure_latency(model, example, warmup=warmup, repeats=repeats, max_seconds=max_seconds)
    return Latency(
        median_ms=statistics.median(times),
        p90_ms=_percentile(times, 90),
        mean_ms=statistics.fmean(times),
        repeats=len(times),
        warmup=warmup,
        batch_size=batch_size,
        threads=torch.get_num_threads(),
        device=str(device),
    )


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = int(rank), min(int(rank) + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def part_breakdown(model: HourglassNet, per_module: dict[str, int]) -> dict[str, int]:
    """Sum a per-module count (fvcore's ``by_module``, which aggregates children) into the model's named parts."""
    return {
        part: int(sum(per_module.get(prefix, 0) for prefix in prefixes))
        for part, prefixes in model_parts(model).items()
    }


@dataclass
class Profile:
    arch: str
    input_size: int
    params: int
    macs_fvcore: int
    macs_thop: int | None
    macs_counters_rel_diff: float | None
    conv_macs: int
    parts: dict[str, dict[str, int]] = field(default_factory=dict)
    latency: Latency | None = None
    memory: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def profile_model(
    model: HourglassNet,
    input_size: int | None = None,
    batch_size: int = 1,
    device: str = "cpu",
    latency: bool = True,
    thop: bool = True,
    parts: bool = True,
    warmup: int = 3,
    repeats: int = 10,
    threads: int | None = None,
    max_seconds: float | None = 8.0,
) -> Profile:
    """Everything users compare models by, in one call (a few seconds for hg8 on 2 CPU cores)."""
    input_size = input_size or model.config.input_size
    model = model.eval()
    fv_modules = fvcore_macs(model, input_size, by_module=True)
    fv_total = int(fv_modules.get("", sum(v for k, v in fv_modules.items() if k and "." not in k)))
    th = thop_macs(model, input_size) if thop else None
    conv_by_module = conv_macs(model, input_size, by_module=True)
    prof = Profile(
        arch=model.config.arch,
        input_size=input_size,
        params=count_params(model),
        macs_fvcore=fv_total,
        macs_thop=th,
        macs_counters_rel_diff=(abs(th - fv_total) / fv_total if th else None),
        conv_macs=int(sum(conv_by_module.values())),
    )
    if parts:
        params_by_module = {n: count_params(m) for n, m in model.named_modules()}
        macs_parts = part_breakdown(model, fv_modules)
        params_parts = part_breakdown(model, params_by_module)
        prof.parts = {p: {"macs_fvcore": macs_parts[p], "params": params_parts[p]} for p in macs_parts}
    prof.memory = _memory(model, input_size, batch_size)
    if latency:
        prof.latency = model_latency(
            model,
            input_size,
            batch_size,
            device,
            warmup=warmup,
            repeats=repeats,
            threads=threads,
            max_seconds=max_seconds,
        )
        if str(device).startswith("cuda"):
            prof.memory["cuda_peak_bytes"] = _cuda_peak(model, input_size, batch_size, device)
    return prof


def _memory(model: nn.Module, input_size: int, batch_size: int) -> dict[str, int]:
    """Parameter bytes and the summed size of every leaf output of one inference (an upper bound on activations)."""
    total = 0
    handles = []

    def add(_m, _i, out):
        nonlocal total
        if torch.is_tensor(out):
            total += out.numel() * out.element_size()

    for m in model.modules():
        if not list(m.children()):
            handles.append(m.register_forward_hook(add))
    try:
        probe = probe_size(model.config.depth)
        with torch.no_grad():
            model(_example(model, probe, batch_size, next(model.parameters()).device))
    finally:
        for h in handles:
            h.remove()
    scale = (input_size // probe) ** 2
    return {
        "param_bytes": sum(p.numel() * p.element_size() for p in model.parameters()),
        "activation_bytes_upper_bound": total * scale,
    }


def _cuda_peak(model: nn.Module, input_size: int, batch_size: int, device: str) -> int:
    torch.cuda.reset_peak_memory_stats(device)
    with torch.inference_mode():
        model(_example(model, input_size, batch_size, device))
    torch.cuda.synchronize(device)
    return int(torch.cuda.max_memory_allocated(device))
