"""Shared by the benchmarks and the studies: the environment record every result carries, and one JSON + Markdown
writer. Timing itself lives in :mod:`hgprune.timing` (the idle check and the one interleaved timer).

Every result file says on which machine, with which versions and thread counts, and by which exact command it was
produced, plus the load average when it started — on a shared machine that is what makes a timing interpretable.
"""

from __future__ import annotations

import datetime
import os
import platform
import shlex
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

from hgprune.latency.runtimes import SPIN
from hgprune.timing import SETTLE_MS, cpu_model, versions

ROOT = Path(__file__).resolve().parents[1]
REPORT_DIR = ROOT / "reports" / "benchmarks"


# How the speed benchmarks prune (latency.py, gpu_latency.py): the measured speedup, not the accuracy, is the point.
PRUNE_OPTIONS = {"criterion": "l1", "kind": "macs", "allocation": "uniform", "prune_trunk": True, "tolerance": 0.01}
PRUNING = "prune_to_target(" + ", ".join(f"{k}={v!r}" for k, v in PRUNE_OPTIONS.items()) + ", round_to=8)"
THREAD_ENV = ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "MKL_NUM_THREADS")


_cpu_model = cpu_model


def command_argv() -> list[str]:
    """This process's arguments as typed: ``-m benchmarks.latency --quick`` for a module run with ``python -m``
    (``sys.argv[0]`` would be the file's absolute path), else ``sys.argv``."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    if spec is not None and spec.name:
        return ["-m", spec.name, *sys.argv[1:]]
    return list(sys.argv)


def timer() -> dict:
    """How every benchmark's interleaved timer ran: each call settled first for ``settle_ms``; ORT threads spin."""
    return {"settle_ms": SETTLE_MS, "ort_allow_spinning": SPIN}


def environment(device: str = "cpu", argv: Sequence[str] | None = None) -> dict:
    """Machine, versions, thread settings, load and the exact command line (``argv``: the arguments after the Python
    executable, default this process's, see :func:`command_argv`)."""
    import torch

    settings = [f"{k}={os.environ[k]}" for k in THREAD_ENV if os.environ.get(k)]
    env = {
        "command": shlex.join([*settings, Path(sys.executable).name, *(command_argv() if argv is None else argv)]),
        "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": {
            "platform": platform.platform(),
            "cpu": _cpu_model(),
            "logical_cpus": os.cpu_count(),
            "load_average_1_5_15": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
            "device": device,
        },
        "versions": versions(),
        "threads": {
            "torch_intra_op": torch.get_num_threads(),
            "torch_inter_op": torch.get_num_interop_threads(),
            "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
            "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY"),
        },
        "timer": timer(),
    }
    if device.startswith("cuda") and torch.cuda.is_available():
        env["machine"]["gpu"] = torch.cuda.get_device_name(device)
    return env


def md_table(headers: Sequence[str], rows: Iterable[Sequence]) -> str:
    """A GitHub Markdown table; floats get 3 significant digits, trailing zeros kept (3.00, 0.500), and thousands
    separators from 1,000 on."""

    def cell(value) -> str:
        if isinstance(value, float):
            return f"{value:#.3g}".rstrip(".") if abs(value) < 1000 else f"{value:,.0f}"
        return "" if value is None else str(value)

    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def environment_md(env: dict) -> str:
    m, t = env["machine"], env["threads"]
    load = ", ".join(f"{x:.1f}" for x in m["load_average_1_5_15"] or [])
    vers = ", ".join(f"{k} {v}" for k, v in env["versions"].items())
    return (
        f"- Command: `{env['command']}`\n- Started: {env['started']}\n"
        f"- Machine: {m['cpu']} ({m['logical_cpus']} logical CPUs), {m['platform']}, device {m['device']}"
        f"{', ' + m['gpu'] if m.get('gpu') else ''}\n- Load average at start (1/5/15 min): {load}\n"
        f"- Threads: torch intra-op {t['torch_intra_op']}, inter-op {t['torch_inter_op']}, "
        f"OMP_NUM_THREADS={t['OMP_NUM_THREADS']}, OMP_WAIT_POLICY={t.get('OMP_WAIT_POLICY')}\n- Versions: {vers}\n"
    )


def write_report(name: str, data: dict, markdown: str, out_dir: str | os.PathLike | None = None) -> tuple[Path, Path]:
    """Write ``{name}.json`` and ``{name}.md`` atomically into ``out_dir`` (default ``reports/benchmarks``)."""
    import json

    from hgprune.fsutil import atomic_write_text

    out = Path(out_dir) if out_dir else REPORT_DIR
    json_path, md_path = out / f"{name}.json", out / f"{name}.md"
    atomic_write_text(json_path, json.dumps(data, indent=2, default=str) + "\n")
    atomic_write_text(md_path, markdown)
    return json_path, md_path


def add_model_arguments(parser, arch: str = "hg8", N: int = 128, M: int = 256, input_size: int = 256) -> None:
    """``--arch --N --M --input-size``: the model a speed benchmark measures (default the seed's hg8, M=256, 256 px)."""
    parser.add_argument("--arch", default=arch)
    parser.add_argument("--N", type=int, default=N)
    parser.add_argument("--M", type=int, default=M)
    parser.add_argument("--input-size", type=int, default=input_size)


def prune_copy(base, kept: float, size: int, round_to: int | None) -> tuple:
    """A pruned copy of ``base`` keeping ``kept`` of its conv MACs (see ``PRUNING``), in eval mode, and its facts."""
    import copy

    from hgprune.prune import prune_to_target

    model = copy.deepcopy(base)
    res = prune_to_target(model, kept=kept, input_size=size, round_to=round_to, **PRUNE_OPTIONS)
    info = {"kept_conv_macs": res.kept_macs, "channel_ratio": res.channel_ratio, "round_to": round_to}
    return model.eval(), info
