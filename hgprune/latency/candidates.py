"""Random depth-and-width candidates of an hourglass: what the latency model is calibrated and judged on.

A candidate keeps ``k`` of the parent's stacks (a removed stack loses its hourglass, residual, fc, score and merge
layers), replaces some residual blocks of the hourglasses and the per-stack residuals by ``nn.Identity`` (their
input and output widths are the trunk's, so the block is skipped), narrows the trunk and the stem, and narrows every
remaining bottleneck's interior independently. Widths are either multiples of the runtime's preferred multiple or
arbitrary even numbers, so calibration sees both.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from torch import nn

from hgprune.models.hourglass import Bottleneck, HourglassConfig, HourglassNet, build_model


@dataclass(frozen=True)
class CandidateSpec:
    """How far candidates may go from the parent."""

    min_width: float = 0.25  # narrowest width kept, as a fraction of the parent's
    block_drop: float = 0.35  # at most this fraction of the trunk's residual blocks replaced by nn.Identity
    aligned: float = 0.5  # probability that a candidate's widths are multiples of ``snap``


def _width(rng: random.Random, full: int, spec: CandidateSpec, multiple: int) -> int:
    width = rng.randint(min(full, max(2, int(full * spec.min_width))), full)
    aligned = width - width % multiple
    return aligned if aligned >= 2 else max(2, width - width % 2)


def narrow_bottleneck(block: Bottleneck, planes: int) -> None:
    """Give ``block`` an interior of ``planes`` channels (conv1 out, conv2, conv3 in), in place (fresh weights)."""
    inplanes, outplanes = block.conv1.in_channels, block.conv3.out_channels
    block.conv1 = nn.Conv2d(inplanes, planes, kernel_size=1, bias=True)
    block.bn2 = nn.BatchNorm2d(planes)
    block.conv2 = nn.Conv2d(planes, planes, kernel_size=3, padding=1, bias=True)
    block.bn3 = nn.BatchNorm2d(planes)
    block.conv3 = nn.Conv2d(planes, outplanes, kernel_size=1, bias=True)


def trunk_blocks(model: HourglassNet) -> list[tuple[nn.Sequential, int]]:
    """The residual blocks that can be removed (input width = output width): (their Sequential, index)."""
    blocks = []
    for name, module in model.named_modules():
        if isinstance(module, nn.Sequential) and (name.startswith("hg.") or name.startswith("res.")):
            for index, block in enumerate(module):
                if isinstance(block, Bottleneck) and block.downsample is None:
                    blocks.append((module, index))
    return blocks


def random_candidate(
    parent: HourglassConfig, rng: random.Random, snap: int | None = 8, spec: CandidateSpec = CandidateSpec()
) -> HourglassNet:
    """One random depth-and-width candidate of ``parent`` (random weights: latency does not depend on them)."""
    multiple = snap if snap and rng.random() < spec.aligned else 2
    stacks = rng.randint(1, parent.num_stacks)
    N, M = _width(rng, parent.N, spec, multiple), _width(rng, parent.M, spec, multiple)
    model = build_model(
        f"hg{stacks}", N=N, M=M, num_joints=parent.num_joints, input_size=parent.input_size, depth=parent.depth
    )
    for module in model.modules():
        if isinstance(module, Bottleneck) and module.downsample is None:
            narrow_bottleneck(module, _width(rng, module.conv1.out_channels, spec, multiple))
    removable = trunk_blocks(model)
    for sequential, index in rng.sample(removable, rng.randint(0, int(len(removable) * spec.block_drop))):
        sequential[index] = nn.Identity()
    return model.eval()
