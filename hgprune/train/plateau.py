"""What a ``hgprune train`` run's per-epoch ``log.csv`` says: the plateau rule for "trained to a plateau" (issue
12), and the training time it records."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from hgprune.errors import HgpruneError

PLATEAU_GAIN = 0.5  # at its plateau when the last 20 % of epochs added less than this (PCKh points)
PLATEAU_SHARE = 0.2


@dataclass(frozen=True)
class Plateau:
    epochs: int
    final: float  # PCKh after the last epoch
    gain_last_20pct: float  # final − PCKh at the start of the last 20 % of epochs
    at_plateau: bool


def plateau(log_csv: str | Path) -> Plateau:
    """The rule applied to ``log_csv`` (columns ``epoch`` and ``pckh``, one row per epoch)."""
    path = Path(log_csv)
    try:
        with open(path, newline="") as handle:
            pckh = [float(row["pckh"]) for row in csv.DictReader(handle)]
    except (OSError, KeyError, ValueError) as exc:
        raise HgpruneError(f"{path}: not a training log with a pckh column ({exc})") from None
    if not pckh:
        raise HgpruneError(f"{path}: no epochs logged")
    start = max(0, round((1 - PLATEAU_SHARE) * len(pckh)) - 1)
    gain = pckh[-1] - pckh[start]
    return Plateau(epochs=len(pckh), final=pckh[-1], gain_last_20pct=gain, at_plateau=gain < PLATEAU_GAIN)


def log_wall_s(log_csv: str | Path) -> float:
    """Seconds of training ``log_csv`` records: the sum of its ``wall_s`` column (one row per epoch)."""
    path = Path(log_csv)
    try:
        with open(path, newline="") as handle:
            return sum(float(row["wall_s"]) for row in csv.DictReader(handle))
    except (OSError, KeyError, ValueError) as exc:
        raise HgpruneError(f"{path}: not a training log with a wall_s column ({exc})") from None
