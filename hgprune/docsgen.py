"""Generated regions of README.md and docs/: results tables, the CLI reference and the recipe key reference.

Every number in a results table comes from a file in ``reports/``; the CLI reference comes from the argparse
parsers (:func:`hgprune.cli.build_parser`); the recipe key reference from :func:`recipe_key_rows`. A page holds a
region as::

    <!-- BEGIN generated:NAME -->
    ...rendered by RENDERERS[NAME]...
    <!-- END generated:NAME -->

``python -m hgprune.docsgen`` (``make docs``) rewrites every region; ``--check`` lists pages whose committed text
differs from what would be rendered (``tests/test_docsgen.py`` fails on any). Text outside regions is never touched.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import os
import re
import sys
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any
from unittest import mock

from hgprune import schema as _schema
from hgprune import settings as _settings
from hgprune.errors import HgpruneError
from hgprune.train.plateau import log_wall_s

ROOT = Path(__file__).resolve().parent.parent
REGION = re.compile(
    r"^(?P<begin><!-- BEGIN generated:(?P<name>[\w.-]+) -->\n)(?P<body>.*?)(?P<end><!-- END generated:(?P=name) -->)",
    re.S | re.M,
)
ANY_MARK = re.compile(r"^<!-- (BEGIN|END) generated:([\w.-]+) -->", re.M)


# ---------------------------------------------------------------------------------------------------------------
# helpers


def _json(root: Path, rel: str) -> dict:
    path = root / rel
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise HgpruneError(f"{rel}: cannot read the report ({exc})") from None


def _csv(root: Path, rel: str) -> list[dict[str, str]]:
    try:
        with open(root / rel, newline="") as f:
            return list(csv.DictReader(f))
    except OSError as exc:
        raise HgpruneError(f"{rel}: cannot read the report ({exc})") from None


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _signed(value: float, digits: int = 2) -> str:
    return f"{value:+.{digits}f}".replace("-", "−")


def _num(value: float, digits: int = 2) -> str:
    return f"{value:.{digits}f}".replace("-", "−")


def _interval(diff: dict) -> str:
    return f"{_signed(diff['mean'])} [{_signed(diff['low'])}, {_signed(diff['high'])}]"


def _verdict(met: bool) -> str:
    return "met" if met else "**missed**"


def _source(rel: str) -> str:
    return f"\n<sub>Generated from `{rel}` by `make docs`.</sub>\n"


# ---------------------------------------------------------------------------------------------------------------
# results tables (reports/)

ACCURACY = {"v3": "reports/benchmarks/accuracy.json", "v2": "reports/benchmarks/accuracy_v2.json"}
LATENCY = "reports/benchmarks/latency.json"
SWEEP_SUMMARY = "reports/sweep_hg1_hg8/tables/summary.csv"
SWEEP_VS_SCRATCH = "reports/sweep_hg1_hg8/tables/pruned_vs_scratch.csv"


def _mean(values) -> float:
    values = list(values)
    return sum(values) / len(values)


def accuracy_table(root: Path, version: str) -> str:
    """Mean PCKh per variant and budget with the per-seed values, then the paired differences with 95 % intervals."""
    rel = ACCURACY[version]
    results = _json(root, rel)["results"]
    seeds = list(results["parent"]["per_seed"])

    def cell(key: str) -> str:
        per_seed = results[key]["per_seed"]
        values = ", ".join(_num(per_seed[s]) for s in seeds)
        return f"{_num(_mean(per_seed.values()))} ({values}); {results[key]['kept_macs'] * 100:.1f} % MACs"

    parent = _num(_mean(results["parent"]["per_seed"].values()))
    rows = [["parent (unpruned)", parent, parent]]
    for variant, label in (("default", "default recipe"), ("random", "random criterion, same recipe")):
        rows.append([label, cell(f"{variant}-50"), cell(f"{variant}-25")])
    rows.append(["scratch (the seed's approach)", cell("scratch-50"), cell("scratch-25")])
    for other in ("parent", "random", "scratch"):
        rows.append(
            [
                f"default − {other}",
                _interval(results["default-50"][f"vs_{other}"]),
                _interval(results["default-25"][f"vs_{other}"]),
            ]
        )
    header = [f"PCKh, seeds {', '.join(seeds)}", "50 % MACs", "25 % MACs"]
    return _table(header, rows) + _source(rel)


def accuracy_goals(root: Path, version: str) -> str:
    rel = ACCURACY[version]
    goals = _json(root, rel)["goals"]
    rows = [[g["goal"], g["value"].replace("-", "−"), _verdict(g["met"])] for g in goals]
    return _table(["goal", "measured (mean [95 % interval])", "verdict"], rows) + _source(rel)


def _sweep_rows(root: Path) -> dict[str, dict[str, dict[str, str]]]:
    by_arch: dict[str, dict[str, dict[str, str]]] = {}
    for row in _csv(root, SWEEP_SUMMARY):
        arch, kind, kept = row["run"].split("-")
        by_arch.setdefault(arch, {})[f"{kind}-{kept}"] = row
    return dict(sorted(by_arch.items(), key=lambda item: int(item[0][2:])))


def sweep_table(root: Path) -> str:
    """Per architecture: the parent's PCKh, then the pruned and scratch models at 50 % and 25 % of the MACs."""
    gains = {row["pruned_run"]: float(row["pckh_gain"]) for row in _csv(root, SWEEP_VS_SCRATCH)}
    rows = []
    for arch, runs in _sweep_rows(root).items():
        any_run = next(iter(runs.values()))
        parent = float(any_run["pckh_mean"]) - float(any_run["pckh_delta"])
        row = [arch, _num(parent)]
        for kept in ("50", "25"):
            pruned, scratch = runs[f"taylor-{kept}"], runs[f"scratch-{kept}"]
            row += [
                f"{_num(float(pruned['pckh_mean']))} ({_signed(float(pruned['pckh_delta']))}) at "
                f"{float(pruned['macs_kept']) * 100:.1f} %",
                f"{_num(float(scratch['pckh_mean']))} at {float(scratch['macs_kept']) * 100:.1f} %",
                _signed(gains[f"{arch}-taylor-{kept}"]),
            ]
        rows.append(row)
    header = ["arch", "parent", "pruned 50 % (Δ parent)", "scratch 50 %", "pruned − scratch"]
    header += ["pruned 25 % (Δ parent)", "scratch 25 %", "pruned − scratch"]
    return _table(header, rows) + _source(f"{SWEEP_SUMMARY}` and `{SWEEP_VS_SCRATCH}")


