"""Report tables: Pareto front, speedup efficiency, per-step and summary tables as CSV and Markdown.

CSV files keep the metrics exactly as the runs wrote them (plus derived columns) so they can be re-analysed;
Markdown tables are the same rows formatted for reading (M params, GMACs, ms, %).
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from hgprune.recipe import PRUNE, SCRATCH
from hgprune.report.runs import GROUPS, RunData, default_series


def pareto_mask(cost: np.ndarray | list[float], score: np.ndarray | list[float]) -> np.ndarray:
    """Points not dominated by any other (lower-or-equal cost and higher-or-equal score, one strictly).

    Identical points do not dominate each other, so ties are all kept; points with a NaN are never on the front.
    """
    cost = np.asarray(cost, dtype=float)
    score = np.asarray(score, dtype=float)
    valid = np.flatnonzero(~(np.isnan(cost) | np.isnan(score)))
    mask = np.zeros(len(cost), dtype=bool)
    if not len(valid):
        return mask
    # One sort and one sweep (O(n log n), no n × n comparison): by cost, best score first within a cost. A point is
    # on the front when it has its cost's best score and beats every score of a strictly lower cost.
    order = valid[np.lexsort((-score[valid], cost[valid]))]
    c, s = cost[order], score[order]
    starts = np.r_[True, c[1:] != c[:-1]]  # first point of each distinct cost
    group = np.cumsum(starts) - 1
    group_best = s[starts]
    best_below = np.r_[-np.inf, np.maximum.accumulate(group_best)[:-1]]  # best score at any lower cost
    on_front = (s == group_best[group]) & ((group == 0) | (s > best_below[group]))
    mask[order] = on_front
    return mask


def speedup_efficiency(base_latency: float, latency: float, base_macs: float, macs: float) -> float:
    """Measured speedup ÷ MACs reduction: 1.0 when latency falls exactly as MACs do, below 1 when it lags."""
    values = (base_latency, latency, base_macs, macs)
    if any(v is None or not math.isfinite(v) or v <= 0 for v in values):
        return math.nan
    return (base_latency / latency) / (base_macs / macs)


# What a latency pass (``RUN/latency.json``) fills in, column ← StepLatency field; metrics.csv wins where it has one.
FROM_LATENCY_PASS = {
    "latency_ms": "eager_ms",
    "latency_p90_ms": "eager_p90_ms",
    "ort_latency_ms": "ort_ms",
    "ort_latency_p90_ms": "ort_p90_ms",
    "cuda_graph_latency_ms": "cuda_graph_ms",
    "cuda_graph_latency_p90_ms": "cuda_graph_p90_ms",
}
LATENCY_SOURCES = ("metrics.csv", "latency.json")  # values of ``latency_source``; "" = no latency


def with_latency(run: RunData) -> pd.DataFrame:
    """A run's metrics with its latency pass merged in: ``latency_ms`` / ``latency_p90_ms`` where metrics.csv has
    none, ``ort_latency_ms`` / ``ort_latency_p90_ms`` (ONNX Runtime), and ``latency_source`` per row."""
    frame = run.metrics.copy()
    measured = run.latency.steps if run.latency is not None else {}
    had_latency = frame["latency_ms"].notna()
    position = frame.columns.get_loc("latency_p90_ms") + 1
    for column, name in FROM_LATENCY_PASS.items():
        values = [getattr(measured[s], name) if s in measured else math.nan for s in frame["step"]]
        values = pd.Series(values, index=frame.index, dtype=float)
        if column in frame:
            frame[column] = frame[column].fillna(values)
        else:
            frame.insert(position, column, values)
            position += 1
    metrics_csv, latency_json = LATENCY_SOURCES
    source = np.where(had_latency, metrics_csv, np.where(frame["latency_ms"].notna(), latency_json, ""))
    frame.insert(position, "latency_source", source)
    return frame


def with_derived(run: RunData) -> pd.DataFrame:
    """A run's metrics (latency pass merged in) plus ``series``, ``macs_kept``, ``macs_reduction``, ``pckh_delta``
    and per backend (eager PyTorch, ``ort_`` = ONNX Runtime) ``speedup`` and ``speedup_efficiency``, all against the
    unpruned baseline: the run's step 0, or for a scratch run step 0 of ``run.reference`` (none: left empty). The
    columns the run wrote, ``macs_ratio`` included, are kept as written."""
    frame = with_latency(run)
    frame["run"] = run.name
    frame.insert(1, "series", run.series or default_series(run))
    if run.role == SCRATCH:
        reference = with_latency(run.reference) if run.reference is not None else frame.iloc[0:0]
    else:
        reference = frame
    base = reference[reference["step"] == 0]

    def at_step_0(column: str) -> float:
        return float(base[column].iloc[0]) if len(base) else math.nan

    base_macs = at_step_0("macs_fvcore")
    frame["macs_kept"] = frame["macs_fvcore"] / base_macs
    frame["macs_reduction"] = base_macs / frame["macs_fvcore"]
    for backend in ("", "ort_"):
        base_latency = at_step_0(f"{backend}latency_ms")
        frame[f"{backend}speedup"] = base_latency / frame[f"{backend}latency_ms"]
        frame[f"{backend}speedup_efficiency"] = [
            speedup_efficiency(base_latency, lat, base_macs, macs)
            for lat, macs in zip(frame[f"{backend}latency_ms"], frame["macs_fvcore"])
        ]
    frame["pckh_delta"] = frame["pckh_mean"] - at_step_0("pckh_mean")
    return frame


def all_steps_table(runs: list[RunData]) -> pd.DataFrame:
    """Every row of every run; ``pareto`` marks the PCKh-vs-MACs front across all of them."""
    frames = [with_derived(r) for r in runs if not r.metrics.empty]
    if not frames:
        return pd.DataFrame(columns=[*with_derived(runs[0]).columns, "pareto"]) if runs else pd.DataFrame()
    table = pd.concat(frames, ignore_index=True)
    table["pareto"] = pareto_mask(table["macs_fvcore"], table["pckh_mean"])
    return table


STEP_COLUMNS = (
    "step",
    "target_kind",
    "target",
    "params",
    "macs_fvcore",
    "macs_thop",
    "macs_kept",
    "latency_ms",
    "latency_p90_ms",
    "speedup",
    "speedup_efficiency",
    "ort_latency_ms",
    "ort_latency_p90_ms",
    "ort_speedup",
    "ort_speedup_efficiency",
    "pckh_mean",
    "pckh_seed_mean",
    *(f"pckh_{g}" for g in GROUPS),
    "pckh_01",
    "auc",
    "finetune_epochs",
    "train_loss",
)
SUMMARY_COLUMNS = (
    "run",
    "series",
    "N",
    "M",
    "step",
    "params",
    "macs_fvcore",
    "macs_kept",
    "latency_ms",
    "speedup",
    "speedup_efficiency",
    "ort_latency_ms",
    "ort_speedup_efficiency",
    "pckh_mean",
    "pckh_delta",
    "pareto",
)
# Summary columns shown only when some run has them (ONNX Runtime latency comes from latency passes alone).
OPTIONAL_SUMMARY_COLUMNS = ("ort_latency_ms", "ort_speedup_efficiency")


def steps_table(run: RunData) -> pd.DataFrame:
    """One run, one row per step; columns the run never filled (all NaN) are left out."""
    frame = with_derived(run)
    keep = [c for c in STEP_COLUMNS if c in ("step", "pckh_mean", "macs_fvcore") or frame[c].notna().any()]
    return frame[keep].reset_index(drop=True)


def summary_table(runs: list[RunData]) -> pd.DataFrame:
    """The last row of every run; ``pareto`` marks the rows no other final row beats on both MACs and PCKh."""
    rows = [with_derived(r).iloc[[-1]] for r in runs if not r.metrics.empty]
    if not rows:
        return pd.DataFrame(columns=list(SUMMARY_COLUMNS))
    table = pd.concat(rows, ignore_index=True)
    table["pareto"] = pareto_mask(table["macs_fvcore"], table["pckh_mean"])
    keep = [c for c in SUMMARY_COLUMNS if c not in OPTIONAL_SUMMARY_COLUMNS or table[c].notna().any()]
    return table[keep]


PAIR_TOLERANCE = 0.05  # a scratch run stands beside a pruned one when their MACs kept differ by at most this


def pruned_vs_scratch_table(runs: list[RunData]) -> pd.DataFrame:
    """The seed's approach beside pruning: every pruned run's final step next to the scratch run of the same
    architecture and input size whose MACs kept (both against the same unpruned baseline) is nearest, within
    ``PAIR_TOLERANCE``; ``pckh_gain`` = pruned − scratch. Pruned runs without such a scratch run are left out."""
    finals = {r.name: with_derived(r).iloc[-1] for r in runs if not r.metrics.empty}
    scratch = [r for r in runs if r.role == SCRATCH and r.reference is not None and r.name in finals]
    rows = []
    for run in runs:
        if run.role != PRUNE or run.name not in finals or run.model_key is None:
            continue
        pruned = finals[run.name]
        candidates = [s for s in scratch if s.model_key == run.model_key]
        if not candidates:
            continue
        best = min(candidates, key=lambda s: abs(finals[s.name]["macs_kept"] - pruned["macs_kept"]))
        other = finals[best.name]
        if not abs(other["macs_kept"] - pruned["macs_kept"]) <= PAIR_TOLERANCE:
            continue
        rows.append(
            {
                "arch": run.model_key[0],
                "baseline_pckh": pruned["pckh_mean"] - pruned["pckh_delta"],
                "pruned_run": run.name,
                "pruned_macs_kept": pruned["macs_kept"],
                "pruned_pckh": pruned["pckh_mean"],
                "scratch_run": best.name,
                "scratch_macs_kept": other["macs_kept"],
                "scratch_pckh": other["pckh_mean"],
                "pckh_gain": pruned["pckh_mean"] - other["pckh_mean"],
            }
        )
    return pd.DataFrame(rows, columns=PAIR_COLUMNS)


PAIR_COLUMNS = ("arch", "baseline_pckh", "pruned_run", "pruned_macs_kept", "pruned_pckh", "scratch_run")
PAIR_COLUMNS += ("scratch_macs_kept", "scratch_pckh", "pckh_gain")


# Markdown ------------------------------------------------------------------------------------------------------


def _num(digits: int, scale: float = 1.0) -> Callable[[object], str]:
    def fmt(value: object) -> str:
        if isinstance(value, str):
            return value
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return "–"
        return f"{float(value) / scale:.{digits}f}"

    return fmt


def _sig(value: object, scale: float) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    scaled = float(value) / scale
    return f"{scaled:.4g}" if abs(scaled) < 1000 else f"{scaled:,.0f}"


def _pckh_header(column: str) -> str:
    return {"pckh_mean": "PCKh", "pckh_seed_mean": "PCKh (seed)", "pckh_01": "PCKh@0.1", "pckh_delta": "ΔPCKh"}.get(
        column, column.removeprefix("pckh_")
    )


DISPLAY: dict[str, tuple[str, Callable[[object], str]]] = {
    "step": ("step", lambda v: str(int(v))),
    "N": ("N", lambda v: "–" if pd.isna(v) else str(int(v))),
    "M": ("M", lambda v: "–" if pd.isna(v) else str(int(v))),
    "target": ("target", _num(3)),
    "params": ("params (M)", lambda v: _sig(v, 1e6)),
    "macs_fvcore": ("GMACs", lambda v: _sig(v, 1e9)),
    "macs_thop": ("GMACs (thop)", lambda v: _sig(v, 1e9)),
    "macs_ratio": ("MACs ratio (as the run wrote it)", _num(3)),
    "macs_kept": ("MACs kept", _num(3)),
    "latency_ms": ("latency (ms)", _num(2)),
    "latency_p90_ms": ("p90 (ms)", _num(2)),
    "speedup": ("speedup", lambda v: "–" if pd.isna(v) else f"{v:.2f}×"),
    "speedup_efficiency": ("speedup eff.", _num(2)),
    "ort_latency_ms": ("ORT latency (ms)", _num(2)),
    "ort_latency_p90_ms": ("ORT p90 (ms)", _num(2)),
    "ort_speedup": ("ORT speedup", lambda v: "–" if pd.isna(v) else f"{v:.2f}×"),
    "ort_speedup_efficiency": ("ORT speedup eff.", _num(2)),
    "auc": ("AUC", _num(1)),
    "finetune_epochs": ("epochs", lambda v: "–" if pd.isna(v) else str(int(v))),
    "train_loss": ("loss", lambda v: _sig(v, 1.0)),
    "pareto": ("Pareto", lambda v: "★" if bool(v) else ""),
    "baseline_pckh": ("unpruned PCKh", _num(1)),
    "pruned_run": ("pruned run", str),
    "scratch_run": ("scratch run", str),
    "pruned_macs_kept": ("pruned: MACs kept", _num(3)),
    "pruned_pckh": ("pruned: PCKh", _num(1)),
    "scratch_macs_kept": ("scratch: MACs kept", _num(3)),
    "scratch_pckh": ("scratch: PCKh", _num(1)),
    "pckh_gain": ("pruned − scratch", lambda v: "–" if pd.isna(v) else f"{v:+.1f}"),
}


def markdown_table(frame: pd.DataFrame) -> str:
    """A GitHub Markdown table of ``frame`` with readable headers and units (no tabulate dependency)."""
    headers, cells = [], []
    for column in frame.columns:
        header, fmt = DISPLAY.get(column, (column, None))
        if column.startswith("pckh_") and column not in DISPLAY:
            header, fmt = _pckh_header(column), _num(1)
        fmt = fmt or (lambda v: "–" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v))
        headers.append(header)
        cells.append([fmt(v) for v in frame[column]])
    numeric = [pd.api.types.is_numeric_dtype(frame[c]) and frame[c].dtype != bool for c in frame.columns]
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---:" if n else ":---" for n in numeric) + "|"]
    for row in zip(*cells) if cells else []:
        lines.append("| " + " | ".join(_cell(c) for c in row) + " |")
    return "\n".join(lines) + "\n"


def _cell(value: object) -> str:
    """A table cell: one line, HTML special characters escaped, pipes escaped (text from run directories)."""
    text = str(value)
    if not text.isprintable():
        text = "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)
    return html.escape(text, quote=False).replace("|", "\\|")


def csv_text(frame: pd.DataFrame) -> str:
    """CSV whose floats round-trip exactly (pandas writes the shortest exact repr), so values equal the metrics."""
    return frame.to_csv(index=False, lineterminator="\n")


def kept_channels(checkpoint: Path) -> tuple[pd.DataFrame, dict]:
    """Output channels of every conv in a (pruned) checkpoint vs the unpruned architecture built from its config.

    Returns the table (module, part, kind, kept, total, fraction, stack) in forward order, and the checkpoint's config.
    """
    import torch
    from torch import nn

    from hgprune.models.checkpoints import load_checkpoint
    from hgprune.models.hourglass import HourglassNet, model_parts, part_of

    model, info = load_checkpoint(checkpoint)
    with torch.device("meta"):
        base = HourglassNet(model.config)
    parts = model_parts(base)
    base_convs = {name: m for name, m in base.named_modules() if isinstance(m, nn.Conv2d)}
    rows = []
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            part = part_of(name, parts) or "other"
            total = base_convs[name].out_channels
            rows.append((name, part, re.match(r"[a-z]+", part).group(0), module.out_channels, total))
    table = pd.DataFrame(rows, columns=["module", "part", "kind", "kept", "total"])
    table["fraction"] = table["kept"] / table["total"]
    # Forward order: stem, then per stack hourglass → res → fc → score → merge (named_modules groups by type).
    table["stack"] = [int(p[len(k) :]) if p[len(k) :].isdigit() else -1 for p, k in zip(table["part"], table["kind"])]
    rank = table["kind"].map({k: i for i, k in enumerate(("stem", "hg", "res", "fc", "score", "merge"))}).fillna(9)
    table = table.assign(_rank=rank).sort_values(["stack", "_rank"], kind="stable").drop(columns="_rank")
    return table.reset_index(drop=True), info["config"]
