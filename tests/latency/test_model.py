"""The latency model on a deterministic fake timer: calibration, the snap probe, prediction of depth-and-width
candidates, the cached table's checks (corrupt or foreign tables are refused or recalibrated, never used)."""

from __future__ import annotations

import json
import random

import pytest
from torch import nn

from hgprune.errors import HgpruneError
from hgprune.latency import (
    CalibrationSettings,
    LatencyCost,
    LatencyTable,
    TimingSettings,
    load_or_calibrate,
    load_table,
    parent_config,
)
from hgprune.latency import calibration as cal
from hgprune.latency.candidates import random_candidate, trunk_blocks
from hgprune.latency.measure import Timed, TimingRecord
from hgprune.latency.structure import FEATURES, features, trace_ops
from hgprune.latency.table import family_of, table_path
from hgprune.models.hourglass import HourglassNet

PARENT = parent_config("hg2", 16, 32, 64, 3)
# The fake runtime's cost per feature (ms per unit), and its penalty on misaligned channels.
TRUE = dict(zip(FEATURES, (0.5, 0.01, 0.2, 0.3, 0.15, 0.05, 0.002, 0.1)))
SETTINGS = CalibrationSettings(candidates=12, seed=3, timing=TimingSettings(warmup=0, repeats=1, force=True))


def fake_ms(model: nn.Module, snap: int | None = 4) -> float:
    """A deterministic 'runtime': linear in the model's features, widths off multiples of 4 cost more."""
    values = features(trace_ops(model, 64), snap)
    return sum(TRUE[name] * value for name, value in zip(FEATURES, values))


@pytest.fixture
def fake_timer(monkeypatch):
    """Calibration's prepare and timer replaced: each call's 'median' is ``fake_ms`` of its model (no timing)."""
    _fake(monkeypatch)


def _fake(monkeypatch) -> None:

    def prepare(runtime, model, size, timing):
        return lambda: model

    def time_calls(calls, timing, progress=None, checked=False):
        timed = []
        for label, call in calls:
            model = call()
            ms = fake_ms(model) if isinstance(model, HourglassNet) else probe_ms(model)
            timed.append(Timed(label, ms, 1.1 * ms, ms, 1))
        return timed, TimingRecord(load_before=[0.0, 0.0, 0.0], load_after=[0.0, 0.0, 0.0])

    monkeypatch.setattr(cal, "prepare", prepare)
    monkeypatch.setattr(cal, "time_calls", time_calls)


def probe_ms(probe: nn.Module) -> float:
    """The snap probe on the fake runtime: ms proportional to MACs, twice as slow per MAC off multiples of 4."""
    planes = probe.blocks[0].conv1.out_channels
    macs = sum(op.macs for op in trace_ops(probe, 64)) / 1e6
    return macs * (1.0 if planes % 4 == 0 else 2.0)


def test_calibration_recovers_the_fake_runtime_and_predicts_depth_and_width_candidates(fake_timer):
    table = cal.calibrate("torch", PARENT, SETTINGS)
    assert table.snap == 4  # measured by the probe: only multiples of 4 run fast
    assert table.snap_probe["gains"][4] == pytest.approx(2.0, rel=0.05)
    assert table.fingerprint["runtime"] == "torch" and table.fingerprint["input_size"] == 64
    rng = random.Random(99)  # candidates the calibration never saw
    for _ in range(5):
        candidate = random_candidate(PARENT, rng, snap=4)
        assert table.predict(candidate) == pytest.approx(fake_ms(candidate), rel=1e-3)
    # a depth-pruned model: blocks swapped for nn.Identity (and a stack fewer) is predicted by its structure
    parent = HourglassNet(PARENT).eval()
    full = table.predict(parent)
    assert full == pytest.approx(fake_ms(parent), rel=1e-6)  # the fit, anchored on the parent's median
    pruned = random_candidate(PARENT, random.Random(0), snap=4)
    for sequential, index in trunk_blocks(pruned)[:4]:
        sequential[index] = nn.Identity()
    assert table.predict(pruned) == pytest.approx(fake_ms(pruned), rel=1e-3)
    assert table.predict(pruned) < full
    cost = LatencyCost(table)
    assert (cost.name, cost.snap) == ("latency:torch", 4)
    assert cost.cost(pruned) == table.predict(pruned) and cost(pruned) == table.predict(pruned)


