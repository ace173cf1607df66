"""The equal-latency study's analysis (issue 32): paired differences by seed and the protocol's four goals.

Reads the finished runs of ``studies.equal_latency.run`` (final PCKh from each run's metrics, the parent's from
step 0 of its pruned runs) and the latency pass each run directory holds (``latency.json``, written by ``hgprune
latency``), and writes ``reports/benchmarks/equal_latency.{json,md}``. Each variant's measured ORT latency is divided
by its seed's budget (K × the parent's measured ORT latency, the median of step 0 over the seed's pruned runs); a
variant measuring above 1.05 × the budget is flagged as over budget and kept. Differences are paired by seed, mean
with a 95 % t-interval (``benchmarks.accuracy.paired``); the goals are read exactly as
``reports/equal_latency/protocol.md`` states them.

    python -m studies.equal_latency.report [--seeds 1 2 3] [--previous OLD.json ...]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from benchmarks.accuracy import _goal, final_row, paired, parent_plateau
from benchmarks.common import REPORT_DIR, environment, environment_md, md_table, write_report
from hgprune.errors import HgpruneError
from hgprune.report.runs import LatencyPass
from hgprune.rundir import RunDir
from hgprune.train.plateau import log_wall_s
from studies.equal_latency.run import (
    BUDGETS,
    NEXT,
    PARENTS,
    PROTOCOL,
    SEEDS,
    TOLERANCE,
    VARIANTS,
    WORK,
    pct,
    read_choices,
)

NAME = "equal_latency"
OTHERS = ("macs", "smaller", "random")  # what `latency` is compared with, besides its parent
RESULT_HEADERS = ["variant", "budget", "PCKh (mean)", "per seed", "measured ÷ budget (mean)", "over budget",
                  "− parent", "latency − macs", "latency − smaller", "latency − random"]  # fmt: skip


def read_run(run: Path) -> dict | None:
    """A finished run's final PCKh, its parent's (step 0, for a pruned run), the latency pass's ORT and eager
    medians of its final step and step 0, its wall time and the commands; None while unfinished."""
    final = final_row(run)
    if final is None:
        return None
    rd = RunDir(run)
    rows = json.loads(rd.metrics_json.read_text())
    pruned = len(rows) > 1
    row = {"pckh": final["pckh_mean"], "parent_pckh": rows[0]["pckh_mean"] if pruned else None,
           "wall_s": sum(r.get("wall_s") or 0.0 for r in rows), "command": rd.read_state().get("command"),
           "ort_ms": None, "eager_ms": None, "parent_ort_ms": None, "parent_eager_ms": None}  # fmt: skip
    measured = LatencyPass.read(rd.latency_json) if rd.latency_json.exists() else None
    if measured is not None and measured.steps:
        last, first = measured.steps.get(max(measured.steps)), measured.steps.get(0)
        row.update(ort_ms=last.ort_ms, eager_ms=last.eager_ms, latency_command=measured.command,
                   load_before=measured.load_before, load_after=measured.load_after)  # fmt: skip
        if pruned and first is not None:
            row.update(parent_ort_ms=first.ort_ms, parent_eager_ms=first.eager_ms)
    return row


def collect(work: Path, seeds, budgets, variants) -> dict[int, dict[str, dict]]:
    """``{seed: {"<variant>-<K>": run row}}`` of every finished run."""
    out: dict[int, dict[str, dict]] = {}
    for seed in seeds:
        for kept in budgets:
            for variant in (*variants, NEXT):
                path = work / f"seed{seed}" / f"{variant}-{pct(kept)}"
                row = read_run(path)
                if row is not None:
                    if path.is_symlink():  # one run serving two budgets (the macs variant): counted once as a parent
                        row["same_as"] = path.readlink().name
                    out.setdefault(seed, {})[f"{variant}-{pct(kept)}"] = row
    return out


def family(work: Path) -> list[dict]:
    """The exploratory ``latency`` runs of the sweep's seed-0 hg4–hg7 parents (``run.py --family``): PCKh against
    the parent's, measured ORT latency ÷ budget."""
    rows = []
    for path in sorted((work / "family").glob("hg*-latency-*")):
        row = read_run(path)
        if row is None:
            continue
        kept = int(path.name.rsplit("-", 1)[1]) / 100
        ratio = row["ort_ms"] / (kept * row["parent_ort_ms"]) if row["ort_ms"] and row["parent_ort_ms"] else None
        rows.append({"run": path.name, "budget": kept, "ratio": ratio, **row})
    return sorted(rows, key=lambda r: (int(r["run"].split("-")[0][2:]), -r["budget"]))  # hg4 50 %, hg4 25 %, hg5 …


