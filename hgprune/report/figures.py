"""Report figures (matplotlib, no pyplot state): Pareto curve, latency and speedup efficiency, kept channels, PCKh.

Encoding kept fixed across reports so figures of different sweeps compare at a glance, and kept readable for a whole
hg1–hg8 sweep (8 architectures × pruned and scratch runs at several budgets): colour = architecture (hg1 … hg8 always
the same colour); a pruned run is a solid line with filled markers (marker = criterion) from its unpruned baseline ★
(step 0) through its steps; the ``scratch`` comparison (uniform narrower N/M trained from scratch) is hollow markers on
a thin dashed line. Two compact legends outside the axes (architecture colours; line and marker roles) replace one
entry per series, so the legend never covers data. Figures are saved to memory buffers and written atomically; a fixed
SVG hash salt and no date metadata make re-runs byte-identical.
"""

from __future__ import annotations

import io
import math
import re
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

from hgprune.fsutil import atomic_write_bytes
from hgprune.recipe import BASELINE, PRUNE, SCRATCH
from hgprune.report.runs import GROUPS, RunData

RC = {
    "svg.hashsalt": "hgprune-report",
    "svg.fonttype": "path",
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
}
MARKERS = ("o", "s", "^", "D", "v", "P", "<", ">", "h", "p")
KIND_COLORS = {
    "stem": "#7f7f7f",
    "hg": "#1f77b4",
    "res": "#2ca02c",
    "fc": "#ff7f0e",
    "merge": "#9467bd",
    "score": "#d62728",
}


def rc_context():
    """Matplotlib settings every report figure is drawn and saved under."""
    return matplotlib.rc_context(RC)


def save_figure(fig: Figure, directory: Path, stem: str) -> list[Path]:
    """Write ``stem.png`` and ``stem.svg`` atomically, without timestamps."""
    paths = []
    for fmt, metadata in (("png", {"Software": None}), ("svg", {"Date": None})):
        buffer = io.BytesIO()
        fig.savefig(buffer, format=fmt, dpi=150, bbox_inches="tight", metadata=metadata)
        path = directory / f"{stem}.{fmt}"
        atomic_write_bytes(path, buffer.getvalue())
        paths.append(path)
    return paths


def arch_color(arch: str) -> str:
    """hg1 … hg8 always get the same tab10 colour (grey is skipped: it is the baseline marker's legend colour)."""
    palette = (0, 1, 2, 3, 4, 5, 6, 8)
    found = re.fullmatch(r"hg(\d+)", str(arch))
    stacks = int(found.group(1)) if found else 0
    return matplotlib.colormaps["tab10"](palette[stacks - 1] if 1 <= stacks <= len(palette) else 9)


ROLE_COLOR = "0.25"  # legend samples of line/marker roles: neutral, so they do not read as an architecture
SCRATCH_MARKERS = ("o", "s", "D", "^", "v")  # drawn hollow


def _series_style(table: pd.DataFrame) -> dict[str, dict]:
    """Per series: colour from the architecture; marker and line from its role and method (criterion or scratch
    variant), the same for every architecture so a legend of roles explains every line."""
    methods: dict[str, list[str]] = {PRUNE: [], SCRATCH: []}
    for series, role in sorted(set(zip(table["series"], table["role"]))):
        method = series.split("/", 1)[-1]
        if role in methods and method not in methods[role]:
            methods[role].append(method)
    styles = {}
    for series, rows in table.groupby("series", sort=False):
        arch, role = rows["arch"].iloc[0], rows["role"].iloc[0]
        if role == BASELINE:  # a sweep's shared baseline: shown by its star, not as a series
            continue
        scratch = role == SCRATCH
        method = series.split("/", 1)[-1]
        index = methods[SCRATCH if scratch else PRUNE].index(method)
        styles[series] = {
            "arch": arch,
            "role": SCRATCH if scratch else PRUNE,
            "method": method,
            "color": arch_color(arch),
            "marker": SCRATCH_MARKERS[index % len(SCRATCH_MARKERS)] if scratch else MARKERS[index % len(MARKERS)],
            "order": (_arch_number(arch), scratch, method),
        }
    return dict(sorted(styles.items(), key=lambda item: item[1]["order"]))


