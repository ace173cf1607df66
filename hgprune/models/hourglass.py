"""The seed's pre-activation stacked hourglass (Newell et al. 2016), module for module.

Module names, order, biases and state-dict keys match the seed repository (itself from the bearpaw/anibali
lineage), so its checkpoints load without renaming apart from the ``module.`` prefix that ``DataParallel`` adds.

Naming of the two width knobs follows the seed's flags, but note what its code does with them:
``N`` sets the stem only (``conv1`` has N/2 outputs, ``layer1`` N, ``layer2`` 2N) and ``M`` is the width of the whole
trunk (every hourglass, residual and merge works at M channels, bottleneck interiors at M/2).

Channel-pruned models only differ in channel counts. Every block therefore takes its widths from its layers, never
from ``N``/``M``, and :func:`hgprune.models.checkpoints.narrow_to_state_dict` can rebuild a pruned model from a plain
state dict by resizing layers of the base architecture.

Depth-pruned models record what was removed in their config (``removed_stacks``, ``removed_blocks``): a removed
block (an identity-skip bottleneck of an hourglass or of ``res``) is the identity, a removed stack passes the stream
on unchanged and has no output. Removed modules are ``nn.Identity`` in place, so every kept module keeps its name and
state-dict key (:mod:`hgprune.prune.depth` removes them).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hgprune.errors import HgpruneError
from hgprune.models.normalization import DEFAULT as DEFAULT_NORMALIZATION
from hgprune.models.normalization import Normalization, get_normalization

# The architecture registry, the one list of names: hg{k} = k stacks (the seed's hg1 … hg8).
ARCHITECTURES: dict[str, int] = {f"hg{k}": k for k in range(1, 9)}
ARCHS = tuple(ARCHITECTURES)

# Named configurations (plain dict, like the architectures): ``build_preset("tiny")`` is the model tests use.
PRESETS: dict[str, dict] = {
    "tiny": {"arch": "hg1", "N": 16, "M": 32, "input_size": 64},  # tests: one stack, narrow, 64 × 64
    "quickstart": {"arch": "hg1", "N": 32, "M": 64, "input_size": 64},  # recipes/quickstart.yaml
    "paper": {"arch": "hg8", "N": 128, "M": 256, "input_size": 256},  # Newell et al. 2016
}

# Module names the pruning engine and the exports need to know about.
TRUNK_ROOT = "layer3.0.conv3"  # first producer of the M-wide trunk: its channel group is the whole coupled trunk
HEAD_PREFIX = "score."  # the per-stack heatmap heads: one channel per joint, never pruned


@dataclass(frozen=True)
class HourglassConfig:
    """Architecture of an unpruned stacked hourglass."""

    num_stacks: int = 8  # hg1 … hg8
    N: int = 128  # stem width: conv1 has N/2 channels, layer1 N, layer2 2N
    M: int = 256  # trunk width; bottleneck interiors are M/2
    num_joints: int = 16  # MPII
    depth: int = 4  # recursion depth of each hourglass; input size must be a multiple of 4 * 2**depth
    input_size: int = 256  # square input side the model is trained and profiled at
    normalization: Normalization = DEFAULT_NORMALIZATION  # how RGB in [0, 1] is normalised before the model
    removed_stacks: tuple[int, ...] = ()  # depth pruning: stacks that pass the stream on (no output), sorted
    removed_blocks: tuple[str, ...] = ()  # depth pruning: bottlenecks that are the identity, e.g. "hg.0.hg.3.1.0"

    def __post_init__(self) -> None:
        object.__setattr__(self, "normalization", get_normalization(self.normalization))
        for key, limit in CONFIG_LIMITS.items():  # first: the checks below compute with these values
            value = getattr(self, key)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
                raise HgpruneError(f"model.{key}: must be an integer, got a {type(value).__name__}")
            if value > limit:
                raise HgpruneError(f"model.{key}: must be at most {limit}, got {_shown_int(value)}")
        checks = {
            "num_stacks": self.num_stacks >= 1,
            "N": self.N >= 2 and self.N % 2 == 0,
            "M": self.M >= 2 and self.M % 2 == 0,
            "num_joints": self.num_joints >= 1,
            "depth": self.depth >= 1,
            "input_size": self.depth < 1  # (reported as a depth error above)
            or (self.input_size >= probe_size(self.depth) and self.input_size % probe_size(self.depth) == 0),
        }
        for key, ok in checks.items():
            if not ok:
                raise HgpruneError(f"model.{key}: invalid value {_shown_int(getattr(self, key))} ({_RULES[key]})")
        object.__setattr__(self, "removed_stacks", _checked_stacks(self.removed_stacks, self.num_stacks))
        object.__setattr__(self, "removed_blocks", _checked_blocks(self.removed_blocks, self))

    @property
    def arch(self) -> str:
        return f"hg{self.num_stacks}"

    @property
    def kept_stacks(self) -> tuple[int, ...]:
        """Stacks that run and produce an output, in order (all of them unless depth-pruned)."""
        return tuple(s for s in range(self.num_stacks) if s not in self.removed_stacks)

    @property
    def num_outputs(self) -> int:
        """Heatmap outputs of ``forward``: one per kept stack (the last is the prediction)."""
        return len(self.kept_stacks)

    def to_dict(self) -> dict:
        out = asdict(self)
        out["normalization"] = self.normalization.to_dict()
        out["removed_stacks"] = list(self.removed_stacks)
        out["removed_blocks"] = list(self.removed_blocks)
        return out


# Upper bounds of a configuration, checked before anything is built from it (a checkpoint's config is untrusted):
# far above any published hourglass, far below what would exhaust memory before an error could be raised.
CONFIG_LIMITS: dict[str, int] = {
    "num_stacks": 16,
    "N": 4096,
    "M": 4096,
    "num_joints": 1024,
    "depth": 8,
    "input_size": 4096,
}


def block_names(config: HourglassConfig) -> list[str]:
    """Every removable bottleneck of the base architecture: each hourglass branch and ``res``, stack by stack (all
    have an identity skip; the stem's ``layer1-3`` change width and stay)."""
    names = []
    for s in range(config.num_stacks):
        for level in range(config.depth):
            names += [f"hg.{s}.hg.{level}.{branch}.0" for branch in range(4 if level == 0 else 3)]
        names.append(f"res.{s}.0")
    return names


def block_stack(name: str) -> int:
    """The stack a block name belongs to (``hg.3.hg.0.1.0`` → 3)."""
    return int(name.split(".")[1])


def _checked_stacks(value, num_stacks: int) -> tuple[int, ...]:
    if not isinstance(value, (list, tuple)):
        raise HgpruneError(f"model.removed_stacks: must be a list of stack indices, got a {type(value).__name__}")
    if len(value) >= num_stacks:
        raise HgpruneError(f"model.removed_stacks: at least one of the {num_stacks} stack(s) must remain")
    for s in value:
        if not isinstance(s, (int, np.integer)) or isinstance(s, bool) or not 0 <= s < num_stacks:
            shown = _shown_int(s) if isinstance(s, (int, np.integer)) else type(s).__name__
            raise HgpruneError(f"model.removed_stacks: {shown} is not a stack index in [0, {num_stacks})")
    if len(set(value)) != len(value):
        raise HgpruneError("model.removed_stacks: a stack is listed twice")
    return tuple(sorted(int(s) for s in value))


def _checked_blocks(value, config: HourglassConfig) -> tuple[str, ...]:
    if not isinstance(value, (list, tuple)):
        raise HgpruneError(f"model.removed_blocks: must be a list of block names, got a {type(value).__name__}")
    valid = block_names(config)
    if len(value) > len(valid):
        raise HgpruneError(f"model.removed_blocks: {len(value)} names, but {config.arch} has {len(valid)} blocks")
    known = set(valid)
    for name in value:
        if not isinstance(name, str) or name not in known:
            shown = repr(name[:60]) if isinstance(name, str) else f"a {type(name).__name__}"
            raise HgpruneError(
                f"model.removed_blocks: {shown} is not a block of {config.arch} depth {config.depth} "
                "(e.g. 'hg.0.hg.0.1.0' or 'res.0.0')"
            )
        if block_stack(name) in config.removed_stacks:
            raise HgpruneError(f"model.removed_blocks: {name} lies in removed stack {block_stack(name)}")
    if len(set(value)) != len(value):
        raise HgpruneError("model.removed_blocks: a block is listed twice")
    order = {n: i for i, n in enumerate(valid)}
    return tuple(sorted(value, key=order.__getitem__))


def _shown_int(value: int) -> str:
    """An integer for a message: a 5000-digit value is not formatted (Python refuses to, and it helps no one)."""
    return str(int(value)) if abs(value) < 10**18 else ("-" if value < 0 else "") + "1e18 or more"


_RULES = {
    "num_stacks": "must be >= 1",
    "N": "must be an even integer >= 2",
    "M": "must be an even integer >= 2",
    "num_joints": "must be >= 1",
    "depth": "must be >= 1",
    "input_size": "must be a positive multiple of 4 * 2**depth (64 for depth 4)",
}


def parse_arch(arch: str) -> int:
    """``"hg7"`` → 7, with an error listing the valid names."""
    if arch not in ARCHITECTURES:
        raise HgpruneError(f"unknown architecture {arch!r}; valid: {', '.join(ARCHS)}")
    return ARCHITECTURES[arch]


def probe_size(depth: int = 4) -> int:
    """Smallest valid input side: each of ``depth`` hourglass levels halves the H/4 feature map."""
    return 4 * 2**depth


def bottom_warning(config: HourglassConfig) -> str | None:
    """A warning when a multi-stack model's hourglasses bottom out at 1×1 (e.g. depth 4 at 64 px): there BatchNorm
    normalises each channel over one value per image, its running statistics stop describing what the layer sees in
    training, and the mismatch compounds across stacks (measured: reports/sweep_hg1_hg8/STATUS.md). None otherwise."""
    side = config.input_size // probe_size(config.depth)
    if side > 1 or config.num_stacks < 2:
        return None
    return (
        f"{config.arch} at {config.input_size} px with hourglass depth {config.depth} bottoms out at 1x1, where "
        f"BatchNorm's train/eval mismatch compounds over the stacks; depth {config.depth - 1} stops at 2x2 "
        "(--depth / model.depth)"
    )


def check_input_size(size: int, depth: int = 4) -> int:
    """The input-size rule, stated once: a positive multiple of :func:`probe_size` (64 for depth 4)."""
    multiple = probe_size(depth)
    if not isinstance(size, (int, np.integer)) or isinstance(size, bool) or size < multiple or size % multiple:
        raise HgpruneError(f"input_size: must be a positive multiple of {multiple}, got {size!r}")
    return int(size)


def base_width(name: str, config: HourglassConfig) -> int:
    """Out-channels of conv ``name`` in the unpruned architecture — the width law: N sets the stem (conv1 N/2,
    layer1 N, layer2 2N), M the trunk (bottleneck interiors M/2, everything else M), the heads one per joint."""
    N, M = config.N, config.M
    head, last = name.split(".")[0], name.split(".")[-1]
    if name == "conv1":
        return N // 2
    if head in ("layer1", "layer2", "layer3", "hg", "res"):
        planes = {"layer1": N // 2, "layer2": N, "layer3": M // 2}.get(head, M // 2)
        return planes if last in ("conv1", "conv2") else 2 * planes
    if name.startswith(HEAD_PREFIX):
        return config.num_joints
    return M  # fc.{s}.0, fc_.{s}, score_.{s}


class Bottleneck(nn.Module):
    """Pre-activation bottleneck: BN-ReLU-1x1, BN-ReLU-3x3, BN-ReLU-1x1, plus identity or 1x1 projection."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(inplanes)
        self.conv1 = nn.Conv2d(inplanes, planes, kernel_size=1, bias=True)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=stride, padding=1, bias=True)
        self.bn3 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 2, kernel_size=1, bias=True)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or inplanes != planes * 2:
            self.downsample = nn.Sequential(nn.Conv2d(inplanes, planes * 2, kernel_size=1, stride=stride, bias=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(self.relu(self.bn1(x)))
        out = self.conv2(self.relu(self.bn2(out)))
        out = self.conv3(self.relu(self.bn3(out)))
        residual = x if self.downsample is None else self.downsample(x)
        return out + residual


def _residual(inplanes: int, planes: int, blocks: int = 1) -> nn.Sequential:
    return nn.Sequential(*[Bottleneck(inplanes if i == 0 else planes * 2, planes) for i in range(blocks)])


class Hourglass(nn.Module):
    """One hourglass: ``hg[level][branch]``; branch 0 = skip, 1 = down, 2 = up, 3 = bottom (level 0 only)."""

    def __init__(self, planes: int, depth: int) -> None:
        super().__init__()
        self.depth = depth
        levels = []
        for level in range(depth):
            branches = [_residual(planes * 2, planes) for _ in range(4 if level == 0 else 3)]
            levels.append(nn.ModuleList(branches))
        self.hg = nn.ModuleList(levels)

    def _forward(self, n: int, x: torch.Tensor) -> torch.Tensor:
        up = self.hg[n - 1][0](x)
        low = self.hg[n - 1][1](F.max_pool2d(x, 2, stride=2))
        low = self._forward(n - 1, low) if n > 1 else self.hg[0][3](low)
        low = self.hg[n - 1][2](low)
        return up + F.interpolate(low, scale_factor=2.0, mode="nearest")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._forward(self.depth, x)


def depth_removed_modules(config: HourglassConfig) -> list[str]:
    """Names of the modules that are ``nn.Identity`` under ``config``'s depth pruning: each removed stack's
    hourglass, ``res``, ``fc`` and head; the merges (``fc_``, ``score_``) of a stack that is removed or that no kept
    stack follows; the removed blocks."""
    kept = config.kept_stacks
    names = [f"{part}.{s}" for s in config.removed_stacks for part in ("hg", "res", "fc", "score")]
    for s in range(config.num_stacks - 1):
        if s not in kept or s >= kept[-1]:  # removed, or no kept stack reads its merge
            names += [f"fc_.{s}", f"score_.{s}"]
    return names + list(config.removed_blocks)


class HourglassNet(nn.Module):
    """Stacked hourglass with intermediate supervision; ``forward`` returns one (B, J, H/4, W/4) map per stack."""

    def __init__(self, config: HourglassConfig) -> None:
        super().__init__()
        self.config = config
        N, M, S = config.N, config.M, config.num_stacks
        self.conv1 = nn.Conv2d(3, N // 2, kernel_size=7, stride=2, padding=3, bias=True)
        self.bn1 = nn.BatchNorm2d(N // 2)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = _residual(N // 2, N // 2)  # (B, N, H/2, W/2)
        self.maxpool = nn.MaxPool2d(2, stride=2)
        self.layer2 = _residual(N, N)  # (B, 2N, H/4, W/4)
        self.layer3 = _residual(2 * N, M // 2)  # (B, M, H/4, W/4)
        self.hg = nn.ModuleList([Hourglass(M // 2, config.depth) for _ in range(S)])
        self.res = nn.ModuleList([_residual(M, M // 2) for _ in range(S)])
        self.fc = nn.ModuleList(
            [nn.Sequential(nn.Conv2d(M, M, 1, bias=True), nn.BatchNorm2d(M), nn.ReLU(inplace=True)) for _ in range(S)]
        )
        self.score = nn.ModuleList([nn.Conv2d(M, config.num_joints, 1, bias=True) for _ in range(S)])
        self.fc_ = nn.ModuleList([nn.Conv2d(M, M, 1, bias=True) for _ in range(S - 1)])
        self.score_ = nn.ModuleList([nn.Conv2d(config.num_joints, M, 1, bias=True) for _ in range(S - 1)])
        self.apply_depth(config)

    def apply_depth(self, config: HourglassConfig) -> None:
        """Make this model's depth match ``config`` (same base architecture, at least as much removed): removed
        blocks and stacks become ``nn.Identity`` in place, as do the merges (``fc_``, ``score_``) of a stack no kept
        stack follows. Kept modules, their weights and state-dict keys are untouched."""
        for name in depth_removed_modules(config):
            parent, _, child = name.rpartition(".")
            setattr(self.get_submodule(parent), child, nn.Identity())
        self.config = config

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.maxpool(self.layer1(x))))  # (B, M, H/4, W/4): the stream
        outputs = []
        kept = self.config.kept_stacks
        for j, i in enumerate(kept):  # a removed stack passes the stream on unchanged
            y = self.fc[i](self.res[i](self.hg[i](x)))
            score = self.score[i](y)
            outputs.append(score)
            if j < len(kept) - 1:
                x = x + self.fc_[i](y) + self.score_[i](score)
        return outputs


def build_model(
    arch: str = "hg8",
    N: int = 128,
    M: int = 256,
    num_joints: int = 16,
    input_size: int = 256,
    depth: int = 4,
    normalization: Normalization | str | dict = DEFAULT_NORMALIZATION,
) -> HourglassNet:
    """Build an unpruned seed hourglass, e.g. ``build_model("hg7", N=128, M=256)``."""
    config = HourglassConfig(
        parse_arch(arch), N=N, M=M, num_joints=num_joints, depth=depth, input_size=input_size,
        normalization=get_normalization(normalization),
    )  # fmt: skip
    return HourglassNet(config)


def build_preset(name: str, **overrides) -> HourglassNet:
    """A model from :data:`PRESETS`, e.g. ``build_preset("tiny")``; keyword arguments override the preset."""
    if name not in PRESETS:
        raise HgpruneError(f"unknown model preset {name!r}; valid: {', '.join(PRESETS)}")
    return build_model(**{**PRESETS[name], **overrides})


def model_parts(model: HourglassNet) -> dict[str, list[str]]:
    """Named parts of the model → the module-name prefixes they contain.

    Used for per-part pruning ratios, per-part profiles and sensitivity maps: ``stem``, then for each stack ``s``
    ``hg{s}`` (the hourglass), ``res{s}``, ``fc{s}``, ``merge{s}`` (``fc_`` + ``score_``) and ``score{s}``.
    A depth-pruned model has the parts of its kept stacks only (a stack's ``merge`` only while a kept stack follows).
    """
    parts: dict[str, list[str]] = {"stem": ["conv1", "bn1", "layer1", "layer2", "layer3"]}
    kept = model.config.kept_stacks
    for s in kept:
        parts[f"hg{s}"] = [f"hg.{s}"]
        parts[f"res{s}"] = [f"res.{s}"]
        parts[f"fc{s}"] = [f"fc.{s}"]
        if s < kept[-1]:
            parts[f"merge{s}"] = [f"fc_.{s}", f"score_.{s}"]
        parts[f"score{s}"] = [f"score.{s}"]
    return parts


def part_of(module_name: str, parts: dict[str, list[str]]) -> str | None:
    """The part a module name belongs to (``hg.1.hg.0.2.0.conv1`` → ``hg1``)."""
    for part, prefixes in parts.items():
        for prefix in prefixes:
            if module_name == prefix or module_name.startswith(prefix + "."):
                return part
    return None
