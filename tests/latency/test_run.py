"""A latency-targeted run: planned with the machine's latency table, which the run records and a resume reuses."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch

from hgprune.cli import main
from hgprune.latency import LatencyCost, LatencyTable
from hgprune.latency.runtimes import get_runtime
from hgprune.latency.structure import FEATURES
from hgprune.latency.table import family_of, fingerprint, table_path
from hgprune.models.checkpoints import load_checkpoint
from hgprune.settings import Recipe
from hgprune.stages import family_config
from tests.test_faults import _stop_at_epoch

TINY = Path(__file__).resolve().parents[1] / "recipes" / "tiny.yaml"
LATENCY = ["--set", "model.arch=hg2", "--set", "model.depth=2", "--set", "prune.target.kind=latency",
           "--set", "prune.target.kept=0.5", "--set", "prune.target.threads=1", "--set", "prune.depth=stacks",
           "--set", "prune.steps=1", "--set", "data.synth.num_train=32"]  # fmt: skip
# a deterministic 'runtime': ms per unit of each feature (per call, per conv, per MMAC, ...)
COEFFICIENTS = [0.05, 0.02, 4.0, 6.0, 1.0, 0.5, 0.01, 0.002]


def write_table(coefficients: list[float], snap: int | None = 2) -> Path:
    """This machine's ORT table (1 thread, batch 1, 64 px) for the run's family, in the test's cache."""
    config = family_config(Recipe().model.hourglass_config())
    config = type(config)(num_stacks=2, N=8, M=16, depth=2, input_size=64)
    table = LatencyTable(fingerprint=fingerprint(get_runtime("ort"), 1, 1, 64), family=family_of(config), snap=snap,
                         coefficients=list(coefficients), samples=[])  # fmt: skip
    path = table_path("ort", 1, 1, 64, family_of(config))
    table.save(path)
    return path


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HGPRUNE_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_latency_target_is_met_and_recorded_and_a_resume_plans_with_the_recorded_table(tmp_path, cache, monkeypatch):
    assert len(COEFFICIENTS) == len(FEATURES)
    write_table(COEFFICIENTS)
    reference = tmp_path / "uninterrupted"
    LATENCY = [*globals()["LATENCY"], "--set", "prune.depth=none"]  # channels only here: depth has its own run test
    assert main(["run", str(TINY), "--out", str(reference), *LATENCY]) == 0
    recorded = LatencyTable.read(reference / "latency_model.json")
    assert recorded.coefficients == COEFFICIENTS
    budget = json.loads((reference / "run.json").read_text())["latency_budget"]
    baseline = load_checkpoint(reference / "checkpoints" / "step_000.pt")[0]
    final, info = load_checkpoint(reference / "final" / "model.pt")
    cost = LatencyCost(recorded)
    assert budget["runtime"] == "ort" and budget["budget_ms"] == pytest.approx(0.5 * cost.cost(baseline), rel=1e-3)
    assert abs(cost.cost(final) / cost.cost(baseline) - 0.5) <= 0.02  # the recipe's tolerance
    widths = [m.out_channels for n, m in final.named_modules() if n.endswith("conv2") and n.startswith("hg.")]
    assert all(w % 2 == 0 for w in widths)  # snapped to the table's multiple

    out = tmp_path / "stopped"
    _stop_at_epoch(monkeypatch, 3)  # baseline, then step 1's second (final) epoch
    assert main(["run", str(TINY), "--out", str(out), *LATENCY]) == 2
    monkeypatch.undo()
    monkeypatch.setenv("HGPRUNE_CACHE", str(cache))
    write_table([3 * c for c in COEFFICIENTS[::-1]], snap=4)  # the machine's table changed since the run started
    assert main(["run", str(TINY), "--out", str(out), *LATENCY, "--resume"]) == 0
    got, want = (pd.read_csv(d / "metrics.csv").drop(columns=["wall_s"]) for d in (out, reference))
    pd.testing.assert_frame_equal(got, want)
    resumed = load_checkpoint(out / "final" / "model.pt")[0].state_dict()
    assert all(torch.equal(resumed[k], v) for k, v in final.state_dict().items())


def test_dry_run_prints_each_steps_predicted_latency_removals_and_widths(tmp_path, cache, capsys):
    write_table(COEFFICIENTS)
    assert main(["run", str(TINY), "--out", str(tmp_path / "r"), *LATENCY, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "baseline" in out and "ms predicted" in out
    step = next(line for line in out.splitlines() if line.strip().startswith("step 1: target"))
    assert "predicted" in step and "kept/original channels" in step and "removes" in step
    assert not (tmp_path / "r").exists()


def test_a_table_from_another_machine_is_refused_before_training(tmp_path, cache):
    path = write_table(COEFFICIENTS)
    data = json.loads(path.read_text())
    data["fingerprint"]["cpu"] = "Some Other CPU"
    path.write_text(json.dumps(data))
    # no silent use: the run recalibrates, which on this busy test machine means the idle check refuses it
    code = main(["run", str(TINY), "--out", str(tmp_path / "r"), *LATENCY, "--set", "baseline.train.epochs=0"])
    if code == 0:  # an idle machine recalibrated instead: the table in the run is then this machine's
        recorded = json.loads((tmp_path / "r" / "latency_model.json").read_text())
        assert recorded["fingerprint"]["cpu"] != "Some Other CPU"
    else:
        assert code == 2


def test_latency_targets_benchmark_prunes_measures_and_judges_each_goal(tmp_path, cache):
    from benchmarks import latency_targets
    from benchmarks.latency_model import SCALES

    arch, N, M, size, depth = SCALES["tiny"]
    config = type(Recipe().model.hourglass_config())(num_stacks=int(arch[2:]), N=N, M=M, depth=depth, input_size=size)
    for runtime in ("ort", "torch"):
        table = LatencyTable(fingerprint=fingerprint(get_runtime(runtime), 1, 1, size), family=family_of(config),
                             snap=2, coefficients=list(COEFFICIENTS), samples=[])  # fmt: skip
        table.save(table_path(runtime, 1, 1, size, family_of(config)))
    args = [
        "--scale",
        "tiny",
        "--threads",
        "1",
        "--repeats",
        "1",
        "--warmup",
        "0",
        "--force",
        "--out-dir",
        str(tmp_path),
    ]
    assert latency_targets.main(args) == 0
    report = json.loads((tmp_path / "latency_targets.json").read_text())
    (scale,) = report["scales"]
    names = [row["model"] for row in scale["rows"]]
    assert names == ["parent", "latency-ort-0.5", "latency-ort-0.25", "latency-torch-0.5", "latency-torch-0.25",
                     "macs-0.5", "macs-0.25"]  # fmt: skip
    for row in scale["rows"][1:5]:  # each latency model is planned to its fraction of the predicted parent
        runtime, kept = row["model"].split("-")[1], float(row["model"].split("-")[2])
        assert abs(row[f"{runtime}_predicted_ms"] / scale["rows"][0][f"{runtime}_predicted_ms"] - kept) <= 0.03
    goals = [c["goal"] for c in scale["checks"]]
    assert len(goals) == 4 + 1 + 4 and all(isinstance(c["met"], bool) for c in scale["checks"])
    assert "| goal | measured | limit | met |" in (tmp_path / "latency_targets.md").read_text()