def parents(runs: dict[int, dict[str, dict]]) -> dict[int, dict]:
    """Per seed: the parent's PCKh (step 0 of its pruned runs: the same model on the same images) and its measured
    ORT and eager latency (the median of step 0 over the seed's pruned runs measured, each run once: a run linked
    under a second name is not counted again)."""
    out = {}
    for seed, rows in runs.items():
        rows = {key: r for key, r in rows.items() if not r.get("same_as")}
        pckh = [r["parent_pckh"] for r in rows.values() if r.get("parent_pckh") is not None]
        if not pckh:
            continue
        entry = {"pckh": pckh[0]}
        for field in ("ort_ms", "eager_ms"):
            values = [r[f"parent_{field}"] for r in rows.values() if r.get(f"parent_{field}") is not None]
            entry[field] = statistics.median(values) if values else None
        out[seed] = entry
    return out


def by_seed(a: dict, b: dict) -> dict:
    """The per-seed differences a − b over the seeds both have (shown while fewer than 2 seeds give an interval)."""
    return {s: a[s] - b[s] for s in sorted(set(a) & set(b))}


def analyse(runs: dict[int, dict[str, dict]], budgets=BUDGETS, variants=VARIANTS) -> dict:
    """Per variant and budget: PCKh per seed, measured ORT latency ÷ budget, the seeds over budget (> TOLERANCE ×)
    or not measured, and the paired differences (every variant − parent; ``latency`` − each other variant)."""
    parent = parents(runs)
    parent_pckh = {s: p["pckh"] for s, p in parent.items()}
    results: dict = {"parent": {"per_seed": parent_pckh, "ort_ms": {s: p["ort_ms"] for s, p in parent.items()},
                                "eager_ms": {s: p["eager_ms"] for s, p in parent.items()}}}  # fmt: skip
    for kept in budgets:
        for variant in (*variants, NEXT):
            key = f"{variant}-{pct(kept)}"
            rows = {s: r[key] for s, r in sorted(runs.items()) if key in r}
            if not rows:
                continue
            ratio = {}
            for s, r in rows.items():
                base = parent.get(s, {}).get("ort_ms")
                if r.get("ort_ms") is not None and base:
                    ratio[s] = r["ort_ms"] / (kept * base)
            per_seed = {s: r["pckh"] for s, r in rows.items()}
            results[key] = {
                "variant": variant,
                "budget": kept,
                "per_seed": per_seed,
                "mean_pckh": statistics.fmean(per_seed.values()),
                "ort_ms": {s: r.get("ort_ms") for s, r in rows.items()},
                "eager_ms": {s: r.get("eager_ms") for s, r in rows.items()},
                "ratio": ratio,
                "mean_ratio": statistics.fmean(ratio.values()) if ratio else None,
                "over_budget": sorted(s for s, v in ratio.items() if v > TOLERANCE),
                "unmeasured": sorted(s for s in rows if s not in ratio),
                "vs_parent": paired(per_seed, parent_pckh),
                "by_seed": {"parent": by_seed(per_seed, parent_pckh)},
            }
        latency = results.get(f"latency-{pct(kept)}")
        for other in OTHERS:
            if latency is not None and f"{other}-{pct(kept)}" in results:
                others = results[f"{other}-{pct(kept)}"]["per_seed"]
                latency[f"vs_{other}"] = paired(latency["per_seed"], others)
                latency["by_seed"][other] = by_seed(latency["per_seed"], others)
    return results


GOALS = (  # the protocol's goals: (what `latency` is compared with, budget, goal, test on the paired difference)
    ("parent", 0.5, "1. latency − parent ≥ -1.0 at 50 % of the parent's latency (mean)", lambda d: d["mean"] >= -1.0),
    ("parent", 0.25, "1. latency − parent ≥ -3.0 at 25 % of the parent's latency (mean)", lambda d: d["mean"] >= -3.0),
    ("macs", 0.5, "2. latency − macs ≥ 2.0 at 50 %, interval above 0", lambda d: d["mean"] >= 2.0 and d["low"] > 0),
    ("macs", 0.25, "2. latency − macs ≥ 2.0 at 25 %, interval above 0", lambda d: d["mean"] >= 2.0 and d["low"] > 0),
    ("smaller", 0.5, "3. latency − smaller ≥ 0 at 50 %, interval's lower end above −1.0",
     lambda d: d["mean"] >= 0 and d["low"] > -1.0),
    ("smaller", 0.25, "3. latency − smaller ≥ 0 at 25 %, interval's lower end above −1.0",
     lambda d: d["mean"] >= 0 and d["low"] > -1.0),
    ("random", 0.25, "4. latency − random ≥ 1.0 at 25 % (mean)", lambda d: d["mean"] >= 1.0),
)  # fmt: skip


