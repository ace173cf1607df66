"""Criteria: registry, scores on real dependency groups of the tiny hourglass, Taylor's BatchNorm terms."""

from __future__ import annotations

import pytest
import torch
import torch_pruning as tp
from torch import nn

from hgprune import build_model
from hgprune.errors import HgpruneError
from hgprune.models import build_preset
from hgprune.prune import CRITERIA, Criterion, get_criterion, group_layers, model_size, prune_to_target
from hgprune.prune.criteria import TaylorCriterion


def weighted_mse(outputs, targets, weights):
    return sum(((o - targets) ** 2 * weights[:, :, None, None]).mean() for o in outputs)


def calibration_batches(n: int = 2, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    return [
        (torch.randn(2, 3, 64, 64, generator=gen), torch.rand(2, 16, 16, 16, generator=gen), torch.ones(2, 16), {})
        for _ in range(n)
    ]


def groups_of(model):
    model.eval()
    graph = tp.DependencyGraph().build_dependency(
        model, torch.zeros(1, 3, 64, 64), output_transform=lambda out: sum(o.sum() for o in out)
    )
    heads = [m for n, m in model.named_modules() if n.startswith("score.")]
    names = {m: n for n, m in model.named_modules()}
    return {names[g[0].dep.target.module]: g for g in graph.get_all_groups(heads, root_module_types=[nn.Conv2d])}


class ReverseIndexCriterion(Criterion):
    """A user criterion loaded by ``tests.prune.test_criteria:ReverseIndexCriterion``: keeps the first channels."""

    def score(self, group):
        width = len(group[0].idxs)
        return torch.arange(width, 0, -1, dtype=torch.float32)


class ScoreOnly:
    """A user class with score() but no calibrate(): get_criterion must give it the no-op hook."""

    def score(self, group):
        return torch.ones(len(group[0].idxs))


@pytest.fixture(scope="module")
def tiny_groups():
    torch.manual_seed(0)
    model = build_preset("tiny")
    return model, groups_of(model)


@pytest.mark.parametrize("name", sorted(CRITERIA))
def test_every_criterion_scores_prunes_and_trains(name):
    model = build_model("hg2", N=16, M=32, input_size=64)
    criterion = get_criterion(name)
    criterion.calibrate(model, calibration_batches(), weighted_mse)
    for root, group in groups_of(model).items():
        scores = criterion.score(group)
        assert scores.shape == (len(group[0].idxs),), root
        assert torch.isfinite(scores).all() and (scores >= 0).all(), root
    before = model_size(model, 64)
    model.train()
    result = prune_to_target(
        model, criterion=name, kind="macs", kept=0.6, input_size=64, round_to=1,
        calibration=calibration_batches(), loss_fn=weighted_mse,
    )  # fmt: skip
    assert result.macs < before["macs"] and result.params < before["params"]
    assert abs(result.kept_macs - 0.6) <= 0.02
    outputs = model(torch.randn(2, 3, 64, 64))
    loss = weighted_mse(outputs, torch.rand(2, 16, 16, 16), torch.ones(2, 16))
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    assert [tuple(o.shape) for o in outputs] == [(2, 16, 16, 16)] * 2


def test_l1_is_the_filter_l1_norm(tiny_groups):
    model, groups = tiny_groups
    group = groups["hg.0.hg.0.0.0.conv1"]  # bottleneck interior: conv1 produces, bn2 gates, conv2 consumes
    expected = model.hg[0].hg[0][0][0].conv1.weight.detach().abs().sum(dim=(1, 2, 3))
    torch.testing.assert_close(get_criterion("l1").score(group), expected)


def test_bn_gamma_is_the_gating_batchnorm_scale(tiny_groups):
    model, groups = tiny_groups
    bn = model.hg[0].hg[0][0][0].bn2
    with torch.no_grad():
        bn.weight.copy_(torch.linspace(-1, 1, bn.num_features))
    expected = bn.weight.detach().abs()
    torch.testing.assert_close(get_criterion("bn_gamma").score(groups["hg.0.hg.0.0.0.conv1"]), expected)


def test_random_is_seeded(tiny_groups):
    _, groups = tiny_groups
    group = groups["hg.0.hg.0.0.0.conv1"]
    a, b, c = get_criterion("random"), get_criterion("random"), get_criterion("random", seed=1)
    torch.testing.assert_close(a.score(group), b.score(group))
    assert not torch.equal(get_criterion("random").score(group), c.score(group))


def test_taylor_counts_batchnorm_gamma_gradients():
    """Freezing one BN's γ and β removes exactly their terms: the group's scores drop by γ·∂L/∂γ (+β) squared."""
    torch.manual_seed(0)
    model = build_preset("tiny")
    batches = calibration_batches(n=1)
    groups = groups_of(model)
    group = groups["hg.0.hg.0.0.0.conv1"]
    bn = model.hg[0].hg[0][0][0].bn2
    full = TaylorCriterion()
    full.calibrate(model, batches, weighted_mse)
    with_bn = full.score(group)

    # The expected BN term, computed by hand from one backward pass.
    model.eval()
    model.zero_grad()
    images, targets, weights, _ = batches[0]
    weighted_mse(model(images), targets, weights).backward()
    bn_term = (bn.weight * bn.weight.grad + bn.bias * bn.bias.grad).detach() ** 2
    model.zero_grad(set_to_none=True)

    bn.weight.requires_grad_(False)
    bn.bias.requires_grad_(False)
    frozen = TaylorCriterion()
    frozen.calibrate(model, batches, weighted_mse)
    without_bn = frozen.score(group)
    assert (bn_term > 0).sum() >= 4  # live channels carry real signal through γ and β
    torch.testing.assert_close(with_bn - without_bn, bn_term, rtol=1e-4, atol=1e-12)


def test_taylor_a_channel_seen_only_through_its_batchnorm_still_scores():
    """Zero a channel's producing filter and its consumer's weights: only the BN γ/β path (and its bias) remain."""
    torch.manual_seed(0)
    model = build_preset("tiny")
    block = model.hg[0].hg[0][0][0]
    with torch.no_grad():
        block.conv1.weight[3].zero_()
        block.conv1.bias[3] = 0.0
        block.bn2.running_mean[3] = 1.0  # eval-mode BN turns the silent input into a constant -γ/σ + β
        block.bn2.weight[3] = -1.0
    group = groups_of(model)["hg.0.hg.0.0.0.conv1"]
    taylor = TaylorCriterion()
    taylor.calibrate(model, calibration_batches(n=1), weighted_mse)
    conv_only = sum(
        taylor.stats[(id(layer), role)][3] for role, layer, _, _ in group_layers(group) if role == "conv_out"
    )
    assert float(conv_only) == 0.0
    assert float(taylor.score(group)[3]) > 0.0


def test_taylor_without_calibration_data_is_a_user_error():
    with pytest.raises(HgpruneError, match="calibration"):
        TaylorCriterion().calibrate(build_preset("tiny"), None, None)


def test_calibration_leaves_running_stats_and_mode_alone():
    model = build_preset("tiny").train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    TaylorCriterion().calibrate(model, calibration_batches(), weighted_mse)
    assert model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())


