"""``hgprune latency``: measure models or run directories on a runtime (writes RUN/latency.json), and
``hgprune latency calibrate``: build this machine's latency model for a runtime."""

from __future__ import annotations

import argparse
import math
import shlex
import sys

from hgprune.errors import HgpruneError

RUNTIME_NAMES = ("torch", "ort", "cuda-graph")
MAX_COUNT = 100_000


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "targets",
        nargs="+",
        metavar="MODEL|RUN_DIR|calibrate",
        help="checkpoints or run directories (a sweep directory expands to its runs) to time; or 'calibrate' to build "
        "this machine's latency model",
    )
    parser.add_argument("--runtime", action="append", choices=RUNTIME_NAMES,
                        help="runtime(s) to time on, repeatable (default: torch and ort; calibrate: ort)")  # fmt: skip
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads (default 1)")
    parser.add_argument("--batch", type=int, default=1, help="images per forward pass (default 1)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed rounds first (default 5)")
    parser.add_argument("--repeats", type=int, default=20, help="timed rounds (default 20)")
    parser.add_argument("--device", default="cpu", help="eager PyTorch's device: cpu or cuda[:k] (default cpu)")
    parser.add_argument("--max-load", type=float, default=0.5, help="refuse above this 1-minute load average")
    parser.add_argument("--force", action="store_true", help="time even when the load average is above --max-load")
    calibration = parser.add_argument_group("calibrate")
    calibration.add_argument("--arch", default="hg8", help="model family to calibrate for (default hg8)")
    calibration.add_argument("--N", type=int, default=128, help="stem width of the family's parent (default 128)")
    calibration.add_argument("--M", type=int, default=256, help="trunk width of the family's parent (default 256)")
    calibration.add_argument("--depth", type=int, default=4, help="hourglass depth (default 4)")
    calibration.add_argument("--num-joints", type=int, default=16)
    calibration.add_argument("--input-size", type=int, default=256, help="input side in px (default 256)")
    calibration.add_argument("--candidates", type=int, default=30, help="random candidates measured (default 30)")
    calibration.add_argument("--seed", type=int, default=0, help="seed of the random candidates")
    calibration.add_argument("--if-missing", action="store_true",
                             help="keep this machine's cached table when it is valid (make demo); a missing, corrupt "
                                  "or foreign one is calibrated")  # fmt: skip


def check_flags(args: argparse.Namespace) -> None:
    ranges = {"--threads": (args.threads, 1, 1024), "--batch": (args.batch, 1, 1024),
              "--warmup": (args.warmup, 0, MAX_COUNT), "--repeats": (args.repeats, 1, MAX_COUNT),
              "--candidates": (args.candidates, 1, 10_000)}  # fmt: skip
    for flag, (value, low, high) in ranges.items():
        if not low <= value <= high:
            raise HgpruneError(f"{flag}: must be in [{low}, {high}], got {value}")
    if not 0 <= args.max_load < math.inf:
        raise HgpruneError(f"--max-load: must be a finite number >= 0, got {args.max_load}")


def _progress():
    from tqdm import tqdm

    bars: dict[str, tqdm] = {}

    def update(stage: str, done: int, total: int) -> None:
        bar = bars.get(stage)
        if bar is None:
            bar = bars[stage] = tqdm(total=total, desc=stage, unit="step", leave=False, file=sys.stderr)
        bar.n = done
        bar.refresh()
        if done >= total:
            bar.close()

    return update


def timing_settings(args: argparse.Namespace):
    from hgprune.latency import TimingSettings

    return TimingSettings(warmup=args.warmup, repeats=args.repeats, threads=args.threads, batch=args.batch,
                          max_load=args.max_load, force=args.force, device=args.device)  # fmt: skip


def calibrate_main(args: argparse.Namespace) -> int:
    from hgprune.commands.common import flag_names
    from hgprune.latency import CalibrationSettings, load_or_calibrate, parent_config

    runtimes = args.runtime or ["ort"]
    with flag_names(input_size="--input-size", **{f"model.{k}": f"--{k}" for k in ("N", "M", "depth")}):
        parent = parent_config(args.arch, args.N, args.M, args.input_size, args.depth, args.num_joints)
    settings = CalibrationSettings(candidates=args.candidates, seed=args.seed, timing=timing_settings(args))
    for runtime in runtimes:
        table, path, fresh = load_or_calibrate(runtime, parent, settings, recalibrate=not args.if_missing,
                                               progress=_progress())  # fmt: skip
        if not fresh:
            print(f"{runtime}: kept {path}, this machine's cached table (without --if-missing: calibrate again)")
            continue
        errors = sorted(table.fit_errors())
        print(f"{runtime}: wrote {path}: {len(table.samples)} models measured, preferred channel multiple "
              f"{table.snap or 'none'}, fit error median {100 * errors[len(errors) // 2]:.1f} % worst "
              f"{100 * errors[-1]:.1f} % (in-sample)")  # fmt: skip
    return 0


def main(args: argparse.Namespace) -> int:
    check_flags(args)
    if args.targets[0] == "calibrate":
        if len(args.targets) > 1:
            raise HgpruneError("latency calibrate: takes no MODEL or RUN_DIR (it measures random candidates)")
        return calibrate_main(args)
    from hgprune.latency import get_runtime
    from hgprune.latency.passes import latency_passes, measure_paths, write_passes

    runtimes = [get_runtime(name) for name in dict.fromkeys(args.runtime or ["torch", "ort"])]
    settings = timing_settings(args)
    configurations, timed, record = measure_paths(args.targets, runtimes, settings, _progress())
    print(f"{'model':<50} {'step':>4} {'runtime':<11} {'median ms':>10} {'p90 ms':>9}")
    for config, result in zip(configurations, timed, strict=True):
        step = "" if config.step is None else config.step
        print(f"{str(config.source)[-50:]:<50} {step!s:>4} {config.runtime.name:<11} {result.median_ms:>10.3f} "
              f"{result.p90_ms:>9.3f}")  # fmt: skip
    flags = [f"--runtime={r.name}" for r in runtimes] + [f"--threads={args.threads}", f"--batch={args.batch}"]
    flags += [f"--warmup={args.warmup}", f"--repeats={args.repeats}", f"--max-load={args.max_load:g}"]
    command = shlex.join(["hgprune", "latency", *args.targets, *flags, *(["--force"] if args.force else [])])
    for path in write_passes(latency_passes(configurations, timed, record, settings, command)):
        print(f"wrote {path}")
    print(f"load average before {record.load_before}, after {record.load_after}")
    return 0
