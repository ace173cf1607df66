"""``report.md``: the figures (relative paths), the tables and the exact commands, in reading order."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from hgprune.report.runs import RunData
from hgprune.report.tables import markdown_table
from hgprune.rundir import RunDir

PARETO_LEGEND = (
    "One line per architecture/criterion (colour = architecture, marker = criterion), ★ = unpruned baseline (step 0), "
    "dashed `scratch` lines = uniform narrower N/M trained from scratch (the seed's approach). The grey step line "
    "and circled points are the Pareto front over every point shown."
)


def _figure(figures: dict[str, str], key: str, alt: str) -> list[str]:
    if key not in figures:
        return []
    png = figures[key]
    return [f"![{alt}]({png})", "", f"<sub>Vector version: [{Path(png).with_suffix('.svg').name}]"
            f"({Path(png).with_suffix('.svg').as_posix()})</sub>", ""]  # fmt: skip


def _link(target: Path, out_dir: Path) -> str:
    return Path(os.path.relpath(target, out_dir)).as_posix()


def render(
    title: str,
    runs: list[RunData],
    summary: pd.DataFrame,
    steps: dict[str, pd.DataFrame],
    figures: dict[str, str],
    commands: list[str],
    out_dir: Path,
    version: str,
) -> str:
    """The whole report as Markdown; ``figures`` maps a figure key to its PNG path relative to ``out_dir``."""
    lines = [f"# {title}", ""]
    lines += [f"Made by hgprune {version} from {len(runs)} run director{'y' if len(runs) == 1 else 'ies'}. "
              "MACs are counted by fvcore (one multiply-add = 1); PCKh@0.5 is the MPII protocol, in %; "
              "latency is the median of the run's timed repeats.", ""]  # fmt: skip
    notes = [(r.name, n) for r in runs for n in r.notes]
    if notes:
        lines += ["**Notes**", ""] + [f"- `{name}`: {note}" for name, note in notes] + [""]
    lines += ["## PCKh vs MACs", ""]
    lines += _figure(figures, "pareto", "PCKh vs MACs with the Pareto front")
    lines += [PARETO_LEGEND, ""]
    lines += ["## Summary: final step of each run", ""]
    if summary.empty:
        lines += ["No run has a metrics row yet.", ""]
    else:
        lines += [markdown_table(summary), "★ = Pareto-optimal among these final rows (no other final row has fewer "
                  "or equal MACs and higher or equal PCKh). ΔPCKh is against the run's step 0. "
                  "Speedup efficiency = measured speedup ÷ MACs reduction. "
                  "CSV: [tables/summary.csv](tables/summary.csv); every step of every run: "
                  "[tables/all_steps.csv](tables/all_steps.csv).", ""]  # fmt: skip
    if "latency" in figures:
        lines += ["## Latency and speedup efficiency", ""]
        lines += _figure(figures, "latency", "Latency vs MACs and speedup efficiency")
        lines += ["Speedup efficiency = (step-0 latency ÷ latency) ÷ (step-0 MACs ÷ MACs). 1.0 means the measured "
                  "speedup matches the MACs reduction; BN, ReLU, adds, pooling and upsampling scale only linearly "
                  "with channels, so pruned hourglasses usually land below 1.", ""]  # fmt: skip
    if "pckh_groups" in figures:
        lines += ["## PCKh per joint group across steps", ""]
        lines += _figure(figures, "pckh_groups", "PCKh per joint group across pruning steps")
    lines += ["## Runs", ""]
    for run in runs:
        lines += [f"### {run.name}", ""]
        facts = [f"directory `{run.path}`"]
        recipe_file = RunDir(run.path).recipe
        if recipe_file.exists():
            facts.append(f"recipe [{recipe_file.name}]({_link(recipe_file, out_dir)})")
        if run.info.get("status"):
            facts.append(f"status `{run.info['status']}`")
        if not run.metrics.empty:
            first = run.metrics.iloc[0]
            facts.append(f"{first['arch']} N={_int(first['N'])} M={_int(first['M'])}, criterion `{first['criterion']}`")
        lines += ["; ".join(facts) + ".", ""]
        lines += [f"- {note}" for note in run.notes] + ([""] if run.notes else [])
        if run.slug in steps:
            lines += [markdown_table(steps[run.slug]),
                      f"CSV: [tables/steps_{run.slug}.csv](tables/steps_{run.slug}.csv)", ""]  # fmt: skip
        lines += _figure(figures, f"kept_channels_{run.slug}", f"Kept channels per conv of {run.name}")
    lines += ["## How this was made", "", "```sh", *commands, "```", ""]
    return "\n".join(lines)


def _int(value: object) -> str:
    return "?" if pd.isna(value) else str(int(value))
