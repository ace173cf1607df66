"""Run a sweep's entries as separate processes: K at a time on this machine, or as Slurm jobs through submitit.

Each entry runs as ``hgprune run RECIPE --only NAME --out OUT --resume`` — exactly what a person would type — so an
entry that dies, is preempted or times out continues from its last completed step when run again, and entries never
share a process. An entry that prunes a sweep's shared baseline (``{arch}-baseline``, see
:func:`hgprune.sweep.expand`) starts only after that entry succeeded; when it fails, its dependants are skipped.
What was started, where its log is and how it ended is kept in ``OUT/launch.json`` (see :func:`status`).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from hgprune.errors import HgpruneError
from hgprune.fsutil import atomic_write_text, read_limited, reading
from hgprune.recipe import Recipe
from hgprune.rundir import RunDir
from hgprune.settings import Jobs, check

CLUSTER_INSTALL = "pip install 'hgprune[cluster]'  (or: pip install submitit)"
MAX_STATE_BYTES = 16 << 20  # a launch record lists one small record per entry
STATE_FILE = "launch.json"  # OUT/launch.json: launcher, and per entry its dependency, state, job id and log
LOGS_DIR = "logs"  # OUT/logs/<entry>.log: the entry's output, appended to by every attempt
DONE, FAILED, SKIPPED = "finished", "failed", "skipped"


@dataclass(frozen=True)
class Entry:
    """One sweep entry as a launcher sees it: a name, the entry it must wait for, the command that runs it."""

    name: str
    after: str | None  # the entry whose final model this one loads as its baseline
    command: tuple[str, ...]


@dataclass(frozen=True)
class SlurmSettings:
    """Resources every entry's Slurm job asks for (sbatch options of the same names)."""

    partition: str | None = None
    time_min: int = 24 * 60
    cpus_per_task: int | None = None
    gpus_per_task: int | None = None
    mem: str | None = None  # sbatch --mem, e.g. 32G
    account: str | None = None
    qos: str | None = None
    extra: dict[str, str] = field(default_factory=dict)  # any other sbatch option, e.g. {"constraint": "a100"}

    def parameters(self, name: str, after_job: str | None) -> dict[str, Any]:
        """submitit ``SlurmExecutor.update_parameters`` arguments for one entry's job."""
        chosen = {k: v for k, v in asdict(self).items() if v is not None and k not in ("time_min", "extra")}
        # a dependant of a failed baseline is cancelled by Slurm instead of pending forever
        extra = {"kill_on_invalid_dep": "yes", **self.extra}
        # always given: the executor keeps parameters between submissions, so None clears an earlier dependency
        chosen["dependency"] = f"afterok:{after_job}" if after_job is not None else None
        return {"job_name": f"hgprune-{name}", "time": self.time_min, **chosen, "additional_parameters": extra}


@dataclass(frozen=True)
class LaunchOptions:
    jobs: int = 1  # local: entries running at once
    slurm: SlurmSettings = field(default_factory=SlurmSettings)


def plan_entries(
    recipe_path: str | Path, entries: list[tuple[str, Recipe]], out: Path, overrides: list[str], only: list[str]
) -> list[Entry]:
    """The launcher's view of ``sweep.expand(recipe, out)``: dependencies read from where each entry's baseline
    checkpoint points, in the expansion's order (baselines first). ``only`` restricts the entries; a dependency
    outside it is taken as already done."""
    producers = {str(RunDir(out / name).final_model): name for name, _ in entries}
    chosen = [(name, recipe) for name, recipe in entries if not only or name in only]
    selected = {name for name, _ in chosen}
    planned = []
    for name, recipe in chosen:
        after = producers.get(recipe.baseline.checkpoint or "")
        command = [sys.executable, "-m", "hgprune", "run", str(recipe_path), "--only", name, "--out", str(out)]
        command += ["--resume", *(arg for value in overrides for arg in ("--set", value))]
        planned.append(Entry(name, after if after in selected else None, tuple(command)))
    return planned


def entry_log(out: Path, name: str) -> Path:
    return Path(out) / LOGS_DIR / f"{name}.log"


def _write_state(out: Path, launcher: str, records: dict[str, dict]) -> None:
    atomic_write_text(Path(out) / STATE_FILE, json.dumps({"launcher": launcher, "entries": records}, indent=2) + "\n")


# ---------------------------------------------------------------------------------------------------------------
# Local: K worker processes on this machine.


