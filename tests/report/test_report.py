"""End to end: fabricated run directories (real tiny checkpoints) → tables, figures, report.md, CLI."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
from torch import nn

from hgprune import load_model
from hgprune.cli import main
from hgprune.errors import HgpruneError
from hgprune.models import build_preset
from hgprune.report import write_report
from tests.report.fabricate import make_run

SHARED_FIGURES = {"pareto", "latency", "pareto_latency_eager", "pckh_groups"}  # eager: measured during the runs


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("runs")
    make_run(root, "hg1-l1", steps=3)
    make_run(root, "hg1-scratch", criterion="scratch", steps=3)
    make_run(root, "hg2-taylor", arch="hg2", criterion="taylor", steps=2, pckh0=84.0, status="running", final=False)
    return root


@pytest.fixture(scope="module")
def report(runs) -> Path:
    return write_report([runs / "hg1-l1", runs / "hg1-scratch", runs / "hg2-taylor"], runs / "combined")


def _light_copy(source: Path, target: Path) -> Path:
    """A copy without checkpoints: no kept-channel chart to draw, so tests that only need tables stay fast."""
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("checkpoints", "final"))
    return target


def _files(directory: Path) -> set[str]:
    return {p.relative_to(directory).as_posix() for p in directory.rglob("*") if p.is_file()}


def test_exact_files_written(report):
    slugs = ["hg1-l1", "hg1-scratch", "hg2-taylor"]
    expected = {"report.md", "tables/all_steps.csv", "tables/summary.csv", "tables/summary.md"}
    expected |= {"tables/pruned_vs_scratch.csv", "tables/pruned_vs_scratch.md"}  # hg1-l1 beside hg1-scratch
    expected |= {f"tables/steps_{s}.{ext}" for s in slugs for ext in ("csv", "md")}
    expected |= {f"tables/kept_channels_{s}.csv" for s in slugs}
    expected |= {f"figures/{f}.{ext}" for f in [*SHARED_FIGURES, *(f"kept_channels_{s}" for s in slugs)]
                 for ext in ("png", "svg")}  # fmt: skip
    assert report == report.parent / "report.md"
    assert _files(report.parent) == expected
    assert all(p.read_bytes().startswith(b"\x89PNG") for p in (report.parent / "figures").glob("*.png"))


def test_tables_equal_input_metrics(runs, report):
    tables = report.parent / "tables"
    all_steps = pd.read_csv(tables / "all_steps.csv")
    summary = pd.read_csv(tables / "summary.csv")
    for name in ("hg1-l1", "hg1-scratch", "hg2-taylor"):
        metrics = pd.read_csv(runs / name / "metrics.csv")
        steps = pd.read_csv(tables / f"steps_{name}.csv")
        mine = all_steps[all_steps["run"] == name].reset_index(drop=True)
        for column in ("step", "params", "macs_fvcore", "latency_ms", "pckh_mean", "pckh_Head", "pckh_Ankle"):
            assert steps[column].tolist() == metrics[column].tolist(), (name, column)
            assert mine[column].tolist() == metrics[column].tolist(), (name, column)
        final = summary[summary["run"] == name].iloc[0]
        assert final["pckh_mean"] == metrics["pckh_mean"].iloc[-1]
        assert final["macs_fvcore"] == metrics["macs_fvcore"].iloc[-1]
        expected_eff = (metrics["latency_ms"][0] / metrics["latency_ms"].iloc[-1]) / (
            metrics["macs_fvcore"][0] / metrics["macs_fvcore"].iloc[-1]
        )
        assert final["speedup_efficiency"] == pytest.approx(expected_eff)
    # hg1-l1 and hg1-scratch end at the same MACs; the pruned run is more accurate, so scratch is dominated.
    assert summary.set_index("run")["pareto"].to_dict() == {"hg1-l1": True, "hg1-scratch": False, "hg2-taylor": True}


def test_markdown_references_every_figure(report):
    text = report.read_text()
    images = set(re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text))
    pngs = {f"figures/{p.name}" for p in (report.parent / "figures").glob("*.png")}
    assert images == pngs
    links = re.findall(r"\]\(([^)]+)\)", text)
    assert all((report.parent / link).exists() for link in links)
    assert "## How this was made" in text
    assert "hgprune run recipes/hg1-l1.yaml" in text
    assert re.search(r"hgprune report \S+/hg1-l1 \S+/hg1-scratch \S+/hg2-taylor --out \S+/combined", text)
    assert "`hg2-taylor`: run status is 'running': showing steps 0–1" in text
    assert "kept channels are those of checkpoints/step_001.pt" in text


def test_rerun_gives_identical_files(runs, report):
    before = {name: (report.parent / name).read_bytes() for name in _files(report.parent)}
    write_report([runs / "hg1-l1", runs / "hg1-scratch", runs / "hg2-taylor"], runs / "combined")
    assert {name: (report.parent / name).read_bytes() for name in _files(report.parent)} == before


def test_kept_channels_compare_final_widths_to_unpruned(runs, report):
    kept = pd.read_csv(report.parent / "tables" / "kept_channels_hg1-l1.csv").set_index("module")
    final = load_model(runs / "hg1-l1" / "final" / "model.pt")
    base = build_preset("tiny")
    for model, column in ((final, "kept"), (base, "total")):
        widths = {n: m.out_channels for n, m in model.named_modules() if isinstance(m, nn.Conv2d)}
        assert kept[column].to_dict() == widths
    assert kept.loc["score.0", "fraction"] == 1.0 and kept.loc["score.0", "part"] == "score0"
    assert kept.loc["hg.0.hg.0.0.0.conv2", "part"] == "hg0" and kept.loc["conv1", "kind"] == "stem"
    assert 0 < kept.loc["conv1", "fraction"] < 1
    scratch = pd.read_csv(report.parent / "tables" / "kept_channels_hg1-scratch.csv")
    assert (scratch["fraction"] == 1.0).all()  # a narrower model trained from scratch is unpruned


def test_merging_duplicate_run_names(runs, tmp_path):
    for machine in ("machineA", "machineB"):
        _light_copy(runs / "hg1-l1", tmp_path / machine / "hg1-l1")
    metrics_b = tmp_path / "machineB" / "hg1-l1" / "metrics.csv"
    frame = pd.read_csv(metrics_b)
    frame["pckh_mean"] -= 1.0
    metrics_b.write_text(frame.to_csv(index=False))
    report = write_report([tmp_path / "machineA" / "hg1-l1", metrics_b.parent], tmp_path / "merged")
    summary = pd.read_csv(report.parent / "tables" / "summary.csv")
    assert summary["run"].tolist() == ["hg1-l1@machineA", "hg1-l1@machineB"]
    assert summary["pckh_mean"].tolist() == [71.0, 70.0]
    assert {"steps_hg1-l1_machinea.csv", "steps_hg1-l1_machineb.csv"} <= {
        p.name for p in (report.parent / "tables").iterdir()
    }
    assert "renamed from 'hg1-l1'" in report.read_text()


def test_sweep_directory_expands_to_its_runs(runs, tmp_path):
    sweep = tmp_path / "sweep"
    for name in ("hg1-scratch", "hg1-l1"):
        _light_copy(runs / name, sweep / name)
    report = write_report([sweep], tmp_path / "out", title="Sweep")
    assert report.read_text().startswith("# Sweep\n")
    assert pd.read_csv(report.parent / "tables" / "summary.csv")["run"].tolist() == ["hg1-l1", "hg1-scratch"]
    assert not list((report.parent / "figures").glob("kept_channels_*"))  # no checkpoints were copied


def test_run_without_rows_is_reported_with_a_note(runs, tmp_path):
    empty = tmp_path / "starting"
    empty.mkdir()
    (empty / "metrics.csv").write_text("run,step,arch,N,M,criterion,macs_fvcore,pckh_mean\n")
    (empty / "run.json").write_text('{"status": "running", "command": "hgprune run r.yaml"}')
    report = write_report([_light_copy(runs / "hg1-l1", tmp_path / "hg1-l1"), empty], tmp_path / "out")
    text = report.read_text()
    assert "`starting`: metrics.csv has no rows yet" in text
    assert not (report.parent / "tables" / "steps_starting.csv").exists()
    assert pd.read_csv(report.parent / "tables" / "summary.csv")["run"].tolist() == ["hg1-l1"]
    only_empty = write_report([empty], tmp_path / "out2")
    assert _files(only_empty.parent) == {"report.md", "tables/all_steps.csv", "tables/summary.csv", "tables/summary.md"}
    assert "No run has a metrics row yet." in only_empty.read_text()


@pytest.mark.parametrize(
    "setup, match",
    [
        (lambda d: None, "metrics.csv: missing"),
        (lambda d: (d / "metrics.csv").write_bytes(b"\xff\xfe\x00garbage"), "not a readable metrics CSV"),
        (
            lambda d: [
                (d / "metrics.csv").write_text("step,arch,criterion,macs_fvcore,pckh_mean\n0,hg1,l1,1,2\n"),
                (d / "run.json").write_text("{oops"),
            ],
            "run.json: corrupt run state (not JSON)",
        ),  # fmt: skip
    ],
)
def test_bad_run_dirs_raise_one_line_errors(tmp_path, setup, match):
    run_dir = tmp_path / "broken"
    run_dir.mkdir()
    setup(run_dir)
    with pytest.raises(HgpruneError) as info:
        write_report([run_dir], tmp_path / "out")
    assert str(run_dir) in str(info.value) and match in str(info.value) and "\n" not in str(info.value)
    assert not (tmp_path / "out").exists()


def test_cli_default_out_and_errors(runs, tmp_path, capsys):
    run_dir = tmp_path / "one"
    _light_copy(runs / "hg1-scratch", run_dir)
    assert main(["report", str(run_dir), "--title", "One run"]) == 0
    assert capsys.readouterr().out.startswith(f"wrote {run_dir / 'report' / 'report.md'}")
    text = (run_dir / "report" / "report.md").read_text()
    assert f"hgprune report {run_dir} --out {run_dir / 'report'} --title 'One run'" in text
    assert main(["report", str(run_dir), str(run_dir)]) == 2
    assert "give --out DIR" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err == f"hgprune: error: {tmp_path / 'nope'}: no such run directory\n"
