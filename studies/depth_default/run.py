"""Which ``prune.depth`` should a MACs target use by default: channels only, or depth and channels together? (issue 30)

Per hg8 parent seed (the equal-latency study's committed parents, seeds 1–3) and MACs target (50 % and 25 %), the
sweep recipe's MACs default (taylor, uniform allocation, 2 linear steps, 16 fine-tuning epochs with distillation from
the parent) runs twice: ``prune.depth: none`` (channels only, today's default) and ``prune.depth: all`` (stacks,
blocks and channels planned together, depth importance ``loss``). The two are compared by final PCKh, paired by
seed, and by measured latency; the decision rule was fixed before any run finished
(``reports/depth_default/protocol.md``). Commands, in order, from the repository root::

    OMP_NUM_THREADS=1 python -m studies.depth_default.run --seed 1 2 3 --resume   # runs/depth_default/seedS/<d>-<K>
    python -m studies.depth_default.run --seed 1 2 3 --archive      # as runs finish → reports/depth_default/runs
    hgprune latency reports/depth_default/runs/seed1 reports/depth_default/runs/seed2 \\
        reports/depth_default/runs/seed3 --runtime ort --runtime torch --threads 2   # all finished: idle, one pass
    python -m studies.depth_default.run --report                    # → reports/depth_default/report.{json,md}
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from dataclasses import replace
from pathlib import Path

from benchmarks.accuracy import paired
from hgprune.errors import HgpruneError
from hgprune.fsutil import atomic_write_text
from hgprune.recipe import Recipe
from studies.equal_latency.report import read_run
from studies.equal_latency.run import PARENTS, RECIPE, SEEDS, archive, base_recipe, execute, pct

MODULE = "studies.depth_default.run"
WORK = Path("runs/depth_default")
ARCHIVE = Path("reports/depth_default/runs")
REPORT = Path("reports/depth_default")
PROTOCOL = "reports/depth_default/protocol.md"
TARGETS = (0.5, 0.25)  # kept MACs
DEPTHS = ("none", "all")  # channels only (today's default) vs depth and channels together
# what a finished run keeps in the archive: its record and the last step's checkpoint (timed by a later latency pass
# over the archive; the final model is the same weights, and step 0 is the committed parent)
ARCHIVED = ("recipe.yaml", "run.json", "metrics.csv", "metrics.json", "latency.json", "allocation_step_001.json",
            "allocation_step_002.json")  # fmt: skip
MARGIN = 1.0  # PCKh points: `all` is "no worse" when the 95 % interval of (all − none) lies above −MARGIN


def depth_recipe(base: Recipe, depth: str, kept: float, parent: str | Path) -> Recipe:
    """The sweep recipe's MACs default at ``kept`` from ``parent``, with ``prune.depth: depth``."""
    if depth not in DEPTHS:
        raise HgpruneError(f"depth {depth!r}: this study compares {', '.join(DEPTHS)}")
    p = base.prune
    if p.target.kind != "macs":
        raise HgpruneError(f"prune.target.kind: the study needs the recipe's MACs target, got {p.target.kind!r}")
    prune = replace(p, target=replace(p.target, kept=kept), depth=depth)
    return replace(base, name=f"{depth}-{pct(kept)}", baseline=replace(base.baseline, checkpoint=str(parent)),
                   prune=prune)  # fmt: skip


def planned_runs(seeds, targets, depths, recipe=RECIPE, parents=PARENTS, overrides=(), work=WORK):
    """(recipe, run directory) of each run, target by target, seed by seed, the depths of a pair together."""
    runs = []
    for kept in targets:
        for seed in seeds:
            parent = Path(parents.format(seed=seed))
            if not parent.exists():
                raise HgpruneError(f"{parent}: parent of seed {seed} not found (reports/equal_latency/STATUS.md)")
            base = base_recipe(recipe, seed, overrides)
            for depth in depths:
                r = depth_recipe(base, depth, kept, parent)
                runs.append((r, Path(work) / f"seed{seed}" / r.name))
    return runs


