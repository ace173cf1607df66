"""benchmarks/accuracy.py: paired differences with t-intervals, the goals' verdicts, and a study extended with new
seeds on top of an earlier report (whose run directories are gone)."""

from __future__ import annotations

import json

import pytest

from benchmarks import accuracy


@pytest.fixture(scope="module")
def study():
    return accuracy


def _run(root, seed, name, pckh, macs, parent=(80.0, 1000.0), status="finished"):
    """A run directory as the runner leaves it: step 0 is the parent, the last row the final model."""
    run = root / f"seed{seed}" / name
    run.mkdir(parents=True)
    rows = [{"step": 0, "pckh_mean": parent[0], "macs_fvcore": parent[1]}, {"step": 1, "pckh_mean": pckh,
                                                                          "macs_fvcore": macs}]  # fmt: skip
    (run / "metrics.json").write_text(json.dumps(rows))
    (run / "run.json").write_text(json.dumps({"status": status}))


def test_paired_differences_have_a_students_t_interval(study):
    d = study.paired({1: 3.0, 2: 5.0, 3: 7.0}, {1: 2.0, 2: 3.0, 3: 4.0, 9: 0.0})  # diffs 1, 2, 3; seed 9 unpaired
    assert d["n"] == 3 and d["per_seed"] == [1.0, 2.0, 3.0]
    assert d["mean"] == pytest.approx(2.0)
    assert d["high"] - d["mean"] == pytest.approx(4.302653 / 3**0.5, rel=1e-5)  # t(0.975, 2) × sd 1 / √3
    assert study.paired({1: 1.0}, {1: 0.0}) is None  # one seed has no interval


def test_goals_need_the_margin_and_an_interval_above_zero(study):
    def entry(mean, low):
        return {"mean": mean, "low": low, "high": 2 * mean - low, "n": 5, "per_seed": []}

    results = {
        "default-50": {"vs_parent": entry(-0.9, -2.0), "vs_random": entry(1.2, 0.1), "vs_scratch": entry(1.2, -0.1)},
        "default-25": {"vs_random": entry(1.9, 0.5), "vs_scratch": entry(2.5, 0.4)},
    }
    verdicts = [c["met"] for c in study.goals(results, [0.5, 0.25])]
    assert verdicts == [True, True, False, False, True]
    assert study.goals({}, [0.5])[0]["met"] is None  # nothing measured is not a pass


def test_new_seeds_join_an_earlier_report_and_pair_over_all_seeds(study, tmp_path):
    work = tmp_path / "work"
    for s, (d, r) in {4: (79.0, 77.0), 5: (78.5, 78.0)}.items():
        _run(work, s, "default-50", d, 500.0)
        _run(work, s, "random-50", r, 520.0)
    _run(work, 5, "scratch-50", 70.0, 480.0, status="running")  # unfinished: not counted
    earlier = {
        "environment": {"started": "2026-11-25T06:44:48+00:00", "command": "python benchmarks/accuracy.py"},
        "results": {
            "parent": {"per_seed": {"1": 80.0, "2": 80.0, "3": 80.0}},
            "default-50": {
                "variant": "default",
                "budget": 0.5,
                "per_seed": {"1": 79.0, "2": 79.5, "3": 78.0},
                "kept_macs": 0.4,
            },
            "random-50": {
                "variant": "random",
                "budget": 0.5,
                "per_seed": {"1": 78.0, "2": 78.5, "3": 78.0},
                "kept_macs": 0.6,
            },
        },
        "plateaus": {"1": {"at_plateau": True}},
    }
    path = tmp_path / "accuracy.json"
    path.write_text(json.dumps(earlier))
    previous, plateaus, (source,) = study.load_previous([path], [4, 5])
    assert source["seeds"] == [1, 2, 3] and source["started"].startswith("2026-11-25") and list(plateaus) == [1]
    results = study.summarise(work, [4, 5], [0.5], ["default", "random", "scratch"], previous)
    assert results["parent"]["per_seed"] == {1: 80.0, 2: 80.0, 3: 80.0, 4: 80.0, 5: 80.0}
    default = results["default-50"]
    assert default["per_seed"] == {1: 79.0, 2: 79.5, 3: 78.0, 4: 79.0, 5: 78.5}
    assert default["kept_macs"] == pytest.approx((3 * 0.4 + 0.5 + 0.5) / 5)  # earlier mean weighted by its 3 seeds
    assert default["vs_random"]["per_seed"] == pytest.approx([1.0, 1.0, 0.0, 2.0, 0.5])
    assert default["vs_parent"]["n"] == 5 and default["vs_parent"]["mean"] == pytest.approx(-1.2)
    assert "scratch-50" not in results


