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

from hgprune.cli import main

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
