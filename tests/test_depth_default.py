"""The depth-default study's logic (studies/depth_default, issue 30): each run's recipe differs from its pair only
in ``prune.depth``, a missing parent is refused, and the protocol's verdict follows from fabricated runs (paired
t-intervals, the margin, every seed faster). No training, no timing."""

from __future__ import annotations

import json
import statistics

import pytest

from hgprune.errors import HgpruneError
from hgprune.report.runs import LatencyPass, StepLatency
from hgprune.rundir import RunDir
from studies.depth_default import run
from studies.equal_latency.run import base_recipe
from tests.conftest import ROOT

T_975_2 = 4.302652729911275  # Student's t, 97.5th percentile, 2 degrees of freedom (three seeds)


def test_the_pair_differs_only_in_depth_and_keeps_the_recipes_macs_default():
    base = base_recipe(ROOT / run.RECIPE, seed=3)
    none, all_ = (run.depth_recipe(base, d, 0.25, "parent.pth.tar") for d in ("none", "all"))
    assert (none.name, all_.name) == ("none-25", "all-25")
    assert (none.prune.depth, all_.prune.depth) == ("none", "all")
    assert none.prune.target.kind == "macs" and none.prune.target.kept == 0.25 == all_.prune.target.kept
    assert none.baseline.checkpoint == "parent.pth.tar" and none.seed == 3
    assert none.prune.criterion == base.prune.criterion and none.prune.steps == base.prune.steps
    assert none.finetune == base.finetune == all_.finetune
    from dataclasses import replace

    assert replace(all_, name="x", prune=replace(all_.prune, depth="none")) == replace(none, name="x")
    with pytest.raises(HgpruneError, match="'stacks'"):
        run.depth_recipe(base, "stacks", 0.5, "p")


def test_runs_go_target_by_target_with_each_pair_together_and_a_missing_parent_is_refused(tmp_path):
    parent = tmp_path / "seed{seed}.pth.tar"
    for s in (1, 2):
        (tmp_path / f"seed{s}.pth.tar").write_bytes(b"")
    runs = run.planned_runs([1, 2], [0.5, 0.25], run.DEPTHS, ROOT / run.RECIPE, str(parent), work=tmp_path / "w")
    assert [str(out.relative_to(tmp_path / "w")) for _, out in runs] == [
        "seed1/none-50", "seed1/all-50", "seed2/none-50", "seed2/all-50",
        "seed1/none-25", "seed1/all-25", "seed2/none-25", "seed2/all-25",
    ]  # fmt: skip
    with pytest.raises(HgpruneError, match="seed3.pth.tar: parent of seed 3 not found"):
        run.planned_runs([1, 3], [0.5], run.DEPTHS, ROOT / run.RECIPE, str(parent))


def _write_run(root, pckh, ort_ms, parent_pckh=81.0, parent_ms=2.0):
    rd = RunDir(root)
    root.mkdir(parents=True)
    rd.metrics_json.write_text(json.dumps([{"pckh_mean": parent_pckh, "wall_s": 1.0}, {"pckh_mean": pckh,
                                                                                       "wall_s": 9.0}]))  # fmt: skip
    rd.state.write_text(json.dumps({"status": "finished", "command": "hgprune run x"}))
    steps = {step: StepLatency(ort_ms=ms, ort_p90_ms=1.1 * ms, eager_ms=3 * ms, eager_p90_ms=3.3 * ms)
             for step, ms in ((0, parent_ms), (2, ort_ms))}  # fmt: skip
    rd.latency_json.write_text(LatencyPass("hgprune latency x", [0.1] * 3, [0.2] * 3, steps).to_json())


def _study(tmp_path, pckh, ms):
    """pckh / ms: {(depth, target %): [seed 1, 2, 3 values]}."""
    for (depth, key), values in pckh.items():
        for seed, value in enumerate(values, 1):
            _write_run(tmp_path / f"seed{seed}" / f"{depth}-{key}", value, ms[(depth, key)][seed - 1])
    return run.analyse(tmp_path, [1, 2, 3])


FAST = {("none", 50): [2.2, 2.1, 2.3], ("all", 50): [1.1, 1.0, 1.2], ("none", 25): [2.0] * 3, ("all", 25): [0.5] * 3}