def goals(results: dict) -> list[dict]:
    """The protocol's goals, met, missed or not measured (fewer than 2 paired seeds); each names its budget (%) and
    what ``latency`` is compared with (``versus``)."""
    return [{**_goal(goal, results.get(f"latency-{pct(kept)}", {}).get(f"vs_{versus}"), test), "budget": pct(kept),
             "versus": versus} for versus, kept, goal, test in GOALS]  # fmt: skip


def winners(results: dict, budgets=BUDGETS, variants=VARIANTS) -> dict[str, dict | None]:
    """Per budget: the variant with the highest mean PCKh among those within budget (every seed measured, none
    above TOLERANCE × the budget); None when no variant qualifies."""
    out = {}
    for kept in budgets:
        within = [results[f"{v}-{pct(kept)}"] for v in variants if f"{v}-{pct(kept)}" in results]
        within = [r for r in within if r["ratio"] and not r["over_budget"] and not r["unmeasured"]]
        best = max(within, key=lambda r: r["mean_pckh"], default=None)
        out[str(pct(kept))] = None if best is None else {"variant": best["variant"], "mean_pckh": best["mean_pckh"],
                                                         "n": len(best["per_seed"])}  # fmt: skip
    return out


def load_previous(paths: list[Path], seeds) -> dict[int, dict[str, dict]]:
    """The per-seed run rows of earlier reports of this study (their run directories not here); a seed may come
    from one place only."""
    merged: dict[int, dict[str, dict]] = {}
    taken = set(seeds)
    for path in paths:
        try:
            earlier = {int(s): rows for s, rows in json.loads(path.read_text())["runs"].items()}
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise HgpruneError(f"--previous {path}: not an equal-latency report ({exc.__class__.__name__})") from None
        overlap = sorted(taken & set(earlier))
        if overlap:
            raise HgpruneError(f"--previous {path}: seed {overlap[0]} is already given; each seed from one place")
        taken |= set(earlier)
        merged |= earlier
    return merged


# -- figures ---------------------------------------------------------------------------------------------------------

FIGURE_RUNTIMES = (("ort", "ort_ms", "ONNX Runtime"), ("eager", "eager_ms", "eager PyTorch"))  # name, field, title
MARKERS = {"latency": "o", "macs": "s", "smaller": "^", "random": "X", NEXT: "v"}
BUDGET_COLOURS = {0.5: "tab:blue", 0.25: "tab:orange"}
BOTH = "0.6"  # one run for both budgets


def figure_points(results: dict, field: str) -> list[tuple[str, float | None, int, float, float]]:
    """(variant, budget — None for the parent, "both" for one run serving both budgets —, seed, measured ms, PCKh)
    of every measured parent and run."""
    parent = results["parent"]
    points = [("parent", None, s, parent[field][s], p) for s, p in parent["per_seed"].items()
              if parent[field].get(s) is not None]  # fmt: skip
    runs: dict[tuple, list] = {}  # one run serving both budgets (the macs variant) is one point, budget "both"
    for key, r in results.items():
        if key != "parent":
            for s, p in r["per_seed"].items():
                if r[field].get(s) is not None:
                    runs.setdefault((r["variant"], s, r[field][s], p), []).append(r["budget"])
    for (variant, s, ms, p), budgets in runs.items():
        points.append((variant, budgets[0] if len(budgets) == 1 else "both", s, ms, p))
    return points


