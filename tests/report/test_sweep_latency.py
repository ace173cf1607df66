"""The separate latency pass (studies/sweep_hg1_hg8/latency.py) on tiny runs, and the report reading latency.json."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pandas as pd
import pytest

from hgprune.errors import HgpruneError
from hgprune.report import write_report
from hgprune.report.runs import LATENCY_FIELDS, LatencyPass, load_runs
from hgprune.report.tables import FROM_LATENCY_PASS, all_steps_table, summary_table
from hgprune.rundir import RunDir
from studies.sweep_hg1_hg8 import latency as latency_pass
from tests.report.fabricate import make_run

TIMING = ["--repeats", "3", "--warmup", "1"]


@pytest.fixture(scope="module")
def script():
    return latency_pass


def _blank_latency(run_dir: Path, steps: list[int]) -> None:
    """What a sweep made with ``profile.latency: false`` leaves: no latency in metrics.csv for ``steps``."""
    metrics = pd.read_csv(run_dir / "metrics.csv")
    metrics.loc[metrics["step"].isin(steps), ["latency_ms", "latency_p90_ms"]] = math.nan
    (run_dir / "metrics.csv").write_text(metrics.to_csv(index=False))


@pytest.fixture(scope="module")
def sweep(tmp_path_factory, script) -> Path:
    """Three tiny runs of one sweep directory, measured once: two without latency, one with step 0's kept."""
    root = tmp_path_factory.mktemp("sweep") / "sweep_tiny"
    tiny = {"arch": "hg1", "N": 8, "M": 16}
    _blank_latency(make_run(root, "hg1-l1-50", steps=2, **tiny), [0, 1])
    _blank_latency(make_run(root, "hg1-scratch-50", criterion="scratch", steps=1, **tiny), [0])
    _blank_latency(make_run(root, "hg1-l1-mixed", steps=2, **tiny), [1])
    assert script.main([str(root), *TIMING, "--force"]) == 0
    return root


def _light_copy(source: Path, target: Path) -> Path:
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("checkpoints", "final"))
    return target


def test_every_checkpointed_step_is_measured_on_both_backends(sweep, script):
    for run_dir in sorted(p for p in sweep.iterdir() if p.is_dir()):
        layout = RunDir(run_dir)
        data = json.loads(layout.latency_json.read_text())
        assert set(data) == {"environment", "command", "load_before", "load_after", "settings", "steps"}
        assert set(data["steps"]) == {str(s) for s in layout.completed_steps()}
        for values in data["steps"].values():
            assert set(values) == {"eager_ms", "eager_p90_ms", "ort_ms", "ort_p90_ms"}
            assert all(0 < v < math.inf for v in values.values())
            assert values["eager_p90_ms"] >= values["eager_ms"] and values["ort_p90_ms"] >= values["ort_ms"]
        assert data["command"].endswith(f"{script.SCRIPT} {sweep} --repeats 3 --warmup 1 --force")
        assert data["environment"]["command"] == data["command"]
        assert data["environment"]["threads"]["torch_intra_op"] == 1
        assert len(data["load_before"]) == 3 and len(data["load_after"]) == 3
        settings = data["settings"]
        assert (settings["repeats"], settings["warmup"], settings["threads"], settings["batch"]) == (3, 1, 1, 1)
        assert settings["forced"] is True and settings["input_size"] == 64
        assert LatencyPass.read(layout.latency_json).to_json() == layout.latency_json.read_text()
    assert set(FROM_LATENCY_PASS.values()) == set(LATENCY_FIELDS)


def test_report_tables_take_latencies_from_the_pass_where_metrics_have_none(sweep):
    runs = {r.name: r for r in load_runs([sweep])}
    table = all_steps_table(list(runs.values())).set_index(["run", "step"])
    for name, run in runs.items():
        metrics = pd.read_csv(sweep / name / "metrics.csv").set_index("step")
        for step, measured in run.latency.steps.items():
            row = table.loc[(name, step)]
            assert row["ort_latency_ms"] == measured.ort_ms and row["ort_latency_p90_ms"] == measured.ort_p90_ms
            if pd.isna(metrics.loc[step, "latency_ms"]):
                assert (row["latency_ms"], row["latency_p90_ms"]) == (measured.eager_ms, measured.eager_p90_ms)
                assert row["latency_source"] == "latency.json"
            else:  # metrics.csv wins
                assert row["latency_ms"] == metrics.loc[step, "latency_ms"] != measured.eager_ms
                assert row["latency_source"] == "metrics.csv"
    assert table.loc[("hg1-l1-mixed", 0), "latency_source"] == "metrics.csv"
    pruned = table.loc["hg1-l1-50"]
    assert pruned.loc[1, "ort_speedup"] == pytest.approx(
        pruned.loc[0, "ort_latency_ms"] / pruned.loc[1, "ort_latency_ms"]
    )
    summary = summary_table(list(runs.values())).set_index("run")
    assert summary.loc["hg1-l1-50", "ort_latency_ms"] == runs["hg1-l1-50"].latency.steps[1].ort_ms
    assert "step 0: eager latency from metrics.csv" in " ".join(runs["hg1-l1-mixed"].notes)


