"""BatchNorm folding: exact, only where exact, and never on the caller's model."""

import pytest
import torch
from torch import nn

from hgprune import build_model
from hgprune.export import fold_batchnorm, foldable_pairs
from hgprune.models import build_preset
from tests.conftest import prune_half, randomize_bn


def _bottlenecks(stacks: int, depth: int = 4) -> int:
    """Stem (3) + per stack one hourglass (3 branches per level, +1 at the bottom) and one res block."""
    return 3 + stacks * (3 * depth + 1 + 1)


def _max_diff(a: nn.Module, b: nn.Module, x: torch.Tensor) -> float:
    with torch.no_grad():
        return max(float((p - q).abs().max()) for p, q in zip(a(x), b(x), strict=True))


@pytest.mark.parametrize("arch, stacks", [("hg1", 1), ("hg2", 2)])
def test_fold_counts_and_exactness(arch, stacks):
    model = build_model(arch, N=16, M=32, input_size=64)
    randomize_bn(model)
    model.eval()
    folded, pairs = fold_batchnorm(model)
    # conv1→bn1, every fc[i] conv→BN, and conv1→bn2, conv2→bn3 inside every bottleneck.
    assert len(pairs) == 1 + stacks + 2 * _bottlenecks(stacks)
    total_bn = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert total_bn == 1 + stacks + 3 * _bottlenecks(stacks)
    left = [n for n, m in folded.named_modules() if isinstance(m, nn.BatchNorm2d)]
    # Only the pre-activation BNs (after an add, before ReLU→conv) remain.
    assert len(left) == _bottlenecks(stacks) and all(n.endswith(".bn1") for n in left)
    assert ("conv1", "bn1") in pairs and ("fc.0.0", "fc.0.1") in pairs
    assert ("layer1.0.conv1", "layer1.0.bn2") in pairs and ("layer1.0.conv2", "layer1.0.bn3") in pairs
    assert not any(bn.endswith(".bn1") and bn != "bn1" for _, bn in pairs)
    assert _max_diff(model, folded, torch.randn(2, 3, 64, 64)) < 1e-5


def test_fold_leaves_caller_model_untouched():
    model = build_preset("tiny")
    randomize_bn(model)
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    folded, _ = fold_batchnorm(model)
    assert model.training and not folded.training
    after = model.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    assert isinstance(model.bn1, nn.BatchNorm2d) and isinstance(folded.bn1, nn.Identity)


def test_fold_pruned_model_exact():
    model = build_preset("tiny")
    randomize_bn(model)
    prune_half(model)
    model.eval()
    folded, pairs = fold_batchnorm(model)
    assert len(pairs) == 36
    assert folded.layer1[0].conv1.out_channels < 8  # really pruned (N/2 = 8 before)
    assert _max_diff(model, folded, torch.randn(1, 3, 64, 64)) < 1e-5


class _Branchy(nn.Module):
    """conv_a feeds its BN and a skip (not foldable); conv_b feeds only its BN (foldable); a BN-less conv."""

    def __init__(self) -> None:
        super().__init__()
        self.conv_a, self.bn_a = nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4)
        self.conv_b, self.bn_b = nn.Conv2d(4, 4, 1, bias=False), nn.BatchNorm2d(4)
        self.conv_c = nn.Conv2d(4, 4, 1)

    def forward(self, x):
        a = self.conv_a(x)
        y = torch.relu(self.bn_a(a)) + a
        return self.conv_c(self.bn_b(self.conv_b(y)))


def test_fold_only_where_exact_and_bias_created():
    model = _Branchy()
    randomize_bn(model)
    model.eval()
    assert foldable_pairs(model) == [("conv_b", "bn_b")]
    folded, _ = fold_batchnorm(model)
    assert isinstance(folded.bn_a, nn.BatchNorm2d) and folded.conv_b.bias is not None and model.conv_b.bias is None
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        assert float((model(x) - folded(x)).abs().max()) < 1e-5
