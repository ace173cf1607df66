"""Accuracy study on SynthPose: does the default recipe beat random pruning and the seed's approach, and by how much?

Design (issue 12): every variant is pruned from the **same trained parent per seed** (parents trained to a plateau
by ``hgprune train``; the plateau rule is checked from their ``log.csv``), fine-tuned with the same epoch budget and
scored on the same ≥ 1,000 validation images. Differences are **paired by seed** (variant − random, variant −
scratch, variant − parent) and reported with 95 % t-intervals. ``scratch`` is the seed's approach: a uniformly
narrower N/M model at the same MACs, trained from scratch with the parent's schedule plus the fine-tuning budget.

    python -m benchmarks.accuracy --parents 'runs/study/parent_s{seed}/checkpoint.pth.tar' --seeds 6 7 8 9 10 \\
        --budgets 0.5 0.25 --variants default random scratch [--work runs/study_v3] [--set KEY=VALUE ...]

The defaults are study v3's (``reports/benchmarks/accuracy.md``), so ``make bench`` reruns the study of record;
study v2 was seeds 1–5 with ``--work runs/study_v2 --set finetune.train.lr=1e-3``.

The default recipe is ``recipes/synthpose_study.yaml``. Variants: ``default`` (the recipe as shipped),
``{criterion}-{allocation}`` for every registered criterion and allocation, ``oneshot`` (default in one step, same
epochs), ``nodistill`` (default without heatmap distillation), ``random``
(the default recipe with the random criterion) and ``scratch``. Runs are ordinary run directories under ``--work``
and resume, so an interrupted study continues where it stopped; ``--report-only`` re-reads what exists.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import statistics
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

from scipy import stats

from benchmarks.common import REPORT_DIR, environment, environment_md, md_table, write_report
from hgprune.fsutil import safe_torch_load
from hgprune.prune import ALLOCATIONS, CRITERIA
from hgprune.recipe import Recipe, TrainSection, load_recipe
from hgprune.rundir import RunDir
from hgprune.runner import Runner
from hgprune.sweep import scratch_recipe
from hgprune.train.plateau import PLATEAU_GAIN, plateau

STUDY_SEEDS = [6, 7, 8, 9, 10]  # study v3's held-out seeds (accuracy_v3_protocol.md)
PARENTS = "runs/study/parent_s{seed}/checkpoint.pth.tar"  # hgprune train runs, one per seed (docs/studies/accuracy.md)


def variant_names() -> list[str]:
    fixed = ["default", "random", "scratch", "oneshot", "nodistill"]
    return fixed + [f"{c}-{a}" for c in CRITERIA for a in ALLOCATIONS]


def variant_recipe(base: Recipe, variant: str, kept: float, parent: Path) -> Recipe:
    """The recipe of one variant at one MACs budget, pruned from ``parent`` (scratch: trained from nothing)."""
    name = f"{variant}-{round(100 * kept)}"
    f = base.finetune
    pruned = replace(
        base,
        name=name,
        baseline=replace(base.baseline, checkpoint=str(parent)),
        prune=replace(base.prune, target=replace(base.prune.target, kept=kept)),
    )
    if variant == "default":
        return pruned
    if variant == "random":
        return replace(pruned, prune=replace(pruned.prune, criterion="random"))
    if variant == "oneshot":
        budget = base.prune.steps * f.epochs_per_step + f.final_epochs
        return replace(pruned, prune=replace(pruned.prune, steps=1), finetune=replace(f, epochs_per_step=budget))
    if variant == "nodistill":
        return replace(pruned, finetune=replace(f, distill=replace(f.distill, weight=0.0)))
    if variant == "scratch":
        return scratch_recipe(replace(base, baseline=replace(base.baseline, train=parent_schedule(parent))), kept, name)
    criterion, _, allocation = variant.rpartition("-")
    if criterion in CRITERIA and allocation in ALLOCATIONS:
        return replace(pruned, prune=replace(pruned.prune, criterion=criterion, allocation=allocation))
    raise SystemExit(f"unknown variant {variant!r}; valid: {', '.join(variant_names())}")


def parent_schedule(parent: Path) -> TrainSection:
    """The parent's own training schedule (``hgprune train`` stores it in the checkpoint), for the scratch models."""
    cfg = safe_torch_load(parent)["train_config"]
    return TrainSection(epochs=cfg["epochs"], lr=cfg["lr"], momentum=cfg["momentum"], weight_decay=cfg["weight_decay"],
                        schedule=list(cfg["schedule"]), gamma=cfg["gamma"], batch_size=cfg["batch_size"])  # fmt: skip


def parent_plateau(parent: Path) -> dict:
    """PCKh per epoch from the parent's log and the gain over its last 20 % of epochs."""
    return asdict(plateau(parent.parent / "log.csv"))


