"""Depth pruning: stacks and residual blocks removed, the model still exact where it should be, saved, exported,
predicted with, refused when its config is hostile, and planned to a cost target."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from hgprune.errors import HgpruneError
from hgprune.export import export_model
from hgprune.models import build_model, load_model, save_model
from hgprune.models.hourglass import block_names
from hgprune.predict import Predictor
from hgprune.profile import conv_macs, count_params
from hgprune.prune import model_size, prune_to_target
from hgprune.prune.cost import COSTS, MacsCost, ParamsCost, get_cost
from hgprune.prune.depth import (
    IMPORTANCES,
    get_importance,
    plan_depth,
    removable_units,
    remove_units,
    unit_savings,
)
from tests.conftest import randomize_bn


def _hg3() -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_model("hg3", N=16, M=32, input_size=64, depth=2)
    randomize_bn(model)
    return model.eval()


@pytest.fixture(scope="module")
def hg3():
    return _hg3()


@pytest.fixture(scope="module")
def x():
    return torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))


@torch.no_grad()
@pytest.mark.parametrize("k", [1, 2])
def test_truncating_at_stack_k_reproduces_the_kth_output_exactly(hg3, x, k):
    full = hg3(x)
    truncated = remove_units(hg3, [f"stack.{s}" for s in range(k, 3)])
    out = truncated(x)
    assert len(out) == k == truncated.config.num_outputs
    assert all(torch.equal(a, b) for a, b in zip(out, full[:k]))
    # kept modules keep their keys and tensors; the dead merge of the new last stack is gone
    parent = hg3.state_dict()
    assert all(torch.equal(v, parent[key]) for key, v in truncated.state_dict().items())
    assert not any(key.startswith(f"fc_.{k - 1}.") for key in truncated.state_dict())


@torch.no_grad()
def test_a_removed_intermediate_stack_passes_the_stream_on(hg3, x):
    model = remove_units(hg3, ["stack.1"])
    stem = hg3.layer3(hg3.layer2(hg3.maxpool(hg3.layer1(hg3.relu(hg3.bn1(hg3.conv1(x)))))))
    y = hg3.fc[0](hg3.res[0](hg3.hg[0](stem)))
    first = hg3.score[0](y)
    stream = stem + hg3.fc_[0](y) + hg3.score_[0](first)  # stack 1 skipped: stack 2 reads this
    last = hg3.score[2](hg3.fc[2](hg3.res[2](hg3.hg[2](stream))))
    out = model(x)
    assert len(out) == 2 and torch.equal(out[0], first) and torch.allclose(out[1], last, atol=1e-6)


@torch.no_grad()
def test_a_removed_block_is_the_identity_and_every_block_can_go(hg3, x):
    model = remove_units(hg3, ["hg.0.hg.1.0.0"])
    assert isinstance(model.hg[0].hg[1][0][0], torch.nn.Identity)
    level = model.hg[0]  # the outer level's skip branch now passes its input on unchanged
    probe = torch.randn(1, 32, 16, 16)
    assert torch.equal(level.hg[1][0](probe), probe)
    everything = remove_units(hg3, removable_units(hg3, "blocks"))
    assert len(everything.config.removed_blocks) == len(block_names(hg3.config)) == 24
    out = everything(x)
    assert len(out) == 3 and all(o.shape == (2, 16, 16, 16) and torch.isfinite(o).all() for o in out)
    assert count_params(everything) < count_params(hg3) / 4


def test_depth_pruned_model_round_trips_through_save_and_load(hg3, x, tmp_path):
    model = remove_units(hg3, ["stack.1", "res.0.0", "hg.2.hg.1.2.0"])
    save_model(model, tmp_path / "m.pt")
    raw = torch.load(tmp_path / "m.pt", weights_only=True)
    assert raw["config"]["removed_stacks"] == [1] and raw["config"]["removed_blocks"] == ["res.0.0", "hg.2.hg.1.2.0"]
    loaded = load_model(tmp_path / "m.pt")
    with torch.no_grad():
        assert all(torch.equal(a, b) for a, b in zip(loaded(x), model(x), strict=True))


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [
        ("removed_stacks", [0, 1, 2], "at least one of the 3 stack"),
        ("removed_stacks", [7], "7 is not a stack index"),
        ("removed_stacks", "all", "must be a list"),
        ("removed_stacks", [1, 1], "listed twice"),
        ("removed_blocks", ["hg.9.hg.0.0.0"], "is not a block of hg3"),
        ("removed_blocks", ["x" * 10_000], "is not a block"),
        ("removed_blocks", [3], "is not a block"),
        ("removed_blocks", ["hg.1.hg.0.0.0"], "lies in removed stack 1"),
    ],
)
def test_hostile_depth_config_gets_a_one_line_error(hg3, tmp_path, key, value, match):
    path = tmp_path / "m.pt"
    save_model(remove_units(hg3, ["stack.1"]), path)
    raw = torch.load(path, weights_only=True)
    raw["config"][key] = value
    torch.save(raw, path)
    with pytest.raises(HgpruneError, match=match) as info:
        load_model(path)
    assert "\n" not in str(info.value) and len(str(info.value)) < 300


def test_depth_pruned_model_exports_with_parity_and_predicts(hg3, tmp_path):
    import onnxruntime as ort

    model = remove_units(hg3, ["stack.2", "hg.0.hg.0.3.0", "res.1.0"])
    onnx_result = export_model(model, "onnx", tmp_path / "m.onnx", time_runtime=False)
    ts_result = export_model(model, "torchscript", tmp_path / "m.torchscript.pt", time_runtime=False)
    assert onnx_result.max_abs_diff < 1e-4 and ts_result.max_abs_diff < 1e-4
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == ["heatmaps_0", "heatmaps_1"]
    image = np.random.default_rng(0).integers(0, 255, (80, 64, 3), dtype=np.uint8)
    save_model(model, tmp_path / "m.pt")
    eager = Predictor(tmp_path / "m.pt").predict(image)
    graph = Predictor(tmp_path / "m.onnx", backend="onnxruntime").predict(image)
    assert eager.joints.shape == (1, 16, 2) and np.abs(eager.joints - graph.joints).max() < 0.1


def test_unit_savings_are_exact_for_the_registered_costs(hg3):
    model = remove_units(hg3, ["stack.1", "res.0.0"])
    units = removable_units(model, "all")
    assert "stack.1" not in units and "res.0.0" not in units and "stack.2" in units
    for cost in (MacsCost(64), ParamsCost(64)):
        before, savings = unit_savings(model, units, cost)
        assert before == cost.cost(model)
        assert all(savings[u] == pytest.approx(before - cost.cost(remove_units(model, [u]))) for u in units)
    assert set(COSTS) >= {"macs", "params"} and get_cost("macs", 64).cost(hg3) == conv_macs(hg3, 64)
    with pytest.raises(HgpruneError, match="valid: macs, params"):
        get_cost("joules")


def test_a_depth_pruned_copy_equals_a_full_copy_pruned_and_leaves_the_original_alone(hg3, x):
    # remove_units copies only what it keeps; the result is the same module tree, weights and outputs
    from hgprune.prune.depth import remove_units_

    before = {k: v.clone() for k, v in hg3.state_dict().items()}
    for units in (["stack.2"], ["stack.0", "res.1.0"], ["hg.0.hg.1.0.0", "stack.1"], []):
        fast = remove_units(hg3, units)
        full = remove_units_(copy.deepcopy(hg3), units)
        assert fast.config == full.config and str(fast) == str(full)
        assert fast.state_dict().keys() == full.state_dict().keys()
        assert all(torch.equal(fast.state_dict()[k], full.state_dict()[k]) for k in full.state_dict())
        with torch.no_grad():
            assert all(torch.equal(a, b) for a, b in zip(fast(x), full(x), strict=True))
    assert all(torch.equal(v, hg3.state_dict()[k]) for k, v in before.items())
    assert all(not isinstance(m, torch.nn.Identity) for n, m in hg3.named_modules() if n.startswith("hg.2"))


def test_depth_plan_stops_at_the_target_and_ranks_by_importance(hg3):
    cost = MacsCost(64)
    total = cost.cost(hg3)
    plan = plan_depth(hg3, "stacks", cost, 0.5 * total, 0.02 * total, "position")
    assert plan.units == ["stack.2", "stack.1"]  # position ranks trailing stacks first; the stem stays
    assert plan.predicted_cost == pytest.approx(cost.cost(remove_units(hg3, plan.units)))
    assert 0.48 * total <= plan.predicted_cost <= 0.52 * total
    stopped = plan_depth(hg3, "stacks", cost, 0.6 * total, 0.02 * total, "position")
    assert stopped.units == ["stack.2"]  # stack.1 as well would overshoot 0.58
    assert set(IMPORTANCES) >= {"loss", "position"}
    with pytest.raises(HgpruneError, match="valid: loss, position"):
        get_importance("magic")
    assert isinstance(get_importance("hgprune.prune.depth:PositionImportance"), IMPORTANCES["position"])
    with pytest.raises(HgpruneError, match="cannot import 'no_such_module'"):
        get_importance("no_such_module:Thing")


@pytest.mark.parametrize(("depth", "kind"), [("stacks", "macs"), ("all", "params"), ("blocks", "macs")])
def test_depth_and_channels_together_meet_the_target(depth, kind):
    model = _hg3()
    reference = model_size(model, 64)
    result = prune_to_target(
        model, criterion="l1", kind=kind, kept=0.4, reference=reference, input_size=64, depth=depth,
        depth_importance="position", round_to=2,
    )  # fmt: skip
    assert result.target_met and abs(getattr(result, f"kept_{kind}") - 0.4) <= 0.02
    assert result.removed_units and result.depth["mode"] == depth
    assert list(model.config.removed_stacks) == sorted(int(u[6:]) for u in result.removed_units if "stack." in u)
    assert model_size(model, 64)[kind] == getattr(result, kind)  # the result describes the model as it is
    with torch.no_grad():
        assert len(model(torch.zeros(1, 3, 64, 64))) == model.config.num_outputs


def test_loss_importance_reads_only_the_training_slice(hg3):
    from hgprune.prune.allocation import SearchSettings, TrainingSlice

    class Samples(torch.utils.data.Dataset):
        augment = "on"

        def __len__(self):
            return 12

        def __getitem__(self, i):
            g = torch.Generator().manual_seed(i)
            return torch.randn(3, 64, 64, generator=g), torch.rand(16, 16, 16, generator=g), torch.ones(16, 1), i

    data = Samples()
    sliced = TrainingSlice(data, SearchSettings(batches=1, holdout=4, batch_size=4), seed=0)
    scores = get_importance("loss")(hg3, ["stack.2", "res.0.0"], sliced)
    assert data.augment == "on"  # the caller's dataset is never modified
    assert set(scores) == {"stack.2", "res.0.0"} and all(np.isfinite(v) for v in scores.values())
    assert [int(i) for *_, meta in sliced.holdout_batches() for i in meta] == [8, 9, 10, 11]
    with pytest.raises(HgpruneError, match="needs the training split"):
        get_importance("loss")(hg3, ["stack.2"], None)


def test_a_plan_is_json_and_applies_to_another_copy_of_the_model_exactly():
    import json

    from hgprune.prune import apply_plan, plan_prune

    planned_on, other = _hg3(), _hg3()
    plan = plan_prune(planned_on, criterion="l1", kind="macs", kept=0.5, input_size=64, depth="all",
                      depth_importance="position", round_to=2)  # fmt: skip
    assert planned_on.config.removed_stacks == () and json.loads(json.dumps(plan.to_dict()))["removed_units"]
    result = apply_plan(other, plan)  # traced afresh: groups matched by name
    direct = _hg3()
    expected = prune_to_target(direct, criterion="l1", kind="macs", kept=0.5, input_size=64, depth="all",
                               depth_importance="position", round_to=2)  # fmt: skip
    assert result.macs == expected.macs and result.removed_units == expected.removed_units == plan.removed_units
    assert result.macs == pytest.approx(plan.predicted_cost)
    assert all(torch.equal(a, b) for a, b in zip(other.state_dict().values(), direct.state_dict().values()))
    channels_only = plan_prune(_hg3(), criterion="l1", kind="macs", kept=0.5, input_size=64, round_to=2)
    assert not channels_only.removed_units and any(channels_only.remove.values())
    twice = _hg3()
    apply_plan(twice, channels_only)
    with pytest.raises(HgpruneError, match="does not match the plan"):
        apply_plan(twice, channels_only)  # already pruned: its groups are narrower than the plan's


class _FakeLatency:
    """A deterministic cost of another name: 1 ms per kept stack plus 1e-6 ms per conv MAC, snapped to 4."""

    name, snap = "latency", 4

    def cost(self, model):
        return model.config.num_outputs + 1e-6 * conv_macs(model, 64)


def test_a_cost_model_of_another_name_is_met_by_measuring_candidates():
    model = _hg3()
    fake = _FakeLatency()
    reference = {**model_size(model, 64), "latency": fake.cost(model)}
    result = prune_to_target(model, criterion="l1", kept=0.5, reference=reference, input_size=64, depth="stacks",
                             depth_importance="position", cost_model=fake, round_to=2)  # fmt: skip
    assert result.kind == "latency" and result.target_met and result.removed_units == ["stack.2"]
    assert abs(fake.cost(model) / reference["latency"] - 0.5) <= 0.02
    inner = [m.out_channels for n, m in model.named_modules() if n.endswith("conv1") and n.startswith("hg.")]
    assert all(w % 4 == 0 for w in inner)  # the cost model's snap replaced round_to


@pytest.mark.parametrize(
    ("prune", "match"),
    [
        ("{depth: most}", "prune.depth: must be one of 'none', 'blocks', 'stacks', 'all'"),
        ("{depth: all, depth_importance: magic}", "prune.depth_importance: unknown 'magic'"),
        ("{depth: stacks, target: {kind: channels, kept: 0.5}}", "needs a macs or params target"),
    ],
)
def test_recipe_depth_keys_are_checked_at_load(tmp_path, prune, match):
    from hgprune.recipe import load_recipe

    path = tmp_path / "r.yaml"
    path.write_text(f"name: r\nprune: {prune}\n")
    with pytest.raises(HgpruneError, match=match):
        load_recipe(path)
    path.write_text("name: r\nprune: {depth: stacks, depth_importance: position}\n")
    assert load_recipe(path).prune.depth == "stacks" and load_recipe(path).prune.depth_importance == "position"


def test_depth_benchmark_prunes_each_method_to_its_target_on_a_tiny_model():
    from tests.conftest import load_script

    bench = load_script("benchmarks/depth.py")
    models = bench.pruned_models({**bench.SCALES["tiny"], "N": 16, "M": 32}, round_to=2)
    assert set(models) == {"parent"} | {f"{m}@{k:g}" for m in bench.METHODS for k in bench.TARGETS}
    for name, (model, kept_macs, removed) in models.items():
        target = 1.0 if name == "parent" else float(name.split("@")[1])
        assert abs(kept_macs - target) <= 0.02, name
        assert bool(removed) == name.startswith("depth"), name
        assert model.config.num_outputs == 2 - sum(u.startswith("stack.") for u in removed)
    timing = {"median_ms": 1.0, "speedup": 1.0, "efficiency": 1.0}
    rows = [
        {"model": n, "kept_macs": k, "removed": r, "eager": timing, "ort": timing} for n, (_, k, r) in models.items()
    ]
    report = {"threads": 2, "repeats": 1, "warmup": 0, "load_before": [], "load_after": [], "cpu": "x", "round_to": 2}
    report["scales"] = [{"scale": "tiny", "config": bench.SCALES["tiny"], "rows": rows}]
    assert bench.to_markdown(report).count("\n| depth-") == 4
