"""GPU latency and throughput: hg8 unpruned vs pruned to 50 % / 25 % of its MACs, fp32 and fp16, eager and CUDA graphs.

The models are pruned as in ``benchmarks.latency`` (L1, one uniform channel ratio for every group including the
trunk, widths rounded to multiples of 8). Each model is timed at batch 1 (latency) and ``--batch`` (throughput) in
three forms:

* ``fp32``: eager PyTorch, float32 weights and inputs (cuDNN's default TF32 convolutions on Ampere and later);
* ``fp16``: eager, half-precision weights, channels_last;
* ``fp16+graph``: the same captured once as a CUDA graph and replayed (no per-kernel launch cost).

Timing: CUDA events around ``--inner`` back-to-back calls give one sample (ms per call); every configuration takes
one sample per round, in a seeded shuffled order (:func:`hgprune.timing.time_interleaved` with a CUDA-event clock), so
they share whatever the GPU is doing; medians over
``--repeats`` rounds after ``--warmup`` rounds. The GPU's utilisation and the host's load are read before timing
and recorded. fp16 parity: the largest heatmap difference to fp32 (TF32 off), as a fraction of the fp32 heatmaps'
range. All ratios come from this one run; ``--from-json FILE`` re-renders a run's Markdown from its JSON. Writes
``reports/benchmarks/gpu_latency.{json,md}``.

Usage (on a machine with a CUDA GPU): ``python -m benchmarks.gpu_latency [--repeats 30 --warmup 5 --batch 32]``.
"""

from __future__ import annotations

import argparse
import copy
import json
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

from benchmarks.common import (
    PRUNING,
    add_model_arguments,
    command_argv,
    environment,
    environment_md,
    md_table,
    prune_copy,
    write_report,
)
from hgprune import build_model
from hgprune.profile import fvcore_macs
from hgprune.timing import time_interleaved

FORMS = ("fp32", "fp16", "fp16+graph")