def analyse(work: Path, seeds, targets=TARGETS) -> dict:
    """Per target: each depth mode's PCKh and measured latencies per seed, the paired differences (all − none) and
    the protocol's verdict."""
    out: dict = {"targets": {}, "margin": MARGIN}
    verdicts = []
    for kept in targets:
        rows = {d: {s: read_run(Path(work) / f"seed{s}" / f"{d}-{pct(kept)}") for s in seeds} for d in DEPTHS}
        rows = {d: {s: r for s, r in per.items() if r is not None} for d, per in rows.items()}
        entry: dict = {}
        for d in DEPTHS:
            entry[d] = {field: {s: r[field] for s, r in rows[d].items() if r.get(field) is not None}
                        for field in ("pckh", "parent_pckh", "ort_ms", "eager_ms", "parent_ort_ms",
                                      "parent_eager_ms", "wall_s")}  # fmt: skip
        entry["pckh_all_minus_none"] = paired(entry["all"]["pckh"], entry["none"]["pckh"])
        speed = {}
        for rt in ("ort_ms", "eager_ms"):
            common = sorted(set(entry["all"][rt]) & set(entry["none"][rt]))
            speed[rt] = {s: entry["none"][rt][s] / entry["all"][rt][s] for s in common}  # > 1: all is faster
        entry["speedup_all_over_none"] = speed
        diff, ort = entry["pckh_all_minus_none"], speed["ort_ms"]
        complete = diff is not None and diff["n"] == len(seeds) and len(ort) == len(seeds)
        no_worse = bool(complete and diff["low"] >= -MARGIN)  # plain bools: the report is JSON
        faster = bool(complete and all(v > 1.0 for v in ort.values()))
        entry["verdict"] = {"complete": complete, "no_worse": no_worse, "faster_in_ort": faster}
        verdicts.append(entry["verdict"])
        out["targets"][str(pct(kept))] = entry
    complete = all(v["complete"] for v in verdicts)
    passed = [v["no_worse"] and v["faster_in_ort"] for v in verdicts]
    failed = any(v["complete"] and not ok for v, ok in zip(verdicts, passed, strict=True))
    out["complete"] = complete
    # addendum 1: `all` must pass at both targets, so one complete target where it fails decides `none`
    out["default"] = "none" if failed else ("all" if complete and all(passed) else None)
    return out


def _ci(d: dict | None) -> str:
    return "–" if d is None else f"{d['mean']:+.2f} [{d['low']:+.2f}, {d['high']:+.2f}] (n={d['n']})"


def _mean(values: dict, digits: int = 3) -> str:
    return f"{statistics.fmean(values.values()):.{digits}f}" if values else "–"


