"""``hgprune run``: baseline → [prune → fine-tune → measure]* → export → report, resumable at every step.

:class:`Runner` owns what is about the run as a whole — the run directory's lock, the rules for ``--resume``, signals
and the final status in ``run.json`` — and calls the stages of :mod:`hgprune.stages` in order. Each completed step is
one checkpoint holding the model and its metrics row; ``metrics.csv`` / ``.json`` are re-derived after every step.
"""

from __future__ import annotations

import signal
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import torch

from hgprune import __version__, stages
from hgprune.errors import HgpruneError, user_message
from hgprune.fsutil import atomic_write_text
from hgprune.preview import check_inputs
from hgprune.recipe import RESUME_MUTABLE, Recipe, dump_recipe, recipe_changes
from hgprune.rundir import RunDir
from hgprune.stages import RunContext
from hgprune.tracking import run_tracker


class Runner:
    """One run of one recipe into one run directory."""

    def __init__(self, recipe: Recipe, out: Path, resume: bool = False, command: str | None = None) -> None:
        self.recipe = recipe
        self.run = RunDir(Path(out))
        self.resume = resume
        self.command = command or "hgprune " + " ".join(sys.argv[1:])
        self.context = RunContext(recipe, self.run)
        self.tracker = run_tracker(recipe, self.run.root) if recipe.output.tensorboard else None  # TensorBoard

    def execute(self) -> list[dict]:
        """Run (or continue) every step; returns the metrics rows. Errors leave the completed steps on disk and
        ``run.json`` saying what happened."""
        self.run.prepare()
        self.run.acquire_lock()
        try:  # a refused start changes nothing in the directory (a finished run stays "finished")
            self._check_start()
        except BaseException:
            self.run.release_lock()
            raise
        try:
            with _stop_on_signals():
                resolved = dump_recipe(self.recipe, __version__)
                if not (self.run.recipe.is_file() and self.run.recipe.read_text(errors="replace") == resolved):
                    atomic_write_text(self.run.recipe, resolved)
                started = self.run.read_state().get("started") or time.strftime("%Y-%m-%dT%H:%M:%S")
                self.run.record_status("running", hgprune_version=__version__, command=self.command, started=started)
                return self._steps()
        except KeyboardInterrupt:
            done = self.run.completed_steps()
            self.run.record_status("interrupted")
            part_way = "".join(f" and step {s}'s finished epochs" for s in self.run.partial_steps())
            raise HgpruneError(
                f"interrupted; {len(done)} completed step(s){part_way} kept in {self.run.root}; continue with --resume"
            ) from None
        except HgpruneError as exc:
            done = self.run.completed_steps()
            message = user_message(exc)  # a DataLoader worker's error without the worker's traceback
            self.run.record_status("failed", error=message)
            raise HgpruneError(
                f"{message} ({len(done)} completed step(s) kept in {self.run.root}; fix the cause and run again with "
                f"--resume: the recipe may change only in {', '.join(RESUME_MUTABLE)})"
            ) from None
        finally:
            self.run.release_lock()
            if self.tracker is not None:
                self.tracker.close()

    def _check_start(self) -> None:
        """The run can start here: its device exists, and a directory with completed steps continues only with
        ``--resume`` and a recipe those steps agree with."""
        device = self.recipe.device
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise HgpruneError(f"device: {device!r} but no CUDA device is available here; use device: cpu")
        check_inputs(self.recipe)
        done, partial = self.run.completed_steps(), self.run.partial_steps()
        if self.run.recipe.exists() and (done or partial):
            if not self.resume:
                part_way = f" and step {partial[0]} part-way" if partial else ""
                raise HgpruneError(
                    f"{self.run.root}: already holds a run with {len(done)} completed step(s){part_way}; "
                    "pass --resume to continue it or choose another --out"
                )
            _, refused = recipe_changes(self.run.read_recipe(), self.recipe)
            if refused:
                shown = ", ".join(refused[:5]) + (f" and {len(refused) - 5} more" if len(refused) > 5 else "")
                raise HgpruneError(
                    f"{self.run.recipe}: the recipe differs from the one this run started with in {shown}, which "
                    f"completed steps depend on; resume with those values or choose another --out (only "
                    f"{', '.join(RESUME_MUTABLE)} may change)"
                )

    def _steps(self) -> list[dict]:
        ctx = self.context
        done = set(self.run.completed_steps())
        current, reference = stages.baseline(ctx)
        cost = stages.latency_cost(ctx, current.model)
        final_kept = None
        if cost is not None:
            reference[cost.name] = cost.cost(current.model)
            final_kept = stages.latency_kept(ctx, cost, reference[cost.name])
        targets = ctx.targets(final_kept)
        rows = [current.row]
        self._track(current)
        teacher = stages.teacher_for(ctx, current.model)
        for step, kept in enumerate(targets, start=1):
            if step in done:
                current = stages.resumed_step(ctx, step, len(targets))
            else:
                current = stages.prune_step(ctx, current.model, step, kept, len(targets), reference, teacher, cost)
            rows.append(current.row)
            self._track(current)
            stages.write_metrics(ctx, rows)
        stages.finish(ctx, current.model, rows)
        return rows

    def _track(self, step: stages.Step) -> None:
        """Every step, resumed ones included, so a restarted run's curves are complete (same values, same steps)."""
        if self.tracker is not None:
            self.tracker.step(step.row, step.model)


@contextmanager
def _stop_on_signals():
    """SIGINT and SIGTERM stop the run at once; completed steps stay on disk.

    SIGINT is installed explicitly: a process started in the background by a non-interactive shell inherits SIGINT
    as *ignored*, and Python keeps it that way, so ``kill -INT`` would otherwise be silently dropped.
    """

    def handler(signum, frame):
        raise KeyboardInterrupt

    try:
        previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
