"""A depth-pruned run of the tiny recipe completes, records what it removed, and resumes to the same numbers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
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


KILLER = """
import os, signal, sys
from hgprune.train import Trainer

original, calls = Trainer.train_epoch, [0]


def train_epoch(self, epoch):
    calls[0] += 1
    if calls[0] == {call}:
        os.kill(os.getpid(), signal.SIGKILL)  # kill -9: no handler, no cleanup, nothing flushed
    return original(self, epoch)


Trainer.train_epoch = train_epoch
from hgprune.cli import main

sys.exit(main(sys.argv[1:]))
"""


def _run_killed_at(out: Path, call: int | None, resume: bool, env: dict) -> int:
    script = KILLER.replace("{call}", str(call if call is not None else -1))
    argv = ["run", str(TINY), "--out", str(out), *DEPTH] + (["--resume"] if resume else [])
    done = subprocess.run([sys.executable, "-c", script, *argv], env=env, capture_output=True, text=True, timeout=600)
    assert call is not None or done.returncode == 0, done.stderr
    return done.returncode


def test_depth_pruned_run_killed_with_sigkill_resumes_to_the_same_numbers(tmp_path, cache):
    env = {**os.environ, "HGPRUNE_CACHE": str(cache), "OMP_NUM_THREADS": "1", "PYTHONPATH": str(TINY.parents[2])}
    reference, out = tmp_path / "uninterrupted", tmp_path / "killed"
    _run_killed_at(reference, None, False, env)
    # epochs: baseline (1), then step 1 after its depth removal (2, 3). Killed as step 1 starts fine-tuning, then
    # again in the resumed run's first epoch; the third process finishes.
    assert _run_killed_at(out, 2, False, env) == -signal.SIGKILL
    assert _run_killed_at(out, 1, True, env) == -signal.SIGKILL
    _run_killed_at(out, None, True, env)
    got, want = (pd.read_csv(d / "metrics.csv").drop(columns=["wall_s"]) for d in (out, reference))
    pd.testing.assert_frame_equal(got, want)
    final, info = load_checkpoint(reference / "final" / "model.pt")
    resumed, resumed_info = load_checkpoint(out / "final" / "model.pt")
    assert resumed_info["config"] == info["config"]
    assert info["config"]["removed_blocks"] + info["config"]["removed_stacks"]  # it did prune depth
    assert all(torch.equal(resumed.state_dict()[k], v) for k, v in final.state_dict().items())
