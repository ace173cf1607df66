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
from hgprune.preview import dry_run_lines
from hgprune.recipe import load_recipe
from hgprune.report import write_report
from hgprune.runner import Runner
from hgprune.settings import MAX_THREADS, Int, Jobs, flag
from hgprune.sweep import check_imported_baselines, expand


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
    launch.add_argument("--jobs", **flag(Jobs, 1), metavar="K", help="(local) entries running at once (default 1)")
    launch.add_argument("--status", action="store_true", help="show the launched entries' states and logs, run nothing")
    for name, kind, text in SLURM_FLAGS:
        launch.add_argument(name, type=kind, help=f"(slurm) {text}")
    launch.add_argument(
        "--slurm-extra", action="append", default=[], metavar="KEY=VALUE", help="(slurm) any other sbatch option"
    )


# (slurm) flag, type, help; each is the SlurmSettings field of the same name
SLURM_FLAGS = (
    ("--partition", str, "partition (sbatch --partition)"),
    (
        "--time-min",
        flag(Int(1, 525_600))["type"],
        f"minutes per job (default {SlurmSettings.time_min}); a timed-out job is requeued and resumes",
    ),
    ("--cpus-per-task", flag(Int(1, MAX_THREADS))["type"], "CPU cores per job"),
    ("--gpus-per-task", flag(Int(0, 1024))["type"], "GPUs per job"),
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
        for line in dry_run_lines(recipe, selected, out):
            print(line)
        return 0

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


def _combined_report(recipe, entries, out: Path, command: str | None) -> None:
    runs = [out / name for name, _ in entries]
    write_report(runs, out / "report", title=f"Sweep {recipe.name}", commands=[command or ""])
    print(f"combined report: {out / 'report' / 'report.md'}")


def _launch(args: argparse.Namespace, recipe, entries, out: Path, command: str | None) -> int:
    """The entries as separate processes (hgprune.launch); the local launcher waits and then reports."""
    if recipe.sweep is None:
        raise HgpruneError(f"--launcher: {args.recipe} has no sweep section; run it without --launcher")
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
