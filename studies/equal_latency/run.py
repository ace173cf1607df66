"""Accuracy at equal latency (issue 32): the runs of the study fixed in ``reports/equal_latency/protocol.md``.

Per hg8 parent seed S and budget K (50 % and 25 % of the parent's ORT latency, 2 threads, batch 1) four variants,
each an ordinary ``hgprune run`` directory ``runs/equal_latency/seedS/<variant>-<K>`` built from
``recipes/sweep_hg1_hg8.yaml`` (its model, data and fine-tuning settings; the parent is the seed's committed
``reports/equal_latency/parents/seedS/hg8/checkpoint.pth.tar``):

- ``latency``: a latency target (``kind: latency, kept: K, runtime: ort, threads: 2, batch: 1``), depth + width
  (``prune.depth: all``: stacks, blocks and channels), the default criterion and depth importance;
- ``random``: the same with the ``random`` criterion and the ``random`` depth importance;
- ``macs``: the sweep recipe's MACs default at the fraction chosen by ``--choose-macs``;
- ``smaller``: the architecture chosen by ``--choose-smaller``, unpruned, trained from scratch with the parent's
  schedule plus the fine-tuning epochs (30 + 16), seed S; for seed 1 also the next smaller one (``smaller-next``,
  exploratory).

The two choices are made first, from latencies measured on an idle machine (weights do not matter: uniform
allocation makes a MACs-pruned architecture independent of them), and written to ``runs/equal_latency/`` where the
variant step reads them, so they are fixed before any variant trains:

    python -m studies.equal_latency.run --choose-macs        # → runs/equal_latency/choice_macs.json
    python -m studies.equal_latency.run --choose-smaller     # → runs/equal_latency/choice_smaller.json
    OMP_NUM_THREADS=1 python -m studies.equal_latency.run --seed 1 --resume
    OMP_NUM_THREADS=1 python -m studies.equal_latency.run --family hg4 hg5 hg6 hg7 --resume   # exploratory

``--dry-run`` prints each variant's run directory and settings and trains nothing. The analysis is ``report.py``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

from benchmarks.accuracy import final_row, parent_schedule
from hgprune.errors import HgpruneError
from hgprune.fsutil import atomic_write_text
from hgprune.recipe import SCRATCH, Recipe, TrainSection, load_recipe
from hgprune.sweep import ARCH_FIELD

MODULE = "studies.equal_latency.run"
RECIPE = "recipes/sweep_hg1_hg8.yaml"
PARENTS = "reports/equal_latency/parents/seed{seed}/hg8/checkpoint.pth.tar"  # protocol: "Parents"
WORK = Path("runs/equal_latency")
PROTOCOL = "reports/equal_latency/protocol.md"
ARCH = "hg8"
SEEDS = (1, 2, 3)  # the protocol's held-out parent seeds
BUDGETS = (0.5, 0.25)  # of the parent's ORT latency
VARIANTS = ("latency", "macs", "smaller", "random")
NEXT = "smaller-next"  # the next smaller architecture, seed NEXT_SEED only (exploratory)
NEXT_SEED = 1
FAMILY = tuple(f"hg{k}" for k in range(1, 9))  # the sweep family, smallest first
MACS_GRID = tuple(round(0.15 + 0.05 * i, 2) for i in range(16))  # 0.15, 0.20, …, 0.90
TOLERANCE = 1.05  # the latency target's tolerance: above budget × TOLERANCE is over budget
RUNTIME, THREADS, BATCH = "ort", 2, 1  # where the budget is measured
LATENCY_DEPTH = "all"  # "depth + width": the engine's recipe default is none (channels only), so the study sets it
CHOICES = {"macs": "choice_macs.json", "smaller": "choice_smaller.json"}
RECIPES = Path("recipes/equal_latency")  # a recipe per choice (seed RECIPE_SEED's parent), shipped for users
RECIPE_SEED = 1
ARCHIVE = Path("reports/equal_latency/runs")  # finished runs, committed: what report.py reads on a fresh machine
ARCHIVED = (
    "recipe.yaml",
    "run.json",
    "metrics.csv",
    "metrics.json",
    "latency.json",
    "latency_model.json",
    "final/model.pt",
)  # the sweep's committed runs keep the same files (and, here, the final weights)


def pct(kept: float) -> int:
    return round(100 * kept)


def base_recipe(path: str | Path = RECIPE, seed: int = 0, overrides=(), arch: str = ARCH) -> Recipe:
    """The sweep recipe as one run of ``arch``: its model, data, prune and fine-tuning settings, seed ``seed``."""
    recipe = load_recipe(path, list(overrides))
    return replace(recipe, sweep=None, seed=seed, model=replace(recipe.model, arch=arch))


def finetune_epochs(recipe: Recipe) -> int:
    """Every pruned variant's fine-tuning budget in epochs (the sweep recipe's: 2 × 2 + 12 = 16)."""
    f = recipe.finetune
    return recipe.prune.steps * f.epochs_per_step + f.final_epochs


def choice(choices: dict, kind: str, kept: float) -> dict:
    """The ``--choose-{kind}`` result for budget ``kept``; a one-line error when that step has not run."""
    entry = (choices.get(kind) or {}).get("choices", {}).get(str(pct(kept)))
    if entry is None:
        raise HgpruneError(
            f"{WORK / CHOICES[kind]}: no {kind} choice for the {pct(kept)} % budget; run "
            f"`python -m {MODULE} --choose-{kind}` first (on an idle machine)"
        )
    return entry


def variant_recipe(
    base: Recipe,
    variant: str,
    kept: float,
    parent: str | Path,
    choices: dict | None = None,
    schedule: TrainSection | None = None,
) -> Recipe:
    """One variant's recipe at budget ``kept`` of the parent's ORT latency. ``choices``: the ``--choose-*`` files
    (``{"macs": …, "smaller": …}``, needed by ``macs`` and ``smaller``); ``schedule``: the parent's training
    schedule (needed by ``smaller``)."""
    name = f"{variant}-{pct(kept)}"
    p = base.prune
    pruned = replace(base, name=name, baseline=replace(base.baseline, checkpoint=str(parent)))
    if variant in ("latency", "random"):
        target = replace(p.target, kind="latency", kept=kept, runtime=RUNTIME, threads=THREADS, batch=BATCH)
        prune = replace(p, target=target, depth=LATENCY_DEPTH)
        if variant == "random":
            prune = replace(prune, criterion="random", depth_importance="random")
        return replace(pruned, prune=prune)
    if variant == "macs":
        fraction = choice(choices or {}, "macs", kept)["fraction"]
        return replace(pruned, prune=replace(p, target=replace(p.target, kind="macs", kept=fraction)))
    if variant in ("smaller", NEXT):
        picked = choice(choices or {}, "smaller", kept)
        arch = picked["arch"] if variant == "smaller" else picked.get("next_smaller")
        if arch is None:
            what = "no architecture of the sweep family fits" if variant == "smaller" else (
                f"no architecture smaller than {picked['arch']} for")  # fmt: skip
            raise HgpruneError(f"{name}: {what} the {pct(kept)} % budget ({WORK / CHOICES['smaller']})")
        if schedule is None:
            raise HgpruneError(f"{name}: needs the parent's training schedule")
        train = replace(schedule, epochs=schedule.epochs + finetune_epochs(base))
        return replace(
            base,
            name=name,
            model=replace(base.model, arch=arch),
            baseline=replace(base.baseline, checkpoint=None, train=train),
            role=SCRATCH,
            prune=replace(p, steps=0),
        )
    raise HgpruneError(f"unknown variant {variant!r}; valid: {', '.join((*VARIANTS, NEXT))}")


def seed_variants(seed: int, variants) -> list[str]:
    """The variants a seed runs: those asked for, plus ``smaller-next`` for seed NEXT_SEED when ``smaller`` is."""
    names = list(variants)
    return names + [NEXT] if seed == NEXT_SEED and "smaller" in names and NEXT not in names else names


WHAT = {
    "latency": "prune to {k} % of the parent's ONNX Runtime latency with stacks, blocks and channels (the latency "
    "target, Taylor importance for channels, loss importance for depth)",
    "random": "the latency recipe with random channel and depth importance (does scoring matter?)",
    "macs": "today's MACs-targeted default at the MACs fraction that measured closest to {k} % of the parent's ORT "
    "latency",
    "smaller": "train the largest unpruned hourglass of the sweep family within {k} % of the parent's ORT latency "
    "from scratch, for the parent's epochs plus the fine-tuning epochs",
}


def shipped_recipe(recipe: Recipe, variant: str, kept: float) -> str:
    """The recipe file of one column of the study: the keys that differ from the defaults, with how to run it."""
    import yaml

    from hgprune.recipe import differing_keys

    others = f"--set seed=S --set baseline.checkpoint={PARENTS.replace('{seed}', 'S')}"
    parent = "" if recipe.prune.steps == 0 else f"#   other parent seeds: {others}\n"
    about = (f"Equal-latency study (issue 32), column `{variant}` at {pct(kept)} % of the hg8 parent's latency: "
             f"{WHAT[variant].format(k=pct(kept))}. Generated by `python -m {MODULE} --write-recipes` from {RECIPE} "
             f"and the committed choices; results in reports/benchmarks/equal_latency.md. Run it as is (seed "
             f"{recipe.seed}):")  # fmt: skip
    header = "".join(f"# {line}\n" for line in textwrap.wrap(about, 116, break_on_hyphens=False))
    header += f"#   hgprune run {RECIPES.as_posix()}/{recipe.name}.yaml --out runs/{recipe.name}\n{parent}"
    return header + yaml.safe_dump(differing_keys(recipe), sort_keys=False)


def shipped_recipes(choices: dict, parents: str = PARENTS, recipe: str | Path = RECIPE) -> dict[str, str]:
    """``{file name: text}`` of every column's recipe at both budgets (the seed RECIPE_SEED parent)."""
    parent = parents.format(seed=RECIPE_SEED)
    base = base_recipe(recipe, RECIPE_SEED)
    schedule = parent_schedule(parent)
    out = {}
    for kept in BUDGETS:
        for variant in VARIANTS:
            r = variant_recipe(base, variant, kept, parent, choices, schedule)
            out[f"{r.name}.yaml"] = shipped_recipe(r, variant, kept)
    return out


