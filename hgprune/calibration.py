"""BatchNorm re-estimation: pruning changes the statistics every later BatchNorm sees, so re-measure them.

Both pruning (after every prune, and for each candidate of the allocation search) and training (PreciseBN before
each validation) call it; it imports neither, so neither imports the other for it.

Removing channels of a conv changes the sum its consumer computes, so the running mean and variance stored in the
next BatchNorms describe a network that no longer exists. Re-estimating them on a few training batches (EagleEye's
adaptive BN, Li et al. 2020) recovers much of what looks like lost accuracy before any fine-tuning.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn


@torch.no_grad()
def recalibrate_bn(model: nn.Module, batches: Iterable) -> int:
    """Replace every BatchNorm's running statistics with the exact average over ``batches``; returns batches used.

    Each batch is a tensor of images or a tuple whose first item is. Running stats are reset and accumulated as a
    cumulative average (``momentum=None``), so the result does not depend on what the stats were before; weights are
    untouched and the model's train/eval mode and every BatchNorm's momentum are restored. With no batches, nothing
    changes.
    """
    batches = list(batches)
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    if not batches or not norms:
        return 0
    was_training = model.training
    momenta = [m.momentum for m in norms]
    device = next(model.parameters()).device
    try:
        for m in norms:
            m.reset_running_stats()
            m.momentum = None
        model.train()
        for batch in batches:
            images = batch[0] if isinstance(batch, (list, tuple)) else batch
            model(images.to(device))
    finally:
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
        model.train(was_training)
    return len(batches)
