"""studies/sweep_hg1_hg8/reprune.py: a finished run's pruning step re-done without fine-tuning, checked."""

from __future__ import annotations

import json

import pytest
import torch

from hgprune.cli import main as hgprune
from studies.sweep_hg1_hg8 import reprune
from tests.conftest import ROOT

TINY = ROOT / "tests" / "recipes" / "tiny.yaml"


@pytest.fixture(scope="module")
def script():
    return reprune


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("reprune")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HGPRUNE_CACHE", str(root / "cache"))
        assert hgprune(["run", str(TINY), "--out", str(root / "run")]) == 0
    return root / "run"


def _shapes(path) -> dict:
    return {k: tuple(v.shape) for k, v in torch.load(path, weights_only=True)["state_dict"].items()}


def test_each_step_is_pruned_to_the_runs_widths_without_its_fine_tuning(run, script, tmp_path):
    for step in (1, 2):
        out = tmp_path / f"step{step}.pt"
        assert script.main([str(run), "--step", str(step), "--out", str(out)]) == 0
        fine_tuned = run / "checkpoints" / f"step_{step:03d}.pt"
        assert _shapes(out) == _shapes(fine_tuned)  # the channels the run kept
        mine = torch.load(out, weights_only=True)["state_dict"]
        theirs = torch.load(fine_tuned, weights_only=True)["state_dict"]
        assert any(not torch.equal(mine[k], theirs[k]) for k in mine)  # but not fine-tuned
    previous = torch.load(run / "checkpoints" / "step_001.pt", weights_only=True)["state_dict"]
    assert _shapes(tmp_path / "step2.pt") != {k: tuple(v.shape) for k, v in previous.items()}  # step 2 did prune


def test_without_fine_tuning_the_re_run_is_the_runs_own_step_bit_for_bit(script, tmp_path):
    # with no fine-tuning epochs a step's checkpoint is its pruned model: the re-run must give exactly it
    out = tmp_path / "run"
    no_training = ["--set", "finetune.epochs_per_step=0", "--set", "finetune.final_epochs=0"]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HGPRUNE_CACHE", str(tmp_path / "cache"))
        assert hgprune(["run", str(TINY), "--out", str(out), *no_training]) == 0
        assert script.main([str(out), "--step", "2", "--out", str(tmp_path / "step2.pt")]) == 0
    mine = torch.load(tmp_path / "step2.pt", weights_only=True)["state_dict"]
    theirs = torch.load(out / "checkpoints" / "step_002.pt", weights_only=True)["state_dict"]
    assert mine.keys() == theirs.keys() and all(torch.equal(mine[k], theirs[k]) for k in mine)


def test_refuses_another_allocation_a_missing_step_and_a_wrong_step(run, script, tmp_path, capsys):
    copy = tmp_path / "copy"
    for name in ("recipe.yaml", "allocation_step_001.json"):
        (copy / name).parent.mkdir(parents=True, exist_ok=True)
        (copy / name).write_bytes((run / name).read_bytes())
    (copy / "checkpoints").mkdir()
    out = tmp_path / "out.pt"

    assert script.main([str(copy), "--step", "1", "--out", str(out)]) == 2
    assert (
        capsys.readouterr().err.strip()
        == f"error: {copy / 'checkpoints' / 'step_000.pt'}: missing; the run has not finished step 0"
    )
    for step in ("0", "3"):
        assert script.main([str(run), "--step", step, "--out", str(out)]) == 2
        assert capsys.readouterr().err.strip() == f"error: --step {step}: {run} has pruning steps 1 to 2"

    for name in ("step_000.pt", "step_001.pt"):
        (copy / "checkpoints" / name).write_bytes((run / "checkpoints" / name).read_bytes())
    allocation = json.loads((copy / "allocation_step_001.json").read_text())
    part = next(iter(allocation["parts"]))
    allocation["parts"][part]["kept"] += 2
    (copy / "allocation_step_001.json").write_text(json.dumps(allocation))
    assert script.main([str(copy), "--step", "1", "--out", str(out)]) == 2
    assert "kept other widths than this re-run" in capsys.readouterr().err
    assert not out.exists()
    assert script.main([str(tmp_path), "--step", "1", "--out", str(out)]) == 2
    assert "not a run directory (no recipe.yaml)" in capsys.readouterr().err
