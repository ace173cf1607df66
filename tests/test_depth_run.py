"""A depth-pruned run of the tiny recipe completes, records what it removed, and resumes to the same numbers."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch

from hgprune.cli import main
from hgprune.models.checkpoints import load_checkpoint
from tests.test_faults import _stop_at_epoch

TINY = Path(__file__).resolve().parent / "recipes" / "tiny.yaml"
DEPTH = ["--set", "model.arch=hg2", "--set", "model.depth=2", "--set", "prune.depth=all"]
DEPTH += ["--set", "prune.target.kept=0.4", "--set", "prune.steps=1", "--set", "data.synth.num_train=32"]


@pytest.fixture
def cache(tmp_path_factory, monkeypatch):
    path = tmp_path_factory.getbasetemp() / "synth-cache"
    monkeypatch.setenv("HGPRUNE_CACHE", str(path))
    return path


def test_depth_pruned_run_records_its_removals_and_resumes_to_the_same_numbers(tmp_path, cache, monkeypatch, capsys):
    reference = tmp_path / "uninterrupted"
    assert main(["run", str(TINY), "--out", str(reference), *DEPTH]) == 0
    assert "depth all removed" in capsys.readouterr().out
    final, info = load_checkpoint(reference / "final" / "model.pt")
    removed = info["config"]["removed_stacks"] + info["config"]["removed_blocks"]
    assert removed and final.config.num_outputs == 2 - len(info["config"]["removed_stacks"])
    rows = pd.read_csv(reference / "metrics.csv")
    assert abs(rows["conv_macs"].iloc[-1] / rows["conv_macs"].iloc[0] - 0.4) <= 0.02

    out = tmp_path / "stopped"
    _stop_at_epoch(monkeypatch, 3)  # baseline, then step 1's second (final) epoch
    assert main(["run", str(TINY), "--out", str(out), *DEPTH]) == 2
    partial, partial_info = load_checkpoint(out / "checkpoints" / "partial_step_001.pt")
    assert partial_info["config"] == info["config"]  # step 1's depth removal was kept with the partial step
    monkeypatch.undo()
    assert main(["run", str(TINY), "--out", str(out), *DEPTH, "--resume"]) == 0
    got, want = (pd.read_csv(d / "metrics.csv").drop(columns=["wall_s"]) for d in (out, reference))
    pd.testing.assert_frame_equal(got, want)
    resumed = load_checkpoint(out / "final" / "model.pt")[0].state_dict()
    assert resumed.keys() == final.state_dict().keys()
    assert all(torch.equal(resumed[k], v) for k, v in final.state_dict().items())
