import pytest
import torch

from hgprune import build_model
from hgprune.errors import HgpruneError
from hgprune.models.hourglass import ARCHS, model_parts, part_of

# docs/DESIGN.md §1: exact counts of the seed's code at N=128, M=256.
SEED_PARAMS = {
    "hg1": 3_586_960,
    "hg2": 6_730_912,
    "hg3": 9_874_864,
    "hg4": 13_018_816,
    "hg5": 16_162_768,
    "hg6": 19_306_720,
    "hg7": 22_450_672,
    "hg8": 25_594_624,
}


@pytest.mark.parametrize("arch", ARCHS)
def test_parameter_counts_match_seed(arch):
    model = build_model(arch, N=128, M=256)
    assert sum(p.numel() for p in model.parameters()) == SEED_PARAMS[arch]


@pytest.mark.parametrize("arch", ARCHS)
def test_output_shapes_per_stack(arch):
    model = build_model(arch, N=8, M=16, num_joints=5, input_size=64).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 64, 128))
    assert len(out) == int(arch[2:])
    assert all(o.shape == (2, 5, 16, 32) for o in out)


def test_state_dict_keys_follow_seed_layout():
    keys = set(build_model("hg2", N=32, M=64).state_dict())
    for key in [
        "conv1.weight",
        "bn1.running_var",
        "layer1.0.downsample.0.weight",
        "layer3.0.conv3.bias",
        "hg.1.hg.0.3.0.conv2.weight",
        "hg.0.hg.3.2.0.bn3.weight",
        "res.1.0.conv1.weight",
        "fc.0.0.weight",
        "fc.1.1.running_mean",
        "score.1.weight",
        "fc_.0.weight",
        "score_.0.bias",
    ]:
        assert key in keys
    assert "fc_.1.weight" not in keys  # the last stack has no merge convs
    assert "hg.0.hg.1.3.0.conv1.weight" not in keys  # only the bottom level has a fourth branch


def test_layer3_has_projection_only_when_widths_differ():
    assert build_model("hg1", N=32, M=64).layer3[0].downsample is None
    assert build_model("hg1", N=64, M=96).layer3[0].downsample is not None


def test_forward_backward_tiny(tiny_model):
    tiny_model.train()
    out = tiny_model(torch.randn(2, 3, 64, 64))
    loss = sum(o.pow(2).mean() for o in out)
    loss.backward()
    grads = [p.grad for p in tiny_model.parameters()]
    assert all(g is not None for g in grads)
    assert sum(g.abs().sum().item() for g in grads) > 0


@pytest.mark.parametrize(
    "kwargs, key",
    [({"N": 7}, "model.N"), ({"M": 0}, "model.M"), ({"input_size": 100}, "model.input_size")],
)
def test_invalid_config_names_the_key(kwargs, key):
    with pytest.raises(HgpruneError, match=key):
        build_model("hg1", **kwargs)


def test_unknown_arch_lists_valid_names():
    with pytest.raises(HgpruneError, match="valid: hg1, hg2"):
        build_model("hg9")


def test_parts_cover_every_parameter():
    model = build_model("hg3", N=8, M=16)
    parts = model_parts(model)
    assert set(parts) >= {"stem", "hg0", "res2", "fc1", "merge1", "score2"} and "merge2" not in parts
    for name, _ in model.named_parameters():
        assert part_of(name.rsplit(".", 1)[0], parts) is not None, name


def test_bottom_warning_only_for_stacked_hourglasses_that_reach_1x1():
    from hgprune.models.hourglass import HourglassConfig, bottom_warning

    warning = bottom_warning(HourglassConfig(num_stacks=3, N=8, M=16, depth=4, input_size=64))
    assert warning is not None and "hg3 at 64 px with hourglass depth 4 bottoms out at 1x1" in warning
    assert "depth 3 stops at 2x2" in warning
    assert bottom_warning(HourglassConfig(num_stacks=3, N=8, M=16, depth=3, input_size=64)) is None  # 2x2
    assert bottom_warning(HourglassConfig(num_stacks=3, N=8, M=16, depth=4, input_size=128)) is None  # 2x2
    assert bottom_warning(HourglassConfig(num_stacks=1, N=8, M=16, depth=4, input_size=64)) is None  # nothing compounds
