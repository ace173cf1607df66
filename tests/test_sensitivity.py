import pandas as pd
import pytest
import torch

from hgprune import build_model
from hgprune.errors import HgpruneError
from hgprune.profile import count_params
from hgprune.sensitivity import prunable_parts, sensitivity_scan, write_sensitivity


@pytest.fixture
def model():
    return build_model("hg2", N=16, M=32, input_size=64).eval()


def test_scan_prunes_one_part_at_a_time(model):
    pruned_models = []

    def evaluate(m):  # a stand-in metric that we can compute by hand: parameters in thousands
        pruned_models.append(m)
        return count_params(m) / 1000

    table = sensitivity_scan(model, evaluate, parts=["stem", "hg1"], ratios=[0.25, 0.75], progress=False)
    assert list(table["part"]) == ["none", "stem", "stem", "hg1", "hg1"]
    base = count_params(model) / 1000
    assert table.loc[0, "pckh"] == pytest.approx(base)
    for row, pruned in zip(table.iloc[1:].itertuples(), pruned_models[1:]):
        assert row.pckh_drop == pytest.approx(base - count_params(pruned) / 1000, abs=1e-3)
        assert row.pckh_drop > 0 and row.kept_macs < 1
        changed = {
            name
            for (name, a), (_, b) in zip(model.named_modules(), pruned.named_modules())
            if isinstance(a, torch.nn.Conv2d) and a.weight.shape != b.weight.shape
        }
        prefix = ("conv1", "layer") if row.part == "stem" else ("hg.1.",)
        # the part's convs shrink (output side) and, at most, the first conv after it reads fewer channels
        assert changed and all(
            n.startswith(prefix)
            for n in changed
            if model.get_submodule(n).out_channels != pruned.get_submodule(n).out_channels
        )
    stem = table[table["part"] == "stem"]
    assert stem["pckh_drop"].is_monotonic_increasing and stem["kept_macs"].is_monotonic_decreasing
    assert count_params(model) == count_params(build_model("hg2", N=16, M=32))  # the input model is untouched


def test_default_parts_and_errors(model):
    assert prunable_parts(model) == ["stem", "hg0", "res0", "fc0", "hg1", "res1", "fc1"]
    with pytest.raises(HgpruneError, match="unknown part 'score0'"):
        sensitivity_scan(model, lambda m: 0.0, parts=["score0"], progress=False)
    with pytest.raises(HgpruneError, match="^ratios: "):
        sensitivity_scan(model, lambda m: 0.0, ratios=[1.5], progress=False)


def test_outputs_written(tmp_path, model):
    table = sensitivity_scan(model, lambda m: count_params(m) / 1e3, parts=["res0"], ratios=[0.5], progress=False)
    paths = write_sensitivity(table, tmp_path, "hgprune sensitivity runs/x")
    assert sorted(p.name for p in paths) == sorted(
        ["sensitivity.csv", "sensitivity.md", "sensitivity.png", "sensitivity.svg"]
    )
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "sensitivity.csv"), table, check_dtype=False)
    assert "hgprune sensitivity runs/x" in (tmp_path / "sensitivity.md").read_text()