def pareto_latency_figure(results: dict, field: str, title: str):
    """PCKh against measured latency: every parent (★) and run (marker per variant, colour per budget), and in the
    ORT figure each seed's budgets (dotted: K × the parent's measured ORT latency); None when nothing was measured."""
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    points = figure_points(results, field)
    if not points:
        return None
    fig = Figure(figsize=(8.5, 5.2))
    ax = fig.subplots()
    for variant, kept, seed, ms, pckh in points:
        if kept is None:
            ax.scatter(ms, pckh, marker="*", s=220, color="black", zorder=4)
        else:
            ax.scatter(ms, pckh, marker=MARKERS.get(variant, "o"), s=60, color=BUDGET_COLOURS.get(kept, BOTH),
                       edgecolors="black", linewidths=0.6, zorder=3)  # fmt: skip
        ax.annotate(str(seed), (ms, pckh), textcoords="offset points", xytext=(5, 4), fontsize=7, color="0.3")
    if field == "ort_ms":
        for ms in results["parent"]["ort_ms"].values():
            for kept, colour in BUDGET_COLOURS.items():
                if ms is not None:
                    ax.axvline(kept * ms, color=colour, linestyle=":", linewidth=1.0, alpha=0.6, zorder=1)
    ax.set_xlabel("latency (ms, median)")
    ax.set_ylabel("PCKh@0.5 mean (%)")
    ax.set_title(f"Equal-latency study: PCKh vs measured latency, {title}")
    ax.grid(True, which="both", alpha=0.25)
    handles = [Line2D([], [], marker="*", color="black", linestyle="", markersize=12, label="hg8 parent")]
    handles += [Line2D([], [], marker=m, color="0.6", markeredgecolor="black", linestyle="", markersize=8, label=v)
                for v, m in MARKERS.items() if any(p[0] == v for p in points)]  # fmt: skip
    handles += [Line2D([], [], color=c, linewidth=6, label=f"{pct(k)} % budget") for k, c in BUDGET_COLOURS.items()]
    if any(p[1] == "both" for p in points):
        handles.append(Line2D([], [], color=BOTH, linewidth=6, label="one run for both budgets"))
    if field == "ort_ms":
        handles.append(Line2D([], [], color="0.3", linestyle=":", label="budget (per seed)"))
    ax.legend(handles=handles, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False, fontsize=8)
    fig.tight_layout()
    return fig


def write_figures(results: dict, directory: Path) -> dict[str, str]:
    """``pareto_latency_ort`` and ``pareto_latency_eager`` (png + svg) into ``directory``: ``{name: png path}``."""
    from hgprune.report.figures import rc_context, save_figure

    written = {}
    with rc_context():
        for name, field, title in FIGURE_RUNTIMES:
            fig = pareto_latency_figure(results, field, title)
            if fig is not None:
                save_figure(fig, directory, f"pareto_latency_{name}")
                written[name] = str(directory / f"pareto_latency_{name}.png")
    return written


def _diff(d: dict | None, per_seed: dict | None = None) -> str:
    """Mean [95 % interval]; below 2 seeds, the per-seed difference (no interval)."""
    if d is not None:
        return f"{d['mean']:+.2f} [{d['low']:+.2f}, {d['high']:+.2f}]"
    return ", ".join(f"seed {s}: {v:+.2f}" for s, v in (per_seed or {}).items())


def _seeds(values: dict, digits: int = 2) -> str:
    return ", ".join(f"{s}: {v:.{digits}f}" for s, v in values.items() if v is not None)


def _ms(value: float | None) -> str:
    return "" if value is None else f"{value:.3f}"


def choice_lines(choices: dict) -> list[str]:
    lines = []
    macs = choices.get("macs", {})
    for key, c in macs.get("choices", {}).items():
        note = "" if c["reaches"] else " — **no MACs fraction of the grid reaches this budget; the closest is used**"
        lines.append(f"- `macs` at {key} %: MACs fraction {c['fraction']:.2f}, measured {c['measured_ms']:.3f} ms = "
                     f"{c['ratio']:.2f} × the budget {c['budget_ms']:.3f} ms{note}")  # fmt: skip
    for key, c in choices.get("smaller", {}).get("choices", {}).items():
        if c["arch"] is None:
            lines.append(f"- `smaller` at {key} %: **no architecture of the family fits {c['budget_ms']:.3f} ms × "
                         f"{TOLERANCE}**")  # fmt: skip
        else:
            lines.append(f"- `smaller` at {key} %: {c['arch']} (next smaller {c['next_smaller']}), measured "
                         f"{c['measured_ms']:.3f} ms = {c['ratio']:.2f} × the budget "
                         f"{c['budget_ms']:.3f} ms")  # fmt: skip
    for kind, c in choices.items():
        lines.append(f"- {kind} choice made {c.get('made')} by `{c.get('command')}`, load before "
                     f"{c.get('load_before')}, after {c.get('load_after')}")  # fmt: skip
    return lines


