"""The run directory: paths, the single-writer lock, and the resolved recipe.

Everything needed to resume a run or redraw its report lives here; nothing is kept only in memory. Metrics rows
are stored inside each step checkpoint's meta and ``metrics.csv`` is re-derived from them, so a crash between
writing a checkpoint and writing the CSV loses nothing.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from hgprune.errors import HgpruneError
from hgprune.fsutil import atomic_write_text

# PCKh joint groups (DESIGN.md §3) and the columns of RUN/metrics.csv, one row per step (step 0 = baseline).
GROUPS = ("Head", "Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle")
METRIC_COLUMNS = (
    ("run", "step", "arch", "N", "M", "criterion", "target_kind", "target", "params", "macs_fvcore", "macs_thop")
    + ("conv_macs", "macs_ratio", "params_ratio", "latency_ms", "latency_p90_ms", "pckh_mean", "pckh_seed_mean")
    + ("pckh_01", "auc", *(f"pckh_{g}" for g in GROUPS), "finetune_epochs", "train_loss", "wall_s")
)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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

    def step_checkpoint(self, step: int) -> Path:
        return self.checkpoints / f"step_{step:03d}.pt"

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
        """Refuse a second writer; replace a lock left by a process that no longer exists."""
        me = {"pid": os.getpid(), "host": socket.gethostname()}
        for _ in range(2):
            try:
                fd = os.open(self.lock_path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self._read_lock()
                same_host = holder.get("host") == me["host"]
                if same_host and isinstance(holder.get("pid"), int) and not _pid_alive(holder["pid"]):
                    print(f"hgprune: removing stale lock of finished process {holder['pid']} in {self.root}")
                    self.lock_path.unlink(missing_ok=True)
                    continue
                raise HgpruneError(
                    f"{self.root}: another hgprune run (pid {holder.get('pid')} on {holder.get('host')}) is writing "
                    f"here; wait for it or choose another --out (delete {self.lock_path.name} if that run is gone)"
                ) from None
            with os.fdopen(fd, "w") as handle:
                json.dump(me, handle)
            return
        raise HgpruneError(f"{self.lock_path}: could not take the run lock")

    def _read_lock(self) -> dict:
        try:
            data = json.loads(self.lock_path.read_text())
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    def release_lock(self) -> None:
        if self._read_lock().get("pid") == os.getpid():
            self.lock_path.unlink(missing_ok=True)

    # -- state --------------------------------------------------------------------------------------------------

    def read_state(self) -> dict:
        if not self.state.exists():
            return {}
        try:
            return json.loads(self.state.read_text())
        except ValueError:
            raise HgpruneError(f"{self.state}: corrupt run state (not JSON); the step checkpoints are intact") from None

    def write_state(self, **updates) -> None:
        state = self.read_state()
        state.update(updates)
        atomic_write_text(self.state, json.dumps(state, indent=2, sort_keys=True) + "\n")