def sweep_ranges(root: Path) -> str:
    """One line of the ranges the sweep's prose quotes, so none of them is typed by hand."""
    runs = _sweep_rows(root)
    out = []
    for kept in ("50", "25"):
        deltas = {arch: float(r[f"taylor-{kept}"]["pckh_delta"]) for arch, r in runs.items()}
        gains = [float(r["pckh_gain"]) for r in _csv(root, SWEEP_VS_SCRATCH) if r["pruned_run"].endswith(f"-{kept}")]
        wins = sum(g > 0 for g in gains)
        out.append(
            f"- at {kept} % of the MACs: change against the parent {_signed(min(deltas.values()))} to "
            f"{_signed(max(deltas.values()))} PCKh; pruned beats scratch in {wins} of {len(gains)} architectures "
            f"({_signed(min(gains))} to {_signed(max(gains))})"
        )
    return "\n".join(out) + "\n" + _source(SWEEP_SUMMARY)


def latency_table(root: Path) -> str:
    """hg8 at 25 % MACs against unpruned: medians, speedups, efficiencies and the goals, from the benchmark JSON."""
    data = _json(root, LATENCY)
    ms = {k: v["median"] for k, v in data["latency_ms"].items()}
    pruned, goals = data["pruned"]["kept25"], data["goals"]
    minimum = data["from_min_latency"]["pruned"]["kept25"]
    reduction = pruned["macs_reduction_fvcore"]

    def ratio(key: str, goal: float | None) -> list[str]:
        speed = pruned[f"speedup_{key}"]
        eff = pruned[f"efficiency_{key}"]
        verdict = "" if goal is None else f"≥ {goal}: {_verdict(eff >= goal)}"
        return [f"{speed:.2f}× → efficiency {eff:.3f} (min-based {minimum[f'efficiency_{key}']:.3f})", verdict]

    rows = [
        [
            "eager PyTorch",
            f"{ms['unpruned/eager']:.0f}",
            f"{ms['kept25/eager']:.0f}",
            *ratio("eager", goals["eager_efficiency"]),
        ],
        [
            "eager, BatchNorm folded",
            f"{ms['unpruned/eager+fold']:.0f}",
            f"{ms['kept25/eager+fold']:.0f}",
            *ratio("eager+fold", None),
        ],
        [
            "ONNX Runtime FP32",
            f"{ms['unpruned/ort']:.0f}",
            f"{ms['kept25/ort']:.1f}",
            *ratio("ort", goals["ort_efficiency"]),
        ],
        [
            "ONNX Runtime INT8",
            f"{ms['unpruned/ort_int8']:.0f}",
            f"{ms['kept25/ort_int8']:.1f}",
            *ratio("ort_int8", None),
        ],
    ]
    for key, label, goal in (
        ("end_to_end_eager_to_ort", "end to end: unpruned eager → pruned ORT FP32", goals["end_to_end_at_25"]),
        (
            "end_to_end_eager_to_ort_int8",
            "end to end: unpruned eager → pruned ORT INT8",
            goals["end_to_end_int8_at_25"],
        ),
    ):
        rows.append(
            [
                label,
                "",
                "",
                f"{pruned[key]:.2f}× (min-based {minimum[key]:.2f}×)",
                f"≥ {goal:g}×: {_verdict(pruned[key] >= goal)}",
            ]
        )
    settings = data["settings"]
    header = [
        f"{settings['arch']} N={settings['N']} M={settings['M']}, {settings['input_size']}², "
        f"batch {settings['batch_size']}, {settings['threads']} threads (median ms of {settings['repeats']})",
        "unpruned",
        f"{data['models']['kept25']['kept_conv_macs'] * 100:.1f} % conv MACs ({reduction:.2f}× fewer fvcore MACs)",
        "speedup",
        "goal",
    ]
    return _table(header, rows) + _source(LATENCY)


def latency_levers(root: Path) -> str:
    data = _json(root, LATENCY)
    medians, minima = data["levers_speedup"], data["from_min_latency"]["levers_speedup"]
    rows = [[name, f"{value:.3g}", f"{minima[name]:.3g}"] for name, value in medians.items()]
    return _table(["lever, alone on the 25 % model (> 1 = faster)", "from medians", "from minima"], rows) + _source(
        LATENCY
    )