def test_unknown_criterion_lists_valid_names():
    with pytest.raises(HgpruneError) as err:
        get_criterion("l3")
    message = str(err.value)
    assert "\n" not in message
    for name in ("bn_gamma", "l1", "random", "taylor"):
        assert name in message


def test_user_module_class_criterion_prunes_the_last_channels():
    criterion = get_criterion("tests.prune.test_criteria:ReverseIndexCriterion")
    assert isinstance(criterion, ReverseIndexCriterion)
    model = build_preset("tiny")
    kept_filters = model.hg[0].hg[0][0][0].conv1.weight.detach()[:8].clone()
    prune_to_target(model, criterion=criterion, kind="macs", kept=0.5, input_size=64, round_to=8)
    conv = model.hg[0].hg[0][0][0].conv1
    assert conv.out_channels == 8
    torch.testing.assert_close(conv.weight.detach(), kept_filters)  # highest score = lowest index survives


def test_user_class_without_calibrate_gets_the_no_op_hook():
    criterion = get_criterion("tests.prune.test_criteria:ScoreOnly")
    assert criterion.calibrate(None, None, None) is None


@pytest.mark.parametrize(
    ("name", "fragment"),
    [("no_such_pkg.mod:Thing", "cannot import 'no_such_pkg.mod'"), ("tests.prune.test_criteria:Nope", "no class")],
)
def test_bad_user_criterion_is_a_one_line_error(name, fragment):
    with pytest.raises(HgpruneError, match=fragment) as err:
        get_criterion(name)
    assert "\n" not in str(err.value)


def test_random_seed_can_be_set_per_step(tiny_groups):
    _, groups = tiny_groups
    group = groups["hg.0.hg.0.0.0.conv1"]
    criterion = get_criterion("random")
    criterion.reseed(7)
    torch.testing.assert_close(criterion.score(group), get_criterion("random", seed=7).score(group))
    assert not torch.equal(criterion.score(group), get_criterion("random", seed=7).score(group))  # stream moved on
    for name in CRITERIA:  # every criterion has the hook (a no-op for the deterministic ones)
        get_criterion(name).reseed(3)


def test_user_criterion_gets_the_default_hooks():
    criterion = get_criterion(f"{__name__}:ScoreOnly")
    assert criterion.calibrate(None, [], None) is None and criterion.reseed(1) is None
