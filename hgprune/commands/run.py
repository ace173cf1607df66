"""``hgprune run RECIPE``: the whole prune → fine-tune study described by a YAML recipe."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from hgprune.errors import HgpruneError
from hgprune.launch import (
    FAILED,
    LAUNCHERS,
    LOGS_DIR,
    SKIPPED,
    LaunchOptions,
    SlurmSettings,
    get_launcher,
    plan_entries,
    status,
)
from hgprune.models import build_model, model_parts, probe_size
from hgprune.models.checkpoints import load_checkpoint
from hgprune.prune import get_criterion, prune_to_target
from hgprune.recipe import load_recipe
from hgprune.report import write_report
from hgprune.runner import Runner
from hgprune.stages import plan
from hgprune.sweep import expand
from hgprune.train.checkpointing import CHECKPOINT, check_finished


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("recipe", help="YAML recipe (see recipes/)")
    parser.add_argument("--out", help="run directory (default: output.dir of the recipe, else runs/<name>)")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY.PATH=VALUE", help="override a recipe value (repeatable)"
    )
    parser.add_argument("--dry-run", action="store_true", help="validate and print the planned steps, train nothing")
    parser.add_argument(
        "--resume", action="store_true", help="continue an interrupted run from its last completed step"
    )
    parser.add_argument("--only", action="append", default=[], metavar="NAME", help="run only these sweep entries")
    parser.add_argument("--no-report", action="store_true", help="(sweeps) skip the combined report at the end")
    launch = parser.add_argument_group(
        "launching a sweep's entries as separate processes (each runs `hgprune run RECIPE --only NAME --resume`)"
    )
    launch.add_argument(
        "--launcher", choices=tuple(LAUNCHERS), help="local: --jobs processes here; slurm: one job each"
    )
    launch.add_argument("--jobs", type=int, default=1, metavar="K", help="(local) entries running at once (default 1)")
    launch.add_argument("--status", action="store_true", help="show the launched entries' states and logs, run nothing")
    for flag, kind, text in SLURM_FLAGS:
        launch.add_argument(flag, type=kind, help=f"(slurm) {text}")
    launch.add_argument(
        "--slurm-extra", action="append", default=[], metavar="KEY=VALUE", help="(slurm) any other sbatch option"
    )


# (slurm) flag, type, help; each is the SlurmSettings field of the same name
SLURM_FLAGS = (
    ("--partition", str, "partition (sbatch --partition)"),
    ("--time-min", int, f"minutes per job (default {SlurmSettings.time_min}); a timed-out job is requeued and resumes"),
    ("--cpus-per-task", int, "CPU cores per job"),
    ("--gpus-per-task", int, "GPUs per job"),
    ("--mem", str, "memory per job, e.g. 32G"),
    ("--account", str, "account to charge"),
    ("--qos", str, "quality of service"),
)


def main(args: argparse.Namespace) -> int:

    recipe = load_recipe(args.recipe, args.set)
    out = Path(args.out or recipe.output.dir or Path("runs") / recipe.name)
    entries = expand(recipe, out)
    known = [name for name, _ in entries]
    unknown = [name for name in args.only if name not in known]
    if unknown:
        raise HgpruneError(f"--only {unknown[0]}: no such sweep entry; valid: {', '.join(known)}")
    selected = [(n, r) for n, r in entries if not args.only or n in args.only]
    if args.dry_run:
        return _dry_run(recipe, selected, out)

    if args.status:
        return _status(out, known if recipe.sweep is not None else None)
    command = "hgprune " + shlex.join(sys.argv[1:]) if sys.argv[1:] else None
    if recipe.sweep is not None:
        check_imported_baselines(selected)
    if args.launcher:
        return _launch(args, recipe, entries, out, command)
    if recipe.sweep is None:
        Runner(recipe, out, resume=args.resume, command=command).execute()
        return 0
    for i, (name, entry) in enumerate(selected, 1):
        print(f"=== sweep entry {i}/{len(selected)}: {name} ===", flush=True)
        Runner(entry, out / name, resume=args.resume, command=command).execute()
    if not args.no_report and not args.only:
        _combined_report(recipe, entries, out, command)
    return 0


def check_imported_baselines(selected: list) -> None:
    """Refuse a sweep before its first entry starts when an imported baseline is an unfinished ``hgprune train``
    checkpoint (``check_finished``) or another architecture than its entry's, rather than hours later when that
    entry's turn comes. Only files named
    ``checkpoint.pth.tar`` can be unfinished; the sweep's own baselines (``final/model.pt``) and missing files are
    left to their entries."""
    checked = set()
    for _, entry in selected:
        path = entry.baseline.checkpoint
        if not path or path in checked or Path(path).name != CHECKPOINT or not Path(path).is_file():
            continue
        checked.add(path)
        check_finished(path, load_checkpoint(path, expect=entry.model.hourglass_config())[1]["meta"])


def _combined_report(recipe, entries, out: Path, command: str | None) -> None:
    runs = [out / name for name, _ in entries]
    write_report(runs, out / "report", title=f"Sweep {recipe.name}", commands=[command or ""])
    print(f"combined report: {out / 'report' / 'report.md'}")


def _launch(args: argparse.Namespace, recipe, entries, out: Path, command: str | None) -> int:
    """The entries as separate processes (hgprune.launch); the local launcher waits and then reports."""
    if recipe.sweep is None:
        raise HgpruneError(f"--launcher: {args.recipe} has no sweep section; run it without --launcher")
    if args.jobs < 1:
        raise HgpruneError(f"--jobs: must be >= 1, got {args.jobs}")
    slurm = {_dest(flag): getattr(args, _dest(flag)) for flag, _, _ in SLURM_FLAGS}
    given = [flag for flag, _, _ in SLURM_FLAGS if slurm[_dest(flag)] is not None]
    if args.launcher != "slurm" and (given or args.slurm_extra):
        raise HgpruneError(f"{(given or ['--slurm-extra'])[0]}: applies to --launcher slurm only")
    extra = {}
    for item in args.slurm_extra:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise HgpruneError(f"--slurm-extra {item!r}: expected KEY=VALUE (an sbatch option without its dashes)")
        extra[key.strip()] = value
    settings = SlurmSettings(**{k: v for k, v in slurm.items() if v is not None}, extra=extra)
    planned = plan_entries(args.recipe, entries, out, args.set, args.only)
    result = get_launcher(args.launcher)(planned, out, LaunchOptions(jobs=args.jobs, slurm=settings))
    if args.launcher == "slurm":
        print(
            f"{len(result)} Slurm job(s) submitted. Follow them: hgprune run {args.recipe} --out {out} --status; "
            f"when they are done, the combined report: hgprune report {out} --out {out / 'report'}"
        )
        return 0
    failed = [name for name, state in result.items() if state == FAILED]
    skipped = [name for name, state in result.items() if state == SKIPPED]
    if failed or skipped:
        raise HgpruneError(
            f"sweep: {len(failed)} entry(ies) failed ({', '.join(failed) or '-'}), {len(skipped)} skipped as their "
            f"dependants; logs in {out / LOGS_DIR}; fix the cause and launch again (finished steps are kept)"
        )
    if not args.no_report and not args.only:
        _combined_report(recipe, entries, out, command)
    return 0


def _dest(flag: str) -> str:
    return flag.lstrip("-").replace("-", "_")


def _status(out: Path, names: list[str] | None) -> int:
    rows = status(out, names)
    columns = list(rows[0]) if rows else []
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in columns}
    print("  ".join(c.ljust(widths[c]) for c in columns))
    for row in rows:
        print("  ".join(str(row[c]).ljust(widths[c]) for c in columns))
    return 0


def _dry_run(recipe, entries, out: Path) -> int:

    previews: dict[tuple, str] = {}  # uniform plans, shown for a single run only (see _allocation_lines)
    for name, entry in entries:
        if entry.prune.steps:
            get_criterion(entry.prune.criterion)  # unknown names / bad module:Class fail here, before any training
        produced_here = entry.baseline.checkpoint and Path(entry.baseline.checkpoint).is_relative_to(out)
        if entry.baseline.checkpoint and not produced_here and not Path(entry.baseline.checkpoint).exists():
            print(f"warning: baseline.checkpoint {entry.baseline.checkpoint} does not exist here")
        if entry.data.dataset == "mpii":
            if not entry.data.image_path:  # annotations default to the file hgprune ships, as in the seed
                raise HgpruneError(f"{name}: data.image_path is required for dataset mpii")
            for key in ("annotations", "image_path"):
                value = getattr(entry.data, key)
                if value and not Path(value).exists():
                    print(f"warning: data.{key} {value} does not exist here")
        target = entry.prune.target
        print(
            f"{name}: {entry.model.arch} N={entry.model.N} M={entry.model.M} @ {entry.model.input_size}, "
            f"criterion {entry.prune.criterion}, keep {100 * target.kept:.0f} % of {target.kind} "
            f"in {entry.prune.steps} {entry.prune.schedule} step(s) → {out if recipe.sweep is None else out / name}"
        )
        if entry.prune.steps:
            for line in _allocation_lines(entry, previews if len(entries) == 1 else None):
                print(f"  {line}")
        print(f"  {'step':>4} {'kept':>6} {'MACs (conv)':>16} {'params':>14}  note")
        for row in plan(entry):
            macs = f"{row['macs']:,.0f}" if row["macs"] is not None else "-"
            params = f"{row['params']:,.0f}" if row["params"] is not None else "-"
            print(f"  {row['step']:>4} {row['kept']:>6.3f} {macs:>16} {params:>14}  {row['note']}")
    return 0


ALLOCATION_NOTES = {
    "uniform": "every prunable group loses the same fraction, ranked within the group",
    "global": "scores / group mean pooled across groups: the widths follow the trained weights (chosen at run time)",
    "search": "{candidates} candidates (uniform, global, sampled per-part widths) scored after BN re-estimation on "
    "{batches} training batches, PCKh on {holdout} held-out training samples; chosen at run time",
}


def _allocation_lines(entry, previews: dict[tuple, str] | None) -> list[str]:
    """The allocation the run will use and, with ``previews`` (a cache), the uniform plan's kept channels per part
    at the final target.

    The uniform plan depends on the architecture only, so it is computed on an untrained model of the recipe's
    shape — a few seconds for hg8, which is why sweeps (``previews=None``) show the allocation only."""
    p, m = entry.prune, entry.model
    lines = [f"allocation: {p.allocation} — {ALLOCATION_NOTES[p.allocation].format(**vars(p.search))}"]
    if p.recalibrate_bn:
        lines.append(f"BatchNorm statistics re-estimated after every prune on {p.search.batches} training batches")
    if previews is None:
        return lines
    key = (m.arch, m.N, m.M, m.num_joints, m.depth, m.input_size, p.target.kind, p.target.kept, p.round_to,
           p.round_mode, p.max_layer_ratio, p.prune_trunk, tuple(sorted(p.part_ratios.items())),
           p.tolerance)  # fmt: skip
    if key not in previews:
        # every conv's MACs scale with the input area alike, so the smallest valid size gives the same fractions
        size = probe_size(m.depth)
        model = build_model(m.arch, N=m.N, M=m.M, num_joints=m.num_joints, input_size=size, depth=m.depth)
        result = prune_to_target(
            model, criterion="l1", kind=p.target.kind, kept=p.target.kept, input_size=size,
            allocation="uniform", part_ratios=dict(p.part_ratios) or None, max_layer_ratio=p.max_layer_ratio,
            round_to=p.round_to, round_mode=p.round_mode, prune_trunk=p.prune_trunk, tolerance=p.tolerance,
        )  # fmt: skip
        totals: dict[str, list[int]] = {name: [0, 0] for name in [*model_parts(model), "trunk"]}
        for unit, v in result.allocation["parts"].items():  # hourglass levels summed into their part
            totals[unit.split(".")[0]][0] += v["kept"]
            totals[unit.split(".")[0]][1] += v["width"]
        parts = ", ".join(f"{name} {kept}/{width}" for name, (kept, width) in totals.items() if width)
        previews[key] = f"{parts} (kept {p.target.kind} {result.planned_fraction:.3f})"
    label = "plan" if p.allocation == "uniform" else "uniform plan for comparison"
    if p.depth != "none":
        label += f" (channels only; depth {p.depth} removes the units listed per step below first)"
    lines.append(f"{label} at the final target, kept/original channels per part: {previews[key]}")
    return lines
