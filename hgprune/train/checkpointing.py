"""The seed's training files, written atomically and readable with ``torch.load(weights_only=True)``.

``checkpoint.pth.tar`` = ``{epoch, arch, state_dict, best_acc, optimizer}`` exactly as the seed writes it (state-dict
keys carry the seed's ``module.`` prefix so the seed's own scripts load it), plus hgprune's extras ``config`` (model),
``train_config``, ``hgprune_version`` and ``scaler``. ``hgprune.load_model`` reads any of these files.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Any

from torch import nn

from hgprune.errors import HgpruneError
from hgprune.fsutil import atomic_torch_save, atomic_write_text, reading, safe_torch_load
from hgprune.models.checkpoints import strip_prefix, to_cpu, unwrap

CHECKPOINT = "checkpoint.pth.tar"
BEST = "model_best.pth.tar"
LOG_COLUMNS = ["epoch", "lr", "loss", "val_loss", "pckh", "pckh_seed", "pckh_01", "auc", "wall_s"]


def training_payload(
    model: nn.Module, *, epoch: int, best_acc: float, trainer_state: dict, train_config: dict | None = None
) -> dict[str, Any]:
    """The checkpoint dict: the seed's keys first, hgprune's extras after."""
    from hgprune import __version__

    module = unwrap(model)
    state = {f"module.{k}": v.detach().cpu().clone() for k, v in module.state_dict().items()}
    payload: dict[str, Any] = {
        "epoch": int(epoch),
        "arch": module.config.arch,
        "state_dict": state,
        "best_acc": float(best_acc),
        "optimizer": to_cpu(trainer_state.get("optimizer", {})),
        "config": module.config.to_dict(),
        "train_config": dict(train_config or {}),
        "hgprune_version": __version__,
    }
    if trainer_state.get("scaler"):
        payload["scaler"] = trainer_state["scaler"]
    return payload


def save_training_checkpoint(
    payload: dict[str, Any], directory: str | os.PathLike, *, is_best: bool, snapshot: int = 0
) -> list[Path]:
    """Write checkpoint.pth.tar, model_best.pth.tar when ``is_best``, checkpoint_{E}.pth.tar every ``snapshot``."""
    directory = Path(directory)
    written = [directory / CHECKPOINT]
    atomic_torch_save(payload, written[0])
    if is_best:
        written.append(directory / BEST)
        atomic_torch_save(payload, written[-1])
    if snapshot and payload["epoch"] % snapshot == 0:
        written.append(directory / f"checkpoint_{payload['epoch']}.pth.tar")
        atomic_torch_save(payload, written[-1])
    return written


def check_finished(path: str | os.PathLike, meta: dict) -> None:
    """Refuse the latest-epoch checkpoint of an ``hgprune train`` run that has not reached its last epoch (a baseline
    still training, or one that crashed): pruning it would silently start from a half-trained model. A
    ``model_best.pth.tar`` from any epoch is a deliberate choice and passes; ``meta`` is ``load_checkpoint``'s."""
    epoch, planned = meta.get("epoch"), meta.get("planned_epochs")
    if Path(path).name == CHECKPOINT and isinstance(epoch, int) and isinstance(planned, int) and epoch < planned:
        raise HgpruneError(
            f"baseline.checkpoint {path}: saved at epoch {epoch} of the {planned} its training run planned; finish "
            f"that run (hgprune train ... --resume {path}) or point at a finished checkpoint"
        )


def load_training_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """A training checkpoint (seed's or hgprune's) for ``--resume``; the model itself comes from ``load_model``."""
    raw = safe_torch_load(path)
    if not isinstance(raw, dict) or "state_dict" not in raw:
        raise HgpruneError(f"{path}: not a training checkpoint (expected the keys epoch, state_dict, optimizer)")
    with reading(path, "training checkpoint (epoch and best_acc must be numbers)"):
        return {
            "epoch": int(raw.get("epoch", 0)),
            "best_acc": float(raw.get("best_acc", 0.0)),
            "optimizer": raw.get("optimizer") or {},
            "scaler": raw.get("scaler"),
            "state_dict": strip_prefix(raw["state_dict"]),
        }


def read_log(path: str | os.PathLike, before_epoch: int) -> list[dict]:
    """Rows of an existing log.csv for epochs <= ``before_epoch`` (kept when resuming)."""
    path = Path(path)
    if not path.exists():
        return []
    with reading(path, "training log (log.csv)"), path.open(newline="") as handle:
        return [row for row in csv.DictReader(handle) if row.get("epoch") and int(row["epoch"]) <= before_epoch]


def write_logs(directory: str | os.PathLike, rows: list[dict]) -> None:
    """log.csv (every metric) and the seed's tab-separated log.txt, rewritten atomically."""
    directory = Path(directory)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=LOG_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _fmt(row.get(k)) for k in LOG_COLUMNS})
    atomic_write_text(directory / "log.csv", buffer.getvalue())
    lines = ["Epoch\tLR\tTrain Loss\tVal Loss\tVal PCKh"]
    for row in rows:
        cells = [row.get("epoch"), row.get("lr"), row.get("loss"), row.get("val_loss"), row.get("pckh")]
        lines.append("\t".join(_fmt(c) for c in cells))
    atomic_write_text(directory / "log.txt", "\n".join(lines) + "\n")


def _fmt(value: Any) -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)