def _worker_env(slot: int, jobs: int) -> dict[str, str]:
    """Share the machine between ``jobs`` processes: CPU threads divided (unless the user set OMP_NUM_THREADS) and,
    with several visible GPUs, one GPU per worker slot (the recipe's ``device: cuda`` is then that GPU)."""
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // jobs)))
    visible = [d for d in env.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
    if not visible and env.get("CUDA_VISIBLE_DEVICES") is None:
        import torch

        visible = [str(i) for i in range(torch.cuda.device_count())]
    if len(visible) > 1:
        env["CUDA_VISIBLE_DEVICES"] = visible[slot % len(visible)]
    return env


def run_local(entries: list[Entry], out: Path, options: LaunchOptions, poll_s: float = 0.2) -> dict[str, str]:
    """Run the entries as up to ``options.jobs`` subprocesses, dependencies first; returns each entry's final state
    (finished, failed or skipped). Ctrl-C stops every running entry (each keeps its completed steps)."""
    check("jobs", options.jobs, Jobs)
    out = Path(out)
    (out / LOGS_DIR).mkdir(parents=True, exist_ok=True)
    records = {e.name: {"after": e.after, "state": "pending", "log": str(entry_log(out, e.name))} for e in entries}
    running: dict[str, tuple[subprocess.Popen, Any, int, float]] = {}
    try:
        while any(r["state"] in ("pending", "running") for r in records.values()):
            for name, (process, handle, _, started) in list(running.items()):
                if process.poll() is None:
                    continue
                handle.close()
                del running[name]
                ok = process.returncode == 0
                records[name].update(state=DONE if ok else FAILED, exit_code=process.returncode)
                outcome = "finished" if ok else f"FAILED (exit {process.returncode}); see {records[name]['log']}"
                print(f"[launch] {name}: {outcome} after {time.monotonic() - started:.0f} s", flush=True)
            for entry in entries:
                record = records[entry.name]
                if record["state"] != "pending":
                    continue
                waits_on = records.get(entry.after, {}).get("state") if entry.after else DONE
                if waits_on in (FAILED, SKIPPED):
                    record["state"] = SKIPPED
                    print(f"[launch] {entry.name}: skipped, its baseline {entry.after} {waits_on}", flush=True)
                elif waits_on == DONE and len(running) < options.jobs:
                    slot = min(set(range(options.jobs)) - {s for _, _, s, _ in running.values()})
                    handle = open(record["log"], "ab")  # appended: a resumed entry keeps its earlier attempts
                    process = subprocess.Popen(
                        entry.command, stdout=handle, stderr=subprocess.STDOUT, env=_worker_env(slot, options.jobs)
                    )
                    running[entry.name] = (process, handle, slot, time.monotonic())
                    record.update(state="running", job_id=str(process.pid))
                    print(f"[launch] {entry.name}: started (pid {process.pid}, log {record['log']})", flush=True)
            _write_state(out, "local", records)
            time.sleep(poll_s if running else 0)
    except KeyboardInterrupt:
        for process, _, _, _ in running.values():
            process.terminate()  # hgprune run stops at once on SIGTERM and marks its run.json interrupted
        for name, (process, handle, _, _) in running.items():
            process.wait()
            handle.close()
            records[name]["state"] = "interrupted"
        _write_state(out, "local", records)
        raise
    return {name: record["state"] for name, record in records.items()}


# ---------------------------------------------------------------------------------------------------------------
# Slurm (and submitit's other executors): one job per entry.


def require_submitit():
    """The submitit module, or a one-line error naming the install command."""
    try:
        import submitit
    except ImportError:
        raise HgpruneError(f"the slurm launcher needs the submitit package: {CLUSTER_INSTALL}") from None
    return submitit


class EntryJob:
    """What a submitit job runs: the entry's command in the submitting directory, output appended to its log.

    On preemption or time-out submitit calls :meth:`checkpoint` and requeues the same job; the command carries
    ``--resume``, so the requeued job continues from the entry's last completed step."""

    def __init__(self, command: tuple[str, ...], log: Path, cwd: Path) -> None:
        self.command, self.log, self.cwd = tuple(command), Path(log), Path(cwd)

    def __call__(self) -> str:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as handle:
            code = subprocess.run(self.command, stdout=handle, stderr=subprocess.STDOUT, cwd=self.cwd).returncode
        if code != 0:  # a failed job: Slurm's afterok keeps (and kill_on_invalid_dep cancels) its dependants
            raise HgpruneError(f"{shlex.join(self.command)}: exit status {code}; see {self.log}")
        return DONE

    def checkpoint(self, *args: Any, **kwargs: Any):
        return require_submitit().helpers.DelayedSubmission(self, *args, **kwargs)


def submit(entries: list[Entry], out: Path, executor, slurm: SlurmSettings | None) -> dict[str, Any]:
    """Submit every entry to a submitit ``executor``; returns the jobs by entry name.

    With ``slurm`` settings each job names its baseline's job in an ``afterok`` dependency and all are submitted at
    once; executors without dependencies (submitit's local and debug ones) get a dependant only after its baseline's
    job has finished successfully."""
    out = Path(out)
    jobs: dict[str, Any] = {}
    records: dict[str, dict] = {}
    for entry in entries:
        after = jobs.get(entry.after) if entry.after else None
        if slurm is not None:
            executor.update_parameters(**slurm.parameters(entry.name, after.job_id if after else None))
        elif after is not None:
            after.result()  # raises when the baseline failed: nothing that needs it is submitted
        try:
            job = executor.submit(EntryJob(entry.command, entry_log(out, entry.name), Path.cwd()))
        except (RuntimeError, OSError, subprocess.SubprocessError) as exc:  # the scheduler refused or is not there
            done = f" ({len(jobs)} submitted before it are recorded in {out})" if jobs else ""
            lines = [line.strip() for line in str(exc).splitlines() if line.strip()] or [type(exc).__name__]
            raise HgpruneError(f"{entry.name}: job submission failed: {lines[-1][:160]}{done}") from None
        jobs[entry.name] = job
        records[entry.name] = {
            "after": entry.after,
            "state": "submitted",
            "job_id": str(job.job_id),
            "log": str(entry_log(out, entry.name)),
            "scheduler_log": str(job.paths.stdout),
            "folder": str(job.paths.folder),
        }
        _write_state(out, "slurm" if slurm is not None else type(executor).__name__, records)
    return jobs


def submit_slurm(entries: list[Entry], out: Path, options: LaunchOptions) -> dict[str, str]:
    """One Slurm job per entry through submitit's ``SlurmExecutor``; returns the job ids (nothing waits for them)."""
    submitit = require_submitit()
    if shutil.which("sbatch") is None:
        raise HgpruneError(
            "the slurm launcher needs Slurm (no sbatch command on PATH on this machine); run on a Slurm login node "
            "or use the local launcher"
        )
    try:
        executor = submitit.SlurmExecutor(folder=Path(out) / LOGS_DIR / "slurm" / "%j")
    except (RuntimeError, OSError) as exc:  # submitit checks for srun when built
        raise HgpruneError(f"the slurm launcher cannot start: {str(exc).strip().splitlines()[0][:160]}") from None
    jobs = submit(entries, out, executor, options.slurm)
    for name, job in jobs.items():
        print(f"[launch] {name}: Slurm job {job.job_id}, log {entry_log(out, name)}", flush=True)
    return {name: str(job.job_id) for name, job in jobs.items()}


# name → launcher(entries, out, options): the local one waits and returns final states, slurm returns job ids
LAUNCHERS: dict[str, Callable[[list[Entry], Path, LaunchOptions], dict[str, str]]] = {
    "local": run_local,
    "slurm": submit_slurm,
}


def get_launcher(name: str) -> Callable[[list[Entry], Path, LaunchOptions], dict[str, str]]:
    if name not in LAUNCHERS:
        raise HgpruneError(f"launcher {name!r}: unknown; valid: {', '.join(LAUNCHERS)}")
    return LAUNCHERS[name]


def status(out: Path, names: list[str] | None = None) -> list[dict[str, str]]:
    """Per entry: launcher state (Slurm's own for Slurm jobs), the run's ``run.json``
    status, how many steps it completed, the step it stopped part-way through (``--resume`` goes on from that
    step's last finished epoch) and its log.

    Without a launch record (entries run by hand, ``hgprune run RECIPE --only NAME``), ``names`` (the sweep's
    entries) are listed with ``-`` for what only a launcher knows, as long as at least one of them was started."""
    path = Path(out) / STATE_FILE
    if path.exists():
        with reading(path, "launch record (corrupt: not the JSON hgprune writes)"):
            state = json.loads(read_limited(path, MAX_STATE_BYTES, "launch record"))
            records = state["entries"]
            if not isinstance(records, dict) or not all(isinstance(r, dict) for r in records.values()):
                raise TypeError("'entries' must map entry names to records")
    elif names and any((Path(out) / name).is_dir() for name in names):
        state, records = {}, {name: {"state": "-"} for name in names}
    else:
        raise HgpruneError(f"{path}: no launch record here and no entry started; launch or run the sweep here first")
    rows = []
    for name, record in records.items():
        scheduler = record.get("state", "?")
        if state.get("launcher") == "slurm" and record.get("job_id"):
            scheduler = _slurm_state(str(record["job_id"]))
        run = RunDir(Path(out) / name)
        done = run.completed_steps()  # both empty where the run has no checkpoints folder yet
        part_way = run.partial_steps()
        rows.append(
            {
                "entry": name,
                "job": record.get("job_id", "-"),
                "scheduler": scheduler,
                "run": _run_state(run),
                "steps_done": str(len(done)),
                "part_way": ", ".join(f"step {s}" for s in part_way) or "-",
                "log": record.get("log", "-"),
            }
        )
    return rows


def _run_state(run: RunDir) -> str:
    """``run.json``'s status, except that a run recorded as running whose process has ended reads ``stopped``."""
    recorded = run.read_state().get("status", "not started")
    return "stopped" if recorded == "running" and run.writer_gone() else recorded


def _slurm_state(job_id: str) -> str:
    """Slurm's state of a job: squeue while it is queued or running, then sacct where accounting is enabled."""
    for command in (
        ["squeue", "-h", "-j", job_id, "-o", "%T"],
        ["sacct", "-n", "-X", "-P", "-o", "State", "-j", job_id],
    ):
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            return "? (Slurm not reachable)"
        if result.returncode == 0 and result.stdout.strip():
            return result.stdout.split()[0]
    return "left the queue"