def goals_table(root: Path) -> str:
    """The README's results table: every goal of every benchmark, its measured value and verdict."""
    rows = []
    for g in _json(root, ACCURACY["v3"])["goals"]:
        rows.append([f"accuracy (study v3): {g['goal']}", g["value"].replace("-", "−"), _verdict(g["met"])])
    lat = _json(root, LATENCY)
    pruned, goals = lat["pruned"]["kept25"], lat["goals"]
    for key, goal_key, label in (
        ("efficiency_eager", "eager_efficiency", "hg8 at 25 % MACs, eager speedup ÷ MACs reduction"),
        ("efficiency_ort", "ort_efficiency", "same, ONNX Runtime"),
    ):
        rows.append([f"{label} ≥ {goals[goal_key]}", f"{pruned[key]:.3f}", _verdict(pruned[key] >= goals[goal_key])])
    for key, goal_key, label in (
        ("end_to_end_eager_to_ort", "end_to_end_at_25", "same, end to end unpruned eager → pruned ORT"),
        ("end_to_end_eager_to_ort_int8", "end_to_end_int8_at_25", "same, → pruned ORT INT8"),
    ):
        rows.append(
            [f"{label} ≥ {goals[goal_key]:g}×", f"{pruned[key]:.2f}×", _verdict(pruned[key] >= goals[goal_key])]
        )
    data = _json(root, "reports/benchmarks/data.json")
    best = data["images_per_s_per_worker"]["hgprune (OpenCV, reduced decode)"]
    rows.append(
        [
            f"data pipeline, 256² crops + heatmaps per worker ≥ {data['goal_images_per_s']} img/s",
            f"{best:g} img/s",
            _verdict(best >= data["goal_images_per_s"]),
        ]
    )
    engine = _json(root, "reports/benchmarks/engine.json")["goals"]
    rows.append(
        [
            "prune step ÷ raw torch-pruning ≤ 1.5 (worst arch)",
            f"{engine['worst_wall_ratio']:.2f}",
            _verdict(engine["ratio_met"]),
        ]
    )
    rows.append(["hg8 prune step < 10 s", f"{engine['hg8_wall_s']:g} s", _verdict(engine["hg8_under_10s_met"])])
    profile = _json(root, "reports/benchmarks/profile.json")
    rows.append(
        [
            f"full hg8 profile ≤ {profile['goal_s']:g} s",
            f"{profile['profile_model_wall_s']:.1f} s",
            _verdict(profile["goal_met"]),
        ]
    )
    rows += _speed_goal_summary(root)
    sources = "`, `".join(
        [
            ACCURACY["v3"],
            LATENCY,
            "reports/benchmarks/data.json",
            "reports/benchmarks/engine.json",
            "reports/benchmarks/profile.json",
            DEPTH,
            LATENCY_MODEL,
            LATENCY_TARGETS,
        ]
    )
    return _table(["goal", "measured", "verdict"], rows) + _source(sources)


DEPTH = "reports/benchmarks/depth.json"
LATENCY_MODEL = "reports/benchmarks/latency_model.json"
LATENCY_TARGETS = "reports/benchmarks/latency_targets.json"
GPU_TARGET = "reports/benchmarks/gpu_latency_target.json"
GPU_COMMAND = "python -m benchmarks.gpu_latency_target"


def _speed_goal_summary(root: Path) -> list[list[str]]:
    """The README's one row per goal of issues 30 and 31 (each measured in several cases: how many met, the worst);
    the cases are listed by :func:`speed_goals` in docs/latency.md."""
    depth, latency = _depth_goals(root), _latency_goals(root)
    groups = [
        ("depth-pruned hg8 speedup ÷ MACs reduction ≥ 0.9 (paper and sweep scale, 50/25 %, ORT and eager)", depth),
        ("latency model, median / worst abs error ≤ 10 % / 25 % (per scale and runtime)",
         [r for r in latency if r[0].startswith("latency model")]),
        ("latency target met within +5 % when measured (per scale, runtime, 50/25 %)",
         [r for r in latency if r[0].startswith("latency targets (") and "latency target 0" in r[0]]),
        ("end to end, unpruned eager → INT8 ORT at the 25 % ORT latency target ≥ 15×",
         [r for r in latency if "INT8" in r[0]]),
        ("search cost: latency-targeted prune step ≤ 2× a MACs-targeted one", [r for r in latency if "search" in r[0]]),
    ]  # fmt: skip
    rows = []
    for label, cases in groups:
        met = sum(r[2] == _verdict(True) for r in cases)
        values = ", ".join(r[1] for r in cases)
        verdict = _verdict(met == len(cases)) + ("" if all(r[3] == SETTLED for r in cases) else f" ({UNSETTLED})")
        rows.append([label, f"{met} of {len(cases)} met: {values}", verdict])
    return rows


SETTLED, UNSETTLED = "settled", "timed before the timer settled each call: to re-measure"


def _timer(data: dict) -> str:
    """Whether a benchmark report was timed with each call settled first (``hgprune.timing.SETTLE_MS``, since
    2026-12-07; before it, ORT's spinning thread pools inflated interleaved timings of small models)."""
    timer = data.get("timer") or (data.get("environment") or {}).get("timer") or {}
    return SETTLED if timer.get("settle_ms") else UNSETTLED


def speed_goals(root: Path) -> str:
    """Every case of the depth and latency goals (docs/latency.md), and whether its timer settled each call."""
    rows = _depth_goals(root) + _latency_goals(root)
    return _table(["goal", "measured", "verdict", "timer"], rows) + _source(
        f"{DEPTH}`, `{LATENCY_MODEL}`, `{LATENCY_TARGETS}"
    )


def _depth_goals(root: Path) -> list[list[str]]:
    """Issue 30's goal: speedup efficiency of depth-pruned (``depth-all``) hg8 per scale, budget and runtime."""
    data = _json(root, DEPTH)
    timer = _timer(data)
    rows = []
    for scale in data["scales"]:
        for row in scale["rows"]:
            if not row["model"].startswith("depth-all@"):
                continue
            for runtime, title in (("ort", "ONNX Runtime"), ("eager", "eager")):
                eff = row[runtime]["efficiency"]
                goal = data["goal_efficiency"]
                rows.append([f"depth-pruned hg8 ({scale['scale']}, {row['model'].split('@')[1]} MACs), {title} "
                             f"speedup ÷ MACs reduction ≥ {goal}", f"{eff:.3f}", _verdict(eff >= goal),
                             timer])  # fmt: skip
    return rows


