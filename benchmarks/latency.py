"""Deployment speedup: hg8 unpruned vs pruned to 25 % / 50 % of its MACs, eager PyTorch and ONNX Runtime.

Every model is pruned with the project's engine (``prune_to_target``, L1, one uniform channel ratio for every group
including the trunk, score heads kept, widths rounded to multiples of 8). Every timing configuration runs once per
round, in an order shuffled anew each round (:func:`hgprune.timing.time_interleaved`), so configurations share the
machine's load; medians over ``--repeats`` rounds after ``--warmup`` rounds. All ratios come from this one run:

* speedup efficiency = (latency unpruned ÷ latency pruned) ÷ (MACs unpruned ÷ MACs pruned), fvcore MACs;
  goals ≥ 0.85 eager PyTorch, ≥ 0.95 ONNX Runtime (issue 7);
* end-to-end = unpruned eager PyTorch ÷ pruned exported ONNX in ORT; goal ≥ 7× at 25 % MACs;
* end-to-end INT8 = unpruned eager PyTorch ÷ pruned static-INT8 ONNX (QDQ, per-channel weights, calibrated on
  random inputs: the ranges change the accuracy, not the work); goal ≥ 12× at 25 % MACs (issue 13);
* levers, each measured alone on the smallest pruned model: BatchNorm folding, channels_last, TorchScript trace /
  freeze / optimize_for_inference, ORT graph optimisation levels, BN folding inside ORT, channel rounding to 8, INT8
  vs FP32 in ORT, quantising the residual adds too;
* predictor throughput (images/s, ``hgprune.predict.Predictor`` end to end: crop, normalise, run, decode) per backend
  on ``--throughput-images`` SynthPose images in batches of ``--batch-size``, unpruned and smallest pruned model.

Writes ``reports/benchmarks/latency.{json,md}``. Usage:
``python -m benchmarks.latency [--arch hg8 --N 128 --M 256 --input-size 256 --threads 2 --repeats 5 --warmup 2]``
(``--quick`` = hg1, N=16, M=32, 64 px: a smoke run in seconds; ``--no-throughput`` skips the predictor section).
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial

import torch

from benchmarks.common import (
    PRUNING,
    SPIN,
    add_model_arguments,
    environment,
    environment_md,
    md_table,
    prune_copy,
    write_report,
)
from hgprune import build_model
from hgprune.data.synthpose import SynthConfig, render_sample
from hgprune.export import export_metadata, fold_batchnorm
from hgprune.export import runtime as rt
from hgprune.export.quantize import QUANTIZED_OPS, int8_onnx_bytes
from hgprune.predict import Predictor
from hgprune.profile import conv_macs, count_params, fvcore_macs
from hgprune.timing import time_interleaved

GOALS = {"eager_efficiency": 0.85, "ort_efficiency": 0.95, "end_to_end_at_25": 7.0, "end_to_end_int8_at_25": 12.0}
CALIBRATION_BATCHES = 4  # random batch-1 inputs: INT8 timing does not depend on the calibrated ranges


def _eager(model: torch.nn.Module, channels_last: bool = False) -> Callable:
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        return lambda x: model(x.contiguous(memory_format=torch.channels_last))
    return model


def build_configs(name: str, model: torch.nn.Module, size: int, levers: bool, threads: int, check) -> dict:
    """Timing configurations of one model: ``{config_name: fn}``; exports are parity-checked via ``check``."""
    folded, pairs = fold_batchnorm(model)
    configs = {f"{name}/eager": _eager(model), f"{name}/eager+fold": _eager(folded)}
    onnx_folded = rt.onnx_bytes(folded, size, dynamic_batch=False)
    configs[f"{name}/ort"] = rt.ort_runner(rt.ort_session(onnx_folded, threads, "all", SPIN))
    check(f"{name}/ort", configs[f"{name}/ort"])
    configs[f"{name}/ort_int8"] = rt.ort_runner(rt.ort_session(int8(onnx_folded), threads, "all", SPIN))
    check(f"{name}/ort_int8", configs[f"{name}/ort_int8"])
    if levers:
        configs[f"{name}/eager+fold+channels_last"] = _eager(copy.deepcopy(folded), channels_last=True)
        traced = rt.torchscript_module(folded, size, freeze=False)
        frozen = rt.torchscript_module(folded, size, freeze=True)
        configs[f"{name}/ts_trace"] = traced
        configs[f"{name}/ts_freeze"] = frozen
        configs[f"{name}/ts_freeze+optimize_for_inference"] = torch.jit.optimize_for_inference(frozen)
        check(f"{name}/ts_freeze", frozen)
        for level in ("disable", "basic", "extended"):
            configs[f"{name}/ort_{level}"] = rt.ort_runner(rt.ort_session(onnx_folded, threads, level, SPIN))
        onnx_plain = rt.onnx_bytes(model, size, dynamic_batch=False)
        configs[f"{name}/ort_unfolded"] = rt.ort_runner(rt.ort_session(onnx_plain, threads, "all", SPIN))
        with_add = int8(onnx_folded, (*QUANTIZED_OPS, "Add"))
        configs[f"{name}/ort_int8+add"] = rt.ort_runner(rt.ort_session(with_add, threads, "all", SPIN))
    return configs, len(pairs)


def int8(fp32: bytes, op_types=QUANTIZED_OPS) -> bytes:
    """Static INT8 of an FP32 graph (hgprune's quantiser), calibrated on a few random inputs of its batch size."""
    inputs = rt.check_inputs(_graph_size(fp32), CALIBRATION_BATCHES, seed=3, batch_sizes=(1,))
    return int8_onnx_bytes(fp32, [x.numpy() for x in inputs], op_types=op_types)


def _graph_size(data: bytes) -> int:
    import onnx

    dims = onnx.load_from_string(data).graph.input[0].type.tensor_type.shape.dim
    return int(dims[-1].dim_value)


def build_predictors(model: torch.nn.Module, size: int, threads: int, batch_size: int) -> dict[str, Predictor]:
    """One :class:`Predictor` per backend (the torch fast path with and without channels_last; FP32 and INT8 ORT)."""
    folded, pairs = fold_batchnorm(model)
    fp32 = rt.onnx_bytes(folded, size, metadata=export_metadata(model, len(pairs)))  # dynamic batch
    common = dict(threads=threads, batch_size=batch_size)
    return {
        "torch": Predictor(model, "torch", **common),
        "torch (no channels_last)": Predictor(model, "torch", channels_last=False, **common),
        "torchscript": Predictor(model, "torchscript", **common),
        "onnxruntime": Predictor(fp32, "onnxruntime", **common),
        "onnxruntime int8": Predictor(int8(fp32), "onnxruntime", **common),
    }


def _progress(label: str, warmup: int) -> Callable[[int, int], None]:
    started = time.perf_counter()

    def report(done: int, total: int) -> None:
        kind = "warm-up" if done <= warmup else "timed"
        print(f"  {label} {done}/{total} ({kind}) at {time.perf_counter() - started:.1f} s", flush=True)

    return report


def time_throughput(predictors: dict, images: list, warmup: int, repeats: int) -> dict[str, list[float]]:
    """Seconds per pass over ``images`` for each predictor, interleaved like the latency rounds."""
    calls = [partial(predictor.predict, images, color="bgr") for predictor in predictors.values()]
    times = time_interleaved(calls, warmup, repeats, progress=_progress("throughput round", warmup))
    return {key: [ms / 1e3 for ms in values] for key, values in zip(predictors, times, strict=True)}


def time_configs(configs: dict, size: int, warmup: int, repeats: int) -> dict[str, list[float]]:
    """Milliseconds per timed round of each configuration on one seeded batch-1 input, interleaved."""
    x = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(1))
    times = time_interleaved([partial(fn, x) for fn in configs.values()], warmup, repeats, _progress("round", warmup))
    return dict(zip(configs, times, strict=True))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_model_arguments(parser)
    parser.add_argument("--targets", type=float, nargs="+", default=[0.25, 0.5], help="kept MACs fractions")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2, help="rounds (TorchScript profiles its first 2 runs)")
    parser.add_argument("--device", default="cpu", help="only cpu: ONNX Runtime is timed on CPU here")
    parser.add_argument("--quick", action="store_true", help="hg1 N=16 M=32 64 px smoke run")
    parser.add_argument("--out-dir", default=None)
    parser.add_argument("--throughput-images", type=int, default=16, help="SynthPose images per throughput pass")
    parser.add_argument("--throughput-side", type=int, default=480, help="side of those (square) images in pixels")
    parser.add_argument("--batch-size", type=int, default=8, help="predictor batch size for the throughput")
    parser.add_argument("--no-throughput", action="store_true", help="skip the predictor throughput section")
    args = parser.parse_args(argv)
    if args.device != "cpu":
        print("latency.py measures CPU deployment (ONNX Runtime CPU); --device ignored", file=sys.stderr)
    if args.quick:
        args.arch, args.N, args.M, args.input_size = "hg1", 16, 32, 64
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    env = environment("cpu")
    wall = time.perf_counter()
    size = args.input_size
    base = build_model(args.arch, N=args.N, M=args.M, input_size=size).eval()
    smallest = min(args.targets)
    models = {"unpruned": (base, {"kept_conv_macs": 1.0, "channel_ratio": 0.0, "round_to": None})}
    for kept in sorted(args.targets):
        print(f"pruning to {kept:.0%} MACs …", flush=True)
        models[f"kept{round(kept * 100)}"] = prune_copy(base, kept, size, 8)
    models[f"kept{round(smallest * 100)}_round1"] = prune_copy(base, smallest, size, None)
    smallest_key = f"kept{round(smallest * 100)}"

    x_check = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        ref_by_model = {k: m(x_check) for k, (m, _) in models.items()}
    parity: dict[str, float] = {}

    rows, configs = {}, {}
    for key, (model, info) in models.items():
        print(f"measuring MACs and exporting {key} …", flush=True)
        row = dict(
            info, params=count_params(model), conv_macs=conv_macs(model, size), fvcore_macs=fvcore_macs(model, size)
        )

        def check(name, fn, key=key):
            with torch.inference_mode():
                got = rt.as_list(fn(x_check))
            parity[name] = max(float((a - torch.as_tensor(b)).abs().max()) for a, b in zip(ref_by_model[key], got))

        new, folded = build_configs(key, model, size, key == smallest_key, args.threads, check)
        row["folded_bn"] = folded
        configs.update(new)
        rows[key] = row
    print(f"timing {len(configs)} configurations: {args.warmup} warm-up + {args.repeats} timed rounds", flush=True)
    times = time_configs(configs, size, args.warmup, args.repeats)
    throughput = {}
    if not args.no_throughput:
        synth = SynthConfig(size=args.throughput_side)
        images = [render_sample(synth, "val", i)[0] for i in range(args.throughput_images)]
        for key in ("unpruned", smallest_key):
            print(f"predictor throughput of {key}: {len(images)} images, batch {args.batch_size} …", flush=True)
            predictors = build_predictors(models[key][0], size, args.threads, args.batch_size)
            seconds = time_throughput(predictors, images, args.warmup, args.repeats)
            throughput[key] = {
                backend: {"images_per_s": len(images) / statistics.median(v), "best_images_per_s": len(images) / min(v),
                          "seconds": v}
                for backend, v in seconds.items()
            }  # fmt: skip
    median = {k: statistics.median(v) for k, v in times.items()}
    results = derive(rows, median, smallest_key)
    best = {k: min(v) for k, v in times.items()}  # least disturbed by other jobs on a shared machine
    results_best = derive(rows, best, smallest_key)
    report = {
        "benchmark": "latency",
        "environment": env,
        "settings": {
            "arch": args.arch,
            "N": args.N,
            "M": args.M,
            "input_size": size,
            "batch_size": 1,
            "threads": args.threads,
            "repeats": args.repeats,
            "warmup_rounds": args.warmup,
            "targets": args.targets,
            "pruning": PRUNING,
            "onnx": "legacy TorchScript-based exporter (dynamo=False), opset 17, static batch 1",
            "ort_allow_spinning": SPIN,
            "int8": f"ORT static QDQ, per-channel int8 weights, uint8 activations, ops {list(QUANTIZED_OPS)}, "
            f"calibrated on {CALIBRATION_BATCHES} random inputs",
            "throughput": None
            if args.no_throughput
            else {
                "images": args.throughput_images,
                "side": args.throughput_side,
                "batch_size": args.batch_size,
                "source": "SynthPose val renders, whole image fitted, BGR arrays",
            },
        },  # fmt: skip
        "models": rows,
        "latency_ms": {k: {"median": median[k], "min": min(v), "max": max(v), "runs": v} for k, v in times.items()},
        "parity_max_abs_diff": parity,
        "predictor_throughput": throughput,
        **results,
        "from_min_latency": results_best,
        "goals": GOALS,
        "wall_s": time.perf_counter() - wall,
    }
    write_report("latency", report, to_markdown(report, smallest_key), args.out_dir)
    print(to_markdown(report, smallest_key))
    return 0