def _line_kwargs(style: dict, color) -> dict:
    if style["role"] == SCRATCH:  # hollow markers on a thin dashed line: one trained model per budget
        return dict(color=color, marker=style["marker"], markerfacecolor="white", markeredgecolor=color,
                    markeredgewidth=1.3, markersize=6, linestyle="--", linewidth=0.9)  # fmt: skip
    return dict(color=color, marker=style["marker"], markersize=5, linestyle="-", linewidth=1.3)


def _legends(target, table: pd.DataFrame, styles: dict, extra: list | None = None) -> None:
    """Two compact legends right of the axes (``target`` is an Axes or, for several panels, the Figure): one swatch
    per architecture, then one sample per role/method, the baseline star and ``extra`` (e.g. the Pareto front)."""
    archs = sorted({*table["arch"]}, key=lambda a: (_arch_number(a), str(a)))
    arch_handles = [Line2D([], [], color=arch_color(a), linewidth=4, label=str(a)) for a in archs]
    role_handles, seen = [], set()
    for style in sorted(styles.values(), key=lambda st: (st["role"] == SCRATCH, st["method"])):
        if (style["role"], style["method"]) in seen:
            continue
        seen.add((style["role"], style["method"]))
        if style["role"] == SCRATCH:
            label = f"{style['method']}: narrower N/M trained from scratch"
        else:
            label = f"pruned, {style['method']}: baseline ★ → steps"
        role_handles.append(Line2D([], [], label=label, **_line_kwargs(style, ROLE_COLOR)))
    role_handles += [_baseline_handle(), *(extra or [])]
    figure_level = isinstance(target, Figure)
    anchor_x = 1.0 if figure_level else 1.01
    common = dict(frameon=False, alignment="left", borderaxespad=0.0)
    first = target.legend(handles=arch_handles, title="architecture", loc="upper left",
                          bbox_to_anchor=(anchor_x, 0.97 if figure_level else 1.0), **common)  # fmt: skip
    if not figure_level:
        target.add_artist(first)  # a second Axes.legend would replace the first
    target.legend(handles=role_handles, title="line / marker", loc="lower left",
                  bbox_to_anchor=(anchor_x, 0.06 if figure_level else 0.0), **common)  # fmt: skip


def _arch_number(arch: str) -> int:
    found = re.fullmatch(r"hg(\d+)", str(arch))
    return int(found.group(1)) if found else 99


def _log_if_wide(ax, values: pd.Series, axis: str = "x") -> None:
    """Log scale when values span more than 10×, ticked at 1, 2, 5 × 10^k with plain numbers."""
    values = values[values > 0].dropna()
    if len(values) and values.max() / values.min() > 10:
        target = ax.xaxis if axis == "x" else ax.yaxis
        (ax.set_xscale if axis == "x" else ax.set_yscale)("log")
        target.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        target.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        target.set_minor_formatter(NullFormatter())


def macs_unit(values: pd.Series) -> tuple[float, str]:
    """GMACs for real models, MMACs for the tiny ones tests and smoke runs use."""
    top = values.max() if len(values) else 0
    return (1e9, "GMACs") if top >= 1e8 else (1e6, "MMACs")


def _plot_series(ax, table: pd.DataFrame, styles: dict, x: str, y: str, x_scale: float = 1.0) -> None:
    for series, style in styles.items():
        rows = table[table["series"] == series].sort_values(["run", "step"])
        if style["role"] == SCRATCH:  # one trained model per budget, joined across runs by MACs
            runs = [("all", rows.sort_values(x))]
        else:  # one line per run, from its step 0 (the baseline) through its steps
            runs = list(rows.groupby("run", sort=False))
        for _, run_rows in runs:
            ax.plot(run_rows[x] / x_scale, run_rows[y], zorder=3, **_line_kwargs(style, style["color"]))


def _plot_baselines(ax, table: pd.DataFrame, x: str, y: str, x_scale: float = 1.0) -> None:
    base = table[(table["step"] == 0) & (table["role"] != SCRATCH)]  # a scratch run's step 0 is its result
    for arch, rows in base.groupby("arch", sort=False):
        ax.scatter(rows[x] / x_scale, rows[y], marker="*", s=190, color=arch_color(arch), edgecolors="black",
                   linewidths=0.8, zorder=5)  # fmt: skip


def _baseline_handle() -> Line2D:
    return Line2D([], [], marker="*", markersize=12, color="white", markeredgecolor="black", markerfacecolor="0.6",
                  linestyle="none", label="unpruned baseline (step 0)")  # fmt: skip


