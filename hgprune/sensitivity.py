"""Sensitivity analysis: prune each part of the model alone, at several ratios, without fine-tuning.

The PCKh each part loses tells users where ``prune.part_ratios`` should protect the model and where it can cut
deep. Every cell is a fresh copy of the same model, pruned with the same criterion and ranking as a run would use.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from pathlib import Path

import pandas as pd
import torch
from matplotlib.figure import Figure
from tqdm import tqdm

from hgprune.errors import HgpruneError
from hgprune.fsutil import atomic_write_text
from hgprune.models.hourglass import HourglassNet, model_parts
from hgprune.prune import get_criterion, model_size, prune_to_target

DEFAULT_RATIOS = (0.25, 0.5, 0.75)


def prunable_parts(model: HourglassNet, include_trunk: bool = False) -> list[str]:
    """Parts that own independently prunable channels (merge convs and score heads write the trunk / joints)."""
    parts = [p for p in model_parts(model) if not p.startswith(("score", "merge"))]
    return parts + (["trunk"] if include_trunk else [])


def sensitivity_scan(
    model: HourglassNet,
    evaluate,
    *,
    parts: Iterable[str] | None = None,
    ratios: Iterable[float] = DEFAULT_RATIOS,
    criterion: str = "l1",
    input_size: int | None = None,
    round_to: int | None = 1,
    calibration: list | None = None,
    loss_fn=None,
    progress: bool = True,
) -> pd.DataFrame:
    """One row per (part, ratio): kept MACs and params of the whole model, PCKh and its drop from the unpruned model.

    ``evaluate(model) -> float`` returns PCKh (the caller decides the data and protocol).
    """
    input_size = input_size or model.config.input_size
    ratios = [float(r) for r in ratios]
    for r in ratios:
        if not 0 < r < 1:
            raise HgpruneError(f"ratios: each ratio must be in (0, 1), got {r}")
    include_trunk = parts is not None and "trunk" in parts
    valid = prunable_parts(model, include_trunk=True)
    parts = list(parts) if parts is not None else prunable_parts(model)
    for part in parts:
        if part not in valid:
            raise HgpruneError(f"parts: unknown part {part!r}; valid: {', '.join(valid)}")
    model = model.eval()
    reference = model_size(model, input_size)
    base_pckh = float(evaluate(model))
    rows = [dict(part="none", ratio=0.0, kept_macs=1.0, kept_params=1.0, pckh=base_pckh, pckh_drop=0.0)]
    cells = [(p, r) for p in parts for r in ratios]
    for part, ratio in tqdm(cells, desc="sensitivity", disable=not progress, unit="cell"):
        pruned = copy.deepcopy(model)
        result = prune_to_target(
            pruned,
            criterion=get_criterion(criterion),
            kind="macs",
            kept=1.0,
            ratio=ratio,
            reference=reference,
            input_size=input_size,
            allocation="uniform",
            part_ratios={"*": 0.0, part: 1.0},
            max_layer_ratio=1.0,
            round_to=round_to,
            prune_trunk=include_trunk and part == "trunk",
            calibration=calibration,
            loss_fn=loss_fn,
        )
        pckh = float(evaluate(pruned.eval()))
        rows.append(
            dict(
                part=part,
                ratio=ratio,
                kept_macs=round(result.kept_macs, 6),
                kept_params=round(result.kept_params, 6),
                pckh=round(pckh, 4),
                pckh_drop=round(base_pckh - pckh, 4),
            )
        )
    return pd.DataFrame(rows)


def sensitivity_figure(table: pd.DataFrame) -> Figure:
    """Heatmap: parts × ratios, colour = PCKh drop (points), value printed in every cell."""
    cells = table[table["part"] != "none"]
    grid = cells.pivot(index="part", columns="ratio", values="pckh_drop")
    grid = grid.loc[list(dict.fromkeys(cells["part"]))]  # keep the model's order
    fig = Figure(figsize=(1.2 + 1.1 * grid.shape[1], 0.9 + 0.36 * grid.shape[0]))
    ax = fig.add_subplot()
    limit = max(1.0, float(grid.abs().max().max()))
    image = ax.imshow(grid.values, cmap="RdYlGn_r", vmin=-limit, vmax=limit, aspect="auto")
    ax.set_xticks(range(grid.shape[1]), [f"{100 * r:.0f} %" for r in grid.columns])
    ax.set_yticks(range(grid.shape[0]), list(grid.index))
    ax.set_xlabel("channels removed from the part")
    base = float(table.loc[table["part"] == "none", "pckh"].iloc[0])
    ax.set_title(f"PCKh drop when pruning one part alone (unpruned: {base:.1f})")
    for (i, j), value in pd.DataFrame(grid.values).stack().items():
        ax.text(j, i, f"{value:.1f}", ha="center", va="center", fontsize=8)
    fig.colorbar(image, ax=ax, label="PCKh drop (points)")
    return fig


def write_sensitivity(table: pd.DataFrame, out_dir: Path, command: str) -> list[Path]:
    """sensitivity.csv, sensitivity.md and the heatmap (PNG + SVG), all written atomically."""
    from hgprune.report.figures import rc_context, save_figure
    from hgprune.report.tables import markdown_table

    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / "sensitivity.csv", table.to_csv(index=False))
    with rc_context():
        paths = save_figure(sensitivity_figure(table), out_dir, "sensitivity")
    text = [
        "# Sensitivity: PCKh drop per part, pruned alone without fine-tuning",
        "",
        "![sensitivity heatmap](sensitivity.png)",
        "",
        markdown_table(table),
        "",
        "Regenerate with:",
        "",
        f"    {command}",
        "",
    ]
    atomic_write_text(out_dir / "sensitivity.md", "\n".join(text))
    return [out_dir / "sensitivity.csv", out_dir / "sensitivity.md", *paths]


def evaluator(val_set, batch_size: int, device: str, flip_test: bool = False):
    """``model → PCKh (mpii protocol mean)`` on ``val_set``."""
    from hgprune.train import evaluate_model

    def evaluate(model: torch.nn.Module) -> float:
        return float(
            evaluate_model(model, val_set, batch_size=batch_size, device=device, flip_test=flip_test).mpii.mean
        )

    return evaluate
