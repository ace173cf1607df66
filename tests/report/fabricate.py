"""Fabricated run directories for report tests: real hgprune checkpoints of tiny (pruned) models, plausible metrics.

The runner writes the same layout (docs/CONTRACTS.md, "Runs"); building it here keeps the report tests independent of
training. Parameters and MACs come from the real models; PCKh and latency are invented but deterministic.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pandas as pd
import yaml

from hgprune import build_model, save_model
from hgprune.profile import conv_macs, count_params
from tests.conftest import prune_half

GROUP_OFFSETS = {"Head": 8.0, "Shoulder": 5.0, "Elbow": -1.0, "Wrist": -5.0, "Hip": 2.0, "Knee": -3.0, "Ankle": -7.0}


def _models(arch: str, criterion: str, steps: int, N: int, M: int) -> list:
    if criterion == "scratch":  # the seed's approach: uniform narrower N/M, each trained from scratch
        return [build_model(arch, N=N >> k, M=M >> k, input_size=64) for k in range(steps)]
    model = build_model(arch, N=N, M=M, input_size=64)
    models = [model]
    for _ in range(1, steps):
        model = prune_half(copy.deepcopy(model))
        models.append(model)
    return models


def make_run(
    root: Path,
    name: str,
    *,
    arch: str = "hg1",
    criterion: str = "l1",
    steps: int = 3,
    N: int = 16,
    M: int = 32,
    status: str = "done",
    final: bool = True,
    pckh0: float = 80.0,
    command: str | None = None,
) -> Path:
    """A run directory ``root/name`` with ``steps`` rows (step 0 = unpruned) and a checkpoint per step."""
    run_dir = root / name
    (run_dir / "checkpoints").mkdir(parents=True)
    models = _models(arch, criterion, steps, N, M)
    rows = []
    base_macs = None
    for step, model in enumerate(models):
        macs = conv_macs(model, 64)
        base_macs = base_macs or macs
        pckh = pckh0 - 1.5 * step * (step + 1) - (4.0 if criterion == "scratch" and step else 0.0)
        row = {
            "run": name, "step": step, "arch": arch, "N": N, "M": M, "criterion": criterion,
            "target_kind": "macs", "target": round(macs / base_macs, 3), "params": count_params(model),
            "macs_fvcore": macs + 1000 * (step + 1), "macs_thop": macs + 900, "conv_macs": macs,
            "macs_ratio": (macs + 1000 * (step + 1)) / (base_macs + 1000), "params_ratio": 1.0,
            "latency_ms": round(4.0 * (macs / base_macs) ** 0.6, 4),
            "latency_p90_ms": round(4.4 * (macs / base_macs) ** 0.6, 4),
            "pckh_mean": pckh, "pckh_seed_mean": pckh - 0.9, "pckh_01": pckh / 3, "auc": pckh / 2,
            **{f"pckh_{g}": pckh + off for g, off in GROUP_OFFSETS.items()},
            "finetune_epochs": 0 if step == 0 else 2, "train_loss": 0.0012 * (step + 1), "wall_s": 1.5 * step,
        }  # fmt: skip
        rows.append(row)
        save_model(model, run_dir / "checkpoints" / f"step_{step:03d}.pt", meta={"metrics": row})
    frame = pd.DataFrame(rows)
    (run_dir / "metrics.csv").write_text(frame.to_csv(index=False))
    (run_dir / "metrics.json").write_text(json.dumps(rows, indent=1))
    model_section = {"arch": arch, "N": N, "M": M, "input_size": 64}
    recipe = {"name": name, "model": model_section, "prune": {"criterion": criterion}}
    (run_dir / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    state = {"status": status, "version": "0.1.0", "command": command or f"hgprune run recipes/{name}.yaml"}
    (run_dir / "run.json").write_text(json.dumps(state))
    if final:
        save_model(models[-1], run_dir / "final" / "model.pt")
    return run_dir
