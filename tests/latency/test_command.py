"""``hgprune latency`` on run directories and checkpoints: it writes the latency.json ``hgprune report`` reads."""

from __future__ import annotations

import json
import math

import pytest

from hgprune.cli import main
from hgprune.report.runs import LatencyPass, load_runs
from hgprune.report.tables import all_steps_table
from hgprune.rundir import RunDir
from tests.report.fabricate import make_run

TIMING = ["--repeats", "2", "--warmup", "0", "--force"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("runs"), "hg1-l1", steps=2, N=8, M=16)


def test_latency_on_a_run_directory_writes_what_the_report_reads(run_dir, capsys):
    assert main(["latency", str(run_dir), "--runtime", "torch", *TIMING]) == 0
    out = capsys.readouterr().out
    assert "wrote " + str(RunDir(run_dir).latency_json) in out and "median ms" in out
    data = json.loads(RunDir(run_dir).latency_json.read_text())
    assert set(data["steps"]) == {"0", "1"}
    for values in data["steps"].values():
        assert set(values) == {"eager_ms", "eager_p90_ms"}  # only the runtime asked for
        assert 0 < values["eager_ms"] <= values["eager_p90_ms"] < math.inf
    assert data["command"].startswith(f"hgprune latency {run_dir} --runtime=torch --threads=1")
    assert data["settings"]["repeats"] == 2 and data["settings"]["input_size"] == 64
    assert set(data["settings"]["runtimes"]) == {"eager"} and len(data["load_before"]) == 3
    passed = LatencyPass.read(RunDir(run_dir).latency_json)
    assert passed.steps[1].eager_ms == data["steps"]["1"]["eager_ms"] and passed.steps[1].ort_ms is None
    (run,) = load_runs([run_dir])
    table = all_steps_table([run])
    assert table["ort_latency_ms"].isna().all()  # not measured: left empty, not invented


def test_both_runtimes_by_default_and_checkpoints_are_printed_not_written(run_dir, capsys, tmp_path):
    checkpoint = RunDir(run_dir).step_checkpoint(1)
    before = RunDir(run_dir).latency_json.read_text() if RunDir(run_dir).latency_json.exists() else None
    assert main(["latency", str(checkpoint), *TIMING]) == 0
    out = capsys.readouterr().out
    assert out.count(str(checkpoint)[-40:]) == 2 and " torch " in out and " ort " in out
    assert (RunDir(run_dir).latency_json.read_text() if RunDir(run_dir).latency_json.exists() else None) == before


def test_a_run_named_twice_or_through_a_link_is_timed_once(run_dir, capsys, tmp_path):
    (tmp_path / "link").symlink_to(run_dir.resolve(), target_is_directory=True)
    assert main(["latency", str(run_dir), str(tmp_path / "link"), str(run_dir), "--runtime", "torch", *TIMING]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if " torch " in line]
    assert len(rows) == 2  # steps 0 and 1 of the one run, not 3 × 2
    assert out.count("wrote ") == 1


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--repeats", "0"], "--repeats: must be in [1, 100000], got 0"),
        (["--threads", "0"], "--threads: must be in [1, 1024], got 0"),
        (["--max-load", "nan"], "--max-load: must be a finite number >= 0"),
    ],
)
def test_bad_flags_are_one_line_errors(run_dir, capsys, argv, message):
    assert main(["latency", str(run_dir), *argv]) == 2
    assert capsys.readouterr().err.strip() == f"hgprune: error: {message}" + (
        ", got nan" if "max-load" in message else ""
    )


def test_a_busy_machine_is_refused_before_anything_is_written(run_dir, capsys, monkeypatch, tmp_path):
    import hgprune.latency.passes as passes

    monkeypatch.setattr(passes, "load_average", lambda: [9.0, 9.0, 9.0])
    fresh = make_run(tmp_path, "busy", steps=1, N=8, M=16)
    assert main(["latency", str(fresh), "--repeats", "1"]) == 2
    assert "load average 9.00 is above --max-load 0.5" in capsys.readouterr().err
    assert not RunDir(fresh).latency_json.exists()


def test_cuda_graph_without_a_gpu(run_dir, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    assert main(["latency", str(run_dir), "--runtime", "cuda-graph", *TIMING]) == 2
    assert capsys.readouterr().err.startswith("hgprune: error: runtime 'cuda-graph' needs a CUDA GPU")


def test_calibrate_writes_this_machines_table(monkeypatch, tmp_path, capsys):
    from hgprune.latency import load_table, parent_config
    from tests.latency.test_model import _fake

    _fake(monkeypatch)  # a deterministic fake timer: no timing in tests
    monkeypatch.setenv("HGPRUNE_CACHE", str(tmp_path))
    argv = ["latency", "calibrate", "--runtime", "torch", "--arch", "hg2", "--N", "16", "--M", "32", "--depth", "3",
            "--input-size", "64", "--candidates", "10", *TIMING]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    table = load_table("torch", parent_config("hg2", 16, 32, 64, 3), 1, 1)
    assert f"torch: wrote {tmp_path / 'latency'}" in out and "preferred channel multiple 4" in out
    assert len(table.samples) == 11 and table.snap == 4
    assert main(["latency", "calibrate", "extra", *TIMING]) == 2
    assert "takes no MODEL or RUN_DIR" in capsys.readouterr().err


def test_calibrate_if_missing_keeps_a_valid_table_and_replaces_a_corrupt_one(monkeypatch, tmp_path, capsys):
    from hgprune.latency import load_table, parent_config
    from tests.latency.test_model import _fake

    _fake(monkeypatch)
    monkeypatch.setenv("HGPRUNE_CACHE", str(tmp_path))
    argv = ["latency", "calibrate", "--runtime", "torch", "--arch", "hg2", "--N", "16", "--M", "32", "--depth", "3",
            "--input-size", "64", "--candidates", "10", "--if-missing", *TIMING]  # fmt: skip
    assert main(argv) == 0 and "torch: wrote " in capsys.readouterr().out  # none cached: calibrated
    path = next((tmp_path / "latency").iterdir())
    first = path.read_text()
    assert main(argv) == 0 and f"torch: kept {path}" in capsys.readouterr().out
    assert path.read_text() == first  # kept as it was
    path.write_text("{not json")
    assert main(argv) == 0 and "torch: wrote " in capsys.readouterr().out  # corrupt: calibrated again
    assert load_table("torch", parent_config("hg2", 16, 32, 64, 3), 1, 1).snap == 4
    assert main(argv[: -len(TIMING) - 1] + list(TIMING)) == 0  # without --if-missing: calibrated again
    assert "torch: wrote " in capsys.readouterr().out


def test_eager_on_a_missing_gpu_is_one_line(run_dir, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    assert main(["latency", str(run_dir), "--runtime", "torch", "--device", "cuda", *TIMING]) == 2
    assert capsys.readouterr().err.strip() == (
        "hgprune: error: device: 'cuda' is not available here (expected cpu, or cuda[:k] where a GPU exists)"
    )