def test_predictions_are_the_fit_anchored_on_the_parent_so_removing_a_stack_always_saves(fake_timer):
    # a fit that overestimates the parent by 20 %: the parent predicts its measured median, and every other model
    # the fit scaled by the same factor, so a plan never compares a measurement with a prediction
    table = cal.calibrate("torch", PARENT, SETTINGS)
    parent = HourglassNet(PARENT).eval()
    first = table.samples[0]
    assert first.key == cal.model_key(parent, 64, 1)  # the parent is the calibration's first sample
    measured = first.median_ms / 1.2
    table.samples[0] = type(first)(first.key, first.features, measured, first.p90_ms, first.description)
    fitted = lambda m: sum(c * v for c, v in zip(table.coefficients, features(trace_ops(m, 64), table.snap)))  # noqa: E731
    assert table.predict(parent) == pytest.approx(measured, rel=1e-9)
    one_stack = HourglassNet(PARENT).eval()
    from hgprune.prune.depth import remove_units

    one_stack = remove_units(one_stack, ["stack.1"])
    assert table.predict(one_stack) == pytest.approx(fitted(one_stack) * measured / fitted(parent), rel=1e-9)
    assert LatencyCost(table).cost(one_stack) < LatencyCost(table).cost(parent)


def test_module_costs_price_every_depth_unit_exactly_from_one_trace(fake_timer):
    # the depth planner sums a unit's modules' operators instead of tracing one candidate per unit: for a parent,
    # a depth-pruned and a channel-pruned candidate, every unit's summed saving equals the difference of two traces
    from hgprune.prune.depth import removable_units, remove_units, unit_savings

    parent_cfg = parent_config("hg3", 16, 32, 64, 3)
    table = cal.calibrate("torch", parent_cfg, SETTINGS)
    cost = LatencyCost(table)
    rng = random.Random(5)
    models = [HourglassNet(parent_cfg).eval(), remove_units(HourglassNet(parent_cfg).eval(), ["stack.1", "res.0.0"])]
    models += [random_candidate(parent_cfg, rng, 4) for _ in range(3)]
    checked = 0
    for model in models:
        units = removable_units(model, "all")
        before, fast = unit_savings(model, units, cost)
        assert before == cost.cost(model)
        for unit in units:
            slow = before - cost.cost(remove_units(model, [unit]))
            assert fast[unit] == pytest.approx(slow, rel=1e-9, abs=1e-12), unit
            checked += 1
        # what the modules' operators add up to, plus the per-call overhead, is the model's prediction
        total = sum(cost.module_costs(model).values()) + table.anchor * table.coefficients[0]
        assert total == pytest.approx(before, rel=1e-9)
    assert checked > 50


def test_snap_is_none_when_no_multiple_runs_faster():
    assert cal.choose_snap(cal.snap_gains({w: 1.0 for w in range(17, 33)})) is None
    assert cal.choose_snap(cal.snap_gains({w: 1.0 if w % 4 == 0 else 1.3 for w in range(17, 33)})) == 4


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory) -> str:
    """One fake calibration's saved table (text), shared by the tests of the cache."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        _fake(monkeypatch)
        root = tmp_path_factory.mktemp("cache")
        table, path, fresh = load_or_calibrate("torch", PARENT, SETTINGS, root=root)
    assert fresh and path.exists() and path.parent == root
    return path.read_text()


@pytest.fixture
def cached(calibrated, fake_timer, tmp_path):
    """This machine's cached table, as a calibration left it (in a fresh cache directory)."""
    path = table_path("torch", 1, 1, 64, family_of(PARENT), tmp_path)
    path.write_text(calibrated)
    return LatencyTable.read(path), path