def family_md(rows: list[dict]) -> str:
    if not rows:
        return ""
    table = []
    for r in rows:
        change = None if r["parent_pckh"] is None else r["pckh"] - r["parent_pckh"]
        ratio = "" if r["ratio"] is None else f"{r['ratio']:.2f}" + (" (over budget)" if r["ratio"] > TOLERANCE else "")
        table.append(
            [
                r["run"],
                "" if r["parent_pckh"] is None else f"{r['parent_pckh']:.2f}",
                f"{r['pckh']:.2f}",
                "" if change is None else f"{change:+.2f}",
                _ms(r["parent_ort_ms"]),
                _ms(r["ort_ms"]),
                ratio,
            ]
        )
    intro = (
        "\nExploratory, not part of any goal: `latency` from the sweep's seed-0 parents of hg4–hg7 (one seed "
        "each, so no intervals; ORT ms from the family's own latency pass).\n\n"
    )
    header = ["run", "parent PCKh", "PCKh", "change", "parent ORT ms", "ORT ms", "measured ÷ budget"]
    return intro + md_table(header, table)


def study_cost(payload: dict) -> dict:
    """Hours of training wall time (one process, one core each): the held-out variants (a run serving two budgets
    counted once), the exploratory family runs and the hg8 parents (their logs)."""
    variants = sum(r["wall_s"] for rows in payload["runs"].values() for r in rows.values() if not r.get("same_as"))
    family_s = sum(r["wall_s"] for r in payload.get("family", []))
    parents_s = sum(payload.get("parent_wall_s", {}).values())
    hours = {"variants": variants / 3600, "family": family_s / 3600, "parents": parents_s / 3600}
    return {**hours, "total": sum(hours.values()), "parent_seeds": sorted(payload.get("parent_wall_s", {}))}


def cost_md(cost: dict) -> str:
    seeds = ", ".join(map(str, cost["parent_seeds"])) or "none read"
    return (
        f"Training wall time, one process per core: **{cost['total']:.1f} core-hours** in all: the variants "
        f"{cost['variants']:.1f} h (the held-out runs: one process each), the exploratory family runs "
        f"{cost['family']:.1f} h, and the hg8 parents {cost['parents']:.1f} h (the sum of `wall_s` in their "
        f"`log.csv`, seeds {seeds}). Not counted: the sweep's seed-0 parents, trained before for the hg1–hg8 sweep "
        "(docs/studies/sweep.md), and the latency passes and choices, a few idle minutes each.\n"
    )


