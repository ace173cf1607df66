"""The engine: targets hit, rounding, scope controls, iterative schedules and a valid, reloadable hourglass."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from hgprune import build_model, load_model, save_model
from hgprune.errors import HgpruneError
from hgprune.prune import model_size, prune_to_target, round_keep, schedule_targets, search_ratio

TRUNK_CONVS = ("layer3.0.conv3", "fc_.0", "score_.0", "hg.0.hg.0.0.0.conv3", "res.0.0.conv3")


def tiny(arch: str = "hg1") -> nn.Module:
    torch.manual_seed(0)
    return build_model(arch, N=16, M=32, input_size=64)


def conv_widths(model: nn.Module) -> dict[str, tuple[int, int]]:
    return {n: (m.in_channels, m.out_channels) for n, m in model.named_modules() if isinstance(m, nn.Conv2d)}


@pytest.mark.parametrize("arch", ["hg1", "hg2"])
@pytest.mark.parametrize(("kind", "kept"), [("macs", 0.5), ("params", 0.6), ("channels", 0.8)])
def test_targets_are_hit_within_tolerance(arch, kind, kept):
    model = tiny(arch)
    reference = model_size(model, 64)
    result = prune_to_target(
        model, criterion="l1", kind=kind, kept=kept, reference=reference, input_size=64, round_to=1
    )
    measured = model_size(model, 64)
    assert result.target_met
    assert abs(measured[kind] / reference[kind] - kept) <= 0.02
    assert result.planned_fraction == pytest.approx(measured[kind] / reference[kind], rel=1e-9)  # analytic == real
    assert (result.macs, result.params, result.channels) == (measured["macs"], measured["params"], measured["channels"])


def test_heads_and_trunk_are_untouched_without_prune_trunk():
    model = tiny("hg2")
    before = conv_widths(model)
    result = prune_to_target(model, criterion="l1", kind="macs", kept=0.5, input_size=64, round_to=8)
    after = conv_widths(model)
    for s in range(2):
        assert after[f"score.{s}"][1] == 16
    assert after["score_.0"][0] == 16
    for name in TRUNK_CONVS:
        assert after[name][1] == before[name][1] == 32, name
    assert result.kept_macs == pytest.approx(0.5, abs=0.02)
    narrowed = [n for n in after if after[n][1] < before[n][1]]
    assert narrowed and all(after[n][1] % 8 == 0 for n in narrowed)


def test_prune_trunk_narrows_the_whole_coupled_trunk_and_keeps_heads():
    model = tiny("hg2")
    prune_to_target(model, criterion="l1", kind="macs", kept=0.4, input_size=64, round_to=8, prune_trunk=True)
    after = conv_widths(model)
    trunk = {after[name][1] for name in TRUNK_CONVS}
    assert len(trunk) == 1 and trunk.pop() < 32
    assert [after[f"score.{s}"][1] for s in range(2)] == [16, 16] and after["score_.0"][0] == 16


@pytest.mark.parametrize("mode", ["nearest", "down", "up"])
def test_round_to_is_respected_in_each_direction(mode):
    model = tiny("hg1")
    before = conv_widths(model)
    prune_to_target(model, criterion="l1", kind="macs", kept=0.6, input_size=64, round_to=8, round_mode=mode)
    after = conv_widths(model)
    changed = [n for n in after if after[n][1] != before[n][1]]
    assert changed
    assert all(after[n][1] % 8 == 0 for n in changed)


def test_round_keep_directions_and_limits():
    assert [round_keep(11.0, 32, 8, m) for m in ("nearest", "down", "up")] == [8, 8, 16]
    assert [round_keep(12.0, 32, 8, m) for m in ("nearest", "down", "up")] == [16, 8, 16]
    assert round_keep(3.0, 32, 8, "down") == 8  # never below one multiple
    assert round_keep(20.0, 32, 8, "down", min_keep=25) == 32  # max-ratio floor rounds up to a multiple
    assert round_keep(4.0, 6, 8, "nearest") == 6  # no multiple fits: the group is left alone
    assert round_keep(32.0, 32, 8, "down") == 32 and round_keep(19.6, 20, 8, "down") == 16
    assert round_keep(5.4, 16, None, "nearest") == 5 and round_keep(5.4, 16, 1, "up") == 6


def test_per_layer_ranking_prunes_every_interior_equally():
    model = tiny("hg1")
    prune_to_target(model, criterion="l1", kind="macs", kept=0.6, input_size=64, round_to=1, allocation="uniform")
    interiors = {m.out_channels for n, m in model.named_modules() if n.endswith(("conv1", "conv2")) and "hg.0" in n}
    assert len(interiors) == 1 and interiors.pop() < 16


def test_part_ratios_touch_only_their_part():
    model = tiny("hg2")
    before = conv_widths(model)
    result = prune_to_target(
        model, criterion="l1", kind="macs", kept=0.85, input_size=64, round_to=1, part_ratios={"*": 0, "hg1": 1}
    )
    after = conv_widths(model)
    changed = {n for n in after if after[n] != before[n]}
    assert changed and all(n.startswith("hg.1.") for n in changed)
    assert result.kept_macs == pytest.approx(0.85, abs=0.02)


def test_part_ratio_multiplier_prunes_harder():
    model = tiny("hg2")
    prune_to_target(
        model, criterion="l1", kind="macs", kept=0.7, input_size=64, round_to=1, allocation="uniform",
        part_ratios={"res0": 2.0},
    )  # fmt: skip
    assert model.res[0][0].conv1.out_channels < model.res[1][0].conv1.out_channels


def test_bad_part_names_are_user_errors():
    with pytest.raises(HgpruneError, match="valid: stem, hg0"):
        prune_to_target(tiny(), criterion="l1", kept=0.5, input_size=64, part_ratios={"hg9": 1})
    with pytest.raises(HgpruneError, match="prune_trunk"):
        prune_to_target(tiny(), criterion="l1", kept=0.5, input_size=64, part_ratios={"trunk": 1})


@pytest.mark.parametrize("bad", [{"kind": "flops"}, {"kept": 1.5}, {"round_mode": "sideways"}, {"round_to": 0}])
def test_bad_arguments_are_user_errors(bad):
    with pytest.raises(HgpruneError):
        prune_to_target(tiny(), **{"criterion": "l1", "input_size": 64, **bad})


def test_iterative_schedule_reaches_the_final_target_and_respects_max_layer_ratio():
    model = tiny("hg1")
    reference = model_size(model, 64)
    targets = schedule_targets(0.4, 3, kind="cubic")
    reached = []
    for target in targets:
        result = prune_to_target(
            model, criterion="l1", kind="macs", kept=target, reference=reference, input_size=64, round_to=1,
            max_layer_ratio=0.75,
        )  # fmt: skip
        reached.append(result.kept_macs)
        assert result.target_met
    assert all(abs(r - t) <= 0.02 for r, t in zip(reached, targets))
    assert reached == sorted(reached, reverse=True)
    base = conv_widths(tiny("hg1"))
    assert all(m.out_channels >= base[n][1] // 4 for n, m in model.named_modules() if isinstance(m, nn.Conv2d))


def test_training_mode_is_restored_and_model_round_trips(tmp_path):
    for training in (True, False):
        model = tiny("hg2").train(training)
        prune_to_target(model, criterion="l1", kind="macs", kept=0.5, input_size=64, round_to=8)
        assert model.training is training
        assert all(m.training is training for m in model.modules())
    model.eval()
    path = tmp_path / "pruned.pt"
    save_model(model, path)
    loaded = load_model(path)
    assert conv_widths(loaded) == conv_widths(model)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        for a, b in zip(model(x), loaded(x)):
            torch.testing.assert_close(a, b)


def test_nothing_is_pruned_when_the_model_is_already_below_target():
    model = tiny("hg1")
    reference = model_size(model, 64)
    prune_to_target(model, criterion="l1", kind="macs", kept=0.5, reference=reference, input_size=64, round_to=1)
    widths = conv_widths(model)
    result = prune_to_target(model, criterion="l1", kind="macs", kept=0.7, reference=reference, input_size=64)
    assert conv_widths(model) == widths and result.removed_channels == 0 and result.target_met


def test_schedules():
    assert schedule_targets(0.5, 5) == pytest.approx([0.9, 0.8, 0.7, 0.6, 0.5])
    cubic = schedule_targets(0.2, 4, kind="cubic")
    assert cubic == pytest.approx([1 - 0.8 * (1 - (1 - i / 4) ** 3) for i in range(1, 5)])
    assert cubic[-1] == 0.2 and cubic[0] < 1 - 0.8 / 4  # AGP front-loads the pruning
    geometric = schedule_targets(0.25, 2, kind="geometric")
    assert geometric == pytest.approx([0.5, 0.25]) and geometric[-1] == 0.25
    kept = [1.0, *schedule_targets(0.3, 4, kind="geometric")]
    assert [b / a for a, b in zip(kept, kept[1:])] == pytest.approx([0.3**0.25] * 4)  # the same cut every step
    with pytest.raises(HgpruneError, match="prune.schedule"):
        schedule_targets(0.5, 3, kind="exp")
    with pytest.raises(HgpruneError, match="prune.steps"):
        schedule_targets(0.5, 0)


def test_search_ratio_finds_the_closest_step():
    found = search_ratio(lambda r: 1 - round(r * 10) / 10, kept=0.53, tolerance=0.02)
    assert found.fraction == pytest.approx(0.5) and not found.met
    found = search_ratio(lambda r: 1 - r, kept=0.25, tolerance=0.02)
    assert found.met and found.fraction == pytest.approx(0.25, abs=1e-4)
