"""``hgprune report``: tables, Pareto figures and a Markdown report from one or more run directories."""

from __future__ import annotations

import argparse
from pathlib import Path

from hgprune.errors import HgpruneError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "run_dirs",
        nargs="+",
        metavar="RUN_DIR",
        help="run directories (holding metrics.csv), or a sweep directory whose sub-directories are runs",
    )
    parser.add_argument("--out", help="output directory (default: RUN_DIR/report for a single run)")
    parser.add_argument("--title", help="report title (default: the run name, or the number of runs)")


def main(args: argparse.Namespace) -> int:
    from hgprune.report import report_command, write_report

    out = args.out
    if out is None:
        if len(args.run_dirs) > 1:
            raise HgpruneError("several run directories: give --out DIR for the combined report")
        out = str(Path(args.run_dirs[0]) / "report")
    command = report_command(args.run_dirs, out, args.title)
    report = write_report(args.run_dirs, out, title=args.title, commands=[command])
    files = sorted(p for p in report.parent.rglob("*") if p.is_file())
    print(f"wrote {report} ({len(files)} files in {report.parent})")
    return 0