def pareto_figure(table: pd.DataFrame) -> Figure | None:
    """PCKh vs GMACs: a line per pruned run, scratch models hollow, baselines as stars, the front as a step line."""
    table = table.dropna(subset=["macs_fvcore", "pckh_mean"])
    if table.empty:
        return None
    fig = Figure(figsize=(10, 6))
    ax = fig.subplots()
    styles = _series_style(table)
    scale, unit = macs_unit(table["macs_fvcore"])
    front = table[table["pareto"]].sort_values(["macs_fvcore", "pckh_mean"])
    ax.step(front["macs_fvcore"] / scale, front["pckh_mean"], where="post", color="black", alpha=0.35, linewidth=4,
            zorder=1)  # fmt: skip
    ax.scatter(front["macs_fvcore"] / scale, front["pckh_mean"], s=130, facecolors="none", edgecolors="black",
               linewidths=1.1, zorder=4)  # fmt: skip
    _plot_series(ax, table, styles, "macs_fvcore", "pckh_mean", scale)
    _plot_baselines(ax, table, "macs_fvcore", "pckh_mean", scale)
    _log_if_wide(ax, table["macs_fvcore"])
    ax.set_xlabel(f"{unit} (fvcore; 1 multiply-add = 1)" + (", log scale" if ax.get_xscale() == "log" else ""))
    ax.set_ylabel("PCKh@0.5 mean (%)")
    ax.set_title("Accuracy vs compute: PCKh vs MACs")
    ax.grid(True, which="both", alpha=0.25)
    front_handle = Line2D([], [], color="black", alpha=0.35, linewidth=4, marker="o", markersize=9,
                          markerfacecolor="none", markeredgecolor="black", label="Pareto front")  # fmt: skip
    _legends(ax, table, styles, [front_handle])
    return fig


# Backends a latency figure row can show: (title, latency column, speedup-efficiency column).
LATENCY_BACKENDS = (
    ("eager PyTorch", "latency_ms", "speedup_efficiency"),
    ("ONNX Runtime", "ort_latency_ms", "ort_speedup_efficiency"),
)


def latency_figure(table: pd.DataFrame) -> Figure | None:
    """Per backend with latencies (eager PyTorch; ONNX Runtime from a latency pass), one row: latency vs GMACs, and
    speedup efficiency (speedup ÷ MACs reduction vs each run's step 0) vs MACs reduction."""
    table = table.dropna(subset=["macs_fvcore"])
    backends = [b for b in LATENCY_BACKENDS if b[1] in table and table[b[1]].notna().any()]
    if not backends:
        return None
    fig = Figure(figsize=(12.5, 4.6 * len(backends)))
    axes = np.atleast_2d(fig.subplots(len(backends), 2, squeeze=False))
    styles = _series_style(table)
    scale, unit = macs_unit(table["macs_fvcore"])
    ideal = None
    for (left, right), (backend, latency, efficiency_column) in zip(axes, backends):
        rows = table.dropna(subset=[latency])
        _plot_series(left, rows, styles, "macs_fvcore", latency, scale)
        _plot_baselines(left, rows, "macs_fvcore", latency, scale)
        _log_if_wide(left, rows["macs_fvcore"])
        _log_if_wide(left, rows[latency], "y")
        left.set_xlabel(f"{unit} (fvcore)")
        left.set_ylabel("latency (ms, median)")
        left.set_title(f"Latency vs MACs: {backend}")
        efficiency = rows.dropna(subset=["macs_reduction", efficiency_column])
        ideal = right.axhline(1.0, color="0.4", linestyle=":", linewidth=1.2, label="ideal: speedup = MACs reduction")
        _plot_series(right, efficiency, styles, "macs_reduction", efficiency_column)
        right.set_xlabel("MACs reduction vs the unpruned baseline (×)")
        right.set_ylabel("speedup efficiency\n(speedup ÷ MACs reduction)")
        right.set_title(f"Speedup efficiency: {backend}")
        top = max(1.2, float(efficiency[efficiency_column].max()) * 1.1) if len(efficiency) else 1.2
        right.set_ylim(0, top)
        for ax in (left, right):
            ax.grid(True, which="both", alpha=0.25)
    fig.tight_layout()
    _legends(fig, table, styles, [ideal])
    return fig


