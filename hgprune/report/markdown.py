"""``report.md``: the figures (relative paths), the tables and the exact commands, in reading order."""

from __future__ import annotations

import html
import os
import re
from pathlib import Path

import pandas as pd

from hgprune.report.latency_figures import figure_titles
from hgprune.report.runs import RunData, one_line
from hgprune.report.tables import LATENCY_SOURCES, PAIR_TOLERANCE, markdown_table
from hgprune.rundir import RunDir

PARETO_LEGEND = (
    "Colour = architecture. Each pruned run is a solid line (marker = criterion) from its unpruned baseline ★ "
    "(step 0) through its pruning steps; hollow markers on a thin dashed line = `scratch`, uniform narrower N/M "
    "trained from scratch (the seed's approach). The grey step line and circled points are the Pareto front over "
    "every point shown."
)
METRICS_LATENCY = "latency is the median of the run's timed repeats"


def _figure(figures: dict[str, str], key: str, alt: str) -> list[str]:
    if key not in figures:
        return []
    png = figures[key]
    return [f"![{alt}]({png})", "", f"<sub>Vector version: [{Path(png).with_suffix('.svg').name}]"
            f"({Path(png).with_suffix('.svg').as_posix()})</sub>", ""]  # fmt: skip


def _text(value: object) -> str:
    """Text from a run directory or the command line, safe in Markdown: one line, HTML special characters escaped
    (a name cannot open a tag, a newline cannot start a heading or a list)."""
    return html.escape(one_line(str(value), 4000), quote=False)


def _code(value: object) -> str:
    """``value`` as an inline code span, or as escaped text when it holds a backtick or an HTML character (which a
    code span would show raw to renderers that do not follow CommonMark to the letter)."""
    text = one_line(str(value), 4000)
    return _text(text) if any(c in text for c in "`<>&") else f"`{text}`"


def _fence(lines: list[str]) -> str:
    """A code-fence marker longer than any backtick run in ``lines`` (a command cannot close it)."""
    return "`" * max(3, 1 + max((len(run) for line in lines for run in re.findall(r"`+", line)), default=0))


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
    all_steps: pd.DataFrame | None = None,
    pairs: pd.DataFrame | None = None,
) -> str:
    """The whole report as Markdown; ``figures`` maps a figure key to its PNG path relative to ``out_dir``;
    ``all_steps`` (every row, with ``latency_source``) says where the latencies came from; ``pairs`` is
    :func:`~hgprune.report.tables.pruned_vs_scratch_table`."""
    lines = [f"# {_text(title)}", ""]
    lines += [f"Made by hgprune {version} from {len(runs)} run director{'y' if len(runs) == 1 else 'ies'}. "
              "MACs are counted by fvcore (one multiply-add = 1); PCKh@0.5 is the MPII protocol, in %; "
              f"{latency_provenance(runs, all_steps)}", ""]  # fmt: skip
    notes = [(r.name, n) for r in runs for n in r.notes]
    if notes:
        lines += ["**Notes**", ""] + [f"- {_code(name)}: {_text(note)}" for name, note in notes] + [""]
    lines += ["## PCKh vs MACs", ""]
    lines += _figure(figures, "pareto", "PCKh vs MACs with the Pareto front")
    lines += [PARETO_LEGEND, ""]
    lines += ["## Summary: final step of each run", ""]
    if summary.empty:
        lines += ["No run has a metrics row yet.", ""]
    else:
        lines += [markdown_table(summary), "★ = Pareto-optimal among these final rows (no other final row has fewer "
                  "or equal MACs and higher or equal PCKh). MACs kept, speedup and ΔPCKh are against the run's step 0; "
                  "a scratch run's are against the unpruned baseline of its architecture (step 0 of a pruned run "
                  "with the same architecture and input size, named in its notes), since its own step 0 is its "
                  "result. "
                  "Speedup efficiency = measured speedup ÷ MACs reduction. "
                  "CSV: [tables/summary.csv](tables/summary.csv); every step of every run: "
                  "[tables/all_steps.csv](tables/all_steps.csv).", ""]  # fmt: skip
    if pairs is not None and len(pairs):
        lines += ["## Pruned vs scratch (the seed's approach) at matching MACs", ""]
        lines += [markdown_table(pairs), "Each pruned run's final step beside the scratch run (a narrower N/M trained "
                  "from scratch) of the same architecture whose MACs kept is nearest, within "
                  f"{PAIR_TOLERANCE:.2f}; both are measured against the same unpruned baseline. One run each: no "
                  "interval. CSV: [tables/pruned_vs_scratch.csv](tables/pruned_vs_scratch.csv).", ""]  # fmt: skip
    if "latency" in figures:
        lines += ["## Latency and speedup efficiency", ""]
        lines += _figure(figures, "latency", "Latency vs MACs and speedup efficiency")
        lines += ["Speedup efficiency = (step-0 latency ÷ latency) ÷ (step-0 MACs ÷ MACs). 1.0 means the measured "
                  "speedup matches the MACs reduction; BN, ReLU, adds, pooling and upsampling scale only linearly "
                  "with channels, so pruned hourglasses usually land below 1.", ""]  # fmt: skip
        if any(run.latency is not None for run in runs):
            lines += ["The ONNX Runtime row (from the latency pass) times the graph hgprune's ONNX export writes "
                      "(BatchNorm folded into the convolutions) on the CPU provider; the eager row times the "
                      "checkpoint as loaded.", ""]  # fmt: skip
    measured = {key: title for key, title in figure_titles().items() if key in figures}
    if measured:
        lines += ["## PCKh vs measured latency", ""]
        for key, title in measured.items():
            lines += _figure(figures, key, f"PCKh vs MACs and vs measured latency: {title}")
        lines += ["One figure per runtime measured, beside PCKh vs MACs; the Pareto front covers every point; a dashed "
                  "line is the latency budget of a run pruned to a latency target.", ""]  # fmt: skip
    if "pckh_groups" in figures:
        lines += ["## PCKh per joint group across steps", ""]
        lines += _figure(figures, "pckh_groups", "PCKh per joint group across pruning steps")
    lines += ["## Runs", ""]
    for run in runs:
        lines += [f"### {_text(run.name)}", ""]
        facts = [f"directory {_code(run.path)}"]
        recipe_file = RunDir(run.path).recipe
        if recipe_file.exists():
            facts.append(f"recipe [{recipe_file.name}]({_link(recipe_file, out_dir)})")
        if run.info.get("status"):
            facts.append(f"status {_code(run.info['status'])}")
        if not run.metrics.empty:
            first = run.metrics.iloc[0]
            widths = f"N={_int(first['N'])} M={_int(first['M'])}"
            facts.append(f"{_text(first['arch'])} {widths}, criterion {_code(first['criterion'])}")
        lines += ["; ".join(facts) + ".", ""]
        lines += [f"- {_text(note)}" for note in run.notes] + ([""] if run.notes else [])
        if run.slug in steps:
            lines += [markdown_table(steps[run.slug]),
                      f"CSV: [tables/steps_{run.slug}.csv](tables/steps_{run.slug}.csv)", ""]  # fmt: skip
        lines += _figure(figures, f"kept_channels_{run.slug}", f"Kept channels per conv of {_text(run.name)}")
    commands = [one_line(command, 4000) for command in commands]
    lines += ["## How this was made", "", f"{_fence(commands)}sh", *commands, _fence(commands), ""]
    return "\n".join(lines)


