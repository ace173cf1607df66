"""Pareto front, speedup efficiency, metrics parsing and Markdown formatting on hand-built inputs."""

import math

import numpy as np
import pandas as pd
import pytest

from hgprune.errors import HgpruneError
from hgprune.report.runs import RunData, read_metrics
from hgprune.report.tables import markdown_table, pareto_mask, speedup_efficiency, summary_table, with_derived


def test_pareto_excludes_dominated_points():
    macs = [1.0, 2.0, 2.0, 3.0, 4.0, 5.0, 0.5]
    pckh = [50.0, 60.0, 55.0, 60.0, 70.0, 65.0, 40.0]
    # (2, 55) loses to (2, 60); (3, 60) loses to (2, 60); (5, 65) loses to (4, 70).
    assert pareto_mask(macs, pckh).tolist() == [True, True, False, False, True, False, True]


def test_pareto_ties_and_nans():
    macs = [1.0, 1.0, 2.0, np.nan, 3.0, 3.0]
    pckh = [50.0, 50.0, 50.0, 99.0, 60.0, np.nan]
    # Identical points do not dominate each other; equal PCKh at more MACs is dominated; NaN rows are never on it.
    assert pareto_mask(macs, pckh).tolist() == [True, True, False, False, True, False]


def test_pareto_single_point_and_empty():
    assert pareto_mask([3.0], [1.0]).tolist() == [True]
    assert pareto_mask([], []).tolist() == []


@pytest.mark.parametrize(
    "args, expected",
    [
        ((10.0, 5.0, 4e9, 1e9), 0.5),  # 2× faster for 4× fewer MACs
        ((10.0, 2.5, 4e9, 1e9), 1.0),  # ideal
        ((10.0, 10.0, 4e9, 4e9), 1.0),  # the baseline itself
        ((8.0, 2.0, 6e9, 3e9), 2.0),  # faster than MACs suggest
    ],
)
def test_speedup_efficiency_arithmetic(args, expected):
    assert speedup_efficiency(*args) == pytest.approx(expected)


@pytest.mark.parametrize("args", [(10.0, 0.0, 4e9, 1e9), (math.nan, 5.0, 4e9, 1e9), (10.0, 5.0, 4e9, None)])
def test_speedup_efficiency_undefined_is_nan(args):
    assert math.isnan(speedup_efficiency(*args))


def _run(tmp_path, text: str, name: str = "r") -> RunData:
    path = tmp_path / "metrics.csv"
    path.write_text(text)
    return RunData(name=name, path=tmp_path, metrics=read_metrics(path))


CSV = (
    "run,step,arch,N,M,criterion,macs_fvcore,latency_ms,pckh_mean\n"
    "a,0,hg2,16,32,l1,8e9,40.0,80.0\n"
    "a,1,hg2,16,32,l1,4e9,25.0,79.0\n"
    "a,2,hg2,16,32,l1,2e9,16.0,77.5\n"
)


def test_derived_columns_relative_to_step_0(tmp_path):
    frame = with_derived(_run(tmp_path, CSV))
    assert frame["series"].tolist() == ["hg2/l1"] * 3
    assert frame["speedup"].tolist() == pytest.approx([1.0, 1.6, 2.5])
    assert frame["macs_reduction"].tolist() == pytest.approx([1.0, 2.0, 4.0])
    assert frame["speedup_efficiency"].tolist() == pytest.approx([1.0, 0.8, 0.625])
    assert frame["pckh_delta"].tolist() == pytest.approx([0.0, -1.0, -2.5])


