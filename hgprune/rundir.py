"""The run directory: paths, the single-writer lock, and the resolved recipe.

Everything needed to resume a run or redraw its report lives here; nothing is kept only in memory. Metrics rows
are stored inside each step checkpoint's meta and ``metrics.csv`` is re-derived from them, so a crash between
writing a checkpoint and writing the CSV loses nothing.
"""

from __future__ import annotations

import json
import math
import os
import socket
import time
from dataclasses import dataclass, fields
from pathlib import Path

from hgprune.errors import HgpruneError
from hgprune.fsutil import atomic_write_text, read_limited, reading
from hgprune.metrics import GROUPS


@dataclass
class MetricsRow:
    """One step of a run (step 0 = the unpruned baseline): the one schema of ``metrics.csv`` / ``metrics.json``.

    The CSV columns are these fields in order, with ``pckh_groups`` flattened into one ``pckh_{group}`` column per
    PCKh joint group (:data:`hgprune.metrics.GROUPS`). Fractions are relative to the run's baseline.
    """

    run: str
    step: int
    arch: str
    N: int
    M: int
    role: str  # prune | baseline (a sweep's shared baseline) | scratch (the seed's approach), see Recipe.role
    criterion: str  # the recipe's pruning criterion (what a pruned step used)
    target_kind: str  # macs | params | channels
    target: float  # kept fraction this step aimed at
    params: int
    macs_fvcore: int
    macs_thop: int | None
    conv_macs: int
    macs_ratio: float
    params_ratio: float
    latency_ms: float | None
    latency_p90_ms: float | None
    pckh_mean: float  # mpii protocol (what papers report)
    pckh_seed_mean: float  # the seed's protocol
    pckh_01: float
    auc: float
    pckh_groups: dict[str, float]
    finetune_epochs: int
    train_loss: float | None
    wall_s: float | None = None

    @staticmethod
    def columns() -> tuple[str, ...]:
        names: list[str] = []
        for f in fields(MetricsRow):
            names.extend(f"pckh_{g}" for g in GROUPS) if f.name == "pckh_groups" else names.append(f.name)
        return tuple(names)

    def to_dict(self) -> dict:
        """The row as a flat mapping in :meth:`columns` order (what checkpoints and ``metrics.json`` store)."""
        flat = {}
        for f in fields(self):
            if f.name == "pckh_groups":
                flat.update({f"pckh_{g}": self.pckh_groups.get(g) for g in GROUPS})
            else:
                flat[f.name] = getattr(self, f.name)
        return flat


METRIC_COLUMNS = MetricsRow.columns()


# A lock file is a tiny JSON object; anything longer is not ours and is read no further.
MAX_LOCK_BYTES = 4096
# Tries to create the lock; each stale-lock takeover (or a lost race for one) uses one.
LOCK_ATTEMPTS = 5


def _parse_lock(text: str) -> dict:
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        return {}
    return data if isinstance(data, dict) else {}