def latency_provenance(runs: list[RunData], all_steps: pd.DataFrame | None = None) -> str:
    """Where the report's latencies come from: the runs' own timed repeats, or a separate latency pass (per pass: its
    settings, load average before and after, and command), or both, naming the runs of each."""
    passes: dict[tuple, list[RunData]] = {}
    for run in runs:
        if run.latency is not None:
            key = (run.latency.command, tuple(run.latency.load_before), tuple(run.latency.load_after))
            passes.setdefault(key, []).append(run)
    if not passes:
        return METRICS_LATENCY + "."
    own: list[str] = []
    if all_steps is not None and "latency_source" in all_steps:
        own = sorted(set(all_steps.loc[all_steps["latency_source"] == LATENCY_SOURCES[0], "run"]))
    parts = []
    for (command, before, after), members in passes.items():
        which = "" if len(passes) == 1 and not own else f" for {', '.join(f'`{r.name}`' for r in members)}"
        parts.append(
            f"latency{which} was measured after the runs in a separate pass (`latency.json`): eager PyTorch and "
            f"ONNX Runtime (`ORT` columns), {_pass_settings(members[0].latency.settings)}; 1/5/15-minute load "
            f"average {_loads(before)} before and {_loads(after)} after; command {_code(command)}"
        )
    if own:
        parts.append(f"where metrics.csv has a latency ({', '.join(f'`{n}`' for n in own)}) it wins: {METRICS_LATENCY}")
    return "; ".join(parts) + "."


def _pass_settings(settings: dict) -> str:
    """``batch 1, 1 thread(s), median and p90 of 20 round-robin rounds after 5 warm-up round(s)``, as recorded."""
    words = []
    if settings.get("batch") is not None:
        words.append(f"batch {settings['batch']}")
    if settings.get("threads") is not None:
        words.append(f"{settings['threads']} thread(s)")
    rounds = settings.get("repeats")
    stats = f"median and p90 of {rounds} round-robin rounds" if rounds else "median and p90 of its timed rounds"
    if settings.get("warmup") is not None:
        stats += f" after {settings['warmup']} warm-up round(s)"
    words.append(stats)
    if settings.get("forced"):
        words.append("forced to start whatever the load")
    elif settings.get("max_load") is not None:
        words.append(f"started only at a 1-minute load average of at most {settings['max_load']}")
    return ", ".join(words)


def _loads(values: tuple[float, ...]) -> str:
    return "/".join(f"{v:.2f}" for v in values) if values else "unknown"


def _int(value: object) -> str:
    return "?" if pd.isna(value) else str(int(value))
