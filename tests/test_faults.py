"""Runtime faults during a run: NaN loss and Ctrl-C stop cleanly, keep completed steps, and resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from hgprune.cli import main
from hgprune.models.checkpoints import load_checkpoint
from hgprune.train import Trainer

TINY = Path(__file__).resolve().parent / "recipes" / "tiny.yaml"


@pytest.fixture
def cache(tmp_path_factory, monkeypatch):
    path = tmp_path_factory.getbasetemp() / "synth-cache"
    monkeypatch.setenv("HGPRUNE_CACHE", str(path))
    return path


def test_nan_loss_stops_keeps_last_good_step_and_resumes(tmp_path, cache, capsys):
    out = tmp_path / "run"
    exploding = ["--set", "finetune.train.lr=1e30"]
    assert main(["run", str(TINY), "--out", str(out), *exploding]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]  # earlier lines: the data generation progress bar
    assert err.startswith("hgprune: error:") and "loss" in err.lower() and "1 completed step(s) kept" in err
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step_000.pt"]
    state = json.loads((out / "run.json").read_text())
    assert state["status"] == "failed" and "loss" in state["error"].lower()
    assert not (out / ".lock").exists()
    baseline_row = pd.read_csv(out / "metrics.csv")
    assert list(baseline_row["step"]) == [0]
    # the fix is a different learning rate, i.e. a different recipe: resume refuses, a new run directory works
    assert main(["run", str(TINY), "--out", str(out), "--resume"]) == 2
    assert "recipe differs" in capsys.readouterr().err


def test_ctrl_c_stops_at_a_resumable_point(tmp_path, cache):
    # make sure the synthetic data exists so the run is past set-up when interrupted
    env = {**os.environ, "HGPRUNE_CACHE": str(cache), "OMP_NUM_THREADS": "1"}
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "hgprune", "run", str(TINY), "--out", str(out)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while not (out / "checkpoints" / "step_000.pt").exists():  # interrupt during the first prune step
        assert time.time() < deadline and proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    # must hold even when this test runs in a background job, where SIGINT is inherited as ignored
    assert proc.returncode == 2, err
    assert "interrupted;" in err and "--resume" in err and "Traceback" not in err
    assert json.loads((out / "run.json").read_text())["status"] == "interrupted"
    assert not (out / ".lock").exists()
    assert not list(out.rglob("*.tmp"))
    assert main(["run", str(TINY), "--out", str(out), "--resume"]) == 0
    assert list(pd.read_csv(out / "metrics.csv")["step"]) == [0, 1, 2]


def _stop_at_epoch(monkeypatch, call: int) -> None:
    """Make the ``call``-th training epoch of this process stop the run as Ctrl-C would, before it finishes."""
    original, calls = Trainer.train_epoch, [0]

    def train_epoch(self, epoch):
        calls[0] += 1
        if calls[0] == call:
            raise KeyboardInterrupt
        return original(self, epoch)

    monkeypatch.setattr(Trainer, "train_epoch", train_epoch)


def test_a_step_stopped_mid_training_resumes_at_its_next_epoch(tmp_path, cache, monkeypatch, capsys):
    # epochs in order: baseline 1-2 (trained from scratch, as a sweep's scratch entries are), step 1: 1, step 2: 1-3
    longer = ["--set", "baseline.train.epochs=2", "--set", "finetune.final_epochs=2"]
    reference = tmp_path / "uninterrupted"
    assert main(["run", str(TINY), "--out", str(reference), *longer]) == 0
    out = tmp_path / "stopped"
    checkpoints = out / "checkpoints"

    _stop_at_epoch(monkeypatch, 2)  # during the baseline's second epoch
    assert main(["run", str(TINY), "--out", str(out), *longer]) == 2
    assert "step 0's finished epochs kept" in capsys.readouterr().err
    assert sorted(p.name for p in checkpoints.iterdir()) == ["partial_step_000.pt"]
    assert load_checkpoint(checkpoints / "partial_step_000.pt")[1]["meta"]["epochs_done"] == 1
    assert main(["run", str(TINY), "--out", str(out), *longer]) == 2  # part-way is progress: --resume is needed

    _stop_at_epoch(monkeypatch, 4)  # resumed: baseline epoch 2, step 1, then step 2's second epoch
    assert main(["run", str(TINY), "--out", str(out), *longer, "--resume"]) == 2
    assert "[baseline] resuming hg1 training at epoch 2 of 2" in capsys.readouterr().out
    names = sorted(p.name for p in checkpoints.iterdir())
    assert names == ["partial_step_002.pt", "step_000.pt", "step_001.pt"]
    assert load_checkpoint(checkpoints / "partial_step_002.pt")[1]["meta"]["epochs_done"] == 1

    monkeypatch.undo()
    assert main(["run", str(TINY), "--out", str(out), *longer, "--resume"]) == 0
    assert "[step 2/2] resuming fine-tuning at epoch 2 of 3" in capsys.readouterr().out
    assert sorted(p.name for p in checkpoints.iterdir()) == ["step_000.pt", "step_001.pt", "step_002.pt"]
    got, want = (pd.read_csv(d / "metrics.csv").drop(columns=["wall_s"]) for d in (out, reference))
    pd.testing.assert_frame_equal(got, want)  # the same numbers as a run that never stopped
    resumed, uninterrupted = (load_checkpoint(d / "final" / "model.pt")[0].state_dict() for d in (out, reference))
    assert all(torch.equal(resumed[k], uninterrupted[k]) for k in uninterrupted)