def test_report_says_where_latencies_came_from(sweep, tmp_path):
    light = tmp_path / "sweep_tiny"
    for run_dir in sweep.iterdir():
        _light_copy(run_dir, light / run_dir.name)
    report = write_report([light], tmp_path / "out")
    text = report.read_text()
    measured = LatencyPass.read(RunDir(light / "hg1-l1-50").latency_json)
    assert "measured after the runs in a separate pass (`latency.json`)" in text
    assert f"command `{measured.command}`" in text
    assert "/".join(f"{v:.2f}" for v in measured.load_before) in text
    assert "where metrics.csv has a latency (`hg1-l1-mixed`) it wins" in text
    assert (report.parent / "figures" / "latency.png").exists()
    header = (report.parent / "tables" / "summary.md").read_text().splitlines()[0]
    assert "| ORT latency (ms) |" in header and "| ORT speedup eff. |" in header
    steps = pd.read_csv(report.parent / "tables" / "steps_hg1-l1-50.csv")
    assert steps["latency_ms"].notna().all() and steps["ort_latency_ms"].notna().all()


def test_busy_machine_is_refused_and_nothing_written(sweep, script, tmp_path, monkeypatch, capsys):
    run_dir = _light_copy(sweep / "hg1-l1-50", tmp_path / "hg1-l1-50")
    (run_dir / "latency.json").unlink()
    monkeypatch.setattr("os.getloadavg", lambda: (3.25, 2.0, 1.0))
    assert script.main([str(run_dir), *TIMING, "--max-load", "0.5"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and captured.err.startswith(f"{script.SCRIPT}: error: ")
    assert "1-minute load average 3.25 is above --max-load 0.5" in captured.err
    assert sorted(p.name for p in run_dir.iterdir()) == ["metrics.csv", "metrics.json", "recipe.yaml", "run.json"]


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda d, _: d / "nope", "{d}/nope: no such run directory"),
        (lambda d, _: (d / "empty").mkdir() or d / "empty", "{d}/empty/metrics.csv: missing; {d}/empty is not a run"),
        (lambda d, sweep: _light_copy(sweep / "hg1-l1-50", d / "r"), "{d}/r/checkpoints: no step checkpoints"),
    ],
    ids=["missing", "not-a-run", "no-checkpoints"],
)
def test_bad_run_dir_is_a_one_line_error_naming_it(sweep, script, tmp_path, capsys, make, match):
    target = make(tmp_path, sweep)
    assert script.main([str(target), *TIMING, "--force"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and match.format(d=tmp_path) in err


@pytest.mark.parametrize(
    "text, match",
    [
        ("{oops", "unreadable latency pass (not JSON)"),
        ('{"command": "x", "load_before": [], "load_after": [], "steps": {"a": {}}}', "steps key 'a' is not a step"),
        (
            '{"command": "x", "steps": {"0": {"eager_ms": 1, "eager_p90_ms": 1, "ort_ms": -1, "ort_p90_ms": 1}}}',
            "steps['0'].ort_ms must be a positive finite number of ms, got '-1'",
        ),
        ('{"command": "x", "load_before": [1, 2], "steps": {}}', "'load_before' must be the 1/5/15-minute load"),
    ],  # fmt: skip
)
def test_malformed_latency_json_names_the_file(tmp_path, text, match):
    path = tmp_path / "latency.json"
    path.write_text(text)
    with pytest.raises(HgpruneError) as info:
        LatencyPass.read(path)
    message = str(info.value)
    assert message.startswith(str(path)) and match in message and "\n" not in message