def gpu_utilisation() -> str | None:
    """``nvidia-smi``'s utilisation and memory in use, or None where it is missing."""
    try:
        query = ["nvidia-smi", "--query-gpu=utilization.gpu,memory.used", "--format=csv,noheader"]
        return subprocess.run(query, capture_output=True, text=True, timeout=20, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def make_form(model: torch.nn.Module, form: str, batch: int, size: int) -> Callable[[], torch.Tensor]:
    """A no-argument callable running ``model`` in ``form`` on a fixed input (the last stack's heatmaps)."""
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(batch, 3, size, size, generator=gen).cuda()
    if form == "fp32":
        return lambda: model(x)[-1]
    half = model  # already half precision and channels_last
    xh = x.half().contiguous(memory_format=torch.channels_last)
    if form == "fp16":
        return lambda: half(xh)[-1]
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(3):  # warm up cuDNN's algorithm choice outside the capture
            half(xh)
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static_out = half(xh)[-1]

    def replay(inputs: torch.Tensor = xh) -> torch.Tensor:  # holds the graph's static input alive
        graph.replay()
        return static_out

    return replay


def cuda_event_ms(call: Callable[[], object]) -> float:
    """A clock for :func:`hgprune.timing.time_interleaved`: ``call``'s milliseconds between two CUDA events (the GPU's
    time, not the host's), the device synchronised first."""
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda.synchronize()
    start.record()
    call()
    end.record()
    end.synchronize()
    return start.elapsed_time(end)


def _back_to_back(fn: Callable[[], object], inner: int) -> Callable[[], None]:
    def call() -> None:
        for _ in range(inner):
            fn()

    return call


def time_rounds(configs: dict[str, Callable], inner: dict[str, int], warmup: int, repeats: int) -> dict[str, list]:
    """ms per call of each configuration, one sample per timed round: ``inner[key]`` back-to-back calls between CUDA
    events, every configuration once per round in a shuffled order."""
    began = time.perf_counter()

    def progress(done: int, total: int) -> None:
        if done % 5 == 0 or done == total:
            print(f"  round {done}/{total} at {time.perf_counter() - began:.0f} s", flush=True)

    calls = [_back_to_back(fn, inner[key]) for key, fn in configs.items()]
    times = time_interleaved(calls, warmup, repeats, progress=progress, clock=cuda_event_ms)
    return {key: [ms / inner[key] for ms in samples] for key, samples in zip(configs, times, strict=True)}


def fp16_parity(model32: torch.nn.Module, model16: torch.nn.Module, size: int) -> dict[str, float]:
    """Largest heatmap difference fp16 − fp32 as a fraction of the fp32 heatmaps' range, fp32 without TF32."""
    x = torch.rand(8, 3, size, size, generator=torch.Generator().manual_seed(2)).cuda()
    tf32 = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    try:
        ref = model32(x)[-1].float()
    finally:
        torch.backends.cudnn.allow_tf32 = tf32
    out = model16(x.half().contiguous(memory_format=torch.channels_last))[-1].float()
    span = float(ref.max() - ref.min()) or 1.0
    return {"max_abs_diff_of_range": float((out - ref).abs().max()) / span}


def summarise(times: dict[str, list[float]], macs: dict[str, int]) -> list[dict]:
    """One row per configuration: medians, p90, throughput, and speedups against the unpruned model at the same
    batch and form. An eager row is marked host-bound when its large batch costs under 1.5× its batch 1 per call:
    the host's kernel launches, not the GPU, set its time, and so its speedup says little about pruning."""
    median = {k: statistics.median(v) for k, v in times.items()}
    rows = []
    for name, ms in median.items():
        key, batch, form = name.split("/")
        speedup = median[f"unpruned/{batch}/{form}"] / ms
        single = median[f"{key}/b1/{form}"]
        rows.append(
            {
                "model": key,
                "batch": int(batch[1:]),
                "form": form,
                "gmacs_per_image": macs[key] / 1e9,
                "median_ms": ms,
                "p90_ms": statistics.quantiles(times[name], n=10)[-1],
                "images_per_s": int(batch[1:]) * 1e3 / ms,
                "speedup_vs_unpruned": speedup,
                "speedup_efficiency": speedup / (macs["unpruned"] / macs[key]),
                "host_bound": "graph" not in form and batch != "b1" and ms < 1.5 * single,
            }
        )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_model_arguments(parser)
    parser.add_argument("--targets", type=float, nargs="+", default=[0.5, 0.25], help="kept MACs fractions")
    parser.add_argument("--batch", type=int, default=32, help="the throughput batch size (latency is batch 1)")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--inner", type=int, default=10, help="calls per sample at batch 1 (2 at the large batch)")
    parser.add_argument("--device", default="cuda", help="cuda or cuda:<k>")
    parser.add_argument("--out-dir", default=None)
    parser.add_argument("--from-json", help="re-render the Markdown of an earlier run's JSON (no timing)")
    args = parser.parse_args()
    if args.from_json:
        report = json.loads(Path(args.from_json).read_text())
        report["rows"] = summarise(report["samples_ms"], report["macs_fvcore"])
        # the timings stay those of the recorded command
        report["rendered_by"] = shlex.join(["python", *command_argv()])
        write_report("gpu_latency", report, to_markdown(report), args.out_dir or Path(args.from_json).parent)
        return 0
    if not args.device.startswith("cuda") or not torch.cuda.is_available():
        print(f"benchmarks.gpu_latency: --device {args.device}: no CUDA device available", file=sys.stderr)
        return 2
    torch.cuda.set_device(torch.device(args.device))
    torch.backends.cudnn.benchmark = True
    torch.manual_seed(0)
    env = environment(args.device)
    env["machine"]["gpu_before"] = gpu_utilisation()
    env["cudnn"] = {"benchmark": True, "allow_tf32": torch.backends.cudnn.allow_tf32}
    wall = time.perf_counter()
    size = args.input_size
    base = build_model(args.arch, N=args.N, M=args.M, input_size=size).eval()
    models, pruned = {"unpruned": base}, {}
    for kept in args.targets:
        print(f"pruning to {kept:.0%} MACs …", flush=True)
        models[f"kept{round(kept * 100)}"], pruned[f"kept{round(kept * 100)}"] = prune_copy(base, kept, size, 8)
    macs = {k: fvcore_macs(m, size) for k, m in models.items()}
    print(f"pruned and counted in {time.perf_counter() - wall:.0f} s", flush=True)

    configs, inner, parity = {}, {}, {}
    with torch.inference_mode():
        for key, model in models.items():
            model32 = model.cuda().eval()
            model16 = copy.deepcopy(model32).half().to(memory_format=torch.channels_last)
            parity[key] = fp16_parity(model32, model16, size)
            for batch in (1, args.batch):
                for form in FORMS:
                    name = f"{key}/b{batch}/{form}"
                    configs[name] = make_form(model32 if form == "fp32" else model16, form, batch, size)
                    inner[name] = args.inner if batch == 1 else 2
        print(f"timing {len(configs)} configurations, {args.warmup} + {args.repeats} rounds …", flush=True)
        times = time_rounds(configs, inner, args.warmup, args.repeats)
    env["machine"]["gpu_after"] = gpu_utilisation()
    report = {
        "environment": env,
        "settings": vars(args),
        "pruning": {"call": PRUNING, **pruned},
        "macs_fvcore": macs,
        "fp16_parity": parity,
        "parity_reference": "fp32 with cuDNN TF32 off",
        "rows": summarise(times, macs),
        "samples_ms": times,
        "wall_s": time.perf_counter() - wall,
    }
    write_report("gpu_latency", report, to_markdown(report), args.out_dir)
    print(to_markdown(report))
    return 0


def to_markdown(report: dict) -> str:
    env, s = report["environment"], report["settings"]
    headers = ["model", "batch", "form", "GMACs/image", "median ms", "p90 ms", "images/s", "speedup", "efficiency"]
    table = md_table(
        headers,
        [
            (r["model"], r["batch"], r["form"], r["gmacs_per_image"], r["median_ms"], r["p90_ms"], r["images_per_s"])
            + (r["speedup_vs_unpruned"], f"{r['speedup_efficiency']:.3g}{' (host-bound)' if r['host_bound'] else ''}")
            for r in report["rows"]
        ],
    )
    parity = md_table(
        ["model", "max abs(fp16 − fp32) ÷ fp32 range"],
        [(k, v["max_abs_diff_of_range"]) for k, v in report["fp16_parity"].items()],
    )
    # runs before the reference was pinned compared against fp32 as timed, i.e. with cuDNN's default TF32
    reference = report.get("parity_reference", "fp32 as timed, with cuDNN TF32 on")
    return (
        f"# GPU latency: {s['arch']} N={s['N']} M={s['M']} at {s['input_size']} px, pruned vs unpruned\n\n"
        f"{environment_md(env)}- GPU before / after timing (utilisation, memory used): {env['machine']['gpu_before']}"
        f" / {env['machine']['gpu_after']}\n- cuDNN: {env['cudnn']}\n- Wall time: {report['wall_s']:.0f} s\n"
        + (
            f"- Tables re-derived from the recorded samples by `{report['rendered_by']}`\n"
            if "rendered_by" in report
            else ""
        )
        + "\n"
        f"Median of {s['repeats']} interleaved rounds after {s['warmup']} warm-up rounds; each sample is the mean of "
        f"{s['inner']} back-to-back calls at batch 1 and of 2 at batch {s['batch']}, timed with CUDA events; p90 over "
        "the same samples. Speedup = unpruned ÷ pruned at the same batch and form; efficiency = speedup ÷ (unpruned "
        "MACs ÷ pruned MACs), fvcore MACs. Host-bound: an eager row whose large batch costs under 1.5× its batch 1 "
        f"per call, so the host's kernel launches set its time. Pruning: `{PRUNING}`.\n\n"
        f"{table}\n## fp16 parity (8 random inputs, untrained weights; reference: {reference})\n\n{parity}"
    )


if __name__ == "__main__":
    raise SystemExit(main())
