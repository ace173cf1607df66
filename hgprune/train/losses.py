"""Training objectives: visibility-weighted heatmap MSE, BatchNorm-γ L1 and heatmap distillation."""

from __future__ import annotations

import torch
from torch import nn


def joints_mse(output: torch.Tensor, target: torch.Tensor, target_weight: torch.Tensor) -> torch.Tensor:
    """Mean over batch, joints and pixels of ``w_bj · (output − target)²``: invisible joints (w = 0) teach nothing."""
    per_joint = (output.float() - target.float()).pow(2).mean(dim=(2, 3))  # (B, J)
    return (per_joint * target_weight.float().reshape(per_joint.shape)).mean()


def heatmap_loss(outputs: list[torch.Tensor], target: torch.Tensor, target_weight: torch.Tensor) -> torch.Tensor:
    """Intermediate supervision: the same target for every stack, losses summed over stacks."""
    return sum(joints_mse(out, target, target_weight) for out in outputs)


def distill_loss(student: list[torch.Tensor], teacher: list[torch.Tensor]) -> torch.Tensor:
    """MSE of each student stack to the matching teacher stack, or to the teacher's last stack when counts differ."""
    if len(student) == len(teacher):
        pairs = zip(student, teacher)
    else:
        pairs = ((out, teacher[-1]) for out in student)
    return sum((s.float() - t.float()).pow(2).mean() for s, t in pairs)


def bn_gamma_l1(model: nn.Module) -> torch.Tensor:
    """Σ|γ| over every BatchNorm: the network-slimming penalty that drives prunable channels' scales to zero."""
    bns = (m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm))
    terms = [m.weight.abs().sum() for m in bns if m.weight is not None]
    if not terms:
        return torch.zeros(())
    return torch.stack(terms).sum()
