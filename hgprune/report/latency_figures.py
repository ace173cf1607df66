"""PCKh against measured latency, one figure per runtime measured (``pareto_latency_eager``, ``pareto_latency_ort``,
``pareto_latency_cuda_graph``), each beside PCKh against MACs.

Each panel draws every run's steps (same encoding as :mod:`hgprune.report.figures`), the Pareto front over *every*
point of that panel (fastest-for-its-accuracy, not only each run's final step), and, where a run pruned to a latency
target, its budget as a vertical line in that runtime's panel.
"""

from __future__ import annotations

import math

import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from hgprune.report import figures
from hgprune.report.runs import RunData
from hgprune.report.tables import pareto_mask

# (runtime name as a latency target names it, panel title, column of the all-steps table)
RUNTIME_PANELS = (
    ("torch", "eager PyTorch", "latency_ms"),
    ("ort", "ONNX Runtime", "ort_latency_ms"),
    ("cuda-graph", "CUDA graph fp16", "cuda_graph_latency_ms"),
)


def latency_budgets(runs: list[RunData]) -> dict[str, list[tuple[str, float]]]:
    """Per runtime, (run name, budget ms) of the runs that pruned to a latency target: ``run.json``'s
    ``latency_budget`` ({runtime, budget_ms}), recorded when the run resolved its target."""
    budgets: dict[str, list[tuple[str, float]]] = {}
    for run in runs:
        recorded = run.info.get("latency_budget")
        if not isinstance(recorded, dict):
            continue
        runtime, budget = recorded.get("runtime"), recorded.get("budget_ms")
        if isinstance(runtime, str) and isinstance(budget, int | float) and not isinstance(budget, bool):
            if 0 < budget < math.inf:
                budgets.setdefault(runtime, []).append((run.name, float(budget)))
    return budgets


def front_rows(rows: pd.DataFrame, x: str) -> pd.DataFrame:
    """The Pareto front over every row (every step of every run, scratch models included): lower ``x``, higher PCKh."""
    mask = pareto_mask(rows[x].to_numpy(), rows["pckh_mean"].to_numpy())
    return rows[mask].sort_values([x, "pckh_mean"])


def _front(ax, rows: pd.DataFrame, x: str, scale: float = 1.0) -> None:
    front = front_rows(rows, x)
    ax.step(front[x] / scale, front["pckh_mean"], where="post", color="black", alpha=0.35, linewidth=4, zorder=1)
    ax.scatter(front[x] / scale, front["pckh_mean"], s=130, facecolors="none", edgecolors="black", linewidths=1.1,
               zorder=4)  # fmt: skip


def figure_name(runtime: str) -> str:
    """The file stem of a runtime's figure: ``pareto_latency_eager``, ``pareto_latency_ort``, …"""
    return "pareto_latency_" + {"torch": "eager"}.get(runtime, runtime).replace("-", "_")


def figure_titles() -> dict[str, str]:
    """``{figure_name(runtime): runtime title}``, e.g. ``{"pareto_latency_ort": "ONNX Runtime", …}``."""
    return {figure_name(runtime): title for runtime, title, _ in RUNTIME_PANELS}


def pareto_latency_figures(table: pd.DataFrame, runs: list[RunData]) -> dict[str, Figure]:
    """Per runtime measured, ``{figure_name(runtime): figure}``: PCKh vs MACs beside PCKh vs that runtime's median
    latency, each with the Pareto front over every point; empty when nothing was measured."""
    table = table.dropna(subset=["macs_fvcore", "pckh_mean"])
    if table.empty:
        return {}
    budgets = latency_budgets(runs)
    styles = figures._series_style(table)
    return {
        figure_name(runtime): _pareto_latency(table, styles, budgets.get(runtime, []), title, column)
        for runtime, title, column in RUNTIME_PANELS
        if column in table and table[column].notna().any()
    }


def _pareto_latency(table: pd.DataFrame, styles, budgets: list[tuple[str, float]], title: str, column: str) -> Figure:
    fig = Figure(figsize=(13.0, 4.8))
    macs_ax, ax = fig.subplots(1, 2, sharey=True)
    scale, unit = figures.macs_unit(table["macs_fvcore"])
    _front(macs_ax, table, "macs_fvcore", scale)
    figures._plot_series(macs_ax, table, styles, "macs_fvcore", "pckh_mean", scale)
    figures._plot_baselines(macs_ax, table, "macs_fvcore", "pckh_mean", scale)
    macs_ax.set_xlabel(f"{unit} (fvcore)")
    macs_ax.set_ylabel("PCKh@0.5 mean (%)")
    macs_ax.set_title("PCKh vs MACs")
    rows = table.dropna(subset=[column])
    _front(ax, rows, column)
    figures._plot_series(ax, rows, styles, column, "pckh_mean")
    figures._plot_baselines(ax, rows, column, "pckh_mean")
    for name, budget in budgets:
        ax.axvline(budget, color="0.2", linestyle="--", linewidth=1.2, zorder=2)
        ax.annotate(f"budget {budget:.3g} ms ({name})", (budget, 1.0), xycoords=("data", "axes fraction"),
                    rotation=90, va="top", ha="right", fontsize=7, color="0.2")  # fmt: skip
    ax.set_xlabel("latency (ms, median)")
    ax.set_title(f"PCKh vs latency: {title}")
    figures._log_if_wide(macs_ax, table["macs_fvcore"])
    figures._log_if_wide(ax, rows[column])
    for a in (macs_ax, ax):
        a.grid(True, which="both", alpha=0.25)
    extra = [Line2D([], [], color="black", alpha=0.35, linewidth=4, marker="o", markersize=9, markerfacecolor="none",
                    markeredgecolor="black", label="Pareto front (every point)")]  # fmt: skip
    if budgets:
        extra.append(Line2D([], [], color="0.2", linestyle="--", linewidth=1.2, label="latency budget"))
    fig.tight_layout()
    figures._legends(fig, table, styles, extra)
    return fig