# -- the choices, from measured latency ------------------------------------------------------------------------------


def choose_fraction(latencies: dict[float, float], budget_ms: float) -> dict:
    """The MACs fraction whose architecture measures closest to ``budget_ms`` (ties: the larger fraction), and
    whether any fraction of the grid reaches the budget (measures at most budget × TOLERANCE)."""
    if not latencies:
        raise HgpruneError("choose_fraction: no measured MACs fraction")
    best = min(latencies, key=lambda f: (abs(latencies[f] - budget_ms), -f))
    return {
        "fraction": best,
        "measured_ms": latencies[best],
        "ratio": latencies[best] / budget_ms,
        "reaches": min(latencies.values()) <= budget_ms * TOLERANCE,
    }


def choose_architecture(latencies: dict[str, float], budget_ms: float, family=FAMILY) -> dict:
    """The largest architecture of ``family`` (smallest first) measuring at most ``budget_ms`` × TOLERANCE, and the
    next smaller one; ``arch`` is None when none fits."""
    fits = [a for a in family if a in latencies and latencies[a] <= budget_ms * TOLERANCE]
    if not fits:
        return {"arch": None, "next_smaller": None, "measured_ms": None, "ratio": None}
    arch = fits[-1]
    smaller = [a for a in family[: family.index(arch)] if a in latencies]
    return {
        "arch": arch,
        "next_smaller": smaller[-1] if smaller else None,
        "measured_ms": latencies[arch],
        "ratio": latencies[arch] / budget_ms,
    }