def _is_pid(value: object) -> bool:
    """A value that can name another process (0 and negatives name process groups; huge ints overflow os.kill)."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2**31


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _stale(holder: dict) -> bool:
    """A lock left by a process of this host that no longer exists (another host's processes cannot be checked)."""
    pid = holder.get("pid")
    return holder.get("host") == socket.gethostname() and _is_pid(pid) and not _pid_alive(pid)


@dataclass
class RunDir:
    root: Path

    @property
    def recipe(self) -> Path:
        return self.root / "recipe.yaml"

    @property
    def state(self) -> Path:
        return self.root / "run.json"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def final(self) -> Path:
        return self.root / "final"

    @property
    def report(self) -> Path:
        return self.root / "report"

    @property
    def lock_path(self) -> Path:
        return self.root / ".lock"

    @property
    def metrics_csv(self) -> Path:
        return self.root / "metrics.csv"

    @property
    def metrics_json(self) -> Path:
        return self.root / "metrics.json"

    @property
    def final_model(self) -> Path:
        return self.final / "model.pt"

    @property
    def latency_json(self) -> Path:
        """Latencies measured after the run in a separate pass (``benchmarks/sweep_latency.py``), per step."""
        return self.root / "latency.json"

    @property
    def latency_model(self) -> Path:
        """The latency table a latency-targeted run planned with (copied at its start; a resume plans with it)."""
        return self.root / "latency_model.json"

    def latest_model(self) -> Path | None:
        """The final model, else the latest step checkpoint, else None (what a report shows kept channels of)."""
        if self.final_model.exists():
            return self.final_model
        steps = self.completed_steps()
        return self.step_checkpoint(steps[-1]) if steps else None

    def step_checkpoint(self, step: int) -> Path:
        return self.checkpoints / f"step_{step:03d}.pt"

    def partial_checkpoint(self, step: int) -> Path:
        """Step ``step`` part-way through its training: the model and optimizer after its last finished epoch, so a
        run stopped mid-step resumes at the next epoch. Removed once the step checkpoint is written."""
        return self.checkpoints / f"partial_step_{step:03d}.pt"

    def partial_steps(self) -> list[int]:
        return sorted(int(p.stem.rsplit("_", 1)[1]) for p in self.checkpoints.glob("partial_step_[0-9][0-9][0-9].pt"))

    def allocation_file(self, step: int) -> Path:
        return self.root / f"allocation_step_{step:03d}.json"

    def write_allocation(self, step: int, allocation: dict) -> Path:
        """Record which channels step ``step`` kept per part (and, for a search, every candidate's score)."""
        path = self.allocation_file(step)
        atomic_write_text(path, json.dumps(allocation, indent=2, default=str) + "\n")
        return path

    def completed_steps(self) -> list[int]:
        if not self.checkpoints.is_dir():
            return []
        steps = []
        for path in self.checkpoints.glob("step_*.pt"):
            try:
                steps.append(int(path.stem.split("_")[1]))
            except (IndexError, ValueError):
                continue
        return sorted(steps)

    def prepare(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            probe = self.root / ".write-test"
            probe.write_text("")
            probe.unlink()
        except OSError as exc:
            raise HgpruneError(f"{self.root}: output directory is not writable ({exc.strerror})") from None

    # -- lock ---------------------------------------------------------------------------------------------------

    def acquire_lock(self) -> None:
        """Refuse a second writer; take over a lock left by a process of this host that no longer exists.

        The lock is created atomically (``O_EXCL``). A stale lock is removed only by :meth:`_take_over_stale`, which
        cannot remove a fresh lock, so two runs that find the same stale lock never both proceed.
        """
        me = {"pid": os.getpid(), "host": socket.gethostname()}
        for attempt in range(LOCK_ATTEMPTS):
            try:
                fd = os.open(self.lock_path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                seen = self._read_lock_text()
                if seen is None:  # released between our create and our read: try again
                    continue
                holder = _parse_lock(seen)
                pid = holder.get("pid")
                if not _stale(holder):
                    raise HgpruneError(
                        f"{self.root}: another hgprune run (pid {str(pid)[:20]} on {str(holder.get('host'))[:64]}) "
                        f"is writing here; wait for it or choose another --out (delete {self.lock_path.name} if that "
                        "run is gone)"
                    ) from None
                if self._take_over_stale(seen):
                    print(f"hgprune: removing stale lock of finished process {pid} in {self.root}")
                else:
                    time.sleep(0.02 * (attempt + 1))  # another run is taking it over: see who won
                continue
            with os.fdopen(fd, "w") as handle:
                json.dump(me, handle)
            return
        raise HgpruneError(
            f"{self.lock_path}: could not take the run lock (another run is taking over a stale lock; if none is, "
            f"delete {self._takeover_path.name})"
        )

    @property
    def _takeover_path(self) -> Path:
        return self.lock_path.with_name(self.lock_path.name + ".takeover")

    def writer_gone(self) -> bool:
        """True when no process holds the run lock: there is none, or its holder (a process of this host) has ended.
        A ``run.json`` that says running is then a run that was stopped (killed, machine lost) and can be resumed."""
        seen = self._read_lock_text()
        return seen is None or _stale(_parse_lock(seen))

    def _take_over_stale(self, seen: str) -> bool:
        """Remove the lock if it still holds ``seen`` (content judged stale); True if this call removed it.

        Only the holder of the ``O_EXCL`` guard file may remove a lock, and only after re-reading it: a contender
        that judged the same stale lock a moment later finds the guard taken, or the winner's fresh lock, and removes
        nothing.
        """
        try:
            guard = os.open(self._takeover_path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        try:
            if self._read_lock_text() != seen:
                return False
            self.lock_path.unlink(missing_ok=True)
            return True
        finally:
            os.close(guard)
            self._takeover_path.unlink(missing_ok=True)

    def _read_lock_text(self) -> str | None:
        """The lock file's text (at most :data:`MAX_LOCK_BYTES`), or None when there is no lock."""
        try:
            with open(self.lock_path, "rb") as handle:
                return handle.read(MAX_LOCK_BYTES).decode("utf-8", errors="replace")
        except FileNotFoundError:
            return None
        except OSError:
            return ""

    def _read_lock(self) -> dict:
        return _parse_lock(self._read_lock_text() or "")

    def release_lock(self) -> None:
        if self._read_lock().get("pid") == os.getpid():
            self.lock_path.unlink(missing_ok=True)

    # -- state --------------------------------------------------------------------------------------------------

    def read_state(self) -> dict:
        """``run.json`` ({} before the first write); a corrupt file is a one-line error naming it."""
        if not self.state.exists():
            return {}
        try:
            state = json.loads(self.state.read_text())
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise HgpruneError(
                f"{self.state}: corrupt run state (not JSON); the step checkpoints are intact — fix or delete it"
            ) from None
        if not isinstance(state, dict):
            raise HgpruneError(f"{self.state}: expected a JSON object, found {type(state).__name__}")
        return state

    def write_state(self, **updates) -> None:
        state = self.read_state()
        if updates.get("status") == "finished":  # a resume that finishes again clears its failed attempt
            state.pop("last_attempt", None)
            state.pop("last_error", None)
        state.update(updates)
        atomic_write_text(self.state, json.dumps(state, indent=2, sort_keys=True) + "\n")

    def record_status(self, status: str, **updates) -> None:
        """Record the run's status in ``run.json`` without damaging what is already true there.

        A finished run stays ``finished``: a later ``--resume`` that is running, fails or is interrupted (a full
        disk while it re-exports) is recorded as ``last_attempt`` / ``last_error`` beside it, and only finishing again
        rewrites the status. Recording is best effort for the states that report an error (``failed``,
        ``interrupted``): if ``run.json`` cannot be written either, the error being recorded is what the user sees.
        """
        try:
            previous = self.read_state().get("status")
        except HgpruneError:
            previous = None
        if previous == FINISHED and status != FINISHED:
            updates = {"last_attempt": status, **({"last_error": updates["error"]} if "error" in updates else {})}
            status_update = {}
        else:
            status_update = {"status": status}
        try:
            self.write_state(**status_update, **updates)
        except HgpruneError:
            if status not in (FAILED, INTERRUPTED):
                raise

    def read_recipe(self):
        """The resolved recipe this run started with (``recipe.yaml``), checked like any recipe: a tag, a bad value
        or a file too large to be a recipe is one line naming it."""
        from hgprune.recipe import recipe_from_resolved

        text = read_limited(self.recipe, MAX_RECIPE_FILE_BYTES, "run recipe (recipe.yaml)")
        with reading(self.recipe, "run recipe (recipe.yaml written by hgprune run)"):
            return recipe_from_resolved(text.decode("utf-8"))


FINISHED, FAILED, INTERRUPTED = "finished", "failed", "interrupted"
MAX_RECIPE_FILE_BYTES = 1 << 20


def step_row(path: Path, meta: object) -> dict:
    """The metrics row a step checkpoint carries (``meta["row"]``), checked: a plain checkpoint or a hand-edited
    meta in ``checkpoints/`` is one line naming the file, never a ``KeyError`` later."""
    row = meta.get("row") if isinstance(meta, dict) else None
    if not isinstance(row, dict):
        raise HgpruneError(
            f"{path}: not a step checkpoint of hgprune run (its meta has no metrics 'row'); move it out of "
            "checkpoints/ or delete it to redo that step"
        )
    for key in ("step", "macs_fvcore", "macs_ratio", "pckh_mean", "params"):
        value = row.get(key)
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise HgpruneError(
                f"{path}: metrics row field {key!r} must be a finite number, found {str(value)[:40]!r}; delete the "
                "file to redo that step"
            )
    if row["step"] != meta.get("step", row["step"]) or not 0 <= row["step"] < 10**6:
        raise HgpruneError(f"{path}: metrics row is for step {str(row['step'])[:20]}, not this file's step")
    return row


def check_epochs_done(path: Path, done: int, planned: int) -> None:
    """A partial-step file cannot have trained more epochs than its step plans."""
    if done > planned:
        raise HgpruneError(
            f"{path}: claims {done} finished epoch(s) of a step that trains {planned}; delete the file to redo the step"
        )
