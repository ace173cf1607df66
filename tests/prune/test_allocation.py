"""Allocation (uniform / global / search), hitting targets under coarse rounding, and BatchNorm re-estimation."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from torch import nn

from hgprune.calibration import recalibrate_bn
from hgprune.errors import HgpruneError
from hgprune.models import build_preset
from hgprune.prune import model_size, prune_to_target
from hgprune.prune.allocation import (
    SearchSettings,
    TrainingSlice,
    plan_to_target,
    sample_candidates,
    sensitivity_bias,
)
from hgprune.recipe import PruneSection, Recipe, build
from tests.train.fakes import TinyPoseDataset

SMALL_SEARCH = SearchSettings(candidates=4, batches=2, holdout=8, batch_size=4)


def tiny() -> nn.Module:
    torch.manual_seed(0)
    return build_preset("tiny")


class RecordingDataset(TinyPoseDataset):
    """Remembers which samples were read, to prove what the search touches."""

    def __init__(self, size: int, seed: int = 0) -> None:
        super().__init__(size, seed=seed, augment=False)
        self.read: list[int] = []

    def __getitem__(self, i: int):
        self.read.append(int(i))
        return super().__getitem__(i)


def conv_widths(model: nn.Module) -> dict[str, int]:
    return {n: m.out_channels for n, m in model.named_modules() if isinstance(m, nn.Conv2d)}


# -- hitting the target -------------------------------------------------------------------------------------------


def test_plan_to_target_lets_a_subset_of_groups_take_the_next_rounding_step():
    """Four equal groups of 32 that all move in steps of 8 (25 %) cannot keep 62.5 % uniformly; two of them can."""
    widths = np.full(4, 32)

    def plan(ratio: float) -> np.ndarray:
        return np.full(4, max(8, int(np.floor(32 * (1 - ratio) / 8 + 0.5)) * 8))

    def fraction_of(keep: np.ndarray) -> float:
        return float(keep.sum() / widths.sum())

    def priority(i: int, keep_from: int, keep_to: int) -> float:
        return [3.0, 0.5, 2.0, 1.0][i]  # group 1, then 3, lose their step first

    keep, found = plan_to_target(plan, fraction_of, 0.625, 0.02, priority, lambda i, k: None)
    assert keep.tolist() == [24, 16, 24, 16]
    assert found.met and found.fraction == pytest.approx(0.625)


def test_plan_to_target_greedy_fill_when_one_step_is_too_big():
    """One group holds most of the cost: the bracketing plans miss, single steps of the others land in tolerance."""
    cost = np.array([10.0, 1.0, 1.0, 1.0])

    def plan(ratio: float) -> np.ndarray:
        return np.array([32 if ratio < 0.5 else 16, 32, 32, 32])

    def fraction_of(keep: np.ndarray) -> float:
        return float((cost * keep).sum() / (cost * 32).sum())

    def step_down(i: int, keep: int) -> int | None:
        return keep - 4 if i > 0 and keep > 4 else None

    keep, found = plan_to_target(plan, fraction_of, 0.9, 0.02, lambda i, a, b: float(i), step_down)
    assert found.met and abs(found.fraction - 0.9) <= 0.02
    assert keep[0] == 32 and keep[1:].sum() < 96


@pytest.mark.parametrize("kept", [0.5, 0.35])
def test_uniform_allocation_hits_its_target_with_coarse_rounding(kept):
    """round_to 4 on 16-channel interiors moves every group in 25 % steps; the engine must still land in tolerance."""
    model = tiny()
    reference = model_size(model, 64)
    result = prune_to_target(
        model, criterion="l1", kept=kept, reference=reference, input_size=64, round_to=4, allocation="uniform"
    )
    measured = model_size(model, 64)["macs"] / reference["macs"]
    assert result.target_met and abs(measured - kept) <= 0.02
    assert result.planned_fraction == pytest.approx(measured, rel=1e-9)
    changed = [w for n, w in conv_widths(model).items() if w != conv_widths(tiny())[n]]
    assert changed and all(w % 4 == 0 for w in changed)
    assert result.allocation["method"] == "uniform"
    assert sum(p["kept"] for p in result.allocation["parts"].values()) < sum(
        p["width"] for p in result.allocation["parts"].values()
    )


def test_allocation_is_checked_by_its_one_definition_and_the_deprecated_alias_is_gone():
    with pytest.raises(
        HgpruneError, match="prune.allocation: must be one of 'uniform', 'global', 'search', got 'best'"
    ):
        prune_to_target(tiny(), criterion="l1", kept=0.5, input_size=64, allocation="best")
    with pytest.raises(TypeError, match="global_ranking"):
        prune_to_target(tiny(), criterion="l1", kept=0.5, input_size=64, global_ranking=False)
    a, b = tiny(), tiny()
    prune_to_target(a, criterion="l1", kept=0.5, input_size=64, round_to=1)
    prune_to_target(b, criterion="l1", kept=0.5, input_size=64, round_to=1, allocation="uniform")
    assert conv_widths(a) == conv_widths(b)  # an unset allocation is uniform, as the docstring says


# -- search ---------------------------------------------------------------------------------------------------


def _search(train_set, seed: int = 3, settings: SearchSettings = SMALL_SEARCH, kept: float = 0.5):
    model = tiny()
    result = prune_to_target(
        model, criterion="l1", kept=kept, input_size=64, round_to=1, allocation="search",
        search=settings, train_set=train_set, seed=seed, progress=False,
    )  # fmt: skip
    return model, result


def test_search_meets_the_target_and_records_every_candidate():
    model, result = _search(TinyPoseDataset(24, augment=False))
    assert result.target_met and abs(result.kept_macs - 0.5) <= 0.02
    record = result.allocation
    assert record["method"] == "search" and len(record["candidates"]) == SMALL_SEARCH.candidates
    assert [c["name"] for c in record["candidates"][:2]] == ["uniform", "global"]
    # candidates are planned to a quarter of the tolerance, so none wins by keeping more MACs
    assert all(abs(c["fraction"] - 0.5) <= 0.005 for c in record["candidates"])
    scored = [c["score"] for c in record["candidates"] if c["score"] is not None]
    assert record["chosen"]["score"] == max(scored)
    assert record["chosen"]["parts"] == record["parts"]  # the chosen plan is the one applied
    assert sum(p["kept"] for p in record["parts"].values()) < sum(p["width"] for p in record["parts"].values())


def test_search_is_deterministic_for_a_seed():
    data = TinyPoseDataset(24, augment=False)
    a, result_a = _search(data, seed=5)
    b, result_b = _search(data, seed=5)
    assert conv_widths(a) == conv_widths(b)
    assert result_a.allocation["candidates"] == result_b.allocation["candidates"]
    for pa, pb in zip(a.state_dict().values(), b.state_dict().values()):
        assert torch.equal(pa, pb)
    samples_a = sample_candidates(["hg0.level3", "stem"], SearchSettings(candidates=6), 5, {})
    samples_c = sample_candidates(["hg0.level3", "stem"], SearchSettings(candidates=6), 6, {})
    assert [c.factors for c in samples_a] != [c.factors for c in samples_c]


def test_search_reads_only_its_training_slices():
    """BN batches and the held-out slice come from the training split, disjoint, and nothing else is read."""
    train = RecordingDataset(24)
    _search(train, seed=1)
    piece = TrainingSlice(TinyPoseDataset(24), SMALL_SEARCH, seed=1)
    holdout, bn = set(piece.holdout_indices), set(piece.bn_indices)
    assert holdout == set(range(16, 24)) and len(bn) == SMALL_SEARCH.batches * SMALL_SEARCH.batch_size
    assert not holdout & bn
    assert set(train.read) == holdout | bn


def test_runner_never_gives_the_engine_validation_data(monkeypatch, tmp_path):
    """The run passes its training split to the search; a validation set that raises on read is never touched."""

    seen = {}

    def fake_prune(model, **kwargs):
        seen.update(kwargs)
        raise RuntimeError("stop here")

    class Exploding(TinyPoseDataset):
        def __getitem__(self, i):
            raise AssertionError("validation data read during pruning")

    from hgprune import stages
    from hgprune.pipeline import Pipeline
    from hgprune.prune import engine
    from hgprune.rundir import RunDir

    recipe = build(Recipe, {"prune": {"allocation": "search"}, "data": {"calibration_batches": 0}})
    train = TinyPoseDataset(8)
    ctx = stages.RunContext(recipe, RunDir(tmp_path / "run"), _pipeline=Pipeline(recipe, train, Exploding(4)))
    monkeypatch.setattr(engine, "prune_to_target", fake_prune)
    with pytest.raises(RuntimeError, match="stop here"):
        stages.prune_step(ctx, tiny(), 1, 0.5, 1, model_size(tiny(), 64))
    assert seen["train_set"] is train and seen["allocation"] == "search"
    assert not any(value is ctx.pipeline.val_set for value in seen.values())


def test_sensitivity_csv_biases_less_sensitive_parts_to_lose_more(tmp_path):
    csv = tmp_path / "sensitivity.csv"
    csv.write_text("part,ratio,pckh_drop\nnone,0.0,0.0\nstem,0.5,8.0\nhg0,0.5,2.0\nres0,0.5,-1.0\n")
    bias = sensitivity_bias(csv, ["stem", "hg0.level3", "hg0.level0", "res0", "fc0"])
    assert bias["hg0.level3"] == bias["hg0.level0"] > bias["stem"]
    assert bias["stem"] * 2 == pytest.approx(bias["hg0.level3"])  # (8 / 2)^½ = 2
    assert float(np.prod(list(bias.values()))) == pytest.approx(1.0)
    bad = tmp_path / "bad.csv"
    bad.write_text("part,ratio\nstem,0.5\n")
    with pytest.raises(HgpruneError, match="prune.search.sensitivity: .*bad.csv has no column\\(s\\) pckh_drop"):
        sensitivity_bias(bad, ["stem"])


# -- recipe ----------------------------------------------------------------------------------------------------


def test_recipe_search_defaults_are_the_engine_defaults():
    section = Recipe().prune.search
    for field in dataclasses.fields(SearchSettings):
        assert getattr(section, field.name) == getattr(SearchSettings(), field.name), field.name


def test_recipe_allocation_names_the_key_at_fault():
    assert build(PruneSection, {}).allocation == "uniform"
    assert build(PruneSection, {"allocation": "search"}).allocation == "search"
    with pytest.raises(HgpruneError, match="global_ranking: unknown key"):
        build(Recipe, {"prune": {"global_ranking": True}})
    with pytest.raises(HgpruneError, match=r"prune.search.candidates: must be in \[1, 1000\], got 0"):
        build(Recipe, {"prune": {"search": {"candidates": 0}}})
    with pytest.raises(HgpruneError, match="prune.allocation: must be one of"):
        build(Recipe, {"prune": {"allocation": "best"}})


# -- BatchNorm re-estimation -----------------------------------------------------------------------------------


def test_recalibrate_bn_sets_running_stats_to_the_batch_statistics():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4, momentum=0.1))
    bn = model[1]
    bn.running_mean.fill_(5.0)
    bn.running_var.fill_(9.0)
    model.eval()
    batches = [(torch.randn(2, 3, 5, 5), None), (torch.randn(2, 3, 5, 5) + 1.0, None)]
    assert recalibrate_bn(model, batches) == 2
    with torch.no_grad():
        feats = [model[0](b[0]) for b in batches]
    means = torch.stack([f.mean(dim=(0, 2, 3)) for f in feats]).mean(0)
    variances = torch.stack([f.transpose(0, 1).flatten(1).var(1, unbiased=True) for f in feats]).mean(0)
    assert torch.allclose(bn.running_mean, means, atol=1e-5)
    assert torch.allclose(bn.running_var, variances, atol=1e-5)
    assert bn.momentum == 0.1 and not model.training  # restored
    assert recalibrate_bn(model, []) == 0 and torch.allclose(bn.running_mean, means, atol=1e-5)


def test_recalibrate_bn_after_pruning_uses_training_batches():
    model = tiny()
    data = TinyPoseDataset(24, augment=False)
    before = {n: b.running_mean.clone() for n, b in model.named_modules() if isinstance(b, nn.BatchNorm2d)}
    result = prune_to_target(
        model, criterion="l1", kept=0.5, input_size=64, round_to=1, allocation="uniform", recalibrate_bn=True,
        search=SMALL_SEARCH, train_set=data, seed=0,
    )  # fmt: skip
    assert result.bn_recalibrated and "recalibrate_bn_s" in result.timings
    after = {n: b for n, b in model.named_modules() if isinstance(b, nn.BatchNorm2d)}
    assert all(int(b.num_batches_tracked) == SMALL_SEARCH.batches for b in after.values())
    assert any(not torch.equal(before[n][: b.num_features], b.running_mean) for n, b in after.items())


# -- dry run ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("allocation", ["uniform", "search"])
def test_dry_run_shows_the_allocation_and_the_uniform_plan(allocation, capsys, tmp_path):
    from hgprune.cli import main
    from tests.conftest import ROOT

    recipe = ROOT / "recipes" / "quickstart.yaml"
    out_dir = tmp_path / "never"
    args = ["run", str(recipe), "--dry-run", "--out", str(out_dir), "--set", f"prune.allocation={allocation}",
            "--set", "prune.target.kind=macs", "--set", "prune.depth=none"]  # fmt: skip
    assert main(args) == 0
    out = capsys.readouterr().out
    assert f"allocation: {allocation} — " in out
    label = "plan" if allocation == "uniform" else "uniform plan for comparison"
    line = next(x for x in out.splitlines() if f"{label} at the final target" in x)
    assert "trunk 64/64" in line and "stem " in line and "hg0 " in line  # quickstart keeps the trunk
    kept = float(line.rsplit("kept macs ", 1)[1].rstrip(")"))
    assert abs(kept - 0.5) <= 0.02
    if allocation == "search":
        assert "12 candidates" in out
    assert not out_dir.exists()
