"""Training hyper-parameters, with the seed's defaults (docs/DESIGN.md §2)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from hgprune.errors import HgpruneError


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a training run besides the model and the data.

    ``seed`` and the epoch numbers fully determine the data order and augmentation of every epoch, so a resumed run
    repeats an uninterrupted one exactly on CPU.
    """

    epochs: int  # train epochs [start_epoch, epochs)
    lr: float = 2.5e-4  # RMSprop learning rate
    momentum: float = 0.0
    weight_decay: float = 0.0
    schedule: tuple[int, ...] = (60, 90)  # epochs at which lr is multiplied by gamma (MultiStepLR)
    gamma: float = 0.1
    batch_size: int = 6  # per process under DDP
    test_batch_size: int = 6
    workers: int = 0  # DataLoader workers per process
    device: str = "cpu"  # "cpu" or "cuda[:k]"
    amp: bool = False  # mixed precision; only takes effect on CUDA
    seed: int = 0
    bn_l1: float = 0.0  # network-slimming L1 penalty on every BatchNorm gamma
    distill_weight: float = 0.0  # weight of the MSE to the teacher's heatmaps (needs a teacher)
    flip_test: bool = False  # validation averages the heatmaps of the image and its mirror
    precise_bn: int = 0  # training batches that re-estimate BatchNorm statistics before each validation (0: off)

    def __post_init__(self) -> None:
        object.__setattr__(self, "schedule", tuple(int(e) for e in self.schedule))
        checks = {
            "epochs": (self.epochs >= 0, "must be >= 0"),
            "lr": (self.lr > 0 and math.isfinite(self.lr), "must be a positive number"),
            "momentum": (0 <= self.momentum < 1, "must be in [0, 1)"),
            "weight_decay": (self.weight_decay >= 0, "must be >= 0"),
            "schedule": (all(e >= 0 for e in self.schedule), "epochs must be >= 0"),
            "gamma": (self.gamma > 0, "must be > 0"),
            "batch_size": (self.batch_size >= 1, "must be >= 1"),
            "test_batch_size": (self.test_batch_size >= 1, "must be >= 1"),
            "workers": (self.workers >= 0, "must be >= 0"),
            "device": (self.device == "cpu" or self.device.startswith("cuda"), "must be 'cpu' or 'cuda[:k]'"),
            "bn_l1": (self.bn_l1 >= 0, "must be >= 0"),
            "distill_weight": (self.distill_weight >= 0, "must be >= 0"),
            "precise_bn": (self.precise_bn >= 0, "must be >= 0"),
        }
        for key, (ok, rule) in checks.items():
            if not ok:
                raise HgpruneError(f"train.{key}: {rule}, got {getattr(self, key)!r}")

    def to_dict(self) -> dict:
        """JSON-able copy, stored beside every checkpoint."""
        d = asdict(self)
        d["schedule"] = list(self.schedule)
        return d