def macs_architecture(recipe: Recipe, fraction: float):
    """The architecture the recipe's MACs target reaches at ``fraction`` through its schedule of steps, on an
    untrained model: with uniform allocation every group keeps the same share whatever the weights, so ``l1`` on
    random weights gives the widths the trained parent gets."""
    from hgprune.models import HourglassNet
    from hgprune.prune import model_size, prune_to_target, schedule_targets
    from hgprune.prune.engine import prune_options

    p, size = recipe.prune, recipe.model.input_size
    if p.allocation != "uniform" or p.target.kind != "macs":
        raise HgpruneError(f"prune: the MACs choice needs uniform allocation and a macs target, got {p.allocation}")
    model = HourglassNet(recipe.model.hourglass_config()).eval()
    reference = model_size(model, size)
    options = {**prune_options(p), "recalibrate_bn": False, "search": None}
    for kept in schedule_targets(fraction, p.steps, kind=p.schedule):
        prune_to_target(model, criterion="l1", kept=kept, reference=reference, input_size=size, progress=False,
                        **options)  # fmt: skip
    return model.eval()


def family_model(recipe: Recipe, arch: str):
    """An untrained ``arch`` of the recipe's family (same N, M, depth, input size)."""
    from hgprune.models import HourglassNet

    return HourglassNet(replace(recipe.model, arch=arch).hourglass_config()).eval()


