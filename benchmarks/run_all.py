"""``make bench``: run every benchmark in ``benchmarks/`` in turn; each writes JSON + Markdown into reports/benchmarks/.

Not part of ``make test``. Usage: ``python -m benchmarks.run_all [--only NAME ...] [--device cuda] [--list]``.

The benchmarks are discovered: every module of this package except ``common`` and ``run_all`` is one, run as
``python -m benchmarks.NAME`` (with ``--device D`` when D is not ``cpu``), so a new benchmark is a new module here and
nothing else. ``FIRST`` and ``LAST`` only order them (quick ones first, the hours-long accuracy study last); the
``GPU_ONLY`` ones run when ``--device`` names a GPU. Single-question studies live in ``studies/``, not here.
"""

from __future__ import annotations

import argparse
import pkgutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
NOT_BENCHMARKS = {"common", "run_all"}
FIRST = ["profiler", "engine", "data", "latency"]
LAST = ["accuracy"]
GPU_ONLY = {"gpu_latency", "gpu_latency_target"}


def discover() -> list[str]:
    """Every benchmark module's name, in running order: ``FIRST``, the others alphabetically, then ``LAST``."""
    found = {m.name for m in pkgutil.iter_modules([str(HERE)]) if not m.name.startswith("_")} - NOT_BENCHMARKS
    first = [n for n in FIRST if n in found]
    last = [n for n in LAST if n in found]
    return first + sorted(found - set(first) - set(last)) + last


def selected(names: list[str], only: list[str] | None, device: str) -> list[str]:
    """The benchmarks one ``make bench`` runs: ``only`` as given, else all, the GPU-only ones only on a GPU."""
    if only:
        return [n for n in names if n in only]
    on_gpu = device.startswith("cuda")
    return [n for n in names if on_gpu or n not in GPU_ONLY]


def command(name: str, device: str) -> list[str]:
    return [sys.executable, "-m", f"benchmarks.{name}", *(["--device", device] if device != "cpu" else [])]


def main(argv: list[str] | None = None) -> int:
    names = discover()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=names, metavar="NAME", help=f"among {', '.join(names)}")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--list", action="store_true", help="print the benchmarks that would run, run nothing")
    args = parser.parse_args(argv)
    todo = selected(names, args.only, args.device)
    if args.list:
        print("\n".join(" ".join(command(name, args.device)[1:]) for name in todo))
        return 0
    failures = []
    for name in todo:
        call = command(name, args.device)
        print(f"=== {name}: {' '.join(call)}", flush=True)
        started = time.perf_counter()
        result = subprocess.run(call, cwd=ROOT)
        print(f"=== {name}: exit {result.returncode} after {time.perf_counter() - started:.0f} s", flush=True)
        if result.returncode:
            failures.append(name)
    if failures:
        print(f"failed: {', '.join(failures)}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
