"""The equal-latency study's logic (studies/equal_latency, issue 32): each variant's recipe, the MACs fraction and
smaller architecture chosen from given latencies, paired statistics, goal verdicts and over-budget flags from
fabricated runs, and the ``random`` depth importance its ``random`` variant needs. No training, no timing."""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from benchmarks.accuracy import parent_schedule
from benchmarks.common import environment
from hgprune.errors import HgpruneError
from hgprune.models import build_model
from hgprune.prune import model_size, prune_to_target
from hgprune.prune.cost import MacsCost
from hgprune.prune.depth import IMPORTANCES, get_importance, plan_depth, removable_units
from hgprune.recipe import SCRATCH, dump_recipe, load_recipe, recipe_from_resolved
from hgprune.report.runs import LatencyPass, StepLatency
from hgprune.rundir import RunDir
from studies.equal_latency import report, run
from tests.conftest import ROOT

T_975_2 = 4.302652729911275  # Student's t, 97.5th percentile, 2 degrees of freedom (three seeds)
PARENT = "reports/equal_latency/parents/seed2/hg8/checkpoint.pth.tar"
CHOICES = {
    "macs": {"choices": {"50": {"fraction": 0.4}, "25": {"fraction": 0.15}}},
    "smaller": {"choices": {"50": {"arch": "hg3", "next_smaller": "hg2"}, "25": {"arch": "hg1", "next_smaller": None}}},
}


@pytest.fixture(scope="module")
def base():
    return run.base_recipe(ROOT / run.RECIPE, seed=2)


# -- recipes -------------------------------------------------------------------------------------------------------


def test_latency_and_random_recipes_target_the_parents_ort_latency_with_depth_and_width(base):
    latency = run.variant_recipe(base, "latency", 0.5, PARENT)
    t = latency.prune.target
    assert (latency.name, latency.seed, latency.model.arch) == ("latency-50", 2, "hg8")
    assert (t.kind, t.kept, t.runtime, t.threads, t.batch, t.budget_ms) == ("latency", 0.5, "ort", 2, 1, None)
    assert (latency.prune.depth, latency.prune.criterion, latency.prune.depth_importance) == ("all", "taylor", "loss")
    assert latency.baseline.checkpoint == PARENT and latency.sweep is None
    assert (latency.model.N, latency.model.M, latency.model.depth, latency.model.input_size) == (16, 32, 3, 64)
    assert latency.finetune == base.finetune and latency.data == base.data and latency.prune.steps == 2
    rand = run.variant_recipe(base, "random", 0.25, PARENT)
    assert (rand.name, rand.prune.criterion, rand.prune.depth_importance) == ("random-25", "random", "random")
    same = replace(rand.prune, criterion="taylor", depth_importance="loss")
    assert same == run.variant_recipe(base, "latency", 0.25, PARENT).prune  # only the scoring differs
    for recipe in (latency, rand):  # what the run writes as recipe.yaml reads back the same
        assert recipe_from_resolved(dump_recipe(recipe, "test")).prune == recipe.prune


def test_macs_recipe_is_the_sweep_default_at_the_chosen_fraction(base):
    macs = run.variant_recipe(base, "macs", 0.5, PARENT, CHOICES)
    assert macs.prune == replace(base.prune, target=replace(base.prune.target, kept=0.4))
    assert (macs.prune.target.kind, macs.prune.allocation, macs.prune.depth, macs.prune.steps) == (
        "macs", "uniform", "none", 2)  # fmt: skip
    assert macs.name == "macs-50" and macs.baseline.checkpoint == PARENT
    with pytest.raises(HgpruneError, match="run `python -m studies.equal_latency.run --choose-macs`"):
        run.variant_recipe(base, "macs", 0.5, PARENT, {})