def measure(models: dict, input_size: int, args) -> tuple[dict[str, float], dict]:
    """Median ORT latency (ms) of each model, all in one interleaved pass, and the record (the caller checked the
    machine was idle before building the models; the load before and after timing is recorded)."""
    from hgprune.latency import TimingSettings, get_runtime, measure_models

    settings = TimingSettings(warmup=args.warmup, repeats=args.repeats, threads=THREADS, batch=BATCH,
                              max_load=args.max_load, force=args.force)  # fmt: skip
    # choose() checked the machine was idle before building the candidates; building them raises the load average
    timed, record = measure_models(list(models.values()), get_runtime(RUNTIME), input_size, settings, checked=True)
    ms = {key: t.median_ms for key, t in zip(models, timed, strict=True)}
    p90 = {key: t.p90_ms for key, t in zip(models, timed, strict=True)}
    meta = {"runtime": RUNTIME, "settings": settings.to_dict(), "load_before": record.load_before,
            "load_after": record.load_after, "environment": record.environment, "p90_ms": p90}  # fmt: skip
    return ms, meta


def choose(kind: str, recipe: Recipe, budgets, args) -> dict:
    """Measure the parent and the candidates of ``kind`` (MACs fractions, or the family's smaller architectures)
    in one pass and choose per budget."""
    from hgprune.prune import model_size
    from hgprune.timing import check_idle, load_average

    load_at_check = load_average()
    check_idle(load_at_check, args.max_load, args.force)  # before building anything: refuse early
    parent = family_model(recipe, ARCH)
    if kind == "macs":
        candidates = {f"{f:.2f}": macs_architecture(recipe, f) for f in MACS_GRID}
    else:
        candidates = {a: family_model(recipe, a) for a in FAMILY[: FAMILY.index(ARCH)]}
    ms, meta = measure({"parent": parent, **candidates}, recipe.model.input_size, args)
    parent_ms = ms.pop("parent")
    result = {"kind": kind, "parent": ARCH, "parent_ms": parent_ms, "measured_ms": ms, "load_at_check": load_at_check,
              **meta}  # fmt: skip
    if kind == "macs":
        size = recipe.model.input_size
        whole = model_size(parent, size)["macs"]
        result["kept_macs"] = {k: model_size(m, size)["macs"] / whole for k, m in candidates.items()}
        grid = {float(k): v for k, v in ms.items()}
        result["choices"] = {str(pct(b)): {"budget": b, "budget_ms": b * parent_ms,
                                           **choose_fraction(grid, b * parent_ms)} for b in budgets}  # fmt: skip
    else:
        result["choices"] = {str(pct(b)): {"budget": b, "budget_ms": b * parent_ms,
                                           **choose_architecture(ms, b * parent_ms)} for b in budgets}  # fmt: skip
    return result


