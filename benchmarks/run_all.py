"""``make bench``: run every benchmark in turn; each writes JSON + Markdown into reports/benchmarks/.

Not part of ``make test``. Usage: ``python benchmarks/run_all.py [--only NAME ...] [--device cuda]``
(with cuda, gpu_latency runs too).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHMARKS = ["profile", "engine", "data", "latency", "accuracy"]
GPU_ONLY = ["gpu_latency"]  # run when --device names a GPU


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=BENCHMARKS + GPU_ONLY)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    names = args.only or BENCHMARKS + (GPU_ONLY if args.device.startswith("cuda") else [])
    failures = []
    for name in names:
        script = HERE / f"{name}.py"
        command = [sys.executable, str(script)]
        if args.device != "cpu":
            command += ["--device", args.device]
        print(f"=== {name}: {' '.join(command)}", flush=True)
        started = time.perf_counter()
        result = subprocess.run(command)
        print(f"=== {name}: exit {result.returncode} after {time.perf_counter() - started:.0f} s", flush=True)
        if result.returncode:
            failures.append(name)
    if failures:
        print(f"failed: {', '.join(failures)}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
