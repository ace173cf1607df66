"""Checkpoints: hgprune's own pickle-free format, the seed's training checkpoints and plain state dicts.

hgprune's format is ``{"format", "format_version", "hgprune_version", "config", "meta", "state_dict"}`` — plain
tensors and JSON-able values only, so ``torch.load(path, weights_only=True)`` reads it. A pruned model is stored
exactly like an unpruned one: its reduced widths live in the tensor shapes, and loading rebuilds the base
architecture from ``config`` and then narrows each layer to the stored shape (as timm does for pruned models).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from hgprune.errors import HgpruneError
from hgprune.fsutil import atomic_torch_save, safe_torch_load
from hgprune.models.hourglass import HourglassConfig, HourglassNet
from hgprune.models.normalization import LEGACY_HGPRUNE, SEED

FORMAT = "hgprune-checkpoint"
FORMAT_VERSION = 1


def _version() -> str:
    from hgprune import __version__

    return __version__


def save_model(
    model: nn.Module, path: str | os.PathLike, meta: dict | None = None, trainer_state: dict | None = None
) -> None:
    """Write ``model`` (pruned or not) atomically in hgprune's format; ``meta`` must be JSON-able.

    ``trainer_state`` (:meth:`hgprune.train.Trainer.state_dict`: tensors and plain values) is stored under
    ``"trainer"`` for a file that training resumes from; :func:`load_trainer_state` reads it back."""
    model = unwrap(model)
    if not isinstance(model, HourglassNet):
        raise TypeError(f"save_model expects an HourglassNet, got {type(model).__name__}")
    meta = dict(meta or {})
    try:
        json.dumps(meta)
    except TypeError as exc:
        raise HgpruneError(f"checkpoint meta for {path} is not JSON-serialisable: {exc}") from None
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "hgprune_version": _version(),
        "config": model.config.to_dict(),
        "meta": meta,
        "state_dict": {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()},
    }
    if trainer_state is not None:
        payload["trainer"] = to_cpu(trainer_state)
    atomic_torch_save(payload, path)


def load_trainer_state(path: str | os.PathLike) -> dict:
    """The ``trainer_state`` :func:`save_model` stored in ``path`` (an empty dict when it stored none)."""
    raw = safe_torch_load(Path(path))
    state = raw.get("trainer") if isinstance(raw, dict) else None
    if state is not None and not isinstance(state, dict):
        raise HgpruneError(f"{path}: 'trainer' must be a mapping, found a {type(state).__name__}")
    return state or {}


def to_cpu(obj: Any) -> Any:
    """``obj`` (nested dicts, lists, tuples) with every tensor detached and copied to CPU."""
    if torch.is_tensor(obj):
        return obj.detach().cpu().clone()
    if isinstance(obj, dict):
        return {k: to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_cpu(v) for v in obj)
    return obj


def load_model(
    path: str | os.PathLike, expect: HourglassConfig | None = None, check_finite: bool = True
) -> HourglassNet:
    """Load any supported checkpoint as a model in eval mode; never executes pickled code."""
    model, _ = load_checkpoint(path, expect=expect, check_finite=check_finite)
    return model


def load_checkpoint(
    path: str | os.PathLike, expect: HourglassConfig | None = None, check_finite: bool = True
) -> tuple[HourglassNet, dict]:
    """Load a checkpoint; returns ``(model, info)`` where info holds ``source``, ``config``, ``meta`` and extras.

    ``expect`` (e.g. a recipe's model section) makes a checkpoint of another architecture an error instead of a
    silent surprise. ``check_finite`` refuses NaN/infinite weights and negative BatchNorm variances (which would
    otherwise evaluate to PCKh 0 and export "exactly"); turn it off only to inspect such a file.
    """
    path = Path(path)
    raw = safe_torch_load(path)
    if not isinstance(raw, dict):
        raise HgpruneError(f"{path}: not a checkpoint (found a {type(raw).__name__}, expected a dict of tensors)")
    info: dict[str, Any] = {"path": str(path)}
    if raw.get("format") == FORMAT:
        info["source"] = "hgprune"
        state_dict = raw.get("state_dict")
        try:
            config = HourglassConfig(**_with_normalization(raw["config"]))
        except (KeyError, TypeError, HgpruneError) as exc:
            raise HgpruneError(f"{path}: hgprune checkpoint with an invalid config ({str(exc)[:160]})") from None
        info["meta"] = raw.get("meta") or {}
        if not isinstance(info["meta"], dict):
            raise HgpruneError(f"{path}: checkpoint meta must be a mapping, found a {type(info['meta']).__name__}")
        info["hgprune_version"] = raw.get("hgprune_version")
    elif "state_dict" in raw:
        info["source"] = "seed"
        state_dict = raw["state_dict"]
        info["meta"] = {k: _plain(v) for k, v in raw.items() if k in ("epoch", "arch", "best_acc")}
        planned = raw.get("train_config", {}).get("epochs") if isinstance(raw.get("train_config"), dict) else None
        if isinstance(planned, int) and not isinstance(planned, bool):
            info["meta"]["planned_epochs"] = planned  # hgprune train's checkpoints: how many epochs the run asked for
        config = None
        if isinstance(raw.get("config"), dict):  # hgprune train writes the seed's layout plus its own config
            try:
                config = HourglassConfig(**_with_normalization(raw["config"]))
            except (TypeError, HgpruneError) as exc:
                raise HgpruneError(f"{path}: training checkpoint with an invalid config ({str(exc)[:160]})") from None
    else:
        info["source"] = "state_dict"
        state_dict = raw
        info["meta"] = {}
        config = None
    if not isinstance(state_dict, dict) or not all(torch.is_tensor(v) for v in state_dict.values()):
        raise HgpruneError(f"{path}: 'state_dict' is not a mapping of tensor names to tensors")
    if not all(isinstance(k, str) for k in state_dict):
        bad = next(k for k in state_dict if not isinstance(k, str))
        raise HgpruneError(f"{path}: state dict key of type {type(bad).__name__}; tensor names must be strings")
    state_dict = strip_prefix(state_dict)
    check_tensors(state_dict, path, check_finite)
    from_file = config is not None  # a config stated by the file is checked against its tensors below
    if config is None:  # the seed's checkpoints and plain state dicts: trained with the seed's normalisation
        config = infer_config(state_dict, path)
        seed_arch = info["meta"].get("arch")
        if isinstance(seed_arch, str) and seed_arch != config.arch:
            raise HgpruneError(f"{path}: checkpoint says arch={seed_arch!r} but its tensors describe {config.arch}")
    if expect is not None:
        _check_expected(path, config, expect)
    info["config"] = config.to_dict()
    model = model_from_state_dict(config, state_dict, path, at_most_base=from_file)
    return model, info


def check_tensors(state_dict: dict[str, torch.Tensor], path: str | os.PathLike, check_finite: bool = True) -> None:
    """Refuse tensors that claim more elements than the file stores for them (a zero-stride tensor can claim
    terabytes in a few bytes) and, with ``check_finite``, NaN/infinite values or negative BatchNorm variances."""
    for name, tensor in state_dict.items():
        claimed = tensor.numel() * tensor.element_size()
        if claimed > tensor.untyped_storage().nbytes():
            raise HgpruneError(
                f"{path}: tensor {name[:80]} claims shape {tuple(tensor.shape)} but the file stores only "
                f"{tensor.untyped_storage().nbytes():,} bytes for it"
            )
        if not check_finite or not tensor.is_floating_point():
            continue
        if not bool(torch.isfinite(tensor).all()):
            raise HgpruneError(f"{path}: tensor {name[:80]} holds NaN or infinity; the model is broken (diverged?)")
        if name.endswith("running_var") and bool((tensor < 0).any()):
            raise HgpruneError(f"{path}: tensor {name[:80]} holds a negative BatchNorm variance; the file is corrupt")


def _with_normalization(config: Any) -> Any:
    """An hgprune config written before models carried their normalisation was trained with ImageNet's."""
    if isinstance(config, dict) and "normalization" not in config:
        return {**config, "normalization": LEGACY_HGPRUNE}
    return config


def _plain(value: Any) -> Any:
    if torch.is_tensor(value):
        return value.item() if value.numel() == 1 else value.tolist()
    return value


def _check_expected(path: Path, found: HourglassConfig, expect: HourglassConfig) -> None:
    for key in ("num_stacks", "N", "M", "num_joints", "depth"):
        if getattr(found, key) != getattr(expect, key):
            raise HgpruneError(
                f"{path}: checkpoint is {found.arch} N={found.N} M={found.M} joints={found.num_joints}, but the "
                f"recipe expects {expect.arch} N={expect.N} M={expect.M} joints={expect.num_joints} "
                f"(mismatch in {key}); fix model.* in the recipe or pick the matching checkpoint"
            )


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside a DDP / DataParallel wrapper."""
    return model.module if hasattr(model, "module") and isinstance(model.module, nn.Module) else model


def strip_prefix(state_dict: dict[str, torch.Tensor], prefix: str = "module.") -> dict[str, torch.Tensor]:
    if state_dict and all(k.startswith(prefix) for k in state_dict):
        return {k[len(prefix) :]: v for k, v in state_dict.items()}
    return dict(state_dict)


def infer_config(state_dict: dict[str, torch.Tensor], path: str | os.PathLike = "<state_dict>") -> HourglassConfig:
    """Recover stacks, N, M and joints of the *base* architecture from a seed-layout state dict."""
    required = ("conv1.weight", "layer3.0.conv3.weight", "score.0.weight")
    missing = [k for k in required if k not in state_dict]
    if missing:
        raise HgpruneError(
            f"{path}: not a stacked-hourglass state dict (missing {', '.join(missing)}); "
            "expected the seed's key layout (conv1.*, layer1-3.*, hg.*, res.*, fc.*, score.*)"
        )
    stacks = len({k.split(".")[1] for k in state_dict if k.startswith("score.") and k.endswith(".weight")})
    depth = len({k.split(".")[3] for k in state_dict if k.startswith("hg.0.hg.")})
    # layer1 writes N channels and layer3 writes the trunk (M); for a pruned foreign state dict these are the
    # pruned widths, which is harmless: every layer is narrowed to its stored shape afterwards anyway.
    N = state_dict["layer1.0.conv3.weight"].shape[0] if "layer1.0.conv3.weight" in state_dict else None
    M = state_dict["layer3.0.conv3.weight"].shape[0]
    if N is None:
        raise HgpruneError(f"{path}: missing layer1.0.conv3.weight, cannot infer the stem width N")
    joints = state_dict["score.0.weight"].shape[0]
    try:
        return HourglassConfig(
            num_stacks=stacks, N=int(N), M=int(M), num_joints=int(joints), depth=depth or 4, normalization=SEED
        )
    except HgpruneError as exc:
        raise HgpruneError(f"{path}: tensor shapes do not describe a valid hourglass ({exc})") from None


def narrow_to_state_dict(model: nn.Module, state_dict: dict[str, torch.Tensor]) -> nn.Module:
    """Resize every conv / BN of ``model`` whose stored tensor has another shape (pruned layers), in place."""
    for name, module in list(model.named_modules()):
        weight = state_dict.get(f"{name}.weight")
        if weight is None:
            continue
        if isinstance(module, nn.Conv2d) and weight.dim() == 4 and tuple(weight.shape) != tuple(module.weight.shape):
            out_ch, in_ch = int(weight.shape[0]), int(weight.shape[1]) * module.groups
            new = nn.Conv2d(
                in_ch,
                out_ch,
                kernel_size=module.kernel_size,
                stride=module.stride,
                padding=module.padding,
                dilation=module.dilation,
                groups=module.groups,
                bias=module.bias is not None,
            )
            _set_submodule(model, name, new)
        elif isinstance(module, nn.BatchNorm2d) and weight.dim() == 1 and weight.shape[0] != module.num_features:
            new = nn.BatchNorm2d(int(weight.shape[0]), eps=module.eps, momentum=module.momentum)
            _set_submodule(model, name, new)
    return model


def _set_submodule(root: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, child, new)


def model_from_state_dict(
    config: HourglassConfig,
    state_dict: dict[str, torch.Tensor],
    path: str | os.PathLike = "<state_dict>",
    at_most_base: bool = False,
) -> HourglassNet:
    """Base architecture from ``config``, narrowed to the stored shapes, weights loaded, checked, in eval mode.

    The base is laid out on the meta device and only the stored shapes are ever allocated, so a config that claims
    huge widths costs nothing. ``at_most_base`` (the config came from the file) also refuses a tensor wider than
    the config's own architecture.
    """
    with torch.device("meta"):
        model = HourglassNet(config)
    base_shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    expected = set(base_shapes)
    unknown = sorted(set(state_dict) - expected)
    missing = sorted(expected - set(state_dict))
    if unknown or missing:
        parts = []
        if unknown:
            parts.append(f"{len(unknown)} unknown key(s) e.g. {', '.join(unknown[:3])}")
        if missing:
            parts.append(f"{len(missing)} missing key(s) e.g. {', '.join(missing[:3])}")
        raise HgpruneError(
            f"{path}: state dict does not match {config.arch} N={config.N} M={config.M}: " + "; ".join(parts)
        )
    if at_most_base:
        for key, tensor in state_dict.items():
            base = base_shapes[key]
            if tensor.dim() != len(base) or any(s > b for s, b in zip(tensor.shape, base)):
                raise HgpruneError(
                    f"{path}: tensor {key} has shape {tuple(tensor.shape)}, wider than the checkpoint's own config "
                    f"allows ({base}); the config and the weights disagree"
                )
    with torch.device("meta"):
        narrow_to_state_dict(model, state_dict)
    model.to_empty(device="cpu")
    try:
        model.load_state_dict(state_dict, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        raise HgpruneError(f"{path}: tensors do not fit the architecture ({first[-1].strip()[:200]})") from None
    model.eval()
    try:
        with torch.no_grad():
            side = 4 * 2**config.depth
            model(torch.zeros(1, 3, side, side))
    except RuntimeError as exc:
        raise HgpruneError(
            f"{path}: layer widths are inconsistent with each other ({str(exc).splitlines()[0][:160]})"
        ) from None
    return model
