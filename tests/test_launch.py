"""Launching a sweep's entries as separate processes (hgprune.launch): local workers, submitit, a real Slurm."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from hgprune.cli import main
from hgprune.launch import LOGS_DIR, STATE_FILE, SlurmSettings, plan_entries, submit
from hgprune.recipe import load_recipe
from hgprune.sweep import expand

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests" / "recipes" / "tiny.yaml"
SLURM_SCRIPT = ROOT / "scripts" / "slurm_local.sh"
TIMING = ["latency_ms", "latency_p90_ms", "wall_s"]  # columns that depend on the clock, not on the computation


@pytest.fixture
def cache(tmp_path_factory, monkeypatch):
    path = tmp_path_factory.getbasetemp() / "synth-cache"
    monkeypatch.setenv("HGPRUNE_CACHE", str(path))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # launched entries share the 2 cores like the in-process run
    return path


def _sweep(tmp_path: Path, archs: list[str], **changes) -> Path:
    """The tiny recipe as a sweep: one pruning step per entry, a shared baseline per architecture."""
    raw = yaml.safe_load(TINY.read_text())
    raw.update(name="tinysweep", sweep={"arch": archs, "criterion": ["l1"], "kept": [0.6]}, **changes)
    raw["prune"]["steps"], raw["finetune"]["final_epochs"] = 1, 0
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _metrics(run: Path) -> pd.DataFrame:
    return pd.read_csv(run / "metrics.csv").drop(columns=TIMING)


def test_plan_entries_wait_for_their_baseline(tmp_path):
    recipe_path = _sweep(tmp_path, ["hg1", "hg2"])
    out = tmp_path / "out"
    entries = expand(load_recipe(recipe_path), out)
    planned = plan_entries(recipe_path, entries, out, ["seed=5"], [])
    assert [(e.name, e.after) for e in planned] == [
        ("hg1-baseline", None),
        ("hg1-l1-60", "hg1-baseline"),
        ("hg2-baseline", None),
        ("hg2-l1-60", "hg2-baseline"),
    ]
    command = planned[1].command
    assert command[1:5] == ("-m", "hgprune", "run", str(recipe_path))
    assert command[5:] == ("--only", "hg1-l1-60", "--out", str(out), "--resume", "--set", "seed=5")
    only = plan_entries(recipe_path, entries, out, [], ["hg2-l1-60"])
    assert [(e.name, e.after) for e in only] == [("hg2-l1-60", None)]  # its baseline is taken as done


def test_local_launcher_equals_the_sequential_run(tmp_path, cache, capsys):
    recipe = _sweep(tmp_path, ["hg1", "hg2"])
    sequential, launched = tmp_path / "sequential", tmp_path / "launched"
    assert main(["run", str(recipe), "--out", str(sequential)]) == 0
    capsys.readouterr()
    assert main(["run", str(recipe), "--out", str(launched), "--launcher", "local", "--jobs", "2"]) == 0
    printed = capsys.readouterr().out
    names = ["hg1-baseline", "hg1-l1-60", "hg2-baseline", "hg2-l1-60"]
    for name in names:
        pd.testing.assert_frame_equal(_metrics(launched / name), _metrics(sequential / name))
        assert (launched / LOGS_DIR / f"{name}.log").stat().st_size > 0
        state = json.loads((launched / name / "run.json").read_text())
        assert state["status"] == "finished"
        assert state["command"].endswith(f"--only {name} --out {launched} --resume")
    for arch in ("hg1", "hg2"):  # a dependant starts only after its baseline finished
        assert printed.index(f"{arch}-baseline: finished") < printed.index(f"{arch}-l1-60: started")
    record = json.loads((launched / STATE_FILE).read_text())
    assert record["launcher"] == "local"
    assert {n: r["state"] for n, r in record["entries"].items()} == dict.fromkeys(names, "finished")
    assert (launched / "report" / "report.md").exists()

    assert main(["run", str(recipe), "--out", str(launched), "--status"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["entry", "job", "scheduler", "run", "steps_done", "part_way", "log"]
    first = table[1].split()
    assert first[0] == "hg1-baseline" and first[2:6] == ["finished", "finished", "1", "-"]
    # a step stopped part-way keeps its finished epochs in checkpoints/partial_step_XXX.pt; --status names it
    (launched / "hg1-l1-60" / "checkpoints" / "partial_step_002.pt").write_bytes(b"")
    assert main(["run", str(recipe), "--out", str(launched), "--status"]) == 0
    rows = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines()[1:]}
    assert rows["hg1-l1-60"][4:7] == ["2", "step", "2"] and rows["hg2-l1-60"][5] == "-"


def test_a_failed_baseline_skips_its_dependants_and_exits_non_zero(tmp_path, cache, capsys):
    missing = str(tmp_path / "missing")
    data = {"dataset": "mpii", "annotations": f"{missing}.json", "image_path": missing}
    recipe = _sweep(tmp_path, ["hg1"], data=data)
    out = tmp_path / "out"
    assert main(["run", str(recipe), "--out", str(out), "--launcher", "local"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0
    assert "1 entry(ies) failed (hg1-baseline), 1 skipped" in error and str(out / LOGS_DIR) in error
    record = json.loads((out / STATE_FILE).read_text())["entries"]
    assert record["hg1-baseline"]["state"] == "failed" and record["hg1-baseline"]["exit_code"] == 2
    assert record["hg1-l1-60"]["state"] == "skipped" and not (out / "hg1-l1-60").exists()
    assert "missing" in (out / LOGS_DIR / "hg1-baseline.log").read_text()


def test_launcher_flag_errors_name_the_flag(tmp_path, capsys):
    recipe = _sweep(tmp_path, ["hg1"])
    out = str(tmp_path / "out")
    assert main(["run", str(recipe), "--out", out, "--launcher", "local", "--jobs", "0"]) == 2
    assert "--jobs: must be in [1, 1024], got 0" in capsys.readouterr().err
    assert main(["run", str(recipe), "--out", out, "--launcher", "local", "--partition", "gpu"]) == 2
    assert "--partition: applies to --launcher slurm only" in capsys.readouterr().err
    assert main(["run", str(TINY), "--out", out, "--launcher", "local"]) == 2
    assert "has no sweep section" in capsys.readouterr().err
    assert main(["run", str(recipe), "--out", out, "--status"]) == 2
    assert "no launch record here and no entry started" in capsys.readouterr().err


def test_status_without_a_launch_record_lists_the_entries_run_by_hand(tmp_path, capsys):
    # entries run one by one (hgprune run RECIPE --only NAME --resume) leave no launch.json; --status still shows them
    recipe = _sweep(tmp_path, ["hg1", "hg2"])
    out = tmp_path / "out"
    (out / "hg1-baseline" / "checkpoints").mkdir(parents=True)
    (out / "hg1-baseline" / "run.json").write_text(json.dumps({"status": "finished"}))
    (out / "hg1-baseline" / "checkpoints" / "step_000.pt").write_bytes(b"")
    (out / "hg1-l1-60" / "checkpoints").mkdir(parents=True)
    (out / "hg1-l1-60" / "run.json").write_text(json.dumps({"status": "running"}))
    (out / "hg1-l1-60" / "checkpoints" / "partial_step_001.pt").write_bytes(b"")
    assert main(["run", str(recipe), "--out", str(out), "--status"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["entry", "job", "scheduler", "run", "steps_done", "part_way", "log"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert list(rows) == ["hg1-baseline", "hg1-l1-60", "hg2-baseline", "hg2-l1-60"]  # the recipe's order
    assert rows["hg1-baseline"][1:] == ["-", "-", "finished", "1", "-", "-"]
    assert rows["hg1-l1-60"][1:] == ["-", "-", "stopped", "0", "step", "1", "-"]  # no process holds its lock
    (out / "hg1-l1-60" / ".lock").write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname()}))
    assert main(["run", str(recipe), "--out", str(out), "--status"]) == 0
    assert capsys.readouterr().out.splitlines()[2].split()[3] == "running"  # this process holds it
    assert rows["hg2-l1-60"][1:] == ["-", "-", "not", "started", "0", "-", "-"]
    assert not (out / STATE_FILE).exists()  # --status writes nothing


def test_without_submitit_the_slurm_launcher_names_the_install_command(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "submitit", None)
    recipe = _sweep(tmp_path, ["hg1"])
    assert main(["run", str(recipe), "--out", str(tmp_path / "out"), "--launcher", "slurm"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and "pip install 'hgprune[cluster]'" in error


def test_slurm_jobs_carry_resources_and_afterok_dependencies(tmp_path, monkeypatch):
    """Through submitit's SlurmExecutor with a stand-in ``sbatch`` that records each submission script (and a stand-in
    ``srun``, so the test needs no Slurm on the machine)."""
    submitit = pytest.importorskip("submitit")
    bin_dir, scripts = tmp_path / "bin", tmp_path / "submitted"
    bin_dir.mkdir()
    scripts.mkdir()
    sbatch = bin_dir / "sbatch"
    sbatch.write_text(
        f'#!/bin/sh\nn=$(( $(ls {scripts} | wc -l) + 100 ))\ncp "$1" {scripts}/$n.sh\necho "Submitted batch job $n"\n'
    )
    sbatch.chmod(0o755)
    srun = bin_dir / "srun"  # SlurmExecutor looks for srun on PATH when built (the job scripts call it on the node)
    srun.write_text("#!/bin/sh\nexit 1\n")
    srun.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    recipe_path = _sweep(tmp_path, ["hg1", "hg2"])
    out = tmp_path / "out"
    planned = plan_entries(recipe_path, expand(load_recipe(recipe_path), out), out, [], [])
    settings = SlurmSettings(partition="gpu", time_min=90, cpus_per_task=8, gpus_per_task=1, mem="32G",
                             account="pose", qos="high", extra={"constraint": "a100"})  # fmt: skip
    jobs = submit(planned, out, submitit.SlurmExecutor(folder=out / LOGS_DIR / "slurm" / "%j"), settings)
    assert {name: job.job_id for name, job in jobs.items()} == {
        "hg1-baseline": "100", "hg1-l1-60": "101", "hg2-baseline": "102", "hg2-l1-60": "103"
    }  # fmt: skip
    texts = {n: (scripts / f"{n}.sh").read_text() for n in range(100, 104)}
    for text in texts.values():
        for option in ("partition=gpu", "time=90", "cpus-per-task=8", "gpus-per-task=1", "mem=32G", "account=pose",
                       "qos=high", "constraint=a100", "kill-on-invalid-dep=yes"):  # fmt: skip
            assert f"#SBATCH --{option}\n" in text
    assert "--dependency" not in texts[100] and "--dependency" not in texts[102]
    assert "#SBATCH --dependency=afterok:100\n" in texts[101] and "#SBATCH --dependency=afterok:102\n" in texts[103]
    assert "#SBATCH --job-name=hgprune-hg2-l1-60\n" in texts[103]
    record = json.loads((out / STATE_FILE).read_text())
    assert record["launcher"] == "slurm" and record["entries"]["hg2-l1-60"]["job_id"] == "103"


def test_submitit_local_executor_runs_the_entries(tmp_path, cache):
    """submitit's own local executor (no cluster): each entry pickled, run in its own process, baseline first."""
    submitit = pytest.importorskip("submitit")
    recipe_path = _sweep(tmp_path, ["hg1"])
    out = tmp_path / "out"
    planned = plan_entries(recipe_path, expand(load_recipe(recipe_path), out), out, [], [])
    executor = submitit.LocalExecutor(folder=tmp_path / "submitit")
    executor.update_parameters(timeout_min=15)
    jobs = submit(planned, out, executor, slurm=None)
    assert [job.result() for job in jobs.values()] == ["finished", "finished"]
    for name in ("hg1-baseline", "hg1-l1-60"):
        assert json.loads((out / name / "run.json").read_text())["status"] == "finished"
    assert list(pd.read_csv(out / "hg1-l1-60" / "metrics.csv")["step"]) == [0, 1]