def markdown(payload: dict) -> str:
    results, env = payload["results"], payload["environment"]
    verdict = {True: "met", False: "**missed**", None: "not measured"}
    parent = results["parent"]
    plateau_rows = [[s, p["epochs"], f"{p['final']:.2f}", f"{p['gain_last_20pct']:+.2f}",
                     "yes" if p["at_plateau"] else "**no**"] for s, p in payload["plateaus"].items()]  # fmt: skip
    parent_rows = [[s, f"{v:.2f}", _ms(parent["ort_ms"].get(s)), _ms(parent["eager_ms"].get(s))]
                   for s, v in parent["per_seed"].items()]  # fmt: skip
    rows = []
    for key, r in results.items():
        if key == "parent":
            continue
        over = ", ".join(f"seed {s}" for s in r["over_budget"]) or "no"
        if r["unmeasured"]:
            over += f"; not measured: seed {', '.join(map(str, r['unmeasured']))}"
        name = r["variant"] + (" (exploratory)" if r["variant"] == NEXT else "")
        rows.append([name, f"{pct(r['budget'])} %", f"{r['mean_pckh']:.2f}", _seeds(r["per_seed"]),
                     "" if r["mean_ratio"] is None else f"{r['mean_ratio']:.2f}", over,
                     _diff(r["vs_parent"], r.get("by_seed", {}).get("parent")),
                     *(_diff(r.get(f"vs_{o}"), r.get("by_seed", {}).get(o)) for o in OTHERS)])  # fmt: skip
    plateau_headers = ["seed", "epochs", "final PCKh (train log)", "gain over last 20 %", "at plateau"]
    plateau_md = "\n" + md_table(plateau_headers, plateau_rows) if plateau_rows else ""
    goal_rows = [[c["goal"], c["value"], verdict[c["met"]]] for c in payload["goals"]]
    win = [[f"{k} %", "none within budget" if w is None else f"`{w['variant']}` ({w['mean_pckh']:.2f}, n={w['n']})"]
           for k, w in payload["winners"].items()]  # fmt: skip
    every = [r for rows in payload["runs"].values() for r in rows.values()] + payload.get("family", [])
    commands = sorted({r.get("command") for r in every} - {None})
    passes = {r.get("latency_command"): (r.get("load_before"), r.get("load_after"))
              for r in every if r.get("latency_command")}  # fmt: skip
    cost = study_cost(payload)
    return (
        "# Accuracy at equal latency (issue 32)\n\n"
        f"Protocol, fixed before any held-out run finished: [{PROTOCOL}](../equal_latency/protocol.md). "
        "hg8 parents (sweep size: N=16, M=32, 64 px, depth 3) per seed; each variant at 50 % and 25 % of its "
        "parent's **measured** ORT latency (2 threads, batch 1). PCKh@0.5 on the 1000 SynthPose validation images; "
        f"differences paired by seed, mean [95 % t-interval]. A variant above {TOLERANCE} × its budget is flagged "
        "over budget and kept.\n\n"
        "## Parents\n\n"
        + md_table(["seed", "PCKh", "ORT ms", "eager ms"], parent_rows)
        + plateau_md
        + "\n## Choices (made before any variant trained)\n\n"
        + ("\n".join(choice_lines(payload["choices"])) or "not made yet")
        + "\n\n## Results\n\n"
        + md_table(RESULT_HEADERS, rows)
        + family_md(payload.get("family", []))
        + "".join(
            f"\n![PCKh vs measured latency, {name}]({NAME}/pareto_latency_{name}.png)\n"
            for name in payload.get("figures", {})
        )
        + "\n## Goals\n\n"
        + md_table(["goal", "measured: mean [95 % CI]", "verdict"], goal_rows)
        + "\n## Winner per budget (highest mean PCKh within budget)\n\n"
        + md_table(["budget", "winner"], win)
        + "\n## Cost and commands\n\n"
        + cost_md(cost)
        + "\nRuns:\n\n"
        + "".join(f"- `{c}`\n" for c in commands)
        + "\nLatency passes (load average 1/5/15 min before, after):\n\n"
        + "".join(f"- `{c}` — {b}, {a}\n" for c, (b, a) in passes.items())
        + f"\nThis report: `{env['command']}`.\n\n## Environment (of this report)\n\n"
        + environment_md(env)
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default=str(WORK))
    parser.add_argument("--seeds", type=int, nargs="*", default=list(SEEDS))
    parser.add_argument("--budgets", type=float, nargs="+", default=list(BUDGETS))
    parser.add_argument("--parents", default=PARENTS, help="parent checkpoints (their log.csv: the plateau check)")
    parser.add_argument("--previous", type=Path, nargs="+", default=[],
                        help="earlier equal_latency.json whose seeds join these (runs elsewhere)")  # fmt: skip
    parser.add_argument("--report-dir", default=str(REPORT_DIR))
    args = parser.parse_args(argv)
    started = time.perf_counter()
    env = environment()
    try:
        work = Path(args.work)
        runs = load_previous(args.previous, args.seeds) | collect(work, args.seeds, args.budgets, VARIANTS)
        if not runs:
            raise HgpruneError(f"{work}: no finished run of seeds {args.seeds}; run studies.equal_latency.run first")
        results = analyse(runs, args.budgets)
        plateaus, parent_wall_s = {}, {}
        for s in sorted(runs):
            log = Path(args.parents.format(seed=s)).parent / "log.csv"
            if log.exists():
                plateaus[s] = parent_plateau(Path(args.parents.format(seed=s)))
                parent_wall_s[s] = log_wall_s(log)
        payload = {"protocol": PROTOCOL, "environment": env, "runs": runs, "results": results,
                   "goals": goals(results), "winners": winners(results, args.budgets), "plateaus": plateaus,
                   "family": family(work), "parent_wall_s": parent_wall_s,
                   "choices": read_choices(work), "previous": [str(p) for p in args.previous],
                   "report_s": round(time.perf_counter() - started, 1)}  # fmt: skip
        payload["figures"] = write_figures(results, Path(args.report_dir) / NAME)
        write_report(NAME, payload, markdown(payload), Path(args.report_dir))
    except HgpruneError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for check in payload["goals"]:
        print(f"{check['goal']}: {check['value']} → {check['met']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
