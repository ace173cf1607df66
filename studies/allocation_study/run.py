"""Why do the criteria lose? A probe of channel allocation (issue 12, part 1), from one trained parent.

Every variant starts from the same parent checkpoint and runs the recipe's prune → fine-tune schedule; the grid is
criterion × allocation × trunk × MACs target (× BatchNorm re-estimation where the engine has it). Besides the final
PCKh after fine-tuning, each variant is also pruned one-shot to its final target and evaluated right away (no
fine-tuning), which isolates what the allocation itself destroys. Writes reports/benchmarks/allocation_study.{json,md};
``--label`` names the result set, so the engine before and after a change can be recorded side by side.

    OMP_NUM_THREADS=1 python -m studies.allocation_study.run --parent runs/alloc_ref/checkpoints/step_000.pt \\
        --label before --allocations global uniform --trunk false true

One seed is a diagnostic probe, not a study: differences of a point or two are within seed noise.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import io
import itertools
import json
import time
from pathlib import Path

from benchmarks.common import REPORT_DIR, environment, environment_md, md_table, write_report
from hgprune.models.checkpoints import load_checkpoint
from hgprune.pipeline import Pipeline
from hgprune.prune import CRITERIA
from hgprune.recipe import Recipe, load_recipe
from hgprune.runner import Runner

NAME = "allocation_study"
MODULE = "studies.allocation_study.run"


def variants(args: argparse.Namespace) -> list[dict]:
    grid = itertools.product(args.targets, args.trunk, args.allocations, args.recalibrate_bn, args.criteria)
    out = []
    for kept, trunk, allocation, recal, criterion in grid:
        overrides = [
            f"baseline.checkpoint={args.parent}",
            f"prune.criterion={criterion}",
            f"prune.target.kept={kept}",
            f"prune.prune_trunk={trunk}",
            "profile.latency=false",
            f"prune.allocation={allocation}",
        ]
        if recal != "default":
            overrides.append(f"prune.recalibrate_bn={recal}")
        trunk_tag = "trunk" if trunk == "true" else "notrunk"
        recal_tag = "" if recal == "default" else f"-bn{'on' if recal == 'true' else 'off'}"
        name = f"{criterion}-{allocation}-{trunk_tag}{recal_tag}-{round(100 * kept)}"
        out.append(dict(name=name, criterion=criterion, allocation=allocation, trunk=trunk == "true",
                        recalibrate_bn=recal, target=kept, overrides=overrides))  # fmt: skip
    return out


def oneshot_pckh(recipe: Recipe, pipeline: Pipeline, parent) -> dict:
    """PCKh of the parent pruned once to the final target, before any fine-tuning (val split, as the runs report);
    with BatchNorm re-estimation off and on where the engine has it."""
    from hgprune.prune import get_criterion, model_size, prune_to_target
    from hgprune.train import evaluate_model
    from hgprune.train.losses import heatmap_loss

    p = recipe.prune
    model = copy.deepcopy(parent)
    criterion = get_criterion(p.criterion)
    if hasattr(criterion, "seed"):
        criterion.seed = recipe.seed * 1_000_003 + 1
    extra = dict(allocation=p.allocation, search=p.search, seed=recipe.seed * 1_000_003 + 1, progress=False)
    extra["recalibrate_bn"] = False  # one-shot PCKh first; BN re-estimation is scored separately below
    extra["train_set"] = pipeline.train_set
    result = prune_to_target(
        model,
        criterion=criterion,
        kind=p.target.kind,
        kept=p.target.kept,
        reference=model_size(parent, recipe.model.input_size),
        input_size=recipe.model.input_size,
        part_ratios=dict(p.part_ratios) or None,
        max_layer_ratio=p.max_layer_ratio,
        round_to=p.round_to,
        round_mode=p.round_mode,
        prune_trunk=p.prune_trunk,
        calibration=pipeline.calibration_batches(1),
        loss_fn=heatmap_loss,
        tolerance=p.tolerance,
        **extra,
    )
    pckh = evaluate_model(model.eval(), pipeline.val_set, batch_size=recipe.eval.batch_size).mpii.mean
    out = {"oneshot_pckh": round(float(pckh), 4), "oneshot_kept_macs": round(result.kept_macs, 4)}
    from hgprune.calibration import recalibrate_bn
    from hgprune.prune.allocation import TrainingSlice

    recalibrate_bn(model, TrainingSlice(pipeline.train_set, p.search, recipe.seed * 1_000_003 + 1).bn_batches())
    pckh = evaluate_model(model.eval(), pipeline.val_set, batch_size=recipe.eval.batch_size).mpii.mean
    out["oneshot_pckh_bn"] = round(float(pckh), 4)
    return out


def run_variant(variant: dict, args: argparse.Namespace, work: Path, pipelines: dict) -> dict:
    """Run (or, if finished earlier, read) the variant's pruning run, plus its one-shot measurement."""
    import pandas as pd

    recipe = dataclasses.replace(load_recipe(args.recipe, [*args.set, *variant["overrides"]]), name=variant["name"])
    out = work / variant["name"]
    started = time.perf_counter()
    finished = (out / "run.json").exists() and json.loads((out / "run.json").read_text()).get("status") == "finished"
    row: dict = {"final_pckh": None, "kept_macs": None}
    if finished:
        rows = pd.read_csv(out / "metrics.csv").to_dict("records")
        row = {"parent_pckh": rows[0]["pckh_mean"], "final_pckh": rows[-1]["pckh_mean"]}
        row["kept_macs"] = rows[-1]["macs_ratio"]
    elif not args.oneshot_only:
        runner = Runner(recipe, out, resume=True, command=f"python -m {MODULE}")
        with contextlib.redirect_stdout(io.StringIO()):
            rows = runner.execute()
        row = {"parent_pckh": rows[0]["pckh_mean"], "final_pckh": rows[-1]["pckh_mean"]}
        row["kept_macs"] = rows[-1]["macs_ratio"]
    parent, _ = load_checkpoint(args.parent)
    if "pipeline" not in pipelines:  # every variant shares the data; build it once
        pipelines["pipeline"] = Pipeline.from_recipe(recipe, parent.config.normalization)
    with contextlib.redirect_stdout(io.StringIO()):
        oneshot = oneshot_pckh(recipe, pipelines["pipeline"], parent)
    return {
        **{k: v for k, v in variant.items() if k != "overrides"},
        **row,
        **oneshot,
        "wall_s": round(time.perf_counter() - started, 1),
    }


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def markdown(data: dict) -> str:
    parts = [
        "# Allocation probe: criterion × allocation × trunk × MACs target (issue 12, part 1)\n\n",
        "One seed, one parent: a diagnostic probe, not a study — differences of 1–2 PCKh points are within seed "
        "noise. Every variant is pruned from the same trained parent (quickstart recipe, hg1 N=32 M=64) and "
        "fine-tuned on the recipe's schedule (2 linear steps, 1 + 1 + 1 epochs). `final` = PCKh on the validation "
        "split after fine-tuning; `one-shot` = PCKh of the parent pruned once to the target with no fine-tuning at "
        "all; kept MACs = fvcore MACs of the final model over its parent's.\n\n",
    ]
    if data.get("findings"):
        parts.append("## Findings\n\n" + data["findings"].strip() + "\n\n")
    for label, entry in data["results"].items():
        rows = entry["rows"]
        parents = {r["parent_pckh"] for r in rows if r.get("parent_pckh") is not None}
        parent = ", ".join(f"{p:.2f}" for p in sorted(parents)) or "-"
        parts.append(f"## {label}\n\n{entry.get('note', '')}\n\nParent PCKh {parent}.\n\n")
        table = [
            [r["criterion"], r["allocation"], "yes" if r["trunk"] else "no", r["recalibrate_bn"],
             f"{100 * r['target']:.0f} %", _fmt(r["final_pckh"]), _fmt(r["kept_macs"], 3),
             f"{r['oneshot_pckh']:.2f}", _fmt(r.get("oneshot_pckh_bn")), f"{r['oneshot_kept_macs']:.3f}"]
            for r in rows
        ]  # fmt: skip
        headers = ["criterion", "allocation", "trunk", "BN re-est.", "target", "final PCKh", "kept MACs",
                   "one-shot PCKh", "one-shot + BN re-est.", "one-shot kept MACs"]  # fmt: skip
        parts.append(md_table(headers, table))
        parts.append("\nInvocations (each adds or refreshes rows; finished runs are read, not re-run):\n\n")
        for call in entry.get("invocations", []):
            load = ", ".join(f"{x:.1f}" for x in call["load_average_1_5_15"] or [])
            minutes = call["wall_s"] / 60
            parts.append(f"- `{call['command']}` — started {call['started']}, load {load}, {minutes:.1f} min\n")
        parts.append("\nEnvironment of the latest invocation:\n\n" + environment_md(entry["environment"]) + "\n")
    return "".join(parts)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="recipes/quickstart.yaml")
    parser.add_argument("--parent", required=True, help="trained parent checkpoint every variant starts from")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="recipe override")
    parser.add_argument("--label", required=True, help="name of this result set in the report (e.g. before, after)")
    parser.add_argument("--note", default="", help="one line describing the engine state of this result set")
    parser.add_argument("--criteria", nargs="+", default=list(CRITERIA))
    parser.add_argument("--allocations", nargs="+", default=["global", "uniform"])
    parser.add_argument("--trunk", nargs="+", default=["false", "true"], choices=["false", "true"])
    parser.add_argument("--recalibrate-bn", nargs="+", default=["default"], choices=["default", "false", "true"])
    parser.add_argument("--targets", type=float, nargs="+", default=[0.5, 0.25])
    parser.add_argument("--work", default="runs/alloc_study")
    parser.add_argument("--findings", help="Markdown file whose text heads the report (what the numbers say)")
    parser.add_argument("--oneshot-only", action="store_true", help="only the one-shot measurement (no fine-tuning)")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    env = environment()
    work = Path(args.work) / args.label
    started = time.perf_counter()
    path = REPORT_DIR / f"{NAME}.json"
    data = json.loads(path.read_text()) if path.exists() else {"results": {}}
    if args.findings:
        data["findings"] = Path(args.findings).read_text()
    entry = data["results"].setdefault(args.label, {"rows": []})
    entry.update(note=args.note or entry.get("note", ""), environment=env)
    call = {"command": env["command"], "started": env["started"], "wall_s": 0.0}
    call["load_average_1_5_15"] = env["machine"]["load_average_1_5_15"]
    entry.setdefault("invocations", []).append(call)
    pipelines: dict = {}
    for variant in variants(args):
        r = run_variant(variant, args, work, pipelines)
        entry["rows"] = [old for old in entry["rows"] if old["name"] != r["name"]] + [r]
        call["wall_s"] = round(time.perf_counter() - started, 1)
        write_report(NAME, data, markdown(data))  # after every variant: an interrupted probe keeps what it measured
        final = "-" if r["final_pckh"] is None else f"{r['final_pckh']:.2f} @ {r['kept_macs']:.3f}"
        print(
            f"{r['name']}: final {final}, one-shot {r['oneshot_pckh']:.2f} (+BN {_fmt(r.get('oneshot_pckh_bn'))}) "
            f"@ {r['oneshot_kept_macs']:.3f} ({r['wall_s']:.0f} s)",
            flush=True,
        )
    print("wrote", path, path.with_suffix(".md"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