def run_variant(recipe: Recipe, out: Path) -> float:
    started = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        Runner(recipe, out, resume=True, command="python -m benchmarks.accuracy").execute()
    return time.perf_counter() - started


def final_row(run: Path) -> dict | None:
    path = RunDir(run).metrics_json
    if not path.exists() or json.loads(RunDir(run).state.read_text()).get("status") != "finished":
        return None
    return json.loads(path.read_text())[-1]


def paired(a: dict[int, float], b: dict[int, float]) -> dict | None:
    """Mean of the per-seed differences a − b and its 95 % t-interval (None with fewer than 2 common seeds)."""
    seeds = sorted(set(a) & set(b))
    if len(seeds) < 2:
        return None
    diffs = [a[s] - b[s] for s in seeds]
    mean, sd = statistics.fmean(diffs), statistics.stdev(diffs)
    half = stats.t.ppf(0.975, len(diffs) - 1) * sd / len(diffs) ** 0.5
    return {"mean": mean, "low": mean - half, "high": mean + half, "n": len(diffs), "per_seed": diffs}


def summarise(work: Path, seeds: list[int], budgets: list[float], variants: list[str], previous: dict | None = None):
    """Per-seed PCKh of every variant and its paired differences; ``previous`` (``load_previous``) adds the seeds of
    an earlier study whose run directories are not here, so the differences pair over all seeds."""
    parents: dict[int, dict] = {}
    for s in seeds:  # step 0 of any pruned run is the parent, measured on the same validation images
        for kept in budgets:
            path = RunDir(work / f"seed{s}" / f"default-{round(100 * kept)}").metrics_json
            if path.exists():
                parents[s] = json.loads(path.read_text())[0]
                break
    previous = previous or {}
    parent_pckh = {s: row["pckh_mean"] for s, row in parents.items()}
    parent_pckh.update(previous.get("parent", {}).get("per_seed", {}))
    results: dict = {"parent": {"per_seed": dict(sorted(parent_pckh.items()))}}
    for kept in budgets:
        pct = round(100 * kept)
        for variant in variants:
            key = f"{variant}-{pct}"
            rows = {s: final_row(work / f"seed{s}" / key) for s in seeds}
            rows = {s: r for s, r in rows.items() if r is not None}
            earlier = previous.get(key, {})
            if not rows and not earlier:
                continue
            per_seed = {s: r["pckh_mean"] for s, r in rows.items()} | earlier.get("per_seed", {})
            kept_macs = [rows[s]["macs_fvcore"] / parents[s]["macs_fvcore"] for s in rows if s in parents]
            if earlier.get("kept_macs") is not None:  # a mean over its seeds: weight it by their number
                kept_macs += [earlier["kept_macs"]] * len(earlier["per_seed"])
            results[key] = {
                "variant": variant,
                "budget": kept,
                "per_seed": dict(sorted(per_seed.items())),
                "kept_macs": statistics.fmean(kept_macs) if kept_macs else None,
            }
        for variant in variants:
            entry = results.get(f"{variant}-{pct}")
            if entry is None:
                continue
            entry["vs_parent"] = paired(entry["per_seed"], parent_pckh)
            for other in ("random", "scratch"):
                if other != variant and f"{other}-{pct}" in results:
                    entry[f"vs_{other}"] = paired(entry["per_seed"], results[f"{other}-{pct}"]["per_seed"])
    return results


def load_previous(paths: list[Path], seeds: list[int]) -> tuple[dict, dict, list[dict]]:
    """Earlier reports of this study (their ``accuracy.json``), merged: per-seed results and parent plateaus keyed by
    int seed, and where each came from. No seed may appear twice, here or among ``seeds`` (those are run here)."""
    merged: dict = {}
    plateaus: dict = {}
    sources: list[dict] = []
    taken = set(seeds)
    for path in paths:
        results, earlier_plateaus, source = _read_report(path)
        overlap = sorted(taken & set(source["seeds"]))
        if overlap:
            raise SystemExit(f"accuracy.py: --previous {path} already has seed {overlap[0]}; run only new seeds")
        taken |= set(source["seeds"])
        for key, r in results.items():
            entry = merged.setdefault(key, {**r, "per_seed": {}, "kept_macs": None, "_weights": []})
            entry["per_seed"] = entry["per_seed"] | r["per_seed"]
            if r.get("kept_macs") is not None:  # a mean over its seeds: weight it by their number
                entry["_weights"].append((r["kept_macs"], len(r["per_seed"])))
        plateaus |= earlier_plateaus
        sources.append(source)
    for entry in merged.values():
        weights = entry.pop("_weights")
        if weights:
            entry["kept_macs"] = sum(m * n for m, n in weights) / sum(n for _, n in weights)
    return merged, plateaus, sources