def depth_speed(root: Path) -> str:
    """Issue 30's measurement: channel-only against depth pruning of hg8 at the same MACs, per scale (docs/depth.md)."""
    data = _json(root, DEPTH)
    rows = []
    for scale in data["scales"]:
        for row in scale["rows"]:
            if row["model"] == "parent":
                continue
            rows.append([scale["scale"], row["model"], f"{row['kept_macs']:.3f}"] + [
                f"{row[rt]['speedup']:.2f}× ({row[rt]['efficiency']:.2f})" for rt in ("ort", "eager")])  # fmt: skip
    header = ["scale", "pruned hg8", "kept MACs", "ONNX Runtime speedup (efficiency)", "eager speedup (efficiency)"]
    return _table(header, rows) + _source(DEPTH)


DEPTH_DEFAULT = "reports/depth_default/report.json"


def depth_default(root: Path) -> str:
    """The depth-default study (issue 30): PCKh of `all` − `none` per MACs target, paired by seed, and the verdict."""
    data = _json(root, DEPTH_DEFAULT)
    rows = []
    for key, entry in data["targets"].items():
        diff, v = entry["pckh_all_minus_none"], entry["verdict"]
        pckh = {d: entry[d]["pckh"] for d in ("none", "all")}
        means = [f"{_mean(pckh[d].values()):.2f} (n={len(pckh[d])})" if pckh[d] else "–" for d in ("none", "all")]
        ort = entry["speedup_all_over_none"]["ort_ms"]
        rows.append([f"{key} %", *means, f"{_interval(diff)} (n={diff['n']})" if diff else "–",
                     ", ".join(f"{x:.2f}×" for x in ort.values()) or "–",
                     ("no worse" if v["no_worse"] else "**worse**") if v["complete"] else "incomplete"])  # fmt: skip
    header = ["MACs kept", "PCKh, none", "PCKh, all", "all − none [95 % CI]", "ORT speedup of all, per seed",
              "verdict"]  # fmt: skip
    default = data["default"]
    verdict = (f"\nDecided by the protocol: the default is `prune.depth: {default}`.\n" if default else
               "\nNot decided yet: a pair is unfinished or unmeasured.\n")  # fmt: skip
    return _table(header, rows) + verdict + _source(DEPTH_DEFAULT)


EQUAL_LATENCY = "reports/benchmarks/equal_latency.json"
EQUAL_LATENCY_STATUS = "reports/equal_latency/STATUS.md"
EQUAL_LATENCY_VARIANTS = ("latency", "macs", "smaller", "random")
EQUAL_LATENCY_RECIPES = "recipes/equal_latency"  # one recipe per column and budget: the winner's is the recommendation


def equal_latency(root: Path) -> str:
    """Issue 32's answer: per budget (2× and 4× faster than the hg8 parent in ORT), each choice's mean PCKh, the best
    within budget, and `latency` − each other choice paired by seed with the protocol's goal on it (met, missed, or not
    measured below 2 seeds); a line saying so while nothing is measured."""
    if not (root / EQUAL_LATENCY).exists():
        return (f"Not measured yet: no variant of the study has finished its latency pass (`{EQUAL_LATENCY_STATUS}` "
                "says where it stands).\n")  # fmt: skip
    data = _json(root, EQUAL_LATENCY)
    results, winners = data["results"], data["winners"]
    verdicts = {(g["budget"], g["versus"]): g["met"] for g in data["goals"]}
    shown = {True: "met", False: "**missed**", None: "goal not measured yet"}
    parent = results["parent"]["per_seed"]
    compared = ("parent", *EQUAL_LATENCY_VARIANTS[1:])
    rows = []
    for pct in ("50", "25"):
        cells = []
        for variant in EQUAL_LATENCY_VARIANTS:
            r = results.get(f"{variant}-{pct}")
            over = ""
            if r and r["over_budget"]:
                over = f" ({r['mean_ratio']:.2f}× the budget)" if r["mean_ratio"] else " (over budget)"
            elif r and r["unmeasured"]:
                over = " (latency not measured)"
            cells.append(f"{_num(r['mean_pckh'])} (n={len(r['per_seed'])}){over}" if r else "–")
        latency = results.get(f"latency-{pct}", {})
        diffs = []
        for other in compared:
            d = latency.get(f"vs_{other}")
            goal = (int(pct), other)
            verdict = f": {shown[verdicts[goal]]}" if goal in verdicts else ""
            single = latency.get("by_seed", {}).get(other)  # below 2 seeds: the per-seed difference, no interval
            shown_d = f"{_interval(d)} (n={d['n']})" if d else ", ".join(f"seed {k}: {_signed(v)}" for k, v in
                                                                           (single or {}).items())  # fmt: skip
            diffs.append(f"{shown_d}{verdict}" if shown_d else "–")
        win = winners.get(pct)
        best = (f"`{win['variant']}` (n={win.get('n')}): `{EQUAL_LATENCY_RECIPES}/{win['variant']}-{pct}.yaml`"
                if win else "none yet")  # fmt: skip
        rows.append([f"{100 // int(pct)}× ({pct} %)", f"{_num(_mean(parent.values()))} (n={len(parent)})" if parent
                     else "–", *cells, best, *diffs])  # fmt: skip
    header = ["faster (ORT budget)", "hg8 parent", *(f"`{v}`" for v in EQUAL_LATENCY_VARIANTS),
              "most PCKh within budget: its recipe", *(f"latency − {v} [95 % CI]: goal" for v in compared)]  # fmt: skip
    return _table(header, rows) + _source(EQUAL_LATENCY)


def equal_latency_goals(root: Path) -> str:
    """Issue 32's goals in full, as the protocol states them (docs/studies/equal_latency.md)."""
    if not (root / EQUAL_LATENCY).exists():
        return "Not measured yet.\n"
    verdict = {True: "met", False: "**missed**", None: "not measured yet"}
    goals = _json(root, EQUAL_LATENCY)["goals"]
    rows = [[g["goal"].replace("-", "−"), g["value"].replace("-", "−"), verdict[g["met"]]] for g in goals]
    return _table(["goal", "measured (mean [95 % interval])", "verdict"], rows) + _source(EQUAL_LATENCY)