def test_summary_marks_pareto_among_final_rows(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = _run(tmp_path / "a", CSV, "a")
    b = _run(tmp_path / "b", CSV.replace("77.5", "70.0").replace("2e9", "3e9"), "b")  # more MACs, lower PCKh
    table = summary_table([a, b])
    assert table["run"].tolist() == ["a", "b"]
    assert table["step"].tolist() == [2, 2]
    assert table["pckh_mean"].tolist() == [77.5, 70.0]
    assert table["pareto"].tolist() == [True, False]


def _write_run(directory, csv: str, arch: str, input_size: int = 64) -> None:
    from hgprune.recipe import ModelSection, Recipe, dump_recipe

    directory.mkdir(parents=True)
    (directory / "metrics.csv").write_text(csv)
    recipe = Recipe(name=directory.name, model=ModelSection(arch=arch, input_size=input_size))
    (directory / "recipe.yaml").write_text(dump_recipe(recipe, "test"))


def test_scratch_runs_are_measured_against_their_architectures_baseline(tmp_path):
    # A sweep's scratch entry has one row (its own step 0 is its result): MACs kept, speedup and ΔPCKh must read
    # against the unpruned baseline of the same architecture (step 0 of a pruned run), not 1.0 / 1.0× / 0.
    from hgprune.report.runs import load_runs

    head = "run,step,arch,N,M,criterion,role,macs_fvcore,params,latency_ms,pckh_mean\n"
    for sweep, base_latency in (("A", 50.0), ("B", 40.0)):  # two sweeps of hg2, each with its own parent
        _write_run(tmp_path / sweep / "p", CSV.replace("40.0", str(base_latency)).replace("a,", "p,"), "hg2")
    _write_run(tmp_path / "B" / "s", head + "s,0,hg2,10,22,l1,scratch,2e9,1000,20.0,70.0\n", "hg2")
    _write_run(tmp_path / "B" / "t", head + "t,0,hg3,10,22,l1,scratch,3e9,1000,30.0,60.0\n", "hg3")
    _write_run(tmp_path / "B" / "u", head + "u,0,hg2,10,22,l1,scratch,2e9,1000,20.0,70.0\n", "hg2", 128)
    runs = load_runs([tmp_path / "A", tmp_path / "B"])
    table = summary_table(runs).set_index("run")
    s = next(r for r in runs if r.name == "s")
    assert s.reference.path == tmp_path / "B" / "p"  # the parent of its own sweep, not the first hg2 in the list
    assert table.loc["s", "macs_kept"] == pytest.approx(0.25)
    assert table.loc["s", "speedup"] == pytest.approx(2.0)  # sweep B's 40 ms baseline / 20 ms
    assert table.loc["s", "speedup_efficiency"] == pytest.approx(0.5)
    assert table.loc["s", "pckh_delta"] == pytest.approx(-10.0)
    assert any("against step 0 of `p@B`" in note for note in s.notes)
    # no pruned hg3, and no hg2 measured at 128 px: nothing to compare with, so empty (never the run itself)
    for name in ("t", "u"):
        assert table.loc[name, ["macs_kept", "speedup", "pckh_delta"]].isna().all()
        assert any("no pruned run of the same architecture" in n for n in next(r for r in runs if r.name == name).notes)
    assert table.loc["p@B", "speedup"] == pytest.approx(2.5)  # pruned runs: against their own step 0
    assert table.loc["p@B", "macs_kept"] == pytest.approx(0.25)


def test_pruned_runs_stand_beside_the_scratch_run_at_the_nearest_macs(tmp_path):
    """Issue 12's comparison: each pruned run next to the scratch run of its architecture with the nearest MACs kept
    (within PAIR_TOLERANCE), PCKh gained by pruning; runs with no scratch run near enough are left out."""
    from hgprune.report import write_report
    from hgprune.report.runs import load_runs
    from hgprune.report.tables import pruned_vs_scratch_table

    head = "run,step,arch,N,M,criterion,role,macs_fvcore,params,latency_ms,pckh_mean\n"
    base = "{n},0,{a},16,32,taylor,prune,8e9,1000,40.0,80.0\n"
    for name, arch, macs, pckh in (("p50", "hg2", 4e9, 79.0), ("p25", "hg2", 2e9, 75.0), ("p75", "hg2", 6e9, 79.5),
                                   ("q50", "hg3", 4e9, 79.0)):  # fmt: skip
        _write_run(tmp_path / name, head + base.format(n=name, a=arch) + f"{name},1,{arch},16,32,taylor,prune,"
                   f"{macs},500,20.0,{pckh}\n", arch)  # fmt: skip
    for name, macs, pckh in (("s50", 4.2e9, 76.0), ("s25", 2.2e9, 70.0)):
        _write_run(tmp_path / name, head + f"{name},0,hg2,10,22,taylor,scratch,{macs},400,20.0,{pckh}\n", "hg2")
    runs = load_runs([tmp_path])
    pairs = pruned_vs_scratch_table(runs).set_index("pruned_run")
    assert sorted(pairs.index) == ["p25", "p50"]  # p75: nearest scratch is 0.225 away; q50: no scratch hg3
    assert pairs.loc["p50", "scratch_run"] == "s50" and pairs.loc["p25", "scratch_run"] == "s25"
    assert pairs.loc["p50", "pckh_gain"] == pytest.approx(3.0) and pairs.loc["p25", "pckh_gain"] == pytest.approx(5.0)
    assert pairs.loc["p25", "scratch_macs_kept"] == pytest.approx(0.275)
    assert pairs.loc["p25", "pruned_macs_kept"] == pytest.approx(0.25)
    assert (pairs["baseline_pckh"] == 80.0).all()
    report = write_report([tmp_path], tmp_path / "report").read_text()
    assert "## Pruned vs scratch (the seed's approach) at matching MACs" in report
    assert "| hg2 | 80.0 | p25 | 0.250 | 75.0 | s25 | 0.275 | 70.0 | +5.0 |" in report


def test_read_metrics_sorts_types_and_fills_optional_columns(tmp_path):
    lines = CSV.splitlines()
    frame = _run(tmp_path, "\n".join([lines[0], lines[3], lines[1], lines[2]]) + "\n").metrics
    assert frame["step"].tolist() == [0, 1, 2]
    assert frame["macs_fvcore"].tolist() == [8e9, 4e9, 2e9]
    assert frame["pckh_Head"].isna().all() and frame["arch"].tolist() == ["hg2"] * 3


def test_empty_and_header_only_metrics_are_empty_frames(tmp_path):
    assert read_metrics(_write(tmp_path, "")).empty
    assert read_metrics(_write(tmp_path, CSV.splitlines()[0] + "\n")).empty


def _write(tmp_path, text):
    path = tmp_path / "metrics.csv"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    "text, match",
    [
        ("step,arch,criterion,macs_fvcore\n0,hg1,l1,5\n", "missing column(s) pckh_mean"),
        (CSV.replace("40.0", "fast"), "column 'latency_ms' row 1 is not a number ('fast')"),
        (CSV.replace("a,1,", "a,1.5,"), "column 'step' must hold whole numbers"),
        ('step,arch\n"0,hg1\n', "not a readable metrics CSV"),
        (CSV + "a,3,hg2,16,32,l1,1e9,9.0,70.0,extra,fields\n", "not a readable metrics CSV"),
    ],
)
def test_garbled_metrics_name_the_file(tmp_path, text, match):
    path = _write(tmp_path, text)
    with pytest.raises(HgpruneError) as info:
        read_metrics(path)
    message = str(info.value)
    assert message.startswith(str(path)) and match in message and "\n" not in message