def derive(rows: dict, median: dict, smallest_key: str) -> dict:
    """Speedups, efficiencies, end-to-end ratios and per-lever effects, all from one run's medians."""
    base = rows["unpruned"]
    pruned = {}
    for key, row in rows.items():
        if key == "unpruned":
            continue
        reduction = base["fvcore_macs"] / row["fvcore_macs"]
        entry = {"macs_reduction_fvcore": reduction, "macs_reduction_conv": base["conv_macs"] / row["conv_macs"]}
        for runtime in ("eager", "eager+fold", "ort", "ort_int8"):
            speedup = median[f"unpruned/{runtime}"] / median[f"{key}/{runtime}"]
            entry[f"speedup_{runtime}"] = speedup
            entry[f"efficiency_{runtime}"] = speedup / reduction
        entry["end_to_end_eager_to_ort"] = median["unpruned/eager"] / median[f"{key}/ort"]
        entry["end_to_end_eager_to_ort_int8"] = median["unpruned/eager"] / median[f"{key}/ort_int8"]
        pruned[key] = entry
    s = smallest_key
    levers = {
        "bn_fold (eager)": median[f"{s}/eager"] / median[f"{s}/eager+fold"],
        "channels_last (eager, folded)": median[f"{s}/eager+fold"] / median[f"{s}/eager+fold+channels_last"],
        "torchscript trace vs eager (folded)": median[f"{s}/eager+fold"] / median[f"{s}/ts_trace"],
        "torchscript freeze vs trace": median[f"{s}/ts_trace"] / median[f"{s}/ts_freeze"],
        "optimize_for_inference vs freeze": median[f"{s}/ts_freeze"] / median[f"{s}/ts_freeze+optimize_for_inference"],
        "ORT basic vs disable": median[f"{s}/ort_disable"] / median[f"{s}/ort_basic"],
        "ORT extended vs disable": median[f"{s}/ort_disable"] / median[f"{s}/ort_extended"],
        "ORT all vs disable": median[f"{s}/ort_disable"] / median[f"{s}/ort"],
        "bn_fold before export (ORT all)": median[f"{s}/ort_unfolded"] / median[f"{s}/ort"],
        "INT8 vs FP32 (ORT all)": median[f"{s}/ort"] / median[f"{s}/ort_int8"],
        "INT8 residual adds quantised too (ORT)": median[f"{s}/ort_int8"] / median[f"{s}/ort_int8+add"],
    }
    r1 = f"{s}_round1"
    if r1 in rows:
        levers["round_to 8 vs 1 (eager efficiency ratio)"] = (
            pruned[s]["efficiency_eager"] / pruned[r1]["efficiency_eager"]
        )
        levers["round_to 8 vs 1 (ORT efficiency ratio)"] = pruned[s]["efficiency_ort"] / pruned[r1]["efficiency_ort"]
    return {"pruned": pruned, "levers_speedup": levers}