def equal_latency_family(root: Path) -> str:
    """The study's exploratory runs: ``latency`` at 50 % and 25 % from the sweep's seed-0 hg4–hg7 parents (one seed
    each): each parent's and result's PCKh and measured ORT latency; a line saying so while none has finished."""
    family = _json(root, EQUAL_LATENCY).get("family", []) if (root / EQUAL_LATENCY).exists() else []
    if not family:
        return "Not measured yet: no exploratory family run has finished its latency pass.\n"
    rows = []
    for r in family:
        arch, _, pct = r["run"].split("-")
        change = None if r["parent_pckh"] is None else r["pckh"] - r["parent_pckh"]
        speed = r["parent_ort_ms"] / r["ort_ms"] if r["parent_ort_ms"] and r["ort_ms"] else None
        rows.append([arch, f"{pct} %", _num(r["parent_pckh"]) if r["parent_pckh"] is not None else "–",
                     _num(r["pckh"]), _signed(change) if change is not None else "–",
                     f"{r['parent_ort_ms']:.3f} → {r['ort_ms']:.3f}" if speed else "not measured",
                     f"{speed:.2f}×" if speed else "–", f"{r['ratio']:.2f}" if r["ratio"] else "–"])  # fmt: skip
    header = ["parent (seed 0)", "ORT budget", "parent PCKh", "`latency` PCKh", "change", "ORT ms", "speedup",
              "measured ÷ budget"]  # fmt: skip
    return _table(header, rows) + _source(EQUAL_LATENCY)


def _latency_goals(root: Path) -> list[list[str]]:
    """Issue 31's goals: the latency model's errors and the latency targets' checks."""
    rows = []
    model = _json(root, LATENCY_MODEL)
    for r in model["results"]:
        rows.append([f"latency model ({r['scale']}, {r['runtime']}): median / worst abs error ≤ 10 % / 25 %",
                     f"{100 * r['median_abs_error']:.1f} % / {100 * r['worst_abs_error']:.1f} %",
                     _verdict(r["goal_met"]), _timer(model)])  # fmt: skip
    targets = _json(root, LATENCY_TARGETS)
    for scale in targets["scales"]:
        for check in scale["checks"]:
            value = check.get("measured", check.get("measured_kept"))
            rows.append([f"latency targets ({check['goal']}; limit {check['limit']:g})", f"{value:g}",
                         _verdict(check["met"]), _timer(targets)])  # fmt: skip
    goal = "GPU (paper, fp16 CUDA graph, batch 1): latency target 0.5 measured ≤ 0.55 of the parent"
    if (root / GPU_TARGET).is_file():
        gpu = _json(root, GPU_TARGET)["target"]
        rows.append([goal, f"{gpu['measured_ratio']:.3f}", _verdict(gpu["met"]), SETTLED])
    else:  # the goal says to say so when no GPU is at hand
        rows.append([goal, f"not measured: no GPU lent since the latency target landed (`{GPU_COMMAND}`)", "–", "–"])
    return rows


def latency_predictor(root: Path) -> str:
    data = _json(root, LATENCY)
    table = data["predictor_throughput"]
    backends = list(table["unpruned"])
    rows = []
    for backend in backends:
        before, after = table["unpruned"][backend]["images_per_s"], table["kept25"][backend]["images_per_s"]
        rows.append([backend, f"{before:.3g}", f"{after:.3g}", f"{after / before:.2f}×"])
    return _table(["predictor backend (images/s, median)", "unpruned", "25 % MACs", "speedup"], rows) + _source(LATENCY)


def data_pipeline(root: Path) -> str:
    rel = "reports/benchmarks/data.json"
    data = _json(root, rel)
    rows = [
        [name, f"{rate:g}", f"{data['ratio_vs_seed_style'][name]:g}"]
        for name, rate in data["images_per_s_per_worker"].items()
    ]
    return _table(["pipeline", "images/s per worker", "× seed-style"], rows) + _source(rel)


def gpu_table(root: Path) -> str:
    """hg8 on the lent GPU: batch 1 eager fp32 and fp16 + CUDA graph, batch 32 fp16 + CUDA graph."""
    rel = "reports/benchmarks/gpu_latency.json"
    data = _json(root, rel)
    cells = {(r["model"], r["batch"], r["form"]): r for r in data["rows"]}
    rows = []
    for model, label in (("unpruned", "unpruned"), ("kept50", "50 % MACs"), ("kept25", "25 % MACs")):
        gmacs = data["macs_fvcore"][model] / 1e9
        big = cells[(model, 32, "fp16+graph")]
        speed = "" if model == "unpruned" else f", {big['speedup_vs_unpruned']:.2f}×"
        rows.append(
            [
                f"{label} ({gmacs:.1f} GMACs)",
                f"{cells[(model, 1, 'fp32')]['median_ms']:.1f} ms",
                f"{cells[(model, 1, 'fp16+graph')]['median_ms']:.2f} ms",
                f"{big['median_ms']:.1f} ms ({big['images_per_s']:,.0f} img/s){speed}",
            ]
        )
    s = data["settings"]
    header = [f"{s['arch']} N={s['N']} M={s['M']}, {s['input_size']} px", "batch 1, eager fp32"]
    header += ["batch 1, fp16 + CUDA graph", f"batch {s['batch']}, fp16 + CUDA graph"]
    return _table(header, rows) + _source(rel)


SWEEP_PARENTS = "reports/sweep_hg1_hg8/parents"


