"""Accuracy per MAC on SynthPose: criteria, one-shot vs iterative, random, the seed's approach, distillation.

Every variant starts from the same trained baseline (per seed) and gets the same training budget: the epochs the
recipe spends fine-tuning. The seed's approach — a uniformly narrower N/M model at the same MACs — trains from
scratch for the baseline's epochs plus that budget. Writes reports/benchmarks/accuracy.{json,md}.

    python benchmarks/accuracy.py [--recipe recipes/quickstart.yaml] [--seeds 0 1] [--budgets 0.5 0.25] [--jobs 2]

Runs are ordinary hgprune run directories under --work (default runs/bench-accuracy) and resume, so an interrupted
benchmark continues where it stopped.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

from common import REPORT_DIR, environment, environment_md, md_table, write_report  # noqa: E402

from hgprune.recipe import Recipe, load_recipe  # noqa: E402
from hgprune.runner import Runner  # noqa: E402
from hgprune.sweep import scratch_recipe  # noqa: E402

CRITERIA = ("l1", "bn_gamma", "taylor", "random")
VARIANTS = (*CRITERIA, "l1-oneshot", "l1-distill", "scratch")


def variant_recipe(base: Recipe, variant: str, kept: float, baseline_ckpt: Path) -> Recipe:
    f = base.finetune
    budget = base.prune.steps * f.epochs_per_step + f.final_epochs
    name = f"{variant}-{round(100 * kept)}"
    pruned = replace(
        base,
        name=name,
        baseline=replace(base.baseline, checkpoint=str(baseline_ckpt)),
        prune=replace(base.prune, target=replace(base.prune.target, kept=kept)),
    )
    if variant in CRITERIA:
        finetune = replace(f, bn_l1=1e-4) if variant == "bn_gamma" else f  # network slimming's sparsity term
        return replace(pruned, prune=replace(pruned.prune, criterion=variant), finetune=finetune)
    if variant == "l1-oneshot":
        return replace(
            pruned,
            prune=replace(pruned.prune, criterion="l1", steps=1),
            finetune=replace(f, epochs_per_step=budget - f.final_epochs),
        )
    if variant == "l1-distill":
        return replace(
            pruned,
            prune=replace(pruned.prune, criterion="l1"),
            finetune=replace(f, distill=replace(f.distill, weight=1.0)),
        )
    if variant == "scratch":
        return scratch_recipe(base, kept, name)
    raise ValueError(variant)


def run_seed(recipe: Recipe, seed: int, budgets: list[float], variants: list[str], work: Path) -> None:
    base = replace(recipe, seed=seed)
    root = work / f"seed{seed}"
    baseline = replace(base, name="baseline", prune=replace(base.prune, criterion="baseline", steps=0))
    _quiet_run(baseline, root / "baseline")
    checkpoint = root / "baseline" / "final" / "model.pt"
    for kept in budgets:
        for variant in variants:
            entry = variant_recipe(base, variant, kept, checkpoint)
            started = time.perf_counter()
            _quiet_run(entry, root / entry.name)
            print(f"seed {seed} {entry.name}: {time.perf_counter() - started:.0f} s", flush=True)


def _quiet_run(recipe: Recipe, out: Path) -> None:
    with contextlib.redirect_stdout(io.StringIO()):
        Runner(recipe, out, resume=True, command="benchmarks/accuracy.py").execute()


def final_row(run: Path) -> dict:
    import pandas as pd

    return pd.read_csv(run / "metrics.csv").iloc[-1].to_dict()


def summarise(work: Path, seeds: list[int], budgets: list[float], variants: list[str]) -> dict:
    parents = {s: final_row(work / f"seed{s}" / "baseline") for s in seeds}
    results = {"baseline": _stats([parents[s]["pckh_mean"] for s in seeds])}
    for kept in budgets:
        for variant in variants:
            rows = {s: final_row(work / f"seed{s}" / f"{variant}-{round(100 * kept)}") for s in seeds}
            results[f"{variant}-{round(100 * kept)}"] = {
                **_stats([r["pckh_mean"] for r in rows.values()]),
                # against the parent, not the run's own step 0 (a scratch run's step 0 is already narrow)
                "kept_macs": statistics.fmean(rows[s]["macs_fvcore"] / parents[s]["macs_fvcore"] for s in seeds),
                "params": statistics.fmean(r["params"] for r in rows.values()),
                "variant": variant,
                "budget": kept,
            }
    return results


def _stats(values: list[float]) -> dict:
    return {
        "pckh_mean": statistics.fmean(values),
        "pckh_std": statistics.stdev(values) if len(values) > 1 else 0.0,
        "pckh_min": min(values),
        "pckh_max": max(values),
        "per_seed": values,
    }


def goals(results: dict, budgets: list[float]) -> list[dict]:
    checks = []
    base = results["baseline"]["pckh_mean"]
    for kept in budgets:
        pct = round(100 * kept)

        def get(variant: str, pct: int = pct) -> float | None:
            return results.get(f"{variant}-{pct}", {}).get("pckh_mean")

        rnd = get("random")
        for c in ("l1", "bn_gamma", "taylor"):
            if get(c) is not None and rnd is not None:
                checks.append(
                    dict(goal=f"{c} beats random at {pct} % MACs", value=f"{get(c):.1f} vs {rnd:.1f}", met=get(c) > rnd)
                )
        pruned = {k: v for k, v in results.items() if k.endswith(f"-{pct}") and v["variant"] != "scratch"}
        if pruned:
            best_name, best = max(pruned.items(), key=lambda kv: kv[1]["pckh_mean"])
            if kept == 0.5:
                checks.append(
                    dict(
                        goal="best pruned within 1 PCKh of its parent at 50 % MACs",
                        value=f"{best_name} {best['pckh_mean']:.1f} vs parent {base:.1f}",
                        met=best["pckh_mean"] >= base - 1.0,
                    )
                )
            if get("scratch") is not None:
                checks.append(
                    dict(
                        goal=f"best pruned beats the seed's approach (scratch) at {pct} % MACs",
                        value=f"{best_name} {best['pckh_mean']:.1f} vs scratch {get('scratch'):.1f}",
                        met=best["pckh_mean"] > get("scratch"),
                    )
                )
    return checks


def markdown(env: dict, recipe_path: str, seeds, budgets, results: dict, checks: list[dict], seconds: float) -> str:
    rows = [
        [
            "unpruned parent",
            "100 %",
            f"{results['baseline']['pckh_mean']:.2f}",
            f"{results['baseline']['pckh_std']:.2f}",
            "",
            "",
        ]
    ]
    for key, r in results.items():
        if key == "baseline":
            continue
        rows.append(
            [
                r["variant"],
                f"{100 * r['budget']:.0f} %",
                f"{r['pckh_mean']:.2f}",
                f"{r['pckh_std']:.2f}",
                f"{100 * r['kept_macs']:.1f} %",
                ", ".join(f"{v:.1f}" for v in r["per_seed"]),
            ]
        )
    goal_rows = [[c["goal"], c["value"], "met" if c["met"] else "**missed**"] for c in checks]
    return (
        "# Accuracy per MAC on SynthPose\n\n"
        f"Recipe `{recipe_path}` (model, data, schedule), seeds {list(seeds)}, MACs budgets {list(budgets)}. Every "
        "pruned variant starts from the same trained parent per seed and fine-tunes for the same number of epochs; "
        "`l1-oneshot` prunes once and spends the same epochs; `l1-distill` adds heatmap distillation from the parent "
        "(weight 1); `scratch` is the seed's approach: a uniformly narrower N/M model at the same MACs, trained from "
        "scratch for the parent's epochs plus the fine-tuning budget. PCKh@0.5, MPII protocol, mean ± std over "
        "seeds.\n\n"
        + md_table(["variant", "budget (MACs)", "PCKh", "± std", "kept MACs (fvcore)", "per seed"], rows)
        + "\n## Goals\n\n"
        + md_table(["goal", "measured", "verdict"], goal_rows)
        + f"\nWall time: {seconds / 60:.1f} min.\n\n## Environment\n\n"
        + environment_md(env)
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="recipes/quickstart.yaml")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="recipe override")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--budgets", type=float, nargs="+", default=[0.5, 0.25])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--jobs", type=int, default=2, help="seeds run in parallel processes (one thread each)")
    parser.add_argument("--work", default="runs/bench-accuracy")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed-only", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--summarise-only", action="store_true", help="rewrite the report from finished runs")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    recipe = replace(load_recipe(args.recipe, args.set), device=args.device)
    work = Path(args.work)
    if args.seed_only is not None:
        run_seed(recipe, args.seed_only, args.budgets, args.variants, work)
        return 0
    env = environment(args.device)
    started = time.perf_counter()
    pending = [] if args.summarise_only else list(args.seeds)
    while pending:
        batch, pending = pending[: args.jobs], pending[args.jobs :]
        procs = [
            subprocess.Popen(
                [sys.executable, *sys.argv, "--seed-only", str(seed)], env={**os.environ, "OMP_NUM_THREADS": "1"}
            )
            for seed in batch
        ]
        if any(p.wait() for p in procs):
            print("a seed failed; rerun to resume", file=sys.stderr)
            return 1
    results = summarise(work, args.seeds, args.budgets, args.variants)
    checks = goals(results, args.budgets)
    seconds = time.perf_counter() - started
    previous = REPORT_DIR / "accuracy.json"
    if args.summarise_only and previous.exists():  # keep the record of the run that produced the numbers
        old = json.loads(previous.read_text())
        env, seconds = old["environment"], old["wall_s"]
    data = {
        "environment": env,
        "recipe": args.recipe,
        "seeds": args.seeds,
        "budgets": args.budgets,
        "results": results,
        "goals": checks,
        "wall_s": seconds,
    }
    described = args.recipe + "".join(f" --set {s}" for s in args.set)
    paths = write_report("accuracy", data, markdown(env, described, args.seeds, args.budgets, results, checks, seconds))
    print("\n".join(f"{c['goal']}: {c['value']} → {'met' if c['met'] else 'MISSED'}" for c in checks))
    print("wrote", *paths)
    return 0


if __name__ == "__main__":
    sys.exit(main())