def _verdict(value: float, goal: float) -> str:
    return "met" if value >= goal else "missed"


def to_markdown(report: dict, smallest_key: str) -> str:
    st, lat, g = report["settings"], report["latency_ms"], report["goals"]
    lines = [
        "# Deployment latency benchmark\n",
        f"{st['arch']} N={st['N']} M={st['M']}, {st['input_size']}×{st['input_size']}, batch 1, "
        f"{st['threads']} threads; median of {st['repeats']} interleaved rounds (shuffled order) after "
        f"{st['warmup_rounds']} warm-up rounds. Pruning: `{st['pruning']}`. ONNX: {st['onnx']}. The machine is "
        "shared with other jobs (load average below), so single timings vary by up to 2×; every configuration runs "
        "once per round, so ratios compare configurations under the same load.\n",
        environment_md(report["environment"]),
        "\n## Models\n",
    ]
    model_rows = [
        [k, f"{r['params']:,}", r["fvcore_macs"] / 1e9, r["conv_macs"] / 1e9, r["channel_ratio"], r["round_to"],
         r["folded_bn"]]
        for k, r in report["models"].items()
    ]  # fmt: skip
    headers = ["model", "params", "fvcore MACs (G)", "conv MACs (G)", "channel ratio", "round_to", "folded BNs"]
    lines.append(md_table(headers, model_rows))
    lines.append(
        "\n## Speedup efficiency (goals: eager ≥ 0.85, ORT ≥ 0.95; end-to-end ≥ 7× FP32 and ≥ 12× INT8 at 25 % MACs)\n"
    )
    lines.append(
        "Efficiency = speedup ÷ fvcore-MACs reduction. Goal columns judge the medians; the (min) columns repeat the "
        "ratios from each configuration's fastest run, which other jobs disturb least.\n"
    )
    best = report["from_min_latency"]["pruned"]
    rows = []
    for k, e in report["pruned"].items():
        e2e = e["end_to_end_eager_to_ort"]
        e2e_int8 = e["end_to_end_eager_to_ort_int8"]
        rows.append([
            k, e["macs_reduction_fvcore"], e["speedup_eager"], e["efficiency_eager"],
            _verdict(e["efficiency_eager"], g["eager_efficiency"]), e["speedup_ort"], e["efficiency_ort"],
            _verdict(e["efficiency_ort"], g["ort_efficiency"]), e2e,
            _verdict(e2e, g["end_to_end_at_25"]) if k.startswith("kept25") else "", e2e_int8,
            _verdict(e2e_int8, g["end_to_end_int8_at_25"]) if k.startswith("kept25") else "",
            best[k]["efficiency_eager"], best[k]["efficiency_ort"], best[k]["end_to_end_eager_to_ort"],
            best[k]["end_to_end_eager_to_ort_int8"],
        ])  # fmt: skip
    headers = ["model", "MACs ÷", "eager speedup", "eager eff.", "goal", "ORT speedup", "ORT eff.", "goal",
               "end-to-end eager→ORT", "goal", "end-to-end eager→ORT INT8", "goal", "eager eff. (min)",
               "ORT eff. (min)", "end-to-end (min)", "end-to-end INT8 (min)"]  # fmt: skip
    lines.append(md_table(headers, rows))
    lines.append(f"\n## Levers, each alone on {smallest_key} (speedup factor, > 1 = faster)\n")
    best_levers = report["from_min_latency"]["levers_speedup"]
    lever_rows = [[k, v, best_levers[k]] for k, v in report["levers_speedup"].items()]
    lines.append(md_table(["lever", "from medians", "from minima"], lever_rows))
    lines.append("\n## Latency per configuration (ms)\n")
    lat_rows = [[k, v["median"], v["min"], v["max"]] for k, v in lat.items()]
    lines.append(md_table(["configuration", "median", "min", "max"], lat_rows))
    if report["predictor_throughput"]:
        tp = st["throughput"]
        lines.append(
            f"\n## Predictor throughput (images/s, {tp['images']} {tp['side']}×{tp['side']} images, batch "
            f"{tp['batch_size']}: crop, normalise, run, decode)\n"
        )
        tp_rows = [
            [model_key, backend, v["images_per_s"], v["best_images_per_s"]]
            for model_key, per_backend in report["predictor_throughput"].items()
            for backend, v in per_backend.items()
        ]
        lines.append(md_table(["model", "backend", "images/s (median)", "images/s (best)"], tp_rows))
    lines.append("\n## Parity of exports (max abs diff vs unfolded eager PyTorch, one random image)\n")
    lines.append("INT8 rows differ by design (rounding); their accuracy is judged by `hgprune export --quantize`.\n")
    lines.append(md_table(["export", "max abs diff"], list(report["parity_max_abs_diff"].items())))
    lines.append(f"\nTotal wall time {report['wall_s']:.0f} s.\n")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
