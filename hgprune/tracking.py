"""TensorBoard event files for ``hgprune run`` (one point per prune step) and ``hgprune train`` (one per epoch).

Long runs are watched in TensorBoard, as in every pose toolbox. The scalars are the numbers ``metrics.csv`` and
``log.csv`` hold, under tags named after their columns, so the two never disagree; the resolved recipe (or the train
command's settings) is logged as text and as hyper-parameters. TensorBoard is an optional dependency: it is imported
only when tracking is asked for, and its absence is a one-line error with the install command.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch.nn as nn

from hgprune import __version__
from hgprune.errors import HgpruneError
from hgprune.models import model_parts
from hgprune.models.hourglass import part_of
from hgprune.recipe import Recipe, dump_recipe

INSTALL = "pip install 'hgprune[tracking]'  (or: pip install tensorboard)"
EVENTS_DIR = "tensorboard"  # beside metrics.csv / log.csv: `tensorboard --logdir <run dir or a parent of many>`
STEP_PREFIX = "step/"  # per prune step: step/<metrics.csv column>, step/channels/<part>
EPOCH_PREFIX = "epoch/"  # per training epoch: epoch/<log.csv column>, epoch/pckh_<group>
NOT_SCALARS = ("step", "epoch")  # the x axis, not a curve


def require_tensorboard() -> type:
    """torch's ``SummaryWriter``, or a one-line error naming the install command when tensorboard is missing."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise HgpruneError(f"TensorBoard logging needs the tensorboard package: {INSTALL}") from None
    return SummaryWriter


def kept_channels(model: nn.Module) -> dict[str, int]:
    """Output channels of every convolution, summed per model part (``stem``, ``hg0``, ``res0``, …)."""
    parts = model_parts(model)
    channels = dict.fromkeys(parts, 0)
    for name, module in model.named_modules():
        part = part_of(name, parts)
        if isinstance(module, nn.Conv2d) and part is not None:
            channels[part] += module.out_channels
    return channels


def flat_hparams(settings: dict, prefix: str = "") -> dict[str, Any]:
    """A nested settings mapping as ``key.path → value`` with values TensorBoard's hparams accepts (numbers,
    strings, booleans); lists and nulls become text so every key shows up."""
    flat: dict[str, Any] = {}
    for key, value in settings.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flat_hparams(value, f"{path}."))
        elif isinstance(value, (bool, int, float, str)):
            flat[path] = value
        else:
            flat[path] = str(value)
    return flat


def _is_scalar(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isnan(value)


class Tracker:
    """One TensorBoard event directory. The writer is opened on first use, so a refused run writes nothing."""

    def __init__(self, log_dir: Path, text: str, hparams: dict[str, Any], metrics: tuple[str, ...]) -> None:
        self._summary_writer = require_tensorboard()  # fails before any work when tensorboard is missing
        self.log_dir = Path(log_dir)
        self.text, self.hparams, self.metrics = text, hparams, metrics
        self._writer = None

    @property
    def writer(self):
        if self._writer is None:
            from torch.utils.tensorboard.summary import hparams

            self._writer = self._summary_writer(str(self.log_dir))
            self._writer.add_text("recipe", "    " + self.text.replace("\n", "\n    "), 0)  # Markdown code block
            # the hparams plugin lists the settings beside the final values of these scalar tags
            for summary in hparams(self.hparams, dict.fromkeys(self.metrics, 0.0)):
                self._writer.file_writer.add_summary(summary)
        return self._writer

    def step(self, row: dict, model: nn.Module) -> None:
        """One prune step (0 = the baseline): every numeric ``metrics.csv`` column and kept channels per part."""
        step = int(row["step"])
        for key, value in row.items():
            if key not in NOT_SCALARS and _is_scalar(value):
                self.writer.add_scalar(STEP_PREFIX + key, value, step)
        for part, channels in kept_channels(model).items():
            self.writer.add_scalar(f"{STEP_PREFIX}channels/{part}", channels, step)
        self.writer.flush()  # a killed run keeps every step it reported

    def epoch(self, row: dict) -> None:
        """One training epoch: loss, validation loss, PCKh (both protocols and per joint group), learning rate."""
        epoch = int(row["epoch"])
        for key, value in row.items():
            if key not in NOT_SCALARS and _is_scalar(value):
                self.writer.add_scalar(EPOCH_PREFIX + key, value, epoch)
        for group, value in (row.get("pckh_groups") or {}).items():
            if _is_scalar(value):
                self.writer.add_scalar(f"{EPOCH_PREFIX}pckh_{group}", value, epoch)
        self.writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def run_tracker(recipe: Recipe, run_root: Path) -> Tracker:
    """The tracker of a run directory: its resolved recipe as text and hyper-parameters, step metrics as scalars."""
    metrics = tuple(f"{STEP_PREFIX}{m}" for m in ("pckh_mean", "macs_ratio", "params_ratio"))
    text = dump_recipe(recipe, __version__)
    return Tracker(Path(run_root) / EVENTS_DIR, text, flat_hparams(recipe.to_dict()), metrics)


def train_tracker(settings: dict, out_dir: Path) -> Tracker:
    """The tracker of ``hgprune train --checkpoint DIR``: its settings as text and hyper-parameters."""
    settings = {key: value for key, value in settings.items() if not key.startswith("_")}  # argparse internals
    text = "\n".join(f"{key}: {value}" for key, value in flat_hparams(settings).items())
    metrics = tuple(f"{EPOCH_PREFIX}{m}" for m in ("pckh", "val_loss", "loss"))
    return Tracker(Path(out_dir) / EVENTS_DIR, text, flat_hparams(settings), metrics)
