"""``hgprune run``: baseline → [prune → fine-tune → measure]* → export → report, resumable at every step.

Each completed step is one hgprune checkpoint holding the model and its metrics row; ``metrics.csv`` / ``.json`` are
re-derived from those after every step. A step's work depends only on the previous step's weights, the recipe seed
and the step number (calibration batches, fine-tuning order and the random criterion are seeded from them), so a run
killed anywhere and resumed with ``--resume`` ends with exactly the metrics of an uninterrupted run on CPU.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import signal
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from hgprune import __version__
from hgprune.errors import HgpruneError
from hgprune.export import export_model
from hgprune.export.core import SUFFIXES
from hgprune.fsutil import atomic_write_text
from hgprune.metrics import GROUPS
from hgprune.models import HourglassConfig, HourglassNet, build_model, save_model
from hgprune.models.checkpoints import load_checkpoint
from hgprune.recipe import RESUME_MUTABLE, Recipe, dump_recipe, recipe_changes, recipe_from_resolved
from hgprune.rundir import METRIC_COLUMNS, MetricsRow, RunDir

EPOCHS_PER_STEP_SLOT = 1000  # fine-tuning epochs of step k are numbered k*1000+…, so every epoch has its own seed


def log(message: str) -> None:
    print(message, flush=True)


@dataclass
class Pipeline:
    """The data and helpers one run needs, built once."""

    recipe: Recipe
    train_set: Any
    val_set: Any

    @classmethod
    def from_recipe(cls, recipe: Recipe, normalization) -> Pipeline:
        """Datasets of the recipe, normalised as the model to be trained or measured expects (its
        ``config.normalization``)."""
        from hgprune.data import build_dataset

        data = recipe.data
        common = dict(
            normalization=normalization,
            target_weight=data.target_weight,
            input_size=recipe.model.input_size,
            annotations=data.annotations,
            image_path=data.image_path,
            synth=dataclasses.asdict(data.synth),
            cache_dir=data.cache_dir,
            seed=recipe.seed,
        )
        if data.gt_mat:
            common["gt_mat"] = data.gt_mat
        train_set = build_dataset(data.dataset, "train", augment=data.augment, **common)
        val_set = build_dataset(data.dataset, "val", augment=False, **common)
        if data.val_limit is not None and len(val_set) > data.val_limit:
            val_set = _subset(val_set, data.val_limit)
        return cls(recipe, train_set, val_set)

    def train_config(self, section, epochs: int, start_epoch: int = 0, bn_l1: float = 0.0, distill: float = 0.0):
        """Trainer settings; LR milestones are relative to the first epoch of this phase."""
        from hgprune.train import TrainConfig

        r = self.recipe
        return TrainConfig(
            epochs=start_epoch + epochs,
            lr=section.lr,
            momentum=section.momentum,
            weight_decay=section.weight_decay,
            schedule=tuple(start_epoch + m for m in section.schedule),
            gamma=section.gamma,
            batch_size=section.batch_size,
            test_batch_size=r.eval.batch_size,
            workers=r.data.workers,
            device=r.device,
            seed=r.seed,
            bn_l1=bn_l1,
            distill_weight=distill,
            flip_test=r.eval.flip_test,
        )

    def calibration_batches(self, step: int) -> list:
        """The same batches for the same (seed, step), whether the run was resumed or not."""
        count = self.recipe.data.calibration_batches
        if count == 0:
            return []
        generator = torch.Generator().manual_seed(self.recipe.seed * 7919 + step)
        loader = torch.utils.data.DataLoader(
            self.train_set,
            batch_size=self.recipe.finetune.train.batch_size,
            shuffle=True,
            generator=generator,
            num_workers=0,
        )
        batches = []
        for batch in loader:
            batches.append(batch)
            if len(batches) >= count:
                break
        return batches


def _subset(dataset, limit: int):
    """First ``limit`` samples, keeping ``ground_truth()`` consistent with them."""
    sub = torch.utils.data.Subset(dataset, range(limit))

    def ground_truth():
        gt = dataset.ground_truth()
        return type(gt)(*(field[:limit] for field in gt))

    sub.ground_truth = ground_truth
    for attr in ("num_joints", "flip_pairs", "input_size", "output_size"):
        if hasattr(dataset, attr):
            setattr(sub, attr, getattr(dataset, attr))
    return sub


# -----------------------------------------------------------------------------------------------------------------


class Runner:
    def __init__(self, recipe: Recipe, out: Path, resume: bool = False, command: str | None = None) -> None:
        self.recipe = recipe
        self.run = RunDir(Path(out))
        self.resume = resume
        self.command = command or "hgprune " + " ".join(sys.argv[1:])
        self._pipeline: Pipeline | None = None
        self._normalization = None  # the baseline model's; set once it is built or loaded

    @property
    def pipeline(self) -> Pipeline:
        if self._pipeline is None:
            if self._normalization is None:
                raise RuntimeError("the pipeline is built from the baseline model's normalisation; load it first")
            self._pipeline = Pipeline.from_recipe(self.recipe, self._normalization)
        return self._pipeline

    # -- entry ------------------------------------------------------------------------------------------------

    def execute(self) -> list[dict]:
        self.run.prepare()
        self.run.acquire_lock()
        try:
            with _stop_on_signals():
                self._check_resume()
                return self._execute()
        except KeyboardInterrupt:
            done = self.run.completed_steps()
            self.run.write_state(status="interrupted")
            raise HgpruneError(
                f"interrupted; {len(done)} completed step(s) kept in {self.run.root}; continue with --resume"
            ) from None
        except HgpruneError as exc:
            done = self.run.completed_steps()
            self.run.write_state(status="failed", error=str(exc))
            raise HgpruneError(
                f"{exc} ({len(done)} completed step(s) kept in {self.run.root}; fix the cause and run again with "
                f"--resume: the recipe may change only in {', '.join(RESUME_MUTABLE)})"
            ) from None
        finally:
            self.run.release_lock()

    def _check_resume(self) -> None:
        text = dump_recipe(self.recipe, __version__)
        done = self.run.completed_steps()
        if self.run.recipe.exists() and done:
            if not self.resume:
                raise HgpruneError(
                    f"{self.run.root}: already holds a run with {len(done)} completed step(s); "
                    "pass --resume to continue it or choose another --out"
                )
            _, refused = recipe_changes(recipe_from_resolved(self.run.recipe.read_text()), self.recipe)
            if refused:
                shown = ", ".join(refused[:5]) + (f" and {len(refused) - 5} more" if len(refused) > 5 else "")
                raise HgpruneError(
                    f"{self.run.recipe}: the recipe differs from the one this run started with in {shown}, which "
                    f"completed steps depend on; resume with those values or choose another --out (only "
                    f"{', '.join(RESUME_MUTABLE)} may change)"
                )
        atomic_write_text(self.run.recipe, text)
        started = self.run.read_state().get("started") or time.strftime("%Y-%m-%dT%H:%M:%S")
        self.run.write_state(status="running", hgprune_version=__version__, command=self.command, started=started)

    def _execute(self) -> list[dict]:
        from hgprune.prune import schedule_targets

        r = self.recipe
        targets = schedule_targets(r.prune.target.kept, r.prune.steps, kind=r.prune.schedule) if r.prune.steps else []
        done = set(self.run.completed_steps())
        rows: list[dict] = []

        model, row, reference = self._baseline(0 in done)
        rows.append(row)
        teacher = None
        if r.finetune.distill.weight > 0:
            teacher = copy.deepcopy(model).eval()
        for step, kept in enumerate(targets, start=1):
            if step in done:
                model, info = load_checkpoint(self.run.step_checkpoint(step))
                row = info["meta"]["row"]
                log(
                    f"[step {step}/{len(targets)}] already done: kept MACs {row['macs_ratio']:.3f}, "
                    f"PCKh {row['pckh_mean']:.2f} (resumed)"
                )
            else:
                model, row = self._prune_step(model, step, kept, len(targets), reference, teacher)
            rows.append(row)
            self._write_metrics(rows)
        self._finish(model, rows)
        return rows

    # -- steps ------------------------------------------------------------------------------------------------

    def _baseline(self, done: bool) -> tuple[HourglassNet, dict, dict]:
        r = self.recipe
        path = self.run.step_checkpoint(0)
        if done:
            model, info = load_checkpoint(path)
            self._normalization = model.config.normalization
            row = info["meta"]["row"]
            log(f"[baseline] already done: PCKh {row['pckh_mean']:.2f} (resumed)")
        else:
            started = time.perf_counter()
            expect = HourglassConfig(
                num_stacks=int(r.model.arch[2:]),
                N=r.model.N,
                M=r.model.M,
                num_joints=r.model.num_joints,
                input_size=r.model.input_size,
                normalization=r.model.normalization,
            )
            epochs, loss = 0, math.nan
            if r.baseline.checkpoint:
                model, _ = load_checkpoint(r.baseline.checkpoint, expect=expect)
                # the recipe's input size, the checkpoint's normalisation (what its weights were trained with)
                model.config = dataclasses.replace(expect, normalization=model.config.normalization)
                log(
                    f"[baseline] loaded {r.baseline.checkpoint} "
                    f"(input normalisation {model.config.normalization.describe()})"
                )
            else:
                torch.manual_seed(r.seed)
                model = HourglassNet(expect)
                self._normalization = model.config.normalization
                epochs = r.baseline.train.epochs
                log(f"[baseline] training {expect.arch} N={expect.N} M={expect.M} from scratch for {epochs} epoch(s)")
                loss = self._train(model, r.baseline.train, epochs, start_epoch=0)
            self._normalization = model.config.normalization
            row = self._measure(model, step=0, target=1.0, reference=None, epochs=epochs, loss=loss)
            row["wall_s"] = round(time.perf_counter() - started, 3)
            save_model(model, path, meta={"step": 0, "row": row, "recipe": r.name})
            self._write_metrics([row])
            log(_row_line("baseline", row))
        from hgprune.prune import model_size

        reference = {**model_size(model, r.model.input_size), "macs_fvcore": row["macs_fvcore"]}
        return model, row, reference

    def _prune_step(self, model, step: int, kept: float, total: int, reference: dict, teacher) -> tuple[Any, dict]:
        from hgprune.prune import get_criterion, prune_to_target
        from hgprune.train.losses import heatmap_loss

        r = self.recipe
        started = time.perf_counter()
        torch.manual_seed(r.seed * 1_000_003 + step)
        criterion = get_criterion(r.prune.criterion)
        criterion.reseed(r.seed * 1_000_003 + step)
        result = prune_to_target(
            model,
            criterion=criterion,
            kind=r.prune.target.kind,
            kept=kept,
            reference=reference,
            input_size=r.model.input_size,
            allocation=r.prune.allocation,
            recalibrate_bn=r.prune.recalibrate_bn,
            search=r.prune.search,
            train_set=self.pipeline.train_set,
            seed=r.seed * 1_000_003 + step,
            part_ratios=dict(r.prune.part_ratios) or None,
            max_layer_ratio=r.prune.max_layer_ratio,
            round_to=r.prune.round_to,
            round_mode=r.prune.round_mode,
            prune_trunk=r.prune.prune_trunk,
            calibration=self.pipeline.calibration_batches(step),
            loss_fn=heatmap_loss,
            tolerance=r.prune.tolerance,
        )
        self.run.write_allocation(step, result.allocation)
        log(
            f"[step {step}/{total}] pruned with {r.prune.criterion} to kept {r.prune.target.kind} "
            f"{_fmt_kept(result, r.prune.target.kind)} (target {kept:.3f})"
        )
        epochs = r.finetune.epochs_per_step + (r.finetune.final_epochs if step == total else 0)
        loss = self._train(model, r.finetune.train, epochs, start_epoch=step * EPOCHS_PER_STEP_SLOT, teacher=teacher)
        row = self._measure(model, step=step, target=kept, reference=reference, epochs=epochs, loss=loss)
        row["wall_s"] = round(time.perf_counter() - started, 3)
        save_model(model, self.run.step_checkpoint(step), meta={"step": step, "row": row, "recipe": r.name})
        log(_row_line(f"step {step}/{total}", row))
        return model, row

    def _train(self, model, section, epochs: int, start_epoch: int, teacher=None) -> float:
        if epochs <= 0:
            return math.nan
        from hgprune.train import Trainer

        r = self.recipe
        cfg = self.pipeline.train_config(
            section,
            epochs=epochs,
            start_epoch=start_epoch,
            bn_l1=r.finetune.bn_l1 if start_epoch else 0.0,
            distill=r.finetune.distill.weight if teacher is not None else 0.0,
        )
        # no per-epoch validation: every step is measured once, after its fine-tuning
        trainer = Trainer(model, self.pipeline.train_set, None, cfg, teacher=teacher)
        history = trainer.fit(start_epoch=start_epoch)
        model.eval()
        losses = [h["loss"] for h in history if "loss" in h]
        return float(losses[-1]) if losses else math.nan

    def _measure(self, model, step: int, target: float, reference: dict | None, epochs: int, loss: float) -> dict:
        from hgprune.profile import profile_model
        from hgprune.train import evaluate_model

        r = self.recipe
        result = evaluate_model(
            model,
            self.pipeline.val_set,
            batch_size=r.eval.batch_size,
            device=r.device,
            flip_test=r.eval.flip_test,
            workers=r.data.workers,
        )
        model.to("cpu")
        prof = profile_model(
            model,
            input_size=r.profile.input_size or r.model.input_size,
            latency=r.profile.latency,
            thop=r.profile.thop,
            parts=False,
            warmup=r.profile.warmup,
            repeats=r.profile.repeats,
            threads=r.profile.threads,
        )
        reference = reference or {"params": prof.params, "macs_fvcore": prof.macs_fvcore}
        mpii = result.mpii
        return MetricsRow(
            run=r.name,
            step=step,
            arch=r.model.arch,
            N=r.model.N,
            M=r.model.M,
            role=r.role,
            criterion=r.prune.criterion,
            target_kind=r.prune.target.kind,
            target=round(float(target), 6),
            params=prof.params,
            macs_fvcore=prof.macs_fvcore,
            macs_thop=prof.macs_thop,
            conv_macs=prof.conv_macs,
            macs_ratio=round(prof.macs_fvcore / reference["macs_fvcore"], 6),
            params_ratio=round(prof.params / reference["params"], 6),
            latency_ms=round(prof.latency.median_ms, 4) if prof.latency else None,
            latency_p90_ms=round(prof.latency.p90_ms, 4) if prof.latency else None,
            pckh_mean=round(float(mpii.mean), 4),
            pckh_seed_mean=round(float(result.seed.mean), 4),
            pckh_01=round(float(mpii.pckh_01), 4),
            auc=round(float(mpii.auc), 4),
            pckh_groups={g: round(float(mpii.groups[g]), 4) for g in GROUPS},
            finetune_epochs=epochs,
            train_loss=None if math.isnan(loss) else round(loss, 8),
        ).to_dict()

    # -- outputs ----------------------------------------------------------------------------------------------

    def _write_metrics(self, rows: list[dict]) -> None:
        import pandas as pd

        frame = pd.DataFrame(rows, columns=list(METRIC_COLUMNS))
        atomic_write_text(self.run.metrics_csv, frame.to_csv(index=False))
        atomic_write_text(self.run.metrics_json, json.dumps(rows, indent=2) + "\n")

    def _finish(self, model, rows: list[dict]) -> None:
        r = self.recipe
        final = self.run.final_model
        save_model(model, final, meta={"recipe": r.name, "row": rows[-1], "hgprune_version": __version__})
        exported = {"hgprune": str(final)}
        for fmt in r.export.formats:
            if fmt == "hgprune":
                continue

            target = self.run.final / f"model{SUFFIXES[fmt]}"
            result = export_model(model, fmt, target, input_size=r.model.input_size)
            exported[fmt] = str(target)
            log(f"[export] {fmt}: {target} (max abs diff vs PyTorch {result.max_abs_diff:.2e})")
        self._write_metrics(rows)
        self.run.write_state(status="finished", finished=time.strftime("%Y-%m-%dT%H:%M:%S"), exported=exported)
        from hgprune.report import write_report

        write_report([self.run.root], self.run.report, commands=[self.run.read_state().get("command", "")])
        log("")
        log(summary_table(rows))
        log(f"\nfinal model: {final}   report: {self.run.report / 'report.md'}")


# -----------------------------------------------------------------------------------------------------------------


def _fmt_kept(result, kind: str) -> str:
    value = {"macs": "kept_macs", "params": "kept_params", "channels": "kept_channels"}[kind]
    return f"{getattr(result, value, float('nan')):.3f}"


def _row_line(label: str, row: dict) -> str:
    latency = f", {row['latency_ms']:.1f} ms" if row.get("latency_ms") is not None else ""
    return (
        f"[{label}] PCKh {row['pckh_mean']:.2f} (seed protocol {row['pckh_seed_mean']:.2f}), "
        f"{row['macs_fvcore'] / 1e6:,.1f} MMACs ({100 * row['macs_ratio']:.1f} %), {row['params']:,} params{latency}"
    )


def summary_table(rows: list[dict]) -> str:
    head = f"{'step':>4} {'kept MACs':>9} {'MMACs':>10} {'params':>10} {'latency ms':>10} {'PCKh':>6} {'PCKh seed':>9}"
    lines = [head, "-" * len(head)]
    for row in rows:
        latency = f"{row['latency_ms']:.2f}" if row.get("latency_ms") is not None else "-"
        lines.append(
            f"{row['step']:>4} {100 * row['macs_ratio']:>8.1f}% {row['macs_fvcore'] / 1e6:>10.1f} "
            f"{row['params']:>10,} {latency:>10} {row['pckh_mean']:>6.2f} {row['pckh_seed_mean']:>9.2f}"
        )
    return "\n".join(lines)


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


def plan(recipe: Recipe) -> list[dict]:
    """Planned steps with their target MACs / params, computed without data or training (``--dry-run``)."""
    from hgprune.profile import conv_macs, count_params
    from hgprune.prune import schedule_targets

    m = recipe.model
    model = build_model(m.arch, N=m.N, M=m.M, num_joints=m.num_joints, input_size=m.input_size)
    macs, params = conv_macs(model, m.input_size), count_params(model)
    kind = recipe.prune.target.kind
    rows = [{"step": 0, "kept": 1.0, "macs": macs, "params": params, "note": "baseline"}]
    steps = recipe.prune.steps
    targets = schedule_targets(recipe.prune.target.kept, steps, recipe.prune.schedule) if steps else []
    for step, kept in enumerate(targets, 1):
        if kind == "macs":
            est = {"macs": macs * kept, "params": None, "note": "MACs target"}
        elif kind == "params":
            est = {"macs": None, "params": params * kept, "note": "params target"}
        else:
            est = {"macs": macs * kept**2, "params": params * kept**2, "note": "channels target (≈ kept² estimate)"}
        rows.append({"step": step, "kept": kept, **est})
    return rows