def _slurm_unavailable() -> str | None:
    missing = [tool for tool in ("munged", "slurmctld", "slurmd", "sbatch", "squeue") if shutil.which(tool) is None]
    if missing:
        return f"Slurm is not installed here ({', '.join(missing)} not found; apt-get install slurm-wlm munge)"
    if os.geteuid() != 0:
        return "starting a single-node Slurm (scripts/slurm_local.sh) needs root"
    return None


@pytest.mark.skipif(_slurm_unavailable() is not None, reason=_slurm_unavailable() or "")
def test_real_single_node_slurm(tmp_path, cache, monkeypatch, capsys):
    pytest.importorskip("submitit")
    slurm_dir = Path(tempfile.mkdtemp(prefix="hgprune-slurm-"))  # outside pytest's root-only tmp: munged reads it
    slurm_dir.chmod(0o755)
    monkeypatch.setenv("SLURM_LOCAL_DIR", str(slurm_dir))
    monkeypatch.setenv("SLURM_CONF", str(slurm_dir / "slurm.conf"))
    started = subprocess.run(["bash", str(SLURM_SCRIPT), "start"], capture_output=True, text=True, timeout=120)
    try:
        assert started.returncode == 0, started.stderr
        recipe = _sweep(tmp_path, ["hg1"])
        out = tmp_path / "out"
        assert main(["run", str(recipe), "--out", str(out), "--launcher", "slurm", "--cpus-per-task", "1"]) == 0
        assert "2 Slurm job(s) submitted" in capsys.readouterr().out
        deadline = time.monotonic() + 300
        while subprocess.run(["squeue", "-h"], capture_output=True, text=True).stdout.strip():
            assert time.monotonic() < deadline, "Slurm jobs still queued after 300 s"
            time.sleep(2)
        for name in ("hg1-baseline", "hg1-l1-60"):
            assert json.loads((out / name / "run.json").read_text())["status"] == "finished"
        sequential = tmp_path / "sequential"
        assert main(["run", str(recipe), "--out", str(sequential)]) == 0
        pd.testing.assert_frame_equal(_metrics(out / "hg1-l1-60"), _metrics(sequential / "hg1-l1-60"))
    finally:
        subprocess.run(["bash", str(SLURM_SCRIPT), "stop"], capture_output=True, timeout=120)