def test_smaller_recipe_trains_the_chosen_architecture_for_the_parents_schedule_plus_finetuning(base):
    schedule = base.baseline.train  # what the parents trained with (30 epochs, lr 2.5e-3, ×0.1 after 20 and 23)
    smaller = run.variant_recipe(base, "smaller", 0.5, PARENT, CHOICES, schedule)
    train = smaller.baseline.train
    assert (smaller.name, smaller.model.arch, smaller.role, smaller.seed) == ("smaller-50", "hg3", SCRATCH, 2)
    assert smaller.baseline.checkpoint is None and smaller.prune.steps == 0
    assert (train.epochs, train.lr, list(train.schedule), train.batch_size) == (46, 2.5e-3, [20, 23], 16)
    assert (smaller.model.N, smaller.model.M, smaller.model.depth) == (16, 32, 3)
    nxt = run.variant_recipe(base, run.NEXT, 0.5, PARENT, CHOICES, schedule)
    assert (nxt.name, nxt.model.arch, nxt.baseline.train.epochs) == ("smaller-next-50", "hg2", 46)
    with pytest.raises(HgpruneError, match="no architecture smaller than hg1"):
        run.variant_recipe(base, run.NEXT, 0.25, PARENT, CHOICES, schedule)
    none_fits = {"smaller": {"choices": {"25": {"arch": None, "next_smaller": None}}}}
    with pytest.raises(HgpruneError, match="no architecture of the sweep family fits the 25 % budget"):
        run.variant_recipe(base, "smaller", 0.25, PARENT, none_fits, schedule)
    with pytest.raises(HgpruneError, match="unknown variant 'tiny'"):
        run.variant_recipe(base, "tiny", 0.5, PARENT)
    assert run.seed_variants(1, run.VARIANTS) == [*run.VARIANTS, run.NEXT]  # seed 1 only, exploratory
    assert run.seed_variants(2, run.VARIANTS) == list(run.VARIANTS)
    assert run.seed_variants(1, ["latency"]) == ["latency"]