def kept_channels_figure(run: RunData, kept: pd.DataFrame, source: str, config: dict) -> Figure:
    """Kept fraction of output channels for every conv of the final model, coloured by model part."""
    n = len(kept)
    fig = Figure(figsize=(min(18.0, max(8.0, 0.05 * n + 3.0)), 3.8))
    ax = fig.subplots()
    x = np.arange(n)
    ax.bar(x, kept["fraction"], width=0.85, color=[KIND_COLORS.get(k, "0.5") for k in kept["kind"]])
    ax.axhline(1.0, color="0.5", linewidth=0.8, linestyle=":")
    stacks = kept["stack"].to_numpy()
    starts = np.flatnonzero(np.r_[True, stacks[1:] != stacks[:-1]])
    ends = np.r_[starts[1:], n]
    for start in starts[1:]:
        ax.axvline(start - 0.5, color="0.55", linewidth=0.8, zorder=0)
    labels = ["stem" if s < 0 else f"stack {s}" for s in stacks[starts]]
    ax.set_xticks((starts + ends - 1) / 2, labels, rotation=90 if len(starts) > 10 else 0)
    ax.tick_params(axis="x", length=0)
    ax.set_xlim(-0.8, n - 0.2)
    ax.set_ylim(0, 1.08)
    ax.set_ylabel("kept fraction\nof output channels")
    total, kept_sum = int(kept["total"].sum()), int(kept["kept"].sum())
    base = f"hg{config.get('num_stacks', '?')} N={config.get('N', '?')} M={config.get('M', '?')}"
    ax.set_title(f"{run.name}: kept output channels per conv, {source} vs unpruned {base}; "
                 f"{kept_sum:,}/{total:,} = {100 * kept_sum / total:.1f} % overall", loc="left")  # fmt: skip
    kinds = [k for k in KIND_COLORS if k in set(kept["kind"])]
    ax.legend(handles=[Patch(color=KIND_COLORS[k], label=k) for k in kinds], loc="upper left",
              bbox_to_anchor=(1.005, 1.0), frameon=False, title="part")  # fmt: skip
    return fig


def pckh_groups_figure(runs: list[RunData], table: pd.DataFrame) -> Figure | None:
    """Small multiples, one per run: PCKh of every joint group and the mean across pruning steps."""
    names = [r.name for r in runs if r.name in set(table["run"])]
    if not names:
        return None
    ncols = min(3, len(names))
    nrows = math.ceil(len(names) / ncols)
    per_row = 8 if ncols > 1 else 4  # legend entries per row: 7 groups + mean
    legend_height = 0.3 * math.ceil((len(GROUPS) + 1) / per_row) + 0.15
    height = 3.0 * nrows + legend_height
    fig = Figure(figsize=(4.3 * ncols, height))
    axes = np.atleast_1d(fig.subplots(nrows, ncols, sharey=True, squeeze=False)).ravel()
    colors = matplotlib.colormaps["tab10"]
    for ax, name in zip(axes, names):
        rows = table[table["run"] == name].sort_values("step")
        for i, group in enumerate(GROUPS):
            ax.plot(rows["step"], rows[f"pckh_{group}"], color=colors(i), marker="o", markersize=3, linewidth=1.1,
                    label=group)  # fmt: skip
        ax.plot(rows["step"], rows["pckh_mean"], color="black", linewidth=2.2, marker="o", markersize=4, label="mean")
        ax.set_title(f"{name}  ({rows['series'].iloc[0]})", fontsize=9)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlim(-0.25, max(1, int(rows["step"].max())) + 0.25)  # a one-row run (scratch) gets whole-step ticks too
        ax.grid(True, alpha=0.25)
    for index, ax in enumerate(axes):
        if index >= len(names):
            ax.set_visible(False)
            continue
        if index % ncols == 0:
            ax.set_ylabel("PCKh@0.5 (%)")
        if index + ncols >= len(names):
            ax.set_xlabel("pruning step (0 = unpruned)")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.suptitle("PCKh per joint group across pruning steps")
    title_height = 0.45  # inches kept free for the title: tight_layout alone let it overlap the top row's titles
    fig.tight_layout(rect=(0, legend_height / height, 1, 1 - title_height / height))
    fig.legend(handles, labels, loc="lower center", ncol=per_row, frameon=False, bbox_to_anchor=(0.5, 0.0))
    return fig