def sweep_parent_hours(root: Path) -> str:
    """Training time of the sweep's eight parents: the sum of their committed logs' epoch wall times."""
    per_arch = {}
    for log in sorted((root / SWEEP_PARENTS).glob("*/log.csv"), key=lambda p: int(p.parent.name[2:])):
        per_arch[log.parent.name] = log_wall_s(log) / 3600
    if not per_arch:
        raise HgpruneError(f"{SWEEP_PARENTS}: no */log.csv")
    parts = ", ".join(f"{arch} {hours:.2f}" for arch, hours in per_arch.items())
    return (
        f"  {sum(per_arch.values()):.1f} hours of epoch wall time for all eight, one process each ({parts}; "
        f"the sum of `wall_s` in `{SWEEP_PARENTS}/*/log.csv`).\n"
    )


def quickstart_recipe(root: Path) -> str:
    rel = "recipes/quickstart.yaml"
    return "```yaml\n" + (root / rel).read_text() + "```\n"


def prune_signature(root: Path) -> str:
    import inspect

    from hgprune.prune import prune_to_target

    signature = inspect.signature(prune_to_target)
    bare = signature.replace(
        parameters=[p.replace(annotation=inspect.Parameter.empty) for p in signature.parameters.values()],
        return_annotation=inspect.Signature.empty,
    )
    text = f"prune_to_target{bare} -> PruneResult"
    lines, line = [], ""
    for word in text.split(" "):
        if len(line) + len(word) + 1 > 110:
            lines.append(line.rstrip())
            line = "    "
        line += word + " "
    lines.append(line.rstrip())
    return "```python\n" + "\n".join(lines) + "\n```\n"


# ---------------------------------------------------------------------------------------------------------------
# the CLI reference (hgprune/cli.py and hgprune/commands/)


def commands_table(root: Path) -> str:
    """One line per sub-command, from hgprune/cli.py's COMMANDS and each command's positional arguments."""
    from hgprune.cli import COMMANDS, build_parser

    rows = []
    for name, (_, help_text) in COMMANDS.items():
        parser = build_parser(name)
        command = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[name]
        words = []
        for action in command._actions:
            if isinstance(action, argparse._SubParsersAction):
                words.append("{" + ",".join(action.choices) + "}")
            elif not action.option_strings:
                word = (action.metavar or action.dest).upper() + (" …" if action.nargs in ("*", "+") else "")
                words.append(f"[{word}]" if action.nargs in ("?", "*") else word)
        rows.append([f"`{' '.join(['hgprune', name, *words])}`", help_text])
    return _table(["command", "what it does"], rows)


def _flag_default(action: argparse.Action) -> str:
    if action.default in (None, argparse.SUPPRESS) or isinstance(
        action, (argparse._StoreTrueAction, argparse._HelpAction)
    ):
        return ""
    if isinstance(action.default, bool):
        return ""
    if isinstance(action.default, (list, tuple)):
        return " ".join(str(v) for v in action.default)
    return str(action.default)


def _help(action: argparse.Action) -> str:
    text = action.help or ""
    if "%(" in text:
        params = dict(vars(action), prog="hgprune")
        params = {k: (", ".join(map(str, v)) if isinstance(v, (list, tuple)) else v) for k, v in params.items()}
        try:
            text = text % params
        except (KeyError, TypeError, ValueError):
            pass
    return " ".join(text.split()).replace("|", "\\|")


def _parser_rows(parser: argparse.ArgumentParser) -> tuple[list[list[str]], dict[str, argparse.ArgumentParser]]:
    rows, subs = [], {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help for choice in action._choices_actions}
            for name, sub in action.choices.items():
                sub.description = sub.description or helps.get(name)
            subs.update(action.choices)
            continue
        if isinstance(action, argparse._HelpAction) or action.dest == "debug":
            continue
        if action.option_strings:
            name = ", ".join(f"`{o}`" for o in action.option_strings)
        else:
            name = f"`{action.metavar or action.dest}`" + (" …" if action.nargs in ("*", "+") else "")
        if action.choices and not isinstance(action.choices, dict):
            name += " {" + ", ".join(str(c) for c in action.choices) + "}"
        rows.append([name.replace("|", "\\|"), _flag_default(action).replace("|", "\\|"), _help(action)])
    return rows, subs


def _cli_text() -> str:
    from hgprune.cli import COMMANDS, build_parser

    out = []
    for name, (_, summary) in COMMANDS.items():
        parser = build_parser(name)
        command = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[name]
        rows, subs = _parser_rows(command)
        out.append(f"### `hgprune {name}`\n\n{summary}.\n")
        if rows:
            out.append(_table(["argument", "default", "meaning"], rows))
        for sub_name, sub in subs.items():
            sub_rows, _ = _parser_rows(sub)
            summary = (sub.description or "").strip()
            out.append(f"#### `hgprune {name} {sub_name}`\n\n{summary}{'.' if summary else ''}\n")
            out.append(_table(["argument", "default", "meaning"], sub_rows))
    return "\n".join(out)


def cli_reference(root: Path) -> str:
    """Every sub-command's arguments, defaults and help, read from the real parsers.

    A default computed from the machine (a worker count from ``os.cpu_count()``) is rendered as such, so the page
    is the same on every machine: the parsers are built twice, on a pretend 1-CPU and 64-CPU machine.
    """
    with mock.patch("os.cpu_count", return_value=1):
        one = _cli_text()
    with mock.patch("os.cpu_count", return_value=64):
        many = _cli_text()
    if one == many:
        return one
    lines = []
    for a, b in zip(one.splitlines(), many.splitlines(), strict=True):
        if a == b:
            lines.append(a)
            continue
        cells_a, cells_b = a.split(" | "), b.split(" | ")
        lines.append(
            " | ".join(x if x == y else "depends on the CPU count" for x, y in zip(cells_a, cells_b, strict=True))
        )
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------------------------
# the recipe key reference (hgprune/recipe.py)


@dataclasses.dataclass(frozen=True)
class KeyRow:
    """One recipe key: its dotted path, type, default, bounds and help. What the key reference renders."""

    path: str
    type: str
    default: str
    bounds: str
    help: str


