"""The stages of ``hgprune run``: baseline → [prune → fine-tune → measure]* → finish (export + report).

Each stage is a function of a :class:`RunContext` (the recipe, its run directory and the data pipeline) and the
model, and returns what the next stage needs. A step's work depends only on the previous step's weights, the recipe
seed and the step number (calibration batches, fine-tuning order and the criterion's randomness are seeded from
them), so a run killed anywhere and resumed ends with exactly the metrics of an uninterrupted run on CPU.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch

from hgprune import __version__
from hgprune.console import kept_text, log, row_line, summary_table
from hgprune.errors import HgpruneError
from hgprune.export import SUFFIXES, export_model, quantize_model
from hgprune.fsutil import atomic_write_text, reading
from hgprune.latency import CalibrationSettings, LatencyCost, LatencyTable, TimingSettings, load_or_calibrate
from hgprune.latency.table import family_of
from hgprune.metrics import GROUPS
from hgprune.models import HourglassNet, save_model
from hgprune.models.checkpoints import load_checkpoint, load_trainer_state
from hgprune.models.hourglass import bottom_warning
from hgprune.models.normalization import Normalization
from hgprune.pipeline import Pipeline
from hgprune.profile import conv_macs, count_params, profile_model
from hgprune.prune import get_criterion, model_size, prune_with, schedule_targets
from hgprune.prune.cost import COSTS, get_cost
from hgprune.prune.depth import describe_units, preview_depth
from hgprune.recipe import Recipe, TrainSection
from hgprune.report import write_report
from hgprune.rundir import METRIC_COLUMNS, MetricsRow, RunDir, check_epochs_done, step_row
from hgprune.train import Trainer, evaluate_model
from hgprune.train.checkpointing import check_finished
from hgprune.train.losses import heatmap_loss

LATENCY = "latency"  # prune.target.kind of a latency target (hgprune.latency)
EPOCHS_PER_STEP_SLOT = 1000  # fine-tuning epochs of step k are numbered k*1000+…, so every epoch has its own seed
INT8_FORMAT = "onnx_int8"  # export.formats entry: INT8 ONNX behind the accuracy gate


@dataclass
class RunContext:
    """What every stage of one run shares. The pipeline is built once the baseline model (and so the input
    normalisation its data must have) is known."""

    recipe: Recipe
    run: RunDir
    normalization: Normalization | None = None
    _pipeline: Pipeline | None = field(default=None, repr=False)

    @property
    def pipeline(self) -> Pipeline:
        if self._pipeline is None:
            if self.normalization is None:
                raise RuntimeError("the pipeline is built from the baseline model's normalisation; load it first")
            self._pipeline = Pipeline.from_recipe(self.recipe, self.normalization)
        return self._pipeline

    def targets(self, kept: float | None = None) -> list[float]:
        """Kept fraction of the original model after each prune step (``kept``: the final fraction when it is not
        the recipe's ``prune.target.kept``, e.g. a latency budget in ms resolved against the baseline)."""
        p = self.recipe.prune
        final = p.target.kept if kept is None else kept
        return schedule_targets(final, p.steps, kind=p.schedule) if p.steps else []


@dataclass
class Step:
    """A completed step: the model after it and its metrics row (``MetricsRow.to_dict()``)."""

    model: HourglassNet
    row: dict


@dataclass
class Partial:
    """A step stopped part-way through its training (:meth:`RunDir.partial_checkpoint`): the model and optimizer
    after ``epochs_done`` epochs of the step's training phase, the last epoch's loss and the wall time spent so far.
    Every epoch reseeds from (seed, epoch), so training on from here repeats an uninterrupted run exactly on CPU."""

    model: HourglassNet
    trainer_state: dict
    epochs_done: int
    loss: float
    wall_s: float

    @classmethod
    def read(cls, ctx: RunContext, step: int) -> Partial | None:
        path = ctx.run.partial_checkpoint(step)
        if not path.exists():
            return None
        model, info = load_checkpoint(path)
        meta = info["meta"]
        done = meta.get("epochs_done")
        if not isinstance(done, int) or isinstance(done, bool) or done < 1:
            raise HgpruneError(f"{path}: 'epochs_done' must be a positive integer, found {done!r}; delete the file")
        loss = meta.get("loss")
        with reading(path, "partial-step checkpoint (loss and wall_s must be numbers)"):
            return cls(model, load_trainer_state(path), done, math.nan if loss is None else float(loss),
                       float(meta.get("wall_s") or 0.0))  # fmt: skip


def baseline(ctx: RunContext) -> tuple[Step, dict]:
    """Step 0: load the recorded baseline, or train / import it and measure it. Returns it and the reference sizes
    (MACs, params, channels of the unpruned model) every later step is a fraction of."""
    r = ctx.recipe
    path = ctx.run.step_checkpoint(0)
    if 0 in ctx.run.completed_steps():
        model, info = load_checkpoint(path)
        ctx.normalization = model.config.normalization
        row = step_row(path, info["meta"])
        log(f"[baseline] already done: PCKh {row['pckh_mean']:.2f} (resumed)")
    else:
        started = time.perf_counter()
        expect = r.model.hourglass_config()
        epochs, loss = 0, math.nan
        if r.baseline.checkpoint:
            model, info = load_checkpoint(r.baseline.checkpoint, expect=expect)
            check_finished(r.baseline.checkpoint, info["meta"])
            # the recipe's input size, the checkpoint's normalisation (what its weights were trained with)
            model.config = dataclasses.replace(expect, normalization=model.config.normalization)
            ctx.normalization = model.config.normalization
            log(f"[baseline] loaded {r.baseline.checkpoint} (input normalisation {ctx.normalization.describe()})")
        else:
            epochs = r.baseline.train.epochs
            partial = Partial.read(ctx, 0)
            if partial is not None:
                check_epochs_done(ctx.run.partial_checkpoint(0), partial.epochs_done, epochs)
                model = partial.model
                started -= partial.wall_s
                log(f"[baseline] resuming {expect.arch} training at epoch {partial.epochs_done + 1} of {epochs}")
            else:
                torch.manual_seed(r.seed)
                model = HourglassNet(expect)
                log(f"[baseline] training {expect.arch} N={expect.N} M={expect.M} from scratch for {epochs} epoch(s)")
            if warning := bottom_warning(expect):
                log(f"[baseline] warning: {warning}")
            ctx.normalization = model.config.normalization
            loss = fine_tune(ctx, model, r.baseline.train, epochs, 0, step=0, partial=partial, started=started)
        row = measure(ctx, model, step=0, target=1.0, reference=None, epochs=epochs, loss=loss)
        row["wall_s"] = round(time.perf_counter() - started, 3)
        save_model(model, path, meta={"step": 0, "row": row, "recipe": r.name})
        ctx.run.partial_checkpoint(0).unlink(missing_ok=True)
        write_metrics(ctx, [row])
        log(row_line("baseline", row))
    return Step(model, row), reference_sizes(model, row, r.model.input_size)


def reference_sizes(model: HourglassNet, row: dict, input_size: int) -> dict:
    """What every step's kept fraction is of: the unpruned ``model``'s sizes and its measured MACs (``row``)."""
    return {**model_size(model, input_size), "macs_fvcore": row["macs_fvcore"]}


def latency_cost(ctx: RunContext, model: HourglassNet) -> LatencyCost | None:
    """The cost model of a latency target (None for other targets): the latency table the run recorded at its
    start, else this machine's cached table for the baseline's family (calibrated now when there is none, on an idle
    machine), copied into the run directory so that a resume plans with exactly the same numbers."""
    target = ctx.recipe.prune.target
    if target.kind != LATENCY or not ctx.recipe.prune.steps:
        return None
    path = ctx.run.latency_model
    if path.exists():
        table = LatencyTable.read(path, family=family_of(model.config))
        log(f"latency model: {path} (recorded at the run's start)")
    else:
        threads = target.threads or torch.get_num_threads()
        settings = CalibrationSettings(timing=TimingSettings(threads=threads, batch=target.batch))
        table, cached, fresh = load_or_calibrate(target.runtime, family_config(model.config), settings)
        table.save(path)
        log(f"latency model: {'calibrated into ' if fresh else ''}{cached} ({target.runtime}, {threads} thread(s))")
    return LatencyCost(table)


def family_config(config):
    """The unpruned architecture a (possibly depth-pruned) baseline belongs to: what a latency table is
    calibrated on."""
    return dataclasses.replace(config, removed_stacks=(), removed_blocks=())


def latency_kept(ctx: RunContext, cost: LatencyCost, reference_ms: float) -> float:
    """The final kept fraction of the baseline's predicted latency a latency target asks for (``budget_ms`` resolved
    against the baseline), recorded in ``run.json`` as ``latency_budget`` for the report."""
    target = ctx.recipe.prune.target
    budget = target.budget_ms if target.budget_ms is not None else target.kept * reference_ms
    kept = min(1.0, budget / reference_ms)
    ctx.run.write_state(latency_budget={"runtime": target.runtime, "budget_ms": round(budget, 4),
                                        "baseline_ms": round(reference_ms, 4), "kept": round(kept, 6)})  # fmt: skip
    log(f"latency target: {budget:.3f} ms on {target.runtime} = {kept:.3f} of the baseline's {reference_ms:.3f} ms")
    return kept


def teacher_for(ctx: RunContext, model: HourglassNet) -> HourglassNet | None:
    """A frozen copy of the unpruned model when the recipe distils from it."""
    return copy.deepcopy(model).eval() if ctx.recipe.finetune.distill.weight > 0 else None


def resumed_step(ctx: RunContext, step: int, total: int) -> Step:
    model, info = load_checkpoint(ctx.run.step_checkpoint(step))
    row = step_row(ctx.run.step_checkpoint(step), info["meta"])
    log(f"[step {step}/{total}] already done: kept MACs {row['macs_ratio']:.3f}, PCKh {row['pckh_mean']:.2f} (resumed)")
    return Step(model, row)


def prune_step(
    ctx: RunContext,
    model: HourglassNet,
    step: int,
    kept: float,
    total: int,
    reference: dict,
    teacher=None,
    cost_model: LatencyCost | None = None,
) -> Step:
    """Prune ``model`` in place to ``kept`` of the reference, fine-tune it, measure it and record the step."""
    r = ctx.recipe
    started = time.perf_counter()
    epochs = r.finetune.epochs_per_step + (r.finetune.final_epochs if step == total else 0)
    partial = Partial.read(ctx, step)
    if partial is not None:  # pruned before the stop: its fine-tuning goes on from the last finished epoch
        check_epochs_done(ctx.run.partial_checkpoint(step), partial.epochs_done, epochs)
        model = partial.model
        started -= partial.wall_s
        log(f"[step {step}/{total}] resuming fine-tuning at epoch {partial.epochs_done + 1} of {epochs}")
    else:
        result = prune_only(ctx, model, step, kept, reference, cost_model)
        ctx.run.write_allocation(step, result.allocation)
        log(
            f"[step {step}/{total}] pruned with {r.prune.criterion} to kept {r.prune.target.kind} "
            f"{kept_text(result, r.prune.target.kind)} (target {kept:.3f})"
        )
        if result.depth:
            log(f"[step {step}/{total}] depth {result.depth['mode']} removed {describe_units(result.removed_units)}")
    start_epoch = step * EPOCHS_PER_STEP_SLOT
    loss = fine_tune(ctx, model, r.finetune.train, epochs, start_epoch, teacher, step, partial, started)
    row = measure(ctx, model, step=step, target=kept, reference=reference, epochs=epochs, loss=loss)
    row["wall_s"] = round(time.perf_counter() - started, 3)
    save_model(model, ctx.run.step_checkpoint(step), meta={"step": step, "row": row, "recipe": r.name})
    ctx.run.partial_checkpoint(step).unlink(missing_ok=True)
    log(row_line(f"step {step}/{total}", row))
    return Step(model, row)


def prune_only(ctx: RunContext, model: HourglassNet, step: int, kept: float, reference: dict, cost_model=None):
    """Step ``step``'s pruning of ``model`` in place to ``kept`` of the reference, without its fine-tuning: the
    criterion, calibration batches and allocation search seeded from (recipe seed, step), so it repeats a run's step
    exactly (``benchmarks/sweep_reprune.py`` scores a finished run's step between pruning and fine-tuning)."""
    r = ctx.recipe
    step_seed = r.seed * 1_000_003 + step
    torch.manual_seed(step_seed)
    criterion = get_criterion(r.prune.criterion)
    criterion.reseed(step_seed)
    return prune_with(
        model,
        r.prune,
        kept=kept,
        criterion=criterion,
        reference=reference,
        input_size=r.model.input_size,
        calibration=ctx.pipeline.calibration_batches(step),
        loss_fn=heatmap_loss,
        train_set=ctx.pipeline.train_set,
        seed=step_seed,
        cost_model=cost_model,
    )


def fine_tune(
    ctx: RunContext,
    model: HourglassNet,
    section: TrainSection,
    epochs: int,
    start_epoch: int,
    teacher=None,
    step: int | None = None,
    partial: Partial | None = None,
    started: float | None = None,
) -> float:
    """Train ``model`` in place for ``epochs``; the last epoch's training loss (NaN when nothing was trained).

    With ``step``, every finished epoch is saved to the step's partial checkpoint (model, optimizer, epochs done,
    wall time since ``started``), and ``partial`` (read from it) continues the phase where it stopped."""
    if epochs <= 0:
        return math.nan
    r = ctx.recipe
    cfg = ctx.pipeline.train_config(
        section,
        epochs=epochs,
        start_epoch=start_epoch,
        bn_l1=r.finetune.bn_l1 if start_epoch else 0.0,
        distill=r.finetune.distill.weight if teacher is not None else 0.0,
    )
    # no per-epoch validation: every step is measured once, after its fine-tuning
    trainer = Trainer(model, ctx.pipeline.train_set, None, cfg, teacher=teacher)
    done, loss = 0, math.nan
    if partial is not None:
        trainer.load_state_dict(partial.trainer_state)
        done, loss = partial.epochs_done, partial.loss
    clock = time.perf_counter() if started is None else started

    def keep(row: dict) -> None:
        meta = {"step": step, "epochs_done": row["epoch"] - start_epoch, "loss": row["loss"],
                "wall_s": round(time.perf_counter() - clock, 3), "recipe": r.name}  # fmt: skip
        save_model(model, ctx.run.partial_checkpoint(step), meta=meta, trainer_state=trainer.state_dict())

    history = trainer.fit(start_epoch=start_epoch + done, on_epoch_end=keep if step is not None else None)
    model.eval()
    losses = [h["loss"] for h in history if "loss" in h]
    return float(losses[-1]) if losses else loss


def measure(
    ctx: RunContext, model: HourglassNet, step: int, target: float, reference: dict | None, epochs: int, loss: float
) -> dict:
    """PCKh on the validation split plus params, MACs and latency: the step's :class:`MetricsRow` as a dict."""
    r = ctx.recipe
    result = evaluate_model(
        model,
        ctx.pipeline.val_set,
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


def write_metrics(ctx: RunContext, rows: list[dict]) -> None:
    """``metrics.csv`` and ``metrics.json``, re-derived from the step rows."""
    frame = pd.DataFrame(rows, columns=list(METRIC_COLUMNS))
    atomic_write_text(ctx.run.metrics_csv, frame.to_csv(index=False))
    atomic_write_text(ctx.run.metrics_json, json.dumps(rows, indent=2) + "\n")


def finish(ctx: RunContext, model: HourglassNet, rows: list[dict]) -> dict[str, str]:
    """The final model, the recipe's exports, ``run.json`` marked finished, the report. Returns the exported files."""
    r = ctx.recipe
    final = ctx.run.final_model
    save_model(model, final, meta={"recipe": r.name, "row": rows[-1], "hgprune_version": __version__})
    exported = {"hgprune": str(final)}
    for fmt in r.export.formats:
        if fmt == "hgprune":
            continue
        if fmt == INT8_FORMAT:  # scored against FP32 on the recipe's validation split; not written above the gate
            target = ctx.run.final / "model.int8.onnx"
            q = quantize_model(model, target, r, time_runtime=False)
            log(f"[export] {fmt}: PCKh {q.pckh_fp32:.2f} → {q.pckh_int8:.2f}" + ("" if q.written else " (not written)"))
            if q.written:
                exported[fmt] = str(target)
            continue
        target = ctx.run.final / f"model{SUFFIXES[fmt]}"
        result = export_model(model, fmt, target, input_size=r.model.input_size)
        exported[fmt] = str(target)
        log(f"[export] {fmt}: {target} (max abs diff vs PyTorch {result.max_abs_diff:.2e})")
    write_metrics(ctx, rows)
    ctx.run.write_state(status="finished", finished=time.strftime("%Y-%m-%dT%H:%M:%S"), exported=exported)
    write_report([ctx.run.root], ctx.run.report, commands=[ctx.run.read_state().get("command", "")])
    log("")
    log(summary_table(rows))
    log(f"\nfinal model: {final}   report: {Path(ctx.run.report) / 'report.md'}")
    return exported


def plan(recipe: Recipe) -> list[dict]:
    """Planned steps with their target MACs / params, computed without data or training (``--dry-run``)."""
    model = HourglassNet(recipe.model.hourglass_config())
    macs, params = conv_macs(model, recipe.model.input_size), count_params(model)
    kind = recipe.prune.target.kind
    rows = [{"step": 0, "kept": 1.0, "macs": macs, "params": params, "note": "baseline"}]
    steps = recipe.prune.steps
    targets = schedule_targets(recipe.prune.target.kept, steps, recipe.prune.schedule) if steps else []
    depth = getattr(recipe.prune, "depth", "none")
    removals = (
        preview_depth(model.config, depth, get_cost(kind, recipe.model.input_size), targets, recipe.prune.tolerance)
        if depth != "none" and kind in COSTS
        else [[] for _ in targets]
    )
    for step, kept in enumerate(targets, 1):
        if kind == "macs":
            est = {"macs": macs * kept, "params": None, "note": "MACs target"}
        elif kind == "params":
            est = {"macs": None, "params": params * kept, "note": "params target"}
        elif kind == LATENCY:
            est = {"macs": None, "params": None, "note": "latency target (planned with the latency model above)"}
        else:
            est = {"macs": macs * kept**2, "params": params * kept**2, "note": "channels target (≈ kept² estimate)"}
        if depth != "none" and kind != LATENCY:
            est["note"] += (
                f"; depth {depth} removes (preview, trailing stacks first): {describe_units(removals[step - 1])}"
            )
        rows.append({"step": step, "kept": kept, **est})
    return rows