def _read_report(path: Path) -> tuple[dict, dict, dict]:
    try:
        data = json.loads(path.read_text())
        results = {k: {**r, "per_seed": {int(s): float(v) for s, v in r["per_seed"].items()}}
                   for k, r in data["results"].items()}  # fmt: skip
        plateaus = {int(s): p for s, p in data["plateaus"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise SystemExit(
            f"accuracy.py: --previous {path}: not a study report ({exc.__class__.__name__}: {exc})"
        ) from None
    env = data.get("environment", {})
    seeds = sorted(results.get("parent", {}).get("per_seed", {}))
    keep = ("started", "command", "versions", "machine")
    return results, plateaus, {"path": str(path), "seeds": seeds, **{k: env.get(k) for k in keep}}


def goals(results: dict, budgets: list[float]) -> list[dict]:
    """The issue's goals for the default recipe: "beats" needs the mean margin and a 95 % interval above 0."""
    checks = []
    for kept, margin in ((0.5, 1.0), (0.25, 2.0)):
        if kept not in budgets:
            continue
        entry = results.get(f"default-{round(100 * kept)}", {})
        pct = round(100 * kept)
        if kept == 0.5:
            d = entry.get("vs_parent")
            goal = f"default within 1.0 PCKh of its parent at {pct} % MACs (mean ≥ −1.0)"
            checks.append(_goal(goal, d, lambda d: d["mean"] >= -1.0))
        for other in ("random", "scratch"):
            d = entry.get(f"vs_{other}")
            checks.append(
                _goal(
                    f"default beats {other} by ≥ {margin:.1f} at {pct} % MACs (interval above 0)",
                    d,
                    lambda d, m=margin: d["mean"] >= m and d["low"] > 0,
                )  # fmt: skip
            )
    return checks


def _goal(goal: str, diff: dict | None, test) -> dict:
    if diff is None:
        return {"goal": goal, "value": "not measured (fewer than 2 paired seeds)", "met": None}
    value = f"{diff['mean']:+.2f} [{diff['low']:+.2f}, {diff['high']:+.2f}] (n={diff['n']})"
    return {"goal": goal, "value": value, "met": bool(test(diff))}


def _fmt(d: dict | None) -> str:
    return "" if d is None else f"{d['mean']:+.2f} [{d['low']:+.2f}, {d['high']:+.2f}]"


def markdown(env: dict, args, results: dict, checks: list[dict], plateaus: dict, seconds: float, sources=None) -> str:
    plateau_rows = [
        [s, p["epochs"], f"{p['final']:.2f}", f"{p['gain_last_20pct']:+.2f}", "yes" if p["at_plateau"] else "**no**"]
        for s, p in plateaus.items()
    ]
    parent = results["parent"]["per_seed"]
    rows = [["parent (unpruned)", "100 %", _mean(parent), "", ", ".join(f"{v:.2f}" for v in parent.values()), "", "",
             ""]]  # fmt: skip
    for key, r in results.items():
        if key == "parent":
            continue
        rows.append([
            r["variant"], f"{100 * r['budget']:.0f} %", _mean(r["per_seed"]),
            "" if r["kept_macs"] is None else f"{100 * r['kept_macs']:.1f} %",
            ", ".join(f"{v:.2f}" for v in r["per_seed"].values()),
            _fmt(r.get("vs_parent")), _fmt(r.get("vs_random")), _fmt(r.get("vs_scratch")),
        ])  # fmt: skip
    verdict = {True: "met", False: "**missed**", None: "not measured"}
    seeds = sorted(parent)
    provenance = ""
    if sources:
        header = "Seeds taken from earlier reports of this study (their run directories are not read):\n\n"
        provenance = header + md_table(
            ["seeds", "report", "made", "machine", "command", "library versions then against now"],
            [[", ".join(map(str, src["seeds"])), f"`{src['path']}`", src["started"], _machine(src.get("machine")),
              f"`{src['command']}`", _versions(src.get("versions"), env["versions"])] for src in sources],
        ) + f"\nSeeds run by this invocation: {', '.join(map(str, args.seeds)) or 'none'}.\n\n"  # fmt: skip
    goal_rows = [[c["goal"], c["value"], verdict[c["met"]]] for c in checks]
    return (
        "# Accuracy study on SynthPose (issue 12)\n\n"
        f"Recipe `{' '.join([args.recipe] + ['--set ' + s for s in args.set])}`; parents `{args.parents}`, seeds "
        f"{seeds}, MACs budgets {args.budgets}. Every variant is pruned from the same parent per seed and "
        "fine-tuned with the recipe's budget; `scratch` trains a uniformly narrower N/M model with the parent's "
        "schedule plus that budget. PCKh@0.5 (MPII protocol) on the validation images; differences are paired by "
        "seed, mean [95 % t-interval].\n\n" + provenance + (f"{args.note}\n\n" if args.note else "") + "## Parents\n\n"
        f"Plateau rule: the last 20 % of epochs add less than {PLATEAU_GAIN} PCKh.\n\n"
        + md_table(["seed", "epochs", "final PCKh", "gain over last 20 %", "at plateau"], plateau_rows)
        + "\n## Results\n\n"
        + md_table(
            ["variant", "budget", "PCKh (mean)", "kept MACs", "per seed", "− parent", "− random", "− scratch"], rows
        )  # fmt: skip
        + "\n## Goals (default recipe)\n\n"
        + md_table(["goal", "measured: mean [95 % CI]", "verdict"], goal_rows)
        + f"\nCompute for this invocation: {seconds / 60:.1f} min.\n\n## Environment\n\n"
        + environment_md(env)
    )


def _versions(versions: dict | None, now: dict) -> str:
    """Library versions that differ between the earlier run and this one are named; otherwise "the same"."""
    changed = [f"{k} {v} → {now.get(k)}" for k, v in (versions or {}).items() if now.get(k) != v]
    return "the same" if versions and not changed else ", ".join(changed) or "not recorded then"


def _machine(machine: dict | None) -> str:
    """An earlier report's CPU model and device, as its environment recorded them."""
    machine = machine or {}
    return " · ".join(str(machine[k]) for k in ("cpu", "device") if machine.get(k)) or "not recorded"


def _mean(values: dict) -> str:
    return f"{statistics.fmean(values.values()):.2f}" if values else ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="recipes/synthpose_study.yaml")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="recipe override")
    parser.add_argument("--device", help="the recipe's device (same as --set device=D)")
    parser.add_argument("--parents", default=PARENTS, help="parent checkpoint path with {seed} (default %(default)s)")
    parser.add_argument("--seeds", type=int, nargs="*", default=STUDY_SEEDS,
                        help="seeds run here (default: study v3's held-out seeds, %(default)s)")  # fmt: skip
    parser.add_argument("--budgets", type=float, nargs="+", default=[0.5, 0.25])
    parser.add_argument("--variants", nargs="+", default=["default", "random", "scratch"], choices=variant_names())
    parser.add_argument("--work", default="runs/study_v3")
    parser.add_argument("--note", default="", help="a paragraph for the report (e.g. how the recipe was chosen)")
    parser.add_argument("--previous", type=Path, nargs="+", default=[],
                        help="earlier reports of this study (accuracy.json) whose seeds join these")  # fmt: skip
    parser.add_argument("--report-only", action="store_true", help="summarise the runs that exist, run nothing")
    parser.add_argument("--report-dir", default=str(REPORT_DIR), help="where accuracy.md/.json go (probes: elsewhere)")
    args = parser.parse_args(argv)
    if args.device:
        args.set.append(f"device={args.device}")
    env = environment(args.device or "cpu")
    work = Path(args.work)
    recipe = load_recipe(args.recipe, args.set)
    started = time.perf_counter()
    parents = {s: Path(args.parents.format(seed=s)) for s in args.seeds}
    missing = [str(p) for p in parents.values() if not p.exists()]
    if missing:
        raise SystemExit(
            f"benchmarks.accuracy: parent {missing[0]} not found; train the parents first (docs/studies/accuracy.md)"
        )
    plateaus = {s: parent_plateau(p) for s, p in parents.items() if (p.parent / "log.csv").exists()}
    previous, sources = None, []
    if args.previous:
        previous, earlier_plateaus, sources = load_previous(args.previous, args.seeds)
        plateaus = dict(sorted((earlier_plateaus | plateaus).items()))
    elif not args.seeds:
        raise SystemExit("benchmarks.accuracy: --seeds is empty and no --previous report was given; nothing to study")
    if not args.report_only:
        for s, parent in parents.items():
            base = replace(recipe, seed=s)
            for kept in args.budgets:
                for variant in args.variants:
                    entry = variant_recipe(base, variant, kept, parent)
                    seconds = run_variant(entry, work / f"seed{s}" / entry.name)
                    print(f"seed {s} {entry.name}: {seconds:.0f} s", flush=True)
    results = summarise(work, args.seeds, args.budgets, args.variants, previous)
    checks = goals(results, args.budgets)
    seconds = time.perf_counter() - started
    payload = {"environment": env, "results": results, "goals": checks, "plateaus": plateaus, "previous": sources,
               "args": {**vars(args), "previous": [str(p) for p in args.previous]}}  # fmt: skip
    report = markdown(env, args, results, checks, plateaus, seconds, sources)
    write_report("accuracy", payload, report, Path(args.report_dir))
    for check in checks:
        print(f"{check['goal']}: {check['value']} → {check['met']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
