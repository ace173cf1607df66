"""Reports from run directories: tables (CSV + Markdown), figures (PNG + SVG) and ``report.md``.

``hgprune run`` calls :func:`write_report` at the end of every run (``RUN/report``); ``hgprune report`` merges any
number of run directories (e.g. a sweep spread over machines) into one report. Output depends only on the run
directories, so re-running gives byte-identical files.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from hgprune import __version__
from hgprune.errors import HgpruneError
from hgprune.fsutil import atomic_write_text
from hgprune.report import figures, latency_figures, markdown
from hgprune.report.runs import RunData, load_runs
from hgprune.report.tables import (
    all_steps_table,
    csv_text,
    kept_channels,
    markdown_table,
    pareto_mask,
    pruned_vs_scratch_table,
    speedup_efficiency,
    steps_table,
    summary_table,
)

__all__ = ["RunData", "load_runs", "pareto_mask", "report_command", "speedup_efficiency", "write_report"]


def report_command(run_dirs: list[str | os.PathLike], out_dir: str | os.PathLike, title: str | None = None) -> str:
    """The ``hgprune report`` command line that regenerates a report."""
    argv = ["hgprune", "report", *(str(p) for p in run_dirs), "--out", str(out_dir)]
    if title:
        argv += ["--title", title]
    return shlex.join(argv)


def write_report(
    run_dirs: list[str | os.PathLike],
    out_dir: str | os.PathLike,
    title: str | None = None,
    commands: list[str] | None = None,
) -> Path:
    """Write the combined report of ``run_dirs`` into ``out_dir``; returns the path of ``report.md``.

    ``commands`` are the commands that produced the report (default: the equivalent ``hgprune report`` line); the
    ``command`` recorded in each run's ``run.json`` is listed before them.
    """
    runs = load_runs(list(run_dirs))
    out = Path(out_dir)
    with staged(out) as stage:  # every file is made first; the report appears whole or not at all
        _render(runs, run_dirs, out_dir, stage, title, commands)
    return out / "report.md"


def _render(runs, run_dirs, out_dir, stage: Path, title: str | None, commands: list[str] | None) -> None:
    """Write the report of ``runs`` into ``stage``; links and commands name ``out_dir``, where it is published."""
    out = Path(out_dir)
    given_title = title
    title = title or (f"hgprune report: {runs[0].name}" if len(runs) == 1 else f"hgprune report: {len(runs)} runs")

    table = all_steps_table(runs)
    summary = summary_table(runs)
    _write_table(stage / "tables" / "all_steps", table, markdown=False)
    _write_table(stage / "tables" / "summary", summary)
    pairs = pruned_vs_scratch_table(runs)
    if len(pairs):
        _write_table(stage / "tables" / "pruned_vs_scratch", pairs)
    steps = {}
    for run in runs:
        if not run.metrics.empty:
            steps[run.slug] = steps_table(run)
            _write_table(stage / "tables" / f"steps_{run.slug}", steps[run.slug])

    figure_paths: dict[str, str] = {}
    with figures.rc_context():
        drawn = {
            "pareto": figures.pareto_figure(table) if len(table) else None,
            "latency": figures.latency_figure(table) if len(table) else None,
            "pckh_groups": figures.pckh_groups_figure(runs, table) if len(table) else None,
            **(latency_figures.pareto_latency_figures(table, runs) if len(table) else {}),
        }
        for run in runs:
            if run.checkpoint is not None:
                kept, config = kept_channels(run.checkpoint)
                _write_table(stage / "tables" / f"kept_channels_{run.slug}", kept, markdown=False)
                source = run.checkpoint.relative_to(run.path).as_posix()
                drawn[f"kept_channels_{run.slug}"] = figures.kept_channels_figure(run, kept, source, config)
        for key, fig in drawn.items():
            if fig is not None:
                figures.save_figure(fig, stage / "figures", key)
                figure_paths[key] = f"figures/{key}.png"

    listed = [r.command for r in runs if r.command] + list(commands or [report_command(run_dirs, out_dir, given_title)])
    commands_listed = list(dict.fromkeys(listed))
    text = markdown.render(title, runs, summary, steps, figure_paths, commands_listed, out, __version__, table, pairs)
    atomic_write_text(stage / "report.md", text)


@contextlib.contextmanager
def staged(out: Path) -> Iterator[Path]:
    """A temp folder beside ``out`` to write a report into; on success its files are moved into ``out`` (each an
    atomic rename), on any failure it is removed and ``out`` is as it was."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        stage = Path(tempfile.mkdtemp(prefix=f".report.{os.getpid()}-", suffix=".tmp", dir=out))
    except OSError as exc:
        raise HgpruneError(f"{out}: cannot write the report here ({exc.strerror or exc})") from None
    try:
        yield stage
        for path in sorted(p for p in stage.rglob("*") if p.is_file()):
            target = out / path.relative_to(stage)
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(path, target)
            except OSError as exc:
                raise HgpruneError(f"{target}: cannot write ({exc.strerror or exc})") from None
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _write_table(stem: Path, frame, markdown: bool = True) -> None:
    atomic_write_text(stem.parent / f"{stem.name}.csv", csv_text(frame))
    if markdown:
        atomic_write_text(stem.parent / f"{stem.name}.md", markdown_table(frame))