def test_cached_table_is_read_back_identically(cached, tmp_path):
    table, path = cached
    again = load_table("torch", PARENT, 1, 1, root=tmp_path)
    assert again.to_json() == table.to_json()
    assert load_or_calibrate("torch", PARENT, SETTINGS, root=tmp_path)[2] is False  # used, not recalibrated
    assert again.fit_errors() == pytest.approx([0.0] * len(again.samples), abs=1e-3)


@pytest.mark.parametrize(
    "corrupt, expected",
    [
        ("{not json", "unreadable latency table (not JSON)"),
        ("[]", "expected a JSON object"),
        (lambda d: {**d, "coefficients": d["coefficients"][:-1]}, "'coefficients' must be"),
        (lambda d: {**d, "coefficients": [-1.0] * len(FEATURES)}, "'coefficients' must be"),
        (lambda d: {**d, "samples": [{"key": "x"}]}, "samples[0] is not a calibration measurement"),
        (lambda d: {**d, "snap": "eight"}, "'snap' must be null or an integer"),
        (lambda d: {**d, "fingerprint": {**d["fingerprint"], "cpu": "Another CPU 9000"}}, "calibrated for cpu"),
        (lambda d: {**d, "fingerprint": {**d["fingerprint"], "runtime_version": "torch 0.1"}}, "runtime_version"),
        (lambda d: {**d, "fingerprint": {**d["fingerprint"], "format": 0}}, "not a latency table of format"),
        (lambda d: {**d, "family": {**d["family"], "M": 64}}, "calibrated on family M=64"),
    ],
)
def test_corrupt_or_foreign_table_is_a_one_line_error_or_a_recalibration(cached, tmp_path, corrupt, expected):
    _, path = cached
    text = corrupt if isinstance(corrupt, str) else json.dumps(corrupt(json.loads(path.read_text())))
    path.write_text(text)
    with pytest.raises(HgpruneError) as error:
        load_table("torch", PARENT, 1, 1, root=tmp_path)
    message = str(error.value)
    assert expected in message and str(path) in message and "\n" not in message
    assert "hgprune latency calibrate" in message


def test_load_or_calibrate_replaces_a_foreign_table(cached, tmp_path):
    _, path = cached
    data = json.loads(path.read_text())
    data["fingerprint"]["cpu"] = "Another CPU 9000"
    data["coefficients"] = [123.0] * len(FEATURES)
    path.write_text(json.dumps(data))
    table, _, fresh = load_or_calibrate("torch", PARENT, SETTINGS, root=tmp_path)  # replaced, never used
    assert fresh and table.coefficients != data["coefficients"]
    assert LatencyTable.read(path).to_json() == table.to_json()


def test_missing_table_names_the_calibrate_command(tmp_path):
    with pytest.raises(HgpruneError, match=r"no latency table for torch .* 'hgprune latency calibrate --runtime torch"):
        load_table("torch", PARENT, 2, 1, root=tmp_path)


def test_cuda_graph_without_a_gpu_is_one_line():
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(HgpruneError, match=r"^runtime 'cuda-graph' needs a CUDA GPU and none is available here"):
        cal.calibrate("cuda-graph", PARENT, SETTINGS)


def test_a_multiple_seen_only_at_the_full_width_is_never_chosen():
    """Interior widths 2..16 (an M=32 parent): the parent's own width runs fastest per MAC, and it is the only
    multiple of 16 (and one of two multiples of 8): judging those multiples on it would leave no width to plan with."""
    gains = cal.snap_gains({w: (0.5 if w == 16 else 1.0) for w in range(2, 17)})
    assert 16 not in gains and 8 not in gains and set(gains) <= {2, 4}
    assert cal.choose_snap(gains) in (None, 2, 4)
