"""The report's PCKh-vs-latency figure: a panel per runtime measured, the front over every point, the budget."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from hgprune.cli import main
from hgprune.report.latency_figures import front_rows, latency_budgets, pareto_latency_figures
from hgprune.report.runs import load_runs
from hgprune.report.tables import all_steps_table
from hgprune.rundir import RunDir
from tests.report.fabricate import make_run


def test_report_draws_pckh_vs_latency_per_runtime_with_the_budget(tmp_path):
    run_dir = make_run(tmp_path, "hg1-l1", steps=2, N=8, M=16)
    assert main(["latency", str(run_dir), "--runtime", "torch", "--runtime", "ort", "--repeats", "1", "--warmup",
                 "0", "--force"]) == 0  # fmt: skip
    state = RunDir(run_dir).state
    info = json.loads(state.read_text()) if state.exists() else {}
    state.write_text(json.dumps({**info, "latency_budget": {"runtime": "ort", "budget_ms": 0.5}}))
    runs = load_runs([run_dir])
    assert latency_budgets(runs) == {"ort": [("hg1-l1", 0.5)]}
    table = all_steps_table(runs)
    drawn = pareto_latency_figures(table, runs)
    assert list(drawn) == ["pareto_latency_eager", "pareto_latency_ort"]  # no CUDA graph measured: no figure
    for key, title in (("pareto_latency_eager", "eager PyTorch"), ("pareto_latency_ort", "ONNX Runtime")):
        titles = [ax.get_title() for ax in drawn[key].axes if ax.get_title()]
        assert titles == ["PCKh vs MACs", f"PCKh vs latency: {title}"]
    budget = [list(line.get_xdata()) == [0.5, 0.5] for line in drawn["pareto_latency_ort"].axes[1].get_lines()]
    assert any(budget)  # the ORT budget, in the ORT figure only
    assert not any(list(line.get_xdata()) == [0.5, 0.5] for line in drawn["pareto_latency_eager"].axes[1].get_lines())
    # write_report draws them beside the others: tests/report/test_report.py's exact file list has them


def test_front_covers_every_point_not_only_final_steps():
    rows = pd.DataFrame({"run": ["a", "a", "b", "b"], "step": [0, 1, 0, 1], "ort_latency_ms": [4.0, 2.0, 3.0, 1.0],
                         "pckh_mean": [80.0, 79.0, 81.0, 70.0]})  # fmt: skip
    front = front_rows(rows, "ort_latency_ms")
    assert list(zip(front["run"], front["step"])) == [("b", 1), ("a", 1), ("b", 0)]


def test_budget_entries_that_are_not_numbers_are_ignored(tmp_path):
    run_dir = make_run(tmp_path, "hg1-x", steps=1, N=8, M=16, final=False)
    state = RunDir(run_dir).state
    info = json.loads(state.read_text()) if state.exists() else {}
    state.write_text(json.dumps({**info, "latency_budget": {"runtime": "ort", "budget_ms": "fast"}}))
    assert latency_budgets(load_runs([run_dir])) == {}


def test_a_latency_pass_needs_whole_pairs_of_some_runtime(tmp_path):
    from hgprune.errors import HgpruneError
    from hgprune.report.runs import LatencyPass

    base = {"command": "hgprune latency x", "load_before": [0, 0, 0], "load_after": [0, 0, 0]}
    path = tmp_path / "latency.json"
    path.write_text(json.dumps({**base, "steps": {"0": {"cuda_graph_ms": 1.0, "cuda_graph_p90_ms": 1.5}}}))
    assert LatencyPass.read(path).steps[0].cuda_graph_p90_ms == 1.5
    for values, needle in (({"ort_ms": 1.0}, "steps['0'].ort_p90_ms must be a positive finite number"),
                           ({}, "steps['0'] has none of eager_ms"),
                           ({"eager_ms": 1.0, "eager_p90_ms": -1}, "steps['0'].eager_p90_ms must be")):  # fmt: skip
        path.write_text(json.dumps({**base, "steps": {"0": values}}))
        with pytest.raises(HgpruneError) as error:
            LatencyPass.read(path)
        assert needle in str(error.value) and str(path) in str(error.value)