def markdown(result: dict, command: str) -> str:
    lines = [
        "# Depth pruning as the default for MACs targets? (issue 30)",
        "",
        f"Protocol, fixed before any run finished: [protocol.md](protocol.md). Regenerate with `{command}` (runs in "
        "`reports/depth_default/runs`: copied there by `--archive`, then timed there by one latency pass).",
        "",
        "hg8 at the sweep's size, the sweep recipe's MACs default (taylor, uniform, 2 linear steps, 16 fine-tuning "
        "epochs, distillation), `prune.depth: none` against `all`, per parent seed. PCKh is the recipe's final "
        "validation PCKh; latencies are medians from one `hgprune latency` pass (2 threads, batch 1).",
        "",
        "| MACs kept | depth | PCKh per seed | mean PCKh | parents' mean PCKh | mean ORT ms | mean eager ms |",
        "|---|---|---|---|---|---|---|",
    ]
    for key, entry in result["targets"].items():
        for d in DEPTHS:
            e = entry[d]
            per = ", ".join(f"{s}: {v:.2f}" for s, v in sorted(e["pckh"].items())) or "–"
            lines.append(f"| {key} % | {d} | {per} | {_mean(e['pckh'], 2)} | {_mean(e['parent_pckh'], 2)} | "
                         f"{_mean(e['ort_ms'])} | {_mean(e['eager_ms'])} |")  # fmt: skip
    lines += ["", "| MACs kept | PCKh all − none, mean [95 % CI] | ORT speedup of all over none, per seed | "
              "eager speedup, per seed | no worse (CI above −margin) | faster in ORT (every seed) |",
              "|---|---|---|---|---|---|"]  # fmt: skip
    for key, entry in result["targets"].items():
        sp = entry["speedup_all_over_none"]
        fmt = lambda d: ", ".join(f"{v:.2f}×" for _, v in sorted(d.items())) or "–"  # noqa: E731
        v = entry["verdict"]
        no_worse, faster = (v["no_worse"], v["faster_in_ort"]) if v["complete"] else ("–", "–")
        lines.append(f"| {key} % | {_ci(entry['pckh_all_minus_none'])} | {fmt(sp['ort_ms'])} | {fmt(sp['eager_ms'])}"
                     f" | {no_worse} | {faster} |")  # fmt: skip
    lines.append("")
    if result["default"] is None:
        lines.append("**Incomplete:** not every pair has finished and been measured; no default is chosen yet.")
    elif not result["complete"]:
        lines.append(f"**Verdict (protocol addendum 1):** `all` fails at a complete target, so the default stays "
                     f"`prune.depth: {result['default']}` whatever the other target shows.")  # fmt: skip
    else:
        lines.append(f"**Verdict (the protocol's rule, margin {result['margin']:g} PCKh):** the default is "
                     f"`prune.depth: {result['default']}`.")  # fmt: skip
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default=RECIPE)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="recipe override")
    parser.add_argument("--parents", default=PARENTS, help="parent checkpoint with {seed} (default %(default)s)")
    parser.add_argument("--work", default=str(WORK), help="run directories (default %(default)s)")
    parser.add_argument("--seed", type=int, nargs="+", default=list(SEEDS))
    parser.add_argument("--targets", type=float, nargs="+", default=list(TARGETS), help="kept MACs")
    parser.add_argument("--depths", nargs="+", default=list(DEPTHS), choices=DEPTHS)
    parser.add_argument("--resume", action="store_true", help="continue run directories that exist")
    parser.add_argument("--dry-run", action="store_true", help="print the runs, run nothing")
    parser.add_argument("--archive", action="store_true", help="copy finished runs to --committed, run nothing")
    parser.add_argument("--committed", default=str(ARCHIVE), help="the archived runs: a run finished there is not "
                        "run again; the report reads them (default %(default)s)")  # fmt: skip
    parser.add_argument("--report", action="store_true", help="write OUT/report.{json,md} from the runs in "
                        "--committed")  # fmt: skip
    parser.add_argument("--out", default=str(REPORT), help="the report's folder (default %(default)s)")
    args = parser.parse_args(argv)
    command = " ".join(["python", "-m", MODULE, *(sys.argv[1:] if argv is None else argv)])
    try:
        if args.archive:
            for path in archive(Path(args.work), Path(args.committed), args.seed, files=ARCHIVED, last_step=True):
                print(f"archived {path}")
            return 0
        if args.report:
            result = analyse(Path(args.committed), args.seed, args.targets)
            out = Path(args.out)
            out.mkdir(parents=True, exist_ok=True)
            atomic_write_text(out / "report.json", json.dumps({"command": command, **result}, indent=2) + "\n")
            atomic_write_text(out / "report.md", markdown(result, command))
            print(markdown(result, command))
            return 0
        for recipe, out in planned_runs(args.seed, args.targets, args.depths, args.recipe, args.parents, args.set,
                                        args.work):  # fmt: skip
            p = recipe.prune
            what = f"hg8 seed {recipe.seed}: macs {p.target.kept:g}, depth {p.depth} ({p.depth_importance})"
            archived = Path(args.committed) / out.parent.name / out.name
            execute(recipe, out, what, args.dry_run, args.resume, command, archived)
    except HgpruneError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