def test_markdown_table_formats_units_and_marks():
    frame = pd.DataFrame(
        {"run": ["a|b"], "params": [3_586_960.0], "macs_fvcore": [5.81e9], "latency_ms": [12.345],
         "speedup": [2.5], "pckh_mean": [88.44], "pareto": [True]}
    )  # fmt: skip
    lines = markdown_table(frame).splitlines()
    assert lines[0] == "| run | params (M) | GMACs | latency (ms) | speedup | PCKh | Pareto |"
    assert lines[1] == "|:---|---:|---:|---:|---:|---:|:---|"
    assert lines[2] == "| a\\|b | 3.587 | 5.81 | 12.35 | 2.50× | 88.4 | ★ |"


def test_series_are_named_by_what_differs_between_runs(tmp_path):
    """Two l1 runs that differ in their schedule are two lines; runs differing only in the budget are one."""
    import dataclasses

    from hgprune.recipe import Recipe, dump_recipe
    from hgprune.report.runs import load_runs

    base = Recipe(name="x")
    variants = {
        "lin50": base,
        "lin25": dataclasses.replace(base, prune=dataclasses.replace(base.prune, target=dataclasses.replace(
            base.prune.target, kept=0.25))),
        "cub50": dataclasses.replace(base, prune=dataclasses.replace(base.prune, schedule="cubic")),
    }  # fmt: skip
    for name, recipe in variants.items():
        run = tmp_path / name
        run.mkdir()
        (run / "recipe.yaml").write_text(dump_recipe(dataclasses.replace(recipe, name=name), "test"))
        (run / "metrics.csv").write_text(CSV.replace("a,", f"{name},"))
    series = {r.name: r.series for r in load_runs([tmp_path])}
    assert series == {
        "cub50": "hg2/l1 (schedule=cubic)",
        "lin25": "hg2/l1 (schedule=linear)",
        "lin50": "hg2/l1 (schedule=linear)",
    }


def test_scratch_runs_at_several_budgets_are_one_series(tmp_path):
    """A sweep's scratch entries differ in N/M because N/M is their budget: one hg1/scratch line, not one per width."""
    from pathlib import Path

    from hgprune.recipe import dump_recipe, load_recipe
    from hgprune.report.runs import load_runs
    from hgprune.sweep import expand

    tiny = Path(__file__).resolve().parents[1] / "recipes" / "tiny.yaml"
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(tiny.read_text() + "sweep: {arch: [hg1], criterion: [taylor], kept: [0.5, 0.25], scratch: true}\n")
    entries = {n: r for n, r in expand(load_recipe(sweep)) if "scratch" in n}
    assert len(entries) == 2 and len({(r.model.N, r.model.M) for r in entries.values()}) == 2
    header = "run,step,arch,N,M,criterion,role,macs_fvcore,latency_ms,pckh_mean\n"
    for name, recipe in entries.items():
        run = tmp_path / "runs" / name
        run.mkdir(parents=True)
        (run / "recipe.yaml").write_text(dump_recipe(recipe, "test"))
        row = f"{name},0,hg1,{recipe.model.N},{recipe.model.M},taylor,scratch,1e6,1.0,50.0\n"
        (run / "metrics.csv").write_text(header + row)
    assert {r.series for r in load_runs([tmp_path / "runs"])} == {"hg1/scratch"}
