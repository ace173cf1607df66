"""Training and evaluation: one Trainer for ``train``, ``run`` fine-tuning and DDP; PCKh evaluation."""

from hgprune.train.config import TrainConfig
from hgprune.train.evaluation import EvalResult, evaluate_model, sides_swapped
from hgprune.train.loop import Trainer, epoch_seed, seed_everything

__all__ = ["EvalResult", "TrainConfig", "Trainer", "epoch_seed", "evaluate_model", "seed_everything", "sides_swapped"]