def test_dry_run_lists_each_seeds_runs_and_refuses_without_a_parent_or_a_choice(tmp_path, capsys):
    parent = tmp_path / "seed2" / "checkpoint.pth.tar"
    parent.parent.mkdir()
    parent.write_bytes(b"")  # never read by a dry run of the pruned variants
    parents = str(tmp_path / "seed{seed}" / "checkpoint.pth.tar")
    common = ["--recipe", str(ROOT / run.RECIPE), "--parents", parents, "--work", str(tmp_path / "work"),
              "--committed", str(tmp_path / "committed")]  # fmt: skip
    assert run.main([*common, "--seed", "2", "--variants", "latency", "random", "--dry-run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    names = [line.split(":")[0].split("/")[-1] for line in lines]
    assert names == ["latency-50", "random-50", "latency-25", "random-25"]
    assert all(f"{tmp_path}/work/seed2/" in line for line in lines)
    assert "latency 0.25 (ort, 2 threads, batch 1), depth all (random), criterion random" in lines[3]
    assert run.main([*common, "--seed", "3", "--dry-run"]) == 2
    assert "parent of seed 3 not found" in capsys.readouterr().err
    assert run.main([*common, "--seed", "2", "--variants", "macs", "--dry-run"]) == 2
    assert "--choose-macs` first" in capsys.readouterr().err
    assert run.main(common) == 2


def test_the_exploratory_next_smaller_run_is_left_out_where_nothing_is_smaller(tmp_path, capsys):
    work = tmp_path / "work"
    work.mkdir()
    for kind, name in run.CHOICES.items():
        (work / name).write_text(json.dumps(CHOICES[kind]))
    parents = str(ROOT / "reports/equal_latency/parents/seed{seed}/hg8/checkpoint.pth.tar")
    argv = ["--recipe", str(ROOT / run.RECIPE), "--parents", parents, "--work", str(work), "--dry-run"]
    assert run.main([*argv, "--seed", "1", "--variants", "smaller"]) == 0
    names = [line.split(":")[0].split("/")[-1] for line in capsys.readouterr().out.splitlines()]
    assert names == ["smaller-50", "smaller-next-50", "smaller-25"]  # nothing is smaller than hg1 at 25 %


def test_the_macs_grid_is_the_protocols():
    assert run.MACS_GRID[0] == 0.15 and run.MACS_GRID[-1] == 0.9 and len(run.MACS_GRID) == 16
    assert all(math.isclose(b - a, 0.05) for a, b in zip(run.MACS_GRID, run.MACS_GRID[1:], strict=False))


# -- choices -------------------------------------------------------------------------------------------------------


def test_the_macs_fraction_measuring_closest_to_the_budget_is_chosen():
    grid = {0.15: 2.1, 0.2: 2.6, 0.25: 3.2, 0.3: 3.5}
    c = run.choose_fraction(grid, 3.0)
    assert (c["fraction"], c["measured_ms"], c["reaches"]) == (0.25, 3.2, True)
    assert c["ratio"] == pytest.approx(3.2 / 3.0)
    assert run.choose_fraction({0.2: 2.0, 0.25: 4.0}, 3.0)["fraction"] == 0.25  # a tie: the larger fraction
    slow = run.choose_fraction({0.15: 3.4, 0.2: 3.9}, 3.0)  # none reaches 3.0 × 1.05: the closest, said so
    assert (slow["fraction"], slow["reaches"]) == (0.15, False)
    assert run.choose_fraction({0.15: 3.15}, 3.0)["reaches"] is True  # at the tolerance: reached


def test_the_largest_architecture_within_budget_times_tolerance_is_chosen():
    ms = {"hg1": 1.0, "hg2": 1.9, "hg3": 2.8, "hg4": 3.7, "hg5": 4.6}
    c = run.choose_architecture(ms, 2.7)  # hg3: 2.8 ≤ 2.7 × 1.05 = 2.835
    assert (c["arch"], c["next_smaller"], c["measured_ms"]) == ("hg3", "hg2", 2.8)
    assert run.choose_architecture(ms, 2.6)["arch"] == "hg2"  # 2.8 > 2.73
    assert run.choose_architecture(ms, 1.0) == {"arch": "hg1", "next_smaller": None, "measured_ms": 1.0,
                                                 "ratio": 1.0}  # fmt: skip
    assert run.choose_architecture(ms, 0.5)["arch"] is None


def _macs_shapes(recipe, torch_seed: int, fraction: float = 0.4) -> tuple[list, float]:
    torch.manual_seed(torch_seed)
    model = run.macs_architecture(recipe, fraction)
    whole = model_size(run.family_model(recipe, recipe.model.arch), 64)["macs"]
    return [p.shape for p in model.state_dict().values()], model_size(model, 64)["macs"] / whole


def test_a_macs_choice_follows_the_recipes_schedule_to_its_fraction():
    recipe = run.base_recipe(ROOT / run.RECIPE, seed=0, arch="hg2")  # the sweep's widths, two stacks
    shapes, kept = _macs_shapes(recipe, 1)
    assert _macs_shapes(recipe, 1) == (shapes, kept)  # the same weights: the same architecture
    assert kept == pytest.approx(0.4, abs=0.03)


@pytest.mark.xfail(
    strict=True,
    reason="found 2026-12-07: after 2 uniform steps the widths depend on the weights "
    "(hg2, 0.4: kept MACs 0.420 or 0.384 for two random inits), against the protocol's premise",
)
def test_a_macs_choice_prunes_the_same_widths_whatever_the_weights():
    recipe = run.base_recipe(ROOT / run.RECIPE, seed=0, arch="hg2")
    assert _macs_shapes(recipe, 1) == _macs_shapes(recipe, 2)


def test_a_choice_is_written_once(tmp_path):
    path = tmp_path / "choice_macs.json"
    run.write_choice(path, {"choices": {"50": {"fraction": 0.4}}}, "cmd", archived=None)
    assert json.loads(path.read_text())["choices"]["50"]["fraction"] == 0.4
    assert run.read_choices(tmp_path, archived=None)["macs"]["command"] == "cmd"
    with pytest.raises(HgpruneError, match="already chosen"):
        run.write_choice(path, {}, "cmd", archived=None)


def test_a_fresh_work_directory_uses_the_committed_choices_and_cannot_choose_again(tmp_path):
    archived, work = tmp_path / "archive", tmp_path / "work"
    archived.mkdir()
    (archived / "choice_smaller.json").write_text(json.dumps({"command": "committed"}))
    assert run.read_choices(work, archived) == {"smaller": {"command": "committed"}}
    with pytest.raises(HgpruneError, match="archive/choice_smaller.json: already chosen"):
        run.write_choice(work / "choice_smaller.json", {}, "cmd", archived)
    work.mkdir()
    (work / "choice_smaller.json").write_text(json.dumps({"command": "local"}))
    assert run.read_choices(work, archived)["smaller"]["command"] == "local"  # the work directory's own first
    (archived / "choice_macs.json").write_text("{")
    with pytest.raises(HgpruneError, match="choice_macs.json: unreadable choice"):
        run.read_choices(work, archived)


# -- analysis ------------------------------------------------------------------------------------------------------

PARENT_MS = {1: 10.0, 2: 10.4, 3: 9.6}
PARENT_PCKH = {1: 80.0, 2: 81.0, 3: 79.0}
PCKH = {  # (variant, budget %) → PCKh per seed
    ("latency", 50): {1: 79.5, 2: 80.2, 3: 78.6},  # − parent ≈ −0.57: goal 1 met
    ("macs", 50): {1: 76.0, 2: 77.5, 3: 75.0},  # latency − macs ≈ +3.27, interval above 0: goal 2 met
    ("smaller", 50): {1: 79.0, 2: 80.9, 3: 77.0},  # latency − smaller ≈ +0.47 but a wide interval: goal 3 missed
    ("random", 50): {1: 79.0, 2: 79.5, 3: 78.0},
    ("latency", 25): {1: 75.0, 2: 77.0, 3: 76.0},  # − parent = −4.0: goal 1 missed at 25 %
    ("macs", 25): {1: 74.0, 2: 75.0, 3: 75.5},  # latency − macs ≈ +1.17: goal 2 missed
    ("smaller", 25): {1: 74.5, 2: 76.0, 3: 75.0},
    ("random", 25): {1: 73.0, 2: 75.5, 3: 74.8},  # latency − random ≈ +1.57: goal 4 met
}
RATIO = {("macs", 25): {1: 1.06, 2: 1.04, 3: 1.0}}  # seed 1 over budget (> 1.05 ×), seed 2 within


def fabricated_runs() -> dict[int, dict[str, dict]]:
    runs: dict[int, dict[str, dict]] = {}
    for (variant, k), per_seed in PCKH.items():
        for s, pckh in per_seed.items():
            ratio = RATIO.get((variant, k), {}).get(s, 0.9)
            pruned = variant != "smaller"
            runs.setdefault(s, {})[f"{variant}-{k}"] = {
                "pckh": pckh, "ort_ms": ratio * k / 100 * PARENT_MS[s], "eager_ms": 5.0, "wall_s": 1800.0,
                "parent_pckh": PARENT_PCKH[s] if pruned else None,
                "command": f"python -m studies.equal_latency.run --seed {s}",
                "parent_ort_ms": PARENT_MS[s] if pruned else None, "parent_eager_ms": 20.0 if pruned else None,
            }  # fmt: skip
    return runs


def _interval(diffs: list[float]) -> tuple[float, float, float]:
    mean = statistics.fmean(diffs)
    half = T_975_2 * statistics.stdev(diffs) / math.sqrt(len(diffs))
    return mean, mean - half, mean + half


def test_paired_differences_by_seed_with_t_intervals():
    results = report.analyse(fabricated_runs())
    assert results["parent"]["per_seed"] == PARENT_PCKH and results["parent"]["ort_ms"] == PARENT_MS
    for other in ("macs", "smaller", "random"):
        for k in (50, 25):
            diffs = [PCKH["latency", k][s] - PCKH[other, k][s] for s in (1, 2, 3)]
            d = results[f"latency-{k}"][f"vs_{other}"]
            assert d["per_seed"] == pytest.approx(diffs)
            assert (d["mean"], d["low"], d["high"]) == pytest.approx(_interval(diffs))
            assert d["n"] == 3
    d = results["latency-25"]["vs_parent"]
    assert d["mean"] == pytest.approx(-4.0)
    assert results["macs-50"]["vs_parent"]["mean"] == pytest.approx(statistics.fmean([-4.0, -3.5, -4.0]))
    assert "vs_macs" not in results["macs-50"]  # only `latency` is compared with the others


def test_goal_verdicts_follow_the_protocol():
    checks = report.goals(report.analyse(fabricated_runs()))
    verdicts = [c["met"] for c in checks]
    # 1 at 50, 1 at 25, 2 at 50, 2 at 25, 3 at 50, 3 at 25, 4 at 25
    assert verdicts == [True, False, True, False, False, True, True]
    assert checks[0]["value"].startswith("-0.57 [")
    one_seed = {1: fabricated_runs()[1]}
    assert all(c["met"] is None for c in report.goals(report.analyse(one_seed)))  # fewer than 2 paired seeds


def test_over_budget_variants_are_flagged_and_kept_and_lose_the_winner_place():
    results = report.analyse(fabricated_runs())
    macs = results["macs-25"]
    assert macs["over_budget"] == [1] and macs["unmeasured"] == []
    assert macs["ratio"] == pytest.approx({1: 1.06, 2: 1.04, 3: 1.0})
    assert macs["per_seed"] == PCKH["macs", 25]  # kept in the analysis
    assert results["latency-50"]["over_budget"] == [] and results["latency-50"]["mean_ratio"] == pytest.approx(0.9)
    win = report.winners(results)
    assert win["50"]["variant"] == "latency"  # 79.43 against random 78.83, smaller 78.97, macs 76.17
    assert win["25"]["variant"] == "latency"
    runs = fabricated_runs()
    for s in runs:
        runs[s]["macs-25"]["pckh"] = 90.0  # the best PCKh, but seed 1 measured over budget
    assert report.winners(report.analyse(runs))["25"]["variant"] == "latency"
    runs[2]["latency-25"]["ort_ms"] = None  # not measured: not within budget either
    assert report.analyse(runs)["latency-25"]["unmeasured"] == [2]
    assert report.winners(report.analyse(runs))["25"]["variant"] == "smaller"


def test_the_report_names_the_protocol_verdicts_and_over_budget_seeds(tmp_path):
    runs = fabricated_runs()
    results = report.analyse(runs)
    choices = {"macs": {"choices": {"25": {"fraction": 0.15, "measured_ms": 3.0, "ratio": 1.2, "budget_ms": 2.5,
                                           "reaches": False}}, "made": "now", "command": "c"}}  # fmt: skip
    payload = {"environment": environment(), "runs": runs, "results": results, "goals": report.goals(results),
               "winners": report.winners(results), "plateaus": {}, "choices": choices}  # fmt: skip
    text = report.markdown(payload)
    assert "(../equal_latency/protocol.md)" in text and "**missed**" in text and "| met |" in text
    assert "| seed 1 |" in text  # macs at 25 %: over budget
    assert "no MACs fraction of the grid reaches this budget" in text
    assert "**12.0 core-hours** in all: the variants 12.0 h" in text  # 24 runs of 1800 s each
    payload["family"] = [{"run": "hg4-latency-50", "wall_s": 3600.0, "command": "python -m fam", "pckh": 1.0,
                          "parent_pckh": 2.0, "parent_ort_ms": 2.0, "ort_ms": 1.0, "ratio": 1.0}]  # fmt: skip
    payload["parent_wall_s"] = {1: 1800.0, 2: 1800.0, 3: 3600.0}
    text = report.markdown(payload)
    assert "**15.0 core-hours** in all: the variants 12.0 h" in text and "family runs 1.0 h" in text
    assert "hg8 parents 2.0 h" in text and "seeds 1, 2, 3" in text and "- `python -m fam`" in text
    assert "python -m studies.equal_latency.run --seed 3" in text


def _write_run(root, rows, steps, status="finished"):
    rd = RunDir(root)
    root.mkdir(parents=True)
    rd.metrics_json.write_text(json.dumps(rows))
    rd.state.write_text(json.dumps({"status": status, "command": "hgprune run x"}))
    latency = {s: StepLatency(ort_ms=ms, ort_p90_ms=ms * 1.1, eager_ms=2 * ms, eager_p90_ms=2.2 * ms)
               for s, ms in steps.items()}  # fmt: skip
    rd.latency_json.write_text(LatencyPass("hgprune latency x", [0.1, 0.2, 0.3], [0.4, 0.2, 0.3], latency).to_json())


def test_runs_are_read_from_their_metrics_and_latency_pass(tmp_path):
    rows = [{"pckh_mean": p, "wall_s": w} for p, w in ((80.0, 10.0), (78.0, 20.0), (79.0, 30.0))]
    _write_run(tmp_path / "seed1" / "latency-50", rows, {0: 10.0, 1: 7.0, 2: 5.2})
    _write_run(tmp_path / "seed1" / "smaller-50", [{"pckh_mean": 77.0, "wall_s": 100.0}], {0: 4.9})
    _write_run(tmp_path / "seed1" / "macs-50", rows, {0: 10.0, 2: 8.0}, status="running")  # unfinished: not read
    runs = report.collect(tmp_path, [1, 2], [0.5], run.VARIANTS)
    assert set(runs) == {1} and set(runs[1]) == {"latency-50", "smaller-50"}
    latency, smaller = runs[1]["latency-50"], runs[1]["smaller-50"]
    assert (latency["pckh"], latency["parent_pckh"], latency["ort_ms"], latency["parent_ort_ms"]) == (79.0, 80.0, 5.2,
                                                                                                     10.0)  # fmt: skip
    assert latency["eager_ms"] == 10.4 and latency["wall_s"] == 60.0 and latency["load_before"] == [0.1, 0.2, 0.3]
    assert (smaller["pckh"], smaller["parent_pckh"], smaller["ort_ms"], smaller["parent_ort_ms"]) == (77.0, None, 4.9,
                                                                                                     None)  # fmt: skip
    results = report.analyse(runs, [0.5])
    assert results["latency-50"]["ratio"] == {1: pytest.approx(1.04)}
    _write_run(tmp_path / "family" / "hg4-latency-25", rows, {0: 8.0, 1: 5.0, 2: 2.2})
    (row,) = report.family(tmp_path)
    assert (row["run"], row["budget"], row["pckh"]) == ("hg4-latency-25", 0.25, 79.0)
    assert row["ratio"] == pytest.approx(1.1) and "1.10 (over budget)" in report.family_md([row])
    assert "| hg4-latency-25 | 80.00 | 79.00 | -1.00 | 8.000 | 2.200 |" in report.family_md([row])
    assert results["smaller-50"]["over_budget"] == []  # 4.9 / 5.0 = 0.98


def test_a_parents_training_time_is_the_sum_of_its_log(tmp_path):
    (tmp_path / "log.csv").write_text("epoch,pckh,wall_s\n1,50.0,60.5\n2,60.0,39.5\n")
    assert report.log_wall_s(tmp_path / "log.csv") == 100.0


def test_previous_reports_add_seeds_but_never_twice(tmp_path):
    runs = fabricated_runs()
    path = tmp_path / "old.json"
    path.write_text(json.dumps({"runs": {s: runs[s] for s in (1, 2)}}))
    merged = report.load_previous([path], [3])
    assert set(merged) == {1, 2} and merged[1]["latency-50"]["pckh"] == 79.5
    with pytest.raises(HgpruneError, match="seed 2 is already given"):
        report.load_previous([path], [2])
    path.write_text("[]")
    with pytest.raises(HgpruneError, match="not an equal-latency report"):
        report.load_previous([path], [3])


# -- the random depth importance ------------------------------------------------------------------------------------


def test_random_depth_importance_is_a_seeded_shuffle():
    model = build_model("hg3", N=16, M=32, input_size=64, depth=2).eval()
    units = removable_units(model, "all")
    scores = get_importance("random")(model, units, SimpleNamespace(seed=3))
    assert "random" in IMPORTANCES and not IMPORTANCES["random"].needs_data
    assert sorted(scores.values()) == pytest.approx([(i + 1) / len(units) for i in range(len(units))])
    assert IMPORTANCES["random"](seed=3)(model, units, None) == scores  # the slice's seed, or its own
    assert get_importance("random")(model, units, SimpleNamespace(seed=4)) != scores
    torch.manual_seed(7)  # no seed anywhere: torch's generator, which a run seeds per step
    unseeded = get_importance("random")(model, units, None)
    torch.manual_seed(7)
    assert get_importance("random")(model, units, None) == unseeded
    cost = MacsCost(64)
    total = cost.cost(model)
    plan = plan_depth(model, "all", cost, 0.6 * total, 0.02 * total, IMPORTANCES["random"](seed=3))
    assert plan.units and plan.predicted_cost >= 0.58 * total


def test_the_engine_seeds_the_random_depth_importance_per_step():
    def removed(seed: int) -> list[str]:
        torch.manual_seed(0)
        model = build_model("hg3", N=16, M=32, input_size=64, depth=2).eval()
        result = prune_to_target(model, criterion="l1", kind="macs", kept=0.7, input_size=64, depth="blocks",
                                 depth_importance="random", seed=seed, train_set=list(range(64)),
                                 recalibrate_bn=False, round_to=2, progress=False)  # fmt: skip
        return result.removed_units

    first = removed(11)
    assert first and removed(11) == first
    assert any(removed(s) != first for s in (12, 13))


def test_archive_keeps_finished_runs_files_and_links_and_leaves_unfinished_runs(tmp_path, monkeypatch):
    work, dest = tmp_path / "work", tmp_path / "archive"
    done, busy = work / "seed1" / "macs-50", work / "seed1" / "latency-50"
    for run_dir in (done, busy):
        (run_dir / "checkpoints").mkdir(parents=True)
        (run_dir / "recipe.yaml").write_text("name: x\n")
        (run_dir / "checkpoints" / "step_001.pt").write_bytes(b"big")
    (done / "final").mkdir()
    (done / "final" / "model.pt").write_bytes(b"weights")
    (work / "seed1" / "macs-25").symlink_to("macs-50", target_is_directory=True)
    (work / "choice_macs.json").write_text("{}")
    monkeypatch.setattr(run, "final_row", lambda path: {"pckh_mean": 1.0} if path.name == "macs-50" else None)
    monkeypatch.setattr(RunDir, "completed_steps", lambda self: [0, 1, 2])
    (done / "checkpoints" / "step_000.pt").write_bytes(b"parent")
    (done / "checkpoints" / "step_002.pt").write_bytes(b"result")

    def files():
        root = dest / "seed1" / "macs-50"
        return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())

    assert run.archive(work, dest, [1]) == [dest / "seed1" / "macs-50"]
    # not timed yet: the parent (step 0) and the result (last step) go too, so the latency pass can run elsewhere
    assert files() == ["checkpoints/step_000.pt", "checkpoints/step_002.pt", "final/model.pt", "recipe.yaml"]
    (done / "latency.json").write_text("{}")
    run.archive(work, dest, [1])  # after the pass: the checkpoints are dropped
    assert files() == ["final/model.pt", "latency.json", "recipe.yaml"]
    assert (dest / "seed1" / "macs-25").readlink().as_posix() == "macs-50"
    assert not (dest / "seed1" / "latency-50").exists() and (dest / "choice_macs.json").read_text() == "{}"
    (done / "recipe.yaml").write_text("name: y\n")
    run.archive(work, dest, [1])  # again: replaced whole
    assert (dest / "seed1" / "macs-50" / "recipe.yaml").read_text() == "name: y\n"


def test_archive_of_family_runs_takes_only_the_asked_architectures(tmp_path, monkeypatch):
    work, dest = tmp_path / "work", tmp_path / "archive"
    for name in ("hg4-latency-50", "hg4-latency-25", "hg5-latency-50", "hg40-latency-50"):
        (work / "family" / name / "final").mkdir(parents=True)
        (work / "family" / name / "final" / "model.pt").write_bytes(name.encode())
        (work / "family" / name / "latency.json").write_text("{}")
    (work / "seed1" / "latency-50").mkdir(parents=True)
    monkeypatch.setattr(run, "final_row", lambda path: {"pckh_mean": 1.0})
    monkeypatch.setattr(RunDir, "completed_steps", lambda self: [0, 1])
    copied = run.archive(work, dest, [], family=("hg4",))
    assert copied == [dest / "family" / "hg4-latency-25", dest / "family" / "hg4-latency-50"]
    assert (dest / "family" / "hg4-latency-25" / "final" / "model.pt").read_bytes() == b"hg4-latency-25"
    assert not (dest / "seed1").exists() and not (dest / "family" / "hg5-latency-50").exists()


def test_figures_plot_every_measured_parent_and_run_with_each_seeds_budgets(tmp_path):
    results = report.analyse(fabricated_runs())
    points = report.figure_points(results, "ort_ms")
    assert len(points) == 3 + 3 * len(PCKH)  # three parents, every variant × budget × seed
    same = fabricated_runs()
    for s in same:
        same[s]["macs-25"] = dict(same[s]["macs-50"])  # one run for both budgets: one point each seed
    both = report.figure_points(report.analyse(same), "eager_ms")
    assert len(both) == 3 + 3 * (len(PCKH) - 1) and sum(p[1] == "both" for p in both) == 3
    assert ("parent", None, 2, 10.4, 81.0) in points
    assert ("macs", 0.25, 1, pytest.approx(1.06 * 0.25 * 10.0), 74.0) in points
    fig = report.pareto_latency_figure(results, "ort_ms", "ONNX Runtime")
    budgets = sorted(line.get_xdata()[0] for line in fig.axes[0].get_lines())
    assert budgets == pytest.approx(sorted(k * ms for ms in PARENT_MS.values() for k in (0.5, 0.25)))
    eager = report.pareto_latency_figure(results, "eager_ms", "eager PyTorch")
    assert eager.axes[0].get_lines() == []  # budgets are ORT latencies: drawn in the ORT figure only
    written = report.write_figures(results, tmp_path)
    assert set(written) == {"ort", "eager"}
    for name in ("ort", "eager"):
        assert (tmp_path / f"pareto_latency_{name}.png").read_bytes().startswith(b"\x89PNG")
        assert (tmp_path / f"pareto_latency_{name}.svg").exists()
    empty = {"parent": {"per_seed": {}, "ort_ms": {}, "eager_ms": {}}}
    assert report.write_figures(empty, tmp_path / "none") == {}


def test_the_shipped_recipe_per_column_is_the_studys_run_and_up_to_date(monkeypatch):
    monkeypatch.chdir(ROOT)
    choices = run.read_choices(Path("no_such_work"))  # the committed choices, as a fresh clone has them
    shipped = run.shipped_recipes(choices)
    assert sorted(shipped) == sorted(f"{v}-{k}.yaml" for v in run.VARIANTS for k in (50, 25))
    base = run.base_recipe(seed=run.RECIPE_SEED)
    parent = run.PARENTS.format(seed=run.RECIPE_SEED)
    schedule = parent_schedule(parent)
    for name, text in shipped.items():
        path = run.RECIPES / name
        assert path.read_text() == text, f"{path} is stale: python -m studies.equal_latency.run --write-recipes"
        variant, k = name.removesuffix(".yaml").rsplit("-", 1)
        expected = run.variant_recipe(base, variant, int(k) / 100, parent, choices, schedule)
        assert load_recipe(path) == expected  # the file is exactly the study's run


def test_a_run_linked_under_a_second_budget_counts_once_for_the_parents_latency(tmp_path):
    rows = [{"pckh_mean": p, "wall_s": 1.0} for p in (80.0, 79.0, 78.0)]
    _write_run(tmp_path / "seed1" / "latency-50", rows, {0: 1.0, 1: 0.8, 2: 0.5})
    _write_run(tmp_path / "seed1" / "macs-50", rows, {0: 2.0, 1: 1.9, 2: 1.8})
    (tmp_path / "seed1" / "macs-25").symlink_to("macs-50", target_is_directory=True)
    runs = report.collect(tmp_path, [1], run.BUDGETS, run.VARIANTS)
    assert runs[1]["macs-25"]["same_as"] == "macs-50" and "same_as" not in runs[1]["macs-50"]
    assert runs[1]["macs-25"]["pckh"] == 78.0  # still a result at its own budget
    assert report.parents(runs)[1]["ort_ms"] == 1.5  # median of 1.0 and 2.0, not of 1.0, 2.0, 2.0


def test_a_run_finished_in_the_archive_is_not_run_again(tmp_path, monkeypatch, capsys):
    archived, out = tmp_path / "archive" / "seed2" / "latency-50", tmp_path / "work" / "seed2" / "latency-50"
    monkeypatch.setattr(run, "final_row", lambda path: {"pckh_mean": 1.0} if path == archived else None)
    started = []
    monkeypatch.setattr("hgprune.runner.Runner", lambda *a, **k: started.append(a))
    run.execute(None, out, "what", dry_run=False, resume=True, command="c", archived=archived)
    assert started == [] and f"{out}: finished, archived in {archived}" in capsys.readouterr().out