def test_depth_becomes_the_default_only_when_no_worse_and_faster_at_both_targets(tmp_path):
    pckh = {("none", 50): [78.0, 79.0, 77.5], ("all", 50): [78.2, 79.1, 77.9],
            ("none", 25): [74.0, 75.0, 73.0], ("all", 25): [73.9, 74.8, 73.1]}  # fmt: skip
    result = _study(tmp_path / "a", pckh, FAST)
    diffs = [-0.1, -0.2, 0.1]
    diff = result["targets"]["25"]["pckh_all_minus_none"]
    mean, half = statistics.fmean(diffs), T_975_2 * statistics.stdev(diffs) / 3**0.5
    assert diff["mean"] == pytest.approx(mean)
    assert (diff["low"], diff["high"]) == pytest.approx((mean - half, mean + half))
    assert result["targets"]["50"]["speedup_all_over_none"]["ort_ms"] == pytest.approx({1: 2.0, 2: 2.1, 3: 2.3 / 1.2})
    assert result["targets"]["50"]["none"]["parent_ort_ms"] == {1: 2.0, 2: 2.0, 3: 2.0}
    assert result["default"] == "all"
    md = run.markdown(result, "python -m studies.depth_default.run --report")
    assert "the default is `prune.depth: all`" in md and "| 25 % | -0.07 [" in md

    # 25 %: all loses 3 points on every seed → the interval lies below −1 → the default stays none
    worse = {**pckh, ("all", 25): [71.0, 72.0, 70.0]}
    result = _study(tmp_path / "b", worse, FAST)
    assert result["targets"]["25"]["verdict"] == {"complete": True, "no_worse": False, "faster_in_ort": True}
    assert result["targets"]["50"]["verdict"]["no_worse"] and result["default"] == "none"

    # one seed where depth is not faster in ORT → none
    slow = {**FAST, ("all", 50): [1.1, 2.2, 1.2]}
    result = _study(tmp_path / "c", pckh, slow)
    assert not result["targets"]["50"]["verdict"]["faster_in_ort"] and result["default"] == "none"


def test_an_incomplete_study_decides_nothing_unless_depth_fails_a_complete_target(tmp_path):
    pckh = {("none", 50): [78.0, 79.0], ("all", 50): [78.2, 79.1]}
    result = _study(tmp_path / "a", pckh, {("none", 50): [2.0, 2.0], ("all", 50): [1.0, 1.0]})
    assert result["default"] is None and not result["complete"]
    assert result["targets"]["50"]["pckh_all_minus_none"]["n"] == 2
    assert result["targets"]["25"]["pckh_all_minus_none"] is None
    assert "no default is chosen yet" in run.markdown(result, "cmd")
    # 50 % complete and passing, 25 % missing: still nothing (both must pass)
    passing = {("none", 50): [78.0, 79.0, 77.5], ("all", 50): [78.2, 79.1, 77.9]}
    assert _study(tmp_path / "b", passing, FAST)["default"] is None
    # 50 % complete and failing (all loses 2 points on every seed): none, without the 25 % target (addendum 1)
    failing = {("none", 50): [78.0, 79.0, 77.5], ("all", 50): [76.0, 77.0, 75.5]}
    result = _study(tmp_path / "c", failing, FAST)
    assert result["default"] == "none" and not result["complete"]
    assert "addendum 1" in run.markdown(result, "cmd")


def test_the_archive_keeps_each_finished_runs_record_and_last_step_checkpoint_only(tmp_path):
    from studies.equal_latency.run import archive

    work = tmp_path / "work"
    _write_run(work / "seed1" / "all-50", 78.0, 1.0)
    rd = RunDir(work / "seed1" / "all-50")
    rd.checkpoints.mkdir()
    for step in (0, 1, 2):
        rd.step_checkpoint(step).write_bytes(bytes([step]))
    (rd.root / "allocation_step_002.json").write_text("{}")
    (rd.root / "final").mkdir()
    (rd.root / "final" / "model.pt").write_bytes(b"same weights as step 2")
    unfinished = work / "seed1" / "none-50"
    unfinished.mkdir()
    (unfinished / "run.json").write_text(json.dumps({"status": "running"}))
    copied = archive(work, tmp_path / "archive", [1], files=run.ARCHIVED, last_step=True)
    assert copied == [tmp_path / "archive" / "seed1" / "all-50"]
    kept = sorted(str(p.relative_to(copied[0])) for p in copied[0].rglob("*") if p.is_file())
    assert kept == ["allocation_step_002.json", "checkpoints/step_002.pt", "latency.json", "metrics.json", "run.json"]
    assert (copied[0] / "checkpoints" / "step_002.pt").read_bytes() == bytes([2])


def test_runs_archived_in_an_earlier_session_are_not_run_again_and_the_report_reads_them(tmp_path, capsys):
    parent = tmp_path / "seed{seed}.pth.tar"
    (tmp_path / "seed1.pth.tar").write_bytes(b"")
    committed = tmp_path / "committed"
    _write_run(committed / "seed1" / "none-50", 78.0, 2.0)
    argv = ["--recipe", str(ROOT / run.RECIPE), "--parents", str(parent), "--work", str(tmp_path / "work"),
            "--committed", str(committed), "--seed", "1", "--targets", "0.5"]  # fmt: skip
    assert run.main([*argv, "--dry-run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].endswith(f"none-50: finished, archived in {committed}/seed1/none-50")
    assert lines[1].endswith("all-50: hg8 seed 1: macs 0.5, depth all (loss)")
    assert run.main([*argv, "--report", "--out", str(tmp_path / "report")]) == 0
    saved = json.loads((tmp_path / "report" / "report.json").read_text())
    assert saved["targets"]["50"]["none"]["pckh"] == {"1": 78.0} and saved["default"] is None
    assert "no default is chosen yet" in (tmp_path / "report" / "report.md").read_text()
    assert run.main([*argv[:-4], "--seed", "4", "--dry-run"]) == 2
    assert "seed4.pth.tar: parent of seed 4 not found" in capsys.readouterr().err
