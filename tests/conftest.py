"""Shared fixtures: tiny models (1 stack, narrow, 64×64) keep the suite fast on 2 CPU cores."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def shared_dir() -> Path:
    return Path(os.environ.get("HGPRUNE_SHARED", ROOT.parent / "shared"))


@pytest.fixture
def shared() -> Path:
    path = shared_dir()
    if not path.is_dir():
        pytest.skip(f"shared material not found at {path} (set HGPRUNE_SHARED)")
    return path


def load_script(relative: str) -> ModuleType:
    """A standalone script of the repository (``scripts/…``, not a package) as a module, registered in
    ``sys.modules`` under its stem (dataclasses need that). Benchmarks and studies are packages: import them."""
    path = ROOT / relative
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


# Tiny models run fastest on one thread, and a shared 2-core machine thrashes with more; subprocesses inherit this.
os.environ.setdefault("OMP_NUM_THREADS", "1")
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)
    torch.set_num_threads(1)  # again per test: code under test may change it (profile/export take a thread count)
    yield


@pytest.fixture
def tiny_model():
    from hgprune.models import build_preset

    return build_preset("tiny")


def tiny_eval_model() -> torch.nn.Module:
    """The tiny preset with seeded weights and non-trivial BN statistics, in eval mode: a model that folding,
    exports and backends have something to get wrong on."""
    from hgprune.models import build_preset

    torch.manual_seed(0)
    net = build_preset("tiny")
    randomize_bn(net)
    return net.eval()


def randomize_bn(model: torch.nn.Module, seed: int = 0) -> None:
    """Non-trivial BN statistics so a checkpoint round-trip that dropped them would be caught."""
    gen = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=gen) * 0.1)


def prune_half(model: torch.nn.Module, size: int = 64) -> torch.nn.Module:
    """Narrow a model with raw torch-pruning (score heads kept), as a pruned-checkpoint source for tests."""
    import torch_pruning as tp

    ignored = [m for name, m in model.named_modules() if name.startswith("score.")]
    pruner = tp.pruner.MetaPruner(
        model,
        torch.randn(1, 3, size, size),
        importance=tp.importance.MagnitudeImportance(p=1),
        pruning_ratio=0.5,
        ignored_layers=ignored,
        output_transform=lambda out: sum(o.sum() for o in out),
    )
    pruner.step()
    return model