def _field_comments(cls: type) -> dict[str, str]:
    """The comment on (or directly above) each field of a recipe dataclass: today's home of a key's help."""
    import inspect

    try:
        lines = inspect.getsource(cls).splitlines()
    except (OSError, TypeError):
        return {}
    comments: dict[str, str] = {}
    above: list[str] = []
    pattern = re.compile(r"^    (\w+): [^#]*?(?:#\s*(.*))?$")
    for line in lines:
        stripped = line.strip()
        if stripped.startswith("#") and line.startswith("    #"):
            above.append(stripped.lstrip("#").strip())
            continue
        match = pattern.match(line)
        if match:
            name, trailing = match.group(1), match.group(2)
            # a block that starts "defaults = ..." above a section's first field describes the section, not the field
            if above and above[0].startswith("defaults ="):
                above = []
            text = " ".join(above + ([trailing] if trailing else []))
            if text:
                comments[name] = text
        if not line.startswith("        "):
            above = []
    return comments


def _shown_default(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value)


# Help for the keys hgprune/recipe.py gives no comment. A stop-gap until the schema carries a description per key
# (the pydantic schema's Field(description=...)): recipe_key_rows prefers the schema's own text.
KEY_HELP: dict[str, str] = {
    "seed": "seeds weights, data order and random criteria; results repeat for a seed and thread count",
    "device": "where training and evaluation run",
    "model": "the architecture a baseline is trained as, or an imported one must match",
    "model.N": "stem width (conv1 has N/2 channels), as the seed's code uses it",
    "model.M": "trunk width",
    "model.num_joints": "heatmaps per stack (MPII: 16)",
    "model.input_size": "square input side in pixels",
    "baseline": "the unpruned model: a checkpoint, or trained from scratch with `train`",
    "*.train": "optimisation: RMSprop with the seed's step schedule",
    "*.train.epochs": "epochs of training",
    "*.train.lr": "learning rate",
    "*.train.momentum": "RMSprop momentum",
    "*.train.weight_decay": "L2 weight decay",
    "*.train.schedule": "epochs after which the rate is multiplied by `gamma`",
    "*.train.gamma": "the rate's factor at each `schedule` epoch",
    "*.train.batch_size": "training batch size",
    "data": "the dataset every stage reads",
    "data.dataset": "SynthPose (generated, no download) or MPII (docs/data.md)",
    "data.synth": "SynthPose's parameters (hgprune.data.synthpose.SynthConfig documents each)",
    "data.synth.num_train": "training people",
    "data.synth.num_val": "validation people",
    "data.synth.size": "image side in pixels (128 for 64-px inputs, 256 for 128, 512 for 256)",
    "data.synth.seed": "generation seed: the same parameters give identical bytes",
    "data.synth.max_rotation": "largest figure rotation, degrees",
    "data.synth.occlusion_prob": "fraction of figures with an occluder",
    "data.synth.max_distractors": "unlabelled figures behind the labelled one, at most",
    "data.synth.clutter": "background shapes",
    "data.synth.noise": "largest pixel-noise standard deviation",
    "data.workers": "DataLoader worker processes",
    "data.calibration_batches": "training batches a criterion's calibrate hook sees (Taylor)",
    "data.val_limit": "score only the first N validation people",
    "prune": "how the model is pruned: docs/pruning.md",
    "prune.target": "what the final model keeps",
    "prune.target.kind": "conv MACs, parameters or channels",
    "prune.target.kept": "fraction of the unpruned model's `kind` kept after the last step",
    "prune.steps": "prune → fine-tune cycles",
    "prune.schedule": "kept fraction after each step (docs/pruning.md, schedules)",
    "prune.search": "bounds of `allocation: search`",
    "prune.search.batch_size": "batch size while scoring candidates",
    "prune.prune_trunk": "also prune the M-wide trunk shared by every stack",
    "prune.round_to": "kept widths are multiples of this",
    "prune.round_mode": "how widths are rounded to `round_to`",
    "prune.max_layer_ratio": "no group loses more than this fraction of its unpruned width, over all steps",
    "prune.part_ratios": "multipliers of the searched ratio per part: stem, hg{s}, res{s}, fc{s}, trunk, *",
    "prune.tolerance": "accepted distance from a step's target, in kept-fraction units",
    "finetune": "training after each prune step",
    "finetune.epochs_per_step": "fine-tuning epochs after each step",
    "finetune.final_epochs": "extra epochs after the last step",
    "finetune.bn_l1": "network-slimming L1 penalty on BatchNorm γ",
    "finetune.distill": "heatmap distillation from the unpruned model",
    "finetune.distill.weight": "weight of the heatmap MSE to the unpruned model (0 = off)",
    "eval": "validation after every step",
    "eval.batch_size": "evaluation batch size",
    "eval.flip_test": "average with the mirrored image's heatmaps",
    "profile": "what is measured after every step",
    "profile.latency": "measure latency (off: params and MACs only)",
    "profile.repeats": "timed forward passes",
    "profile.warmup": "untimed forward passes first",
    "profile.threads": "torch threads while timing (default: torch's)",
    "profile.thop": "also count MACs with thop (fvcore always)",
    "export": "what the finished run writes (docs/deploy.md)",
    "output": "where and what a run writes besides its metrics",
    "sweep": "a grid of runs sharing everything else (docs/scaling.md)",
    "sweep.arch": "architectures, hg1 … hg8",
    "sweep.criterion": "criteria, by registered name",
    "sweep.kept": "final kept fractions",
}


def _key_help(path: str, comment: str) -> str:
    if comment:
        return comment
    if path in KEY_HELP:
        return KEY_HELP[path]
    parts = path.split(".")
    for i in range(1, len(parts)):
        wildcard = "*." + ".".join(parts[i:])
        if wildcard in KEY_HELP:
            return KEY_HELP[wildcard]
    return ""