def test_an_earlier_report_that_overlaps_the_new_seeds_or_is_not_a_report_is_refused(study, tmp_path):
    path = tmp_path / "accuracy.json"
    path.write_text(json.dumps({"results": {"parent": {"per_seed": {"1": 80.0, "4": 81.0}}}, "plateaus": {}}))
    with pytest.raises(SystemExit, match=r"accuracy.json already has seed 4; run only new seeds"):
        study.load_previous([path], [4, 5])
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"results": {"parent": {"per_seed": {"1": 79.0}}}, "plateaus": {}}))
    with pytest.raises(SystemExit, match=r"other.json already has seed 1; run only new seeds"):
        study.load_previous([path, other], [6])  # two earlier reports may not share a seed either
    path.write_text(json.dumps({"results": []}))
    with pytest.raises(SystemExit, match=r"--previous .*accuracy.json: not a study report"):
        study.load_previous([path], [4])


def _report(path, parent, default, kept_macs, started):
    """A one-study report as accuracy.py writes it (per-seed PCKh keyed by str seed)."""
    results = {
        "parent": {"per_seed": parent},
        "default-50": {"variant": "default", "budget": 0.5, "per_seed": default, "kept_macs": kept_macs},
    }
    path.write_text(json.dumps({"environment": {"started": started}, "results": results, "plateaus": {}}))
    return path


def test_several_earlier_reports_merge_and_weight_kept_macs_by_their_seeds(study, tmp_path):
    a = _report(tmp_path / "a.json", {"6": 82.0}, {"6": 81.0}, 0.50, "2026-12-04")
    b = _report(tmp_path / "b.json", {"7": 83.0, "8": 81.0}, {"7": 82.5, "8": 79.0}, 0.47, "2026-12-05")
    previous, _, sources = study.load_previous([a, b], [])
    assert [src["seeds"] for src in sources] == [[6], [7, 8]]
    assert previous["default-50"]["kept_macs"] == pytest.approx((0.50 + 2 * 0.47) / 3)
    results = study.summarise(tmp_path / "none", [], [0.5], ["default"], previous)
    assert results["parent"]["per_seed"] == {6: 82.0, 7: 83.0, 8: 81.0}
    assert results["default-50"]["vs_parent"]["per_seed"] == pytest.approx([-1.0, -0.5, -2.0])


def test_the_report_names_where_each_seed_came_from_and_any_changed_version(study):
    assert study._versions({"torch": "2.13.0"}, {"torch": "2.13.0", "numpy": "2.4"}) == "the same"
    assert study._versions({"torch": "2.12.0"}, {"torch": "2.13.0"}) == "torch 2.12.0 → 2.13.0"
    assert study._versions(None, {"torch": "2.13.0"}) == "not recorded then"


def test_the_report_tabulates_each_earlier_report_with_its_machine(study, tmp_path):
    a = _report(tmp_path / "a.json", {"6": 82.0}, {"6": 81.0}, 0.50, "2026-12-04")
    data = json.loads(a.read_text())
    data["environment"] |= {"command": "accuracy.py --seeds 6", "versions": {"torch": "2.12.0"},
                            "machine": {"cpu": "AMD EPYC", "device": "cpu"}}  # fmt: skip
    a.write_text(json.dumps(data))
    b = _report(tmp_path / "b.json", {"7": 83.0}, {"7": 82.5}, 0.50, "2026-12-05")  # an older report: no machine
    previous, plateaus, sources = study.load_previous([a, b], [])
    results = study.summarise(tmp_path / "none", [], [0.5], ["default"], previous)
    env = study.environment(argv=["accuracy.py"]) | {"versions": {"torch": "2.13.0"}}
    args = type("Args", (), {"recipe": "r.yaml", "set": ["finetune.train.lr=1e-3"], "parents": "p", "budgets": [0.5],
                             "seeds": [], "note": None})()  # fmt: skip
    md = study.markdown(env, args, results, [], plateaus, 0.0, sources)
    assert "Recipe `r.yaml --set finetune.train.lr=1e-3`;" in md
    assert (f"| 6 | `{a}` | 2026-12-04 | AMD EPYC · cpu | `accuracy.py --seeds 6` | torch 2.12.0 → 2.13.0 |") in md
    assert f"| 7 | `{b}` | 2026-12-05 | not recorded | `None` | not recorded then |" in md
    assert "Seeds run by this invocation: none." in md