def read_choices(work: Path, archived: Path | None = ARCHIVE) -> dict:
    """Both choice files that exist (``{"macs": …, "smaller": …}``), from ``work`` or else the committed copy in
    ``archived`` (so a fresh clone runs the variants with the choices made once); a corrupt one is a one-line error."""
    out = {}
    for kind, name in CHOICES.items():
        path = work / name
        if not path.exists() and archived is not None:
            path = archived / name
        if path.exists():
            try:
                out[kind] = json.loads(path.read_text())
            except (OSError, ValueError) as exc:
                raise HgpruneError(f"{path}: unreadable choice ({exc.__class__.__name__}); choose again") from None
    return out


def refuse_existing(path: Path, archived: Path | None = ARCHIVE) -> None:
    for existing in (path, *(() if archived is None else (archived / path.name,))):
        if existing.exists():
            raise HgpruneError(f"{existing}: already chosen; the choice is fixed before any variant trains (delete "
                               "it to choose again, only if no variant has trained yet)")  # fmt: skip


def write_choice(path: Path, result: dict, command: str, archived: Path | None = ARCHIVE) -> None:
    refuse_existing(path, archived)
    result = {"command": command, "protocol": PROTOCOL,
              "made": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"), **result}  # fmt: skip
    atomic_write_text(path, json.dumps(result, indent=2, default=str) + "\n")


def archive(
    work: Path, dest: Path, seeds, files=ARCHIVED, last_step: bool = False, family: tuple[str, ...] = ()
) -> list[Path]:
    """Copy the choices and every finished run of ``seeds`` (and the exploratory runs of the ``family``
    architectures, ``work/family/<arch>-*``) from ``work`` to ``dest``: ``files`` (default
    :data:`ARCHIVED`), and with ``last_step`` the last step's checkpoint too; a run that is another's (a symlink) as
    the same symlink. A run without its latency pass (no ``latency.json``) keeps its first and last step checkpoints
    (the parent and the result: what the report reads), so the pass can time it in the archive on another machine
    (``hgprune latency DEST/seedS``); archive it again after the pass to drop them. Unfinished runs are left out; an
    archived run is replaced whole (written beside, then renamed)."""
    import shutil

    from hgprune.rundir import RunDir

    copied = []
    dest.mkdir(parents=True, exist_ok=True)
    for name in CHOICES.values():
        if (work / name).exists():
            shutil.copy2(work / name, dest / name)
    groups = [(f"seed{seed}", "*") for seed in seeds] + [("family", f"{arch}-*") for arch in family]
    for group, pattern in groups:
        for run in sorted((work / group).glob(pattern)) if (work / group).is_dir() else []:
            target = dest / group / run.name
            target.parent.mkdir(parents=True, exist_ok=True)
            if run.is_symlink():
                if target.is_symlink() or target.exists():
                    target.unlink()
                target.symlink_to(run.readlink(), target_is_directory=True)
                continue
            if final_row(run) is None:
                continue
            staging = target.with_name(f".{run.name}.archiving")
            shutil.rmtree(staging, ignore_errors=True)
            steps = RunDir(run).completed_steps()
            timed = (run / "latency.json").exists()
            # not timed yet: step 0 (the parent) and the last step, what the report reads of a latency pass
            kept = sorted({steps[0], steps[-1]}) if steps and not timed else steps[-1:] if last_step else []
            checkpoints = [str(RunDir(run).step_checkpoint(step).relative_to(run)) for step in kept]
            for name in (*files, *checkpoints):
                if (run / name).exists():
                    (staging / name).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(run / name, staging / name)
            shutil.rmtree(target, ignore_errors=True)
            staging.rename(target)
            copied.append(target)
    return copied


# -- the runs --------------------------------------------------------------------------------------------------------


def planned_runs(args) -> list[tuple[Recipe, Path]]:
    """(recipe, run directory) of every run the arguments ask for, in order; every input checked first."""
    work = Path(args.work)
    runs = []
    wanted = (set(args.variants) & {"macs", "smaller", NEXT}) and args.seed
    choices = read_choices(work, Path(args.committed)) if wanted else {}
    for seed in args.seed or []:
        parent = Path(args.parents.format(seed=seed))
        if not parent.exists():
            raise HgpruneError(f"{parent}: parent of seed {seed} not found; train it first ({PROTOCOL}, Parents)")
        base = base_recipe(args.recipe, seed, args.set)
        schedule = parent_schedule(parent) if {"smaller", NEXT} & set(args.variants) else None
        for kept in args.budgets:
            for variant in seed_variants(seed, args.variants):
                if variant == NEXT and choice(choices, "smaller", kept).get("next_smaller") is None:
                    continue  # exploratory only: nothing smaller than the chosen architecture (e.g. hg1)
                recipe = variant_recipe(base, variant, kept, parent, choices, schedule)
                runs.append((recipe, work / f"seed{seed}" / recipe.name))
    for arch in args.family or []:
        base = base_recipe(args.recipe, 0, args.set, arch=arch)
        parent = (base.baseline.checkpoint or "").replace(ARCH_FIELD, arch)
        if not Path(parent).exists():
            raise HgpruneError(f"{parent}: the sweep's seed-0 parent of {arch} not found (scripts/sweep_parents.py)")
        for kept in args.budgets:
            recipe = variant_recipe(base, "latency", kept, parent)
            recipe = replace(recipe, name=f"{arch}-{recipe.name}")
            runs.append((recipe, work / "family" / recipe.name))
    return runs


def describe(recipe: Recipe) -> str:
    p, t = recipe.prune, recipe.prune.target
    if not p.steps:
        train = recipe.baseline.train
        return f"{recipe.model.arch} from scratch, {train.epochs} epochs, lr {train.lr:g}, seed {recipe.seed}"
    budget = f"{t.kind} {t.kept:g}" + (f" ({t.runtime}, {t.threads} threads, batch {t.batch})" if t.kind == "latency"
                                        else "")  # fmt: skip
    return (f"{recipe.model.arch} from {recipe.baseline.checkpoint}: {budget}, depth {p.depth} "
            f"({p.depth_importance}), criterion {p.criterion}, {p.steps} step(s), seed {recipe.seed}")  # fmt: skip


def execute(
    recipe: Recipe, out: Path, what: str, dry_run: bool, resume: bool, command: str, archived: Path | None = None
) -> None:
    """Print the run (``what`` it is, or that it finished) and run it unless it finished (in ``out``, or in its
    committed copy ``archived``) or this is a dry run."""
    if archived is not None and final_row(archived) is not None:  # finished in an earlier session (maybe gone)
        print(f"{out}: finished, archived in {archived}", flush=True)
        return
    finished = final_row(out) is not None
    print(f"{out}: {'finished' if finished else what}", flush=True)
    if finished or dry_run:
        return
    from hgprune.runner import Runner

    Runner(recipe, out, resume=resume, command=command).execute()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default=RECIPE)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="recipe override")
    parser.add_argument("--parents", default=PARENTS, help="parent checkpoint with {seed} (default %(default)s)")
    parser.add_argument("--work", default=str(WORK), help="run directories and choice files (default %(default)s)")
    parser.add_argument("--seed", type=int, nargs="+", help=f"parent seeds to run (the protocol's: {SEEDS})")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=[*VARIANTS, NEXT])
    parser.add_argument("--budgets", type=float, nargs="+", default=list(BUDGETS))
    parser.add_argument("--family", nargs="+", choices=FAMILY[:-1], help="exploratory: latency variants of the "
                        "sweep's seed-0 parents of these architectures")  # fmt: skip
    parser.add_argument("--resume", action="store_true", help="continue run directories that exist")
    parser.add_argument("--dry-run", action="store_true", help="print the runs and their settings, run nothing")
    parser.add_argument("--archive", action="store_true", help="copy the finished runs of --seed (or of "
                        "--family) and the choices to --committed (after the latency pass), run nothing")  # fmt: skip
    parser.add_argument("--committed", default=str(ARCHIVE), help="the committed choices and finished runs: the "
                        "choices used where --work has none (default %(default)s)")  # fmt: skip
    parser.add_argument("--write-recipes", action="store_true", help=f"write a recipe per column to {RECIPES} "
                        "(from the committed choices), run nothing")  # fmt: skip
    parser.add_argument("--choose-macs", action="store_true", help="measure the MACs grid, write the choice")
    parser.add_argument("--choose-smaller", action="store_true", help="measure hg1–hg7, write the choice")
    timing = parser.add_argument_group("timing (the choices)")
    timing.add_argument("--warmup", type=int, default=5)
    timing.add_argument("--repeats", type=int, default=20)
    timing.add_argument("--max-load", type=float, default=0.5, help="refuse above this 1-minute load average")
    timing.add_argument("--force", action="store_true", help="time even on a busy machine (not for the study)")
    args = parser.parse_args(argv)
    command = " ".join(["python", "-m", MODULE, *(sys.argv[1:] if argv is None else argv)])
    try:
        work = Path(args.work)
        for kind, asked in (("macs", args.choose_macs), ("smaller", args.choose_smaller)):
            if asked:
                path = work / CHOICES[kind]
                refuse_existing(path, Path(args.committed))  # before any measurement
                result = choose(kind, base_recipe(args.recipe, 0, args.set), args.budgets, args)
                write_choice(path, result, command, Path(args.committed))
                for key, c in result["choices"].items():
                    picked = c.get("fraction", c.get("arch"))
                    print(f"{kind} {key} %: budget {c['budget_ms']:.3f} ms → {picked} "
                          f"({c['measured_ms'] or float('nan'):.3f} ms)")  # fmt: skip
                print(f"wrote {path}")
        if args.write_recipes:
            RECIPES.mkdir(parents=True, exist_ok=True)
            for name, text in shipped_recipes(read_choices(work, Path(args.committed)), args.parents,
                                              args.recipe).items():  # fmt: skip
                atomic_write_text(RECIPES / name, text)
                print(f"wrote {RECIPES / name}")
            return 0
        if args.archive:
            seeds = args.seed or ([] if args.family else SEEDS)
            for path in archive(work, Path(args.committed), seeds, family=tuple(args.family or ())):
                print(f"archived {path}")
            return 0
        runs = planned_runs(args)
        if not runs and not (args.choose_macs or args.choose_smaller):
            raise HgpruneError("nothing to do: give --seed S, --family ARCH, --choose-macs or --choose-smaller")
        done: dict[tuple[Path, str], Path] = {}  # a run whose recipe (but its name) is an earlier one's is that run
        for recipe, out in runs:
            key = (out.parent, repr(replace(recipe, name="same")))
            if key in done and not out.exists():
                print(f"{out}: the same run as {done[key]} (e.g. one MACs fraction for both budgets)", flush=True)
                if not args.dry_run:
                    out.symlink_to(done[key].name, target_is_directory=True)
                continue
            done.setdefault(key, out)
            archived = Path(args.committed) / out.relative_to(work)
            execute(recipe, out, describe(recipe), args.dry_run, args.resume, command, archived)
    except HgpruneError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