def _type_name(tp: Any) -> str:
    """A settings type in words (``one of 'a', 'b'``, ``an integer``, ``a list of a number``)."""
    bare, _ = _schema._unwrap(tp)
    origin = typing.get_origin(bare)
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(bare))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(bare) if a is not type(None))
    if origin in (list, tuple):
        return f"a list of {_type_name(typing.get_args(bare)[0])}"
    if origin is dict:
        return f"a mapping of {_type_name(typing.get_args(bare)[1])}"
    if dataclasses.is_dataclass(bare):
        return "a mapping"
    words = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}
    return next((w for t, w in words.items() if isinstance(bare, type) and issubclass(bare, t)), str(bare))


def recipe_key_rows() -> list[KeyRow]:
    """Every key a recipe accepts, depth first, read from the one definition of the settings
    (:mod:`hgprune.settings`): type, default, bounds (each type's :class:`~hgprune.schema.Rule`) and help (each
    field's description, else the comment beside it, else :data:`KEY_HELP`)."""
    rows: list[KeyRow] = []

    def walk(cls: type, instance: Any, prefix: str) -> None:
        types_ = _schema.field_types(cls)
        comments = _field_comments(cls)
        for name, info in cls.__pydantic_fields__.items():
            tp = types_[name]
            bare, metadata = _schema._unwrap(tp)
            path = f"{prefix}{name}"
            value = getattr(instance, name) if instance is not None else None
            help_text = _key_help(path, info.description or comments.get(name, ""))
            if dataclasses.is_dataclass(bare):
                optional = _schema._optional(tp)
                rows.append(KeyRow(path, "a mapping" + (" or null" if optional else ""),
                                   "null" if value is None else "", "", help_text))  # fmt: skip
                walk(bare, value if value is not None else bare(), path + ".")
                continue
            rule = next((m.text for m in metadata if isinstance(m, _schema.Rule)), "")
            name_ = _type_name(tp) + (" or null" if _schema._optional(tp) else "")
            rows.append(KeyRow(path, name_, _shown_default(value), rule, help_text))

    walk(_settings.Recipe, _settings.Recipe(), "")
    return rows


def recipe_keys(root: Path) -> str:
    def esc(text: str) -> str:
        return text.replace("|", "\\|")

    rows = [
        [f"`{r.path}`", esc(r.type), f"`{esc(r.default)}`" if r.default else "", esc(r.bounds), esc(r.help)]
        for r in recipe_key_rows()
    ]
    return _table(["key", "type", "default", "bounds", "help"], rows)


# ---------------------------------------------------------------------------------------------------------------

RENDERERS: dict[str, Callable[[Path], str]] = {
    "goals": goals_table,
    "speed-goals": speed_goals,
    "depth-speed": depth_speed,
    "depth-default": depth_default,
    "equal-latency": equal_latency,
    "equal-latency-goals": equal_latency_goals,
    "equal-latency-family": equal_latency_family,
    "accuracy-v3": lambda root: accuracy_table(root, "v3"),
    "accuracy-v3-goals": lambda root: accuracy_goals(root, "v3"),
    "accuracy-v2": lambda root: accuracy_table(root, "v2"),
    "accuracy-v2-goals": lambda root: accuracy_goals(root, "v2"),
    "sweep": sweep_table,
    "sweep-ranges": sweep_ranges,
    "latency": latency_table,
    "latency-levers": latency_levers,
    "latency-predictor": latency_predictor,
    "sweep-parent-hours": sweep_parent_hours,
    "quickstart-recipe": quickstart_recipe,
    "prune-signature": prune_signature,
    "data-pipeline": data_pipeline,
    "gpu": gpu_table,
    "cli": cli_reference,
    "commands": commands_table,
    "recipe-keys": recipe_keys,
}


def pages(root: Path = ROOT) -> list[Path]:
    """README.md and every Markdown page under docs/."""
    return [root / "README.md", *sorted((root / "docs").rglob("*.md"))]


def render(text: str, root: Path = ROOT, where: str = "") -> str:
    """``text`` with every generated region re-rendered; an unknown or unbalanced region is an error naming it."""
    marks = ANY_MARK.findall(text)
    regions = REGION.findall(text)
    if len(marks) != 2 * len(regions):
        raise HgpruneError(
            f"{where}: unbalanced generated-region markers ({len(marks)} markers, {len(regions)} regions)"
        )
    cache: dict[str, str] = {}

    def replace(match: re.Match) -> str:
        name = match.group("name")
        if name not in RENDERERS:
            raise HgpruneError(f"{where}: unknown generated region {name!r} (known: {', '.join(RENDERERS)})")
        if name not in cache:
            cache[name] = RENDERERS[name](root)
        return match.group("begin") + cache[name] + match.group("end")

    return REGION.sub(replace, text)


def stale_pages(root: Path = ROOT) -> list[str]:
    """Pages whose committed text differs from what :func:`render` gives."""
    stale = []
    for page in pages(root):
        text = page.read_text()
        if render(text, root, str(page.relative_to(root))) != text:
            stale.append(str(page.relative_to(root)))
    return stale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hgprune.docsgen", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 listing the pages that differ")
    parser.add_argument("--root", type=Path, default=ROOT, help="repository root (default: this checkout)")
    args = parser.parse_args(argv)
    from hgprune.fsutil import atomic_write_text

    try:
        if args.check:
            stale = stale_pages(args.root)
            for page in stale:
                print(f"{page}: generated regions are out of date (run `make docs`)", file=sys.stderr)
            return 1 if stale else 0
        for page in pages(args.root):
            text = page.read_text()
            new = render(text, args.root, str(page.relative_to(args.root)))
            if new != text:
                atomic_write_text(page, new)
                print(f"rewrote {page.relative_to(args.root)}")
    except HgpruneError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.exit(main())
