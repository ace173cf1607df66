"""studies/sweep_hg1_hg8/sides.py: left/right diagnostic of finished runs and checkpoints, written with its command."""

from __future__ import annotations

import json

import pytest

from studies.sweep_hg1_hg8 import sides
from tests.conftest import ROOT
from tests.report.fabricate import make_run

TINY = ROOT / "tests" / "recipes" / "tiny.yaml"


@pytest.fixture(scope="module")
def script():
    return sides


def test_scores_each_final_model_and_checkpoint_as_made_and_with_sides_exchanged(tmp_path, script, capsys):
    run = make_run(tmp_path / "sweep", "hg1-l1-50", steps=2, N=8, M=16)
    parent = run / "checkpoints" / "step_000.pt"
    out = tmp_path / "out"
    assert script.main([str(run), str(parent), "--recipe", str(TINY), "--out", str(out)]) == 0
    data = json.loads((out / "sides.json").read_text())
    rows = {r["model"]: r for r in data["rows"]}
    assert list(rows) == ["hg1-l1-50", "hg1-l1-50 step 0"]
    assert rows["hg1-l1-50"]["path"] == str(run / "final" / "model.pt")
    for row in rows.values():
        assert 0 <= row["pckh"] <= 100 and 0 <= row["pckh_sides_exchanged"] <= 100
    assert data["environment"]["command"].endswith(f"--out {out}")
    table = (out / "sides.md").read_text()
    assert f"| hg1-l1-50 | {rows['hg1-l1-50']['pckh']:.2f} | {rows['hg1-l1-50']['pckh_sides_exchanged']:.2f} |" in table

    missing = tmp_path / "sweep" / "not-finished"
    (missing / "checkpoints").mkdir(parents=True)
    assert script.label(tmp_path / "parents" / "hg3" / "checkpoint.pth.tar") == "hg3 (parent)"
    assert script.label(tmp_path / "diag" / "hg3-2.pt") == "diag/hg3-2.pt"
    assert script.main([str(missing), "--recipe", str(TINY), "--out", str(tmp_path / "out2")]) == 2
    assert capsys.readouterr().err.strip() == f"error: {missing}: no final/model.pt (an unfinished run?)"
    assert not (tmp_path / "out2").exists()
