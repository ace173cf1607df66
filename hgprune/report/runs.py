"""Reading run directories for the report: metrics, run state, final checkpoint, latency pass, and unique names.

A report must be drawable from whatever a run left on disk, including a run that is still going (an empty or
partial ``metrics.csv``) and runs gathered from several machines whose names collide. Anything unreadable is a
one-line :class:`HgpruneError` naming the file.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import pandas as pd

from hgprune.errors import HgpruneError
from hgprune.metrics import GROUPS
from hgprune.recipe import BASELINE, PRUNE, SCRATCH, Recipe, recipe_changes
from hgprune.rundir import METRIC_COLUMNS, RunDir

REQUIRED_COLUMNS = ("step", "arch", "criterion", "macs_fvcore", "pckh_mean")
TEXT_COLUMNS = ("run", "role", "arch", "criterion", "target_kind")
NUMERIC_COLUMNS = tuple(c for c in METRIC_COLUMNS if c not in TEXT_COLUMNS)
# Numeric columns every row must fill with a finite number (others may be empty or NaN: not measured). No column
# may hold an infinity: every number a run writes is finite, and one infinity spoils the Pareto front and ratios.
FINITE_COLUMNS = ("step", "macs_fvcore")
FINISHED_STATES = ("done", "finished", "complete", "completed", "succeeded")
# The range every number of metrics.csv must lie in (inclusive), from what a run can write: a value outside is a
# damaged or hand-made file, refused with its column and row before any report file is written. Columns not listed
# only need to be finite. Percentages are 0..100; sizes and MACs are positive (0 MACs would make "MACs kept" inf).
MAX_STEP = 1_000_000
COLUMN_BOUNDS: dict[str, tuple[float, float]] = {
    "step": (0, MAX_STEP),
    "N": (1, 1e6),
    "M": (1, 1e6),
    "target": (0, 1e3),
    "params": (1, 1e15),
    "macs_fvcore": (1, 1e18),
    "macs_thop": (1, 1e18),
    "conv_macs": (0, 1e18),
    "macs_ratio": (1e-12, 1e6),
    "params_ratio": (1e-12, 1e6),
    "latency_ms": (0, 1e9),
    "latency_p90_ms": (0, 1e9),
    "pckh_mean": (0, 100),
    "pckh_seed_mean": (0, 100),
    "pckh_01": (0, 100),
    "auc": (0, 100),
    **{f"pckh_{group}": (0, 100) for group in GROUPS},
    "finetune_epochs": (0, 1e9),
    "train_loss": (0, 1e30),
    "wall_s": (0, 1e12),
}
MAX_TEXT_CHARS = 128  # a text cell (run name, arch, criterion, …): the recipe's limit for a run name


@dataclass(frozen=True)
class StepLatency:
    """One step's latencies from a latency pass: median and p90 over the timed rounds, in ms."""

    eager_ms: float | None = None  # eager PyTorch, model.eval() under torch.inference_mode
    eager_p90_ms: float | None = None
    ort_ms: float | None = None  # ONNX Runtime CPU, the graph hgprune's ONNX export writes (BatchNorm folded)
    ort_p90_ms: float | None = None
    cuda_graph_ms: float | None = None  # fp16 CUDA graph (hgprune latency --runtime cuda-graph)
    cuda_graph_p90_ms: float | None = None


LATENCY_FIELDS = tuple(f.name for f in fields(StepLatency))


@dataclass(frozen=True)
class LatencyPass:
    """``RUN/latency.json``: every checkpointed step of a finished run timed afterwards, in a pass of its own.

    Sweeps run with ``profile.latency: false`` (timings taken while other runs train are noise), so their
    ``metrics.csv`` has no latency; ``benchmarks/sweep_latency.py`` measures it later on an idle machine and writes
    this file, which the report reads where ``metrics.csv`` has no value.
    """

    command: str  # the exact command line of the pass
    load_before: list[float]  # 1/5/15-minute load average when the pass started
    load_after: list[float]  # … and when its timing ended (the pass's own process counts: about 1 per busy thread)
    steps: dict[int, StepLatency]
    settings: dict = field(default_factory=dict)  # repeats, warm-up rounds, threads, batch, input size, …
    environment: dict = field(default_factory=dict)  # machine, versions, thread settings (benchmarks/common.py)

    def to_json(self) -> str:
        data = {
            "environment": self.environment,
            "command": self.command,
            "load_before": list(self.load_before),
            "load_after": list(self.load_after),
            "settings": self.settings,
            "steps": {
                str(step): {k: v for k, v in asdict(latency).items() if v is not None}
                for step, latency in sorted(self.steps.items())
            },
        }
        return json.dumps(data, indent=2, default=str) + "\n"

    @classmethod
    def read(cls, path: Path) -> LatencyPass:
        """The file checked: a malformed one is a one-line error naming it and the entry at fault."""
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError, UnicodeDecodeError, RecursionError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not JSON"
            raise HgpruneError(f"{path}: unreadable latency pass ({reason}); re-measure or delete it") from None
        if not isinstance(data, dict):
            raise HgpruneError(f"{path}: expected a JSON object, found {type(data).__name__}; re-measure or delete it")
        command = data.get("command")
        if not isinstance(command, str) or not command.strip():
            raise HgpruneError(f"{path}: 'command' must be the command line of the pass; re-measure or delete it")
        loads = {key: _loads(path, key, data.get(key)) for key in ("load_before", "load_after")}
        raw_steps = data.get("steps")
        if not isinstance(raw_steps, dict):
            raise HgpruneError(f"{path}: 'steps' must map step numbers to latencies; re-measure or delete it")
        steps = {}
        for key, values in raw_steps.items():
            if not (key.isascii() and key.isdigit()):
                raise HgpruneError(f"{path}: steps key {key[:20]!r} is not a step number; re-measure or delete it")
            if not isinstance(values, dict):
                raise HgpruneError(f"{path}: steps[{key!r}] must be an object of {', '.join(LATENCY_FIELDS)}")
            present = [name for name in LATENCY_FIELDS if values.get(name) is not None]
            if not present:  # each runtime measured gives a pair ({runtime}_ms, {runtime}_p90_ms); at least one
                raise HgpruneError(f"{path}: steps[{key!r}] has none of {', '.join(LATENCY_FIELDS)}")
            for name in present + [pair for given in present for pair in _pair(given) if pair not in present]:
                value = values.get(name)
                if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < math.inf:
                    raise HgpruneError(
                        f"{path}: steps[{key!r}].{name} must be a positive finite number of ms, got "
                        f"{str(value)[:40]!r}; re-measure or delete it"
                    )
            steps[int(key)] = StepLatency(**{name: float(values[name]) for name in present})
        settings, environment = data.get("settings"), data.get("environment")
        return cls(
            command=one_line(command, 4000),
            steps=steps,
            settings=settings if isinstance(settings, dict) else {},
            environment=environment if isinstance(environment, dict) else {},
            **loads,
        )


def _pair(name: str) -> tuple[str, ...]:
    """The other half of a runtime's (median, p90) pair: a latency pass records both or neither."""
    return (name.replace("_p90_ms", "_ms"),) if name.endswith("_p90_ms") else (name[: -len("_ms")] + "_p90_ms",)


def _loads(path: Path, key: str, value: object) -> list[float]:
    """A recorded load average: three numbers, or empty where the platform has none."""
    if value is None:
        return []
    if isinstance(value, list) and len(value) in (0, 3):
        if all(isinstance(v, int | float) and not isinstance(v, bool) and 0 <= v < math.inf for v in value):
            return [float(v) for v in value]
    raise HgpruneError(f"{path}: {key!r} must be the 1/5/15-minute load average, got {str(value)[:40]!r}")


@dataclass
class RunData:
    """One run directory as the report sees it."""

    name: str  # unique among the runs of one report
    path: Path
    metrics: pd.DataFrame  # METRIC_COLUMNS (missing optional ones as NaN), sorted by step; may be empty
    info: dict = field(default_factory=dict)  # run.json
    notes: list[str] = field(default_factory=list)  # shown in the report (partial run, missing files)
    checkpoint: Path | None = None  # final/model.pt, else the latest step checkpoint
    slug: str = ""  # file-name-safe, unique
    recipe: Recipe | None = None  # the resolved recipe.yaml, when readable
    series: str = ""  # the line this run belongs to in the figures: arch/criterion (+ what else tells runs apart)
    latency: LatencyPass | None = None  # RUN/latency.json, when the run's latency was measured afterwards
    # a scratch run's unpruned baseline: the pruned run whose step 0 it is measured against (see link_baselines)
    reference: RunData | None = None

    @property
    def role(self) -> str:
        """prune | baseline | scratch, from the first metrics row ("" while the run has none)."""
        return "" if self.metrics.empty else str(self.metrics["role"].iloc[0])

    @property
    def model_key(self) -> tuple[str, int] | None:
        """What makes two runs' unpruned models comparable: architecture and the input size MACs and latency were
        measured at (``profile.input_size``, else ``model.input_size``); None without rows or a readable recipe."""
        if self.metrics.empty or self.recipe is None:
            return None
        return str(self.metrics["arch"].iloc[0]), self.recipe.profile.input_size or self.recipe.model.input_size

    @property
    def command(self) -> str | None:
        command = self.info.get("command")
        if isinstance(command, list):
            return " ".join(str(c) for c in command)
        return command if isinstance(command, str) and command.strip() else None


def find_run_dirs(paths: list[str | Path]) -> list[Path]:
    """Run directories in the given order; a directory holding run directories (a sweep) expands to its children."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise HgpruneError(f"{path}: no such run directory")
        if not path.is_dir():
            raise HgpruneError(f"{path}: not a directory (expected a run directory holding metrics.csv)")
        if RunDir(path).metrics_csv.exists():
            found.append(path)
            continue
        children = sorted(p for p in path.iterdir() if p.is_dir() and RunDir(p).metrics_csv.exists())
        if not children:
            raise HgpruneError(
                f"{RunDir(path).metrics_csv}: missing; {path} is not a run directory (nor a sweep directory of runs)"
            )
        found.extend(children)
    return found


def read_metrics(path: Path) -> pd.DataFrame:
    """``metrics.csv`` checked and typed; an empty file gives an empty frame (a run that has not finished step 0)."""
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        raw = pd.DataFrame(columns=list(REQUIRED_COLUMNS))
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0][:120] if str(exc).strip() else type(exc).__name__
        raise HgpruneError(f"{path}: not a readable metrics CSV ({first})") from None
    missing = [c for c in REQUIRED_COLUMNS if c not in raw.columns]
    if missing:
        raise HgpruneError(f"{path}: missing column(s) {', '.join(missing)}; is this an hgprune metrics.csv?")
    frame = pd.DataFrame(index=raw.index)
    for column in METRIC_COLUMNS:
        values = raw[column] if column in raw.columns else pd.Series([""] * len(raw), index=raw.index, dtype=str)
        values = values.str.strip()
        if column in TEXT_COLUMNS:
            frame[column] = values
            continue
        numbers = pd.to_numeric(values.replace({"": np.nan, "nan": np.nan, "NaN": np.nan}), errors="coerce")
        bad = numbers.isna() & ~values.isin(["", "nan", "NaN"])
        if bad.any():
            row = int(bad.idxmax())
            raise HgpruneError(
                f"{path}: column {column!r} row {row + 1} is not a number ({values[row][:40]!r}); fix or re-run"
            )
        numbers = numbers.astype(float)
        unusable = np.isinf(numbers) | (numbers.isna() if column in FINITE_COLUMNS else False)
        if unusable.any():
            row = int(np.argmax(unusable.to_numpy()))
            raise HgpruneError(
                f"{path}: column {column!r} row {row + 1} is {values.iloc[row][:40]!r}, not a finite number; "
                "fix or re-run (nothing was written)"
            )
        low, high = COLUMN_BOUNDS.get(column, (-math.inf, math.inf))
        outside = (numbers < low) | (numbers > high)
        if outside.any():
            row = int(np.argmax(outside.to_numpy()))
            raise HgpruneError(
                f"{path}: column {column!r} row {row + 1} is {values.iloc[row][:40]!r}, outside {low:g}..{high:g}; "
                "fix or re-run (nothing was written)"
            )
        frame[column] = numbers
    steps = frame["step"]
    if steps.isna().any() or (steps != steps.round()).any():
        raise HgpruneError(f"{path}: column 'step' must hold whole numbers on every row")
    frame["step"] = steps.astype(np.int64)
    repeated = frame["step"][frame["step"].duplicated()]
    if len(repeated):
        step = int(repeated.iloc[0])
        rows = [i + 1 for i in np.flatnonzero(frame["step"].to_numpy() == step)]
        raise HgpruneError(
            f"{path}: step {step} appears on rows {', '.join(map(str, rows[:5]))}; a run writes each step once, so "
            "which row is real cannot be told (fix or re-run; nothing was written)"
        )
    for column in TEXT_COLUMNS:
        for row, text in enumerate(frame[column]):
            if len(text) > MAX_TEXT_CHARS or not text.isprintable():
                raise HgpruneError(
                    f"{path}: column {column!r} row {row + 1} must be at most {MAX_TEXT_CHARS} printable characters "
                    f"on one line, got {text[:40]!r}{'…' if len(text) > 40 else ''} (nothing was written)"
                )
    if "role" not in raw.columns:  # written before the role column: sweeps marked it in the criterion
        frame["role"] = [c if c in (BASELINE, SCRATCH) else PRUNE for c in frame["criterion"]]
    frame = frame.sort_values("step", kind="stable").reset_index(drop=True)
    return frame


def _recipe(run_dir: RunDir) -> Recipe | None:
    """The run's resolved recipe, or None when it is missing or unreadable (the report goes on without it)."""
    if not run_dir.recipe.is_file():
        return None
    try:
        return run_dir.read_recipe()
    except HgpruneError:
        return None


def load_run(run_dir: Path) -> RunData:
    """Read one run directory; notes record what is partial or missing."""
    layout = RunDir(run_dir)
    metrics = read_metrics(layout.metrics_csv)
    info = _plain_info(layout.read_state())
    names = [n for n in metrics["run"] if n]
    name = names[0] if names else str(info.get("name") or run_dir.resolve().name)
    if len(name) > MAX_TEXT_CHARS or not name.isprintable() or not name.strip():
        where = layout.metrics_csv if names else (layout.state if info.get("name") else run_dir)
        raise HgpruneError(
            f"{where}: run name {name[:40]!r}{'…' if len(name) > 40 else ''} must be 1-{MAX_TEXT_CHARS} printable "
            "characters on one line (nothing was written)"
        )
    latency = LatencyPass.read(layout.latency_json) if layout.latency_json.exists() else None
    run = RunData(
        name=name,
        path=run_dir,
        metrics=metrics,
        info=info,
        checkpoint=layout.latest_model(),
        recipe=_recipe(layout),
        latency=latency,
    )
    status = info.get("status")
    if metrics.empty:
        run.notes.append("metrics.csv has no rows yet (the run has not finished its baseline step)")
    elif isinstance(status, str) and status.lower() not in FINISHED_STATES:
        run.notes.append(f"run status is '{status}': showing steps {metrics['step'].min()}–{metrics['step'].max()}")
    if not metrics.empty and 0 not in set(metrics["step"]):
        run.notes.append("no step 0 (unpruned baseline) row: speedup and MACs reduction are not available")
    if run.checkpoint is None:
        run.notes.append("no final/model.pt or step checkpoint: no kept-channel chart")
    elif run.checkpoint.parent.name != "final":
        run.notes.append(f"no final/model.pt yet: kept channels are those of {run.checkpoint.relative_to(run_dir)}")
    if latency is not None and not metrics.empty:
        pairs = list(zip(metrics["step"], metrics["latency_ms"]))
        unmeasured = [str(step) for step, ms in pairs if step not in latency.steps and pd.isna(ms)]
        if unmeasured:
            run.notes.append(f"{layout.latency_json.name} has no step {', '.join(unmeasured)}: no latency there")
        both = [str(step) for step, ms in pairs if step in latency.steps and not pd.isna(ms)]
        if both:
            run.notes.append(
                f"step {', '.join(both)}: eager latency from metrics.csv (it wins over {layout.latency_json.name}, "
                "which gives only the ONNX Runtime latency there)"
            )
    return run


def _plain_info(info: dict) -> dict:
    """``run.json`` with every text the report shows made one printable line (a newline in a recorded command or
    status cannot start a Markdown block or close a code fence)."""
    shown = dict(info)
    for key in ("status", "command"):  # a name is checked, not shortened (see load_run)
        value = shown.get(key)
        if isinstance(value, list):
            value = " ".join(str(v) for v in value)
        if isinstance(value, str):
            shown[key] = one_line(value, 4000 if key == "command" else MAX_TEXT_CHARS)
        elif value is not None:
            shown.pop(key)
    return shown


def one_line(text: str, limit: int) -> str:
    """``text`` as one printable line of at most ``limit`` characters: other characters are shown escaped."""
    if not text.isprintable():
        text = "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


MAX_SLUG_CHARS = 80  # file names of the per-run tables and figures stay far below any file system's limit


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._")[:MAX_SLUG_CHARS] or "run"


def _unique(names: list[str], alternatives: list[str]) -> list[str]:
    """Make ``names`` unique: colliding names first take their alternative, then a ``#k`` suffix."""
    counts = pd.Series(names).value_counts()
    names = [alt if counts[n] > 1 else n for n, alt in zip(names, alternatives)]
    seen: set[str] = set()
    result = []
    for name in names:
        candidate, k = name, 2
        while candidate in seen:
            candidate, k = f"{name}#{k}", k + 1
        seen.add(candidate)
        result.append(candidate)
    return result


def load_runs(paths: list[str | Path]) -> list[RunData]:
    """All runs of one report, with unique names (``name@parent-dir`` or ``name#2`` for duplicates)."""
    runs = [load_run(p) for p in find_run_dirs(paths)]
    alternatives = [f"{r.name}@{_slug(r.path.resolve().parent.name)}" for r in runs]
    for run, name in zip(runs, _unique([r.name for r in runs], alternatives)):
        if name != run.name:
            run.notes.append(f"renamed from '{run.name}' (another run of this report has the same name)")
        run.name = name
        run.metrics["run"] = name
    _name_series(runs)
    link_baselines(runs)
    taken: set[str] = set()
    for run in runs:
        base = _slug(run.name).lower()
        slug, k = base, 2
        while slug in taken:
            slug, k = f"{base}-{k}", k + 1
        taken.add(slug)
        run.slug = slug
    return runs


def link_baselines(runs: list[RunData]) -> None:
    """Give every ``scratch`` run the unpruned baseline it stands in for: step 0 of a pruned run with the same
    architecture and measured input size, from the same directory (sweep) when there is one, else the first such run
    of the report. Its own step 0 is its result, so measured against itself its MACs kept, speedup and ΔPCKh would
    always read 1.0, 1.0× and 0; with no such run they are left empty, and a note says which it is."""
    pruned = [r for r in runs if r.role == PRUNE and r.model_key is not None and 0 in set(r.metrics["step"])]
    for run in runs:
        if run.role != SCRATCH:
            continue
        matches = [r for r in pruned if r.model_key == run.model_key]
        near = [r for r in matches if r.path.resolve().parent == run.path.resolve().parent]
        run.reference = (near or matches or [None])[0]
        if run.reference is None:
            run.notes.append("no pruned run of the same architecture and input size in this report: MACs kept, "
                             "speedup and ΔPCKh are left empty (a scratch run's own step 0 is its result)")  # fmt: skip
        else:
            run.notes.append(f"MACs kept, speedup and ΔPCKh are against step 0 of `{run.reference.name}`, the "
                             f"unpruned {run.model_key[0]} at {run.model_key[1]} px")  # fmt: skip


# Recipe keys that vary *within* a series (one run per budget or per seed) or do not change the method.
_SAME_SERIES = ("name", "seed", "prune.target.kept", "baseline.checkpoint", "output", "export", "profile", "eval")
_SAME_SERIES += ("data.workers", "device", "sweep")
# For scratch runs the widths *are* the budget: hg1 at N=10/M=22 and at N=8/M=14 is one series of the seed's approach.
_SAME_SCRATCH_SERIES = ("model.N", "model.M")


def default_series(run: RunData) -> str:
    """``arch/criterion``, or ``arch/scratch`` for the seed's approach (the run's name while it has no rows)."""
    if run.metrics.empty:
        return run.name
    first = run.metrics.iloc[0]
    return f"{first['arch']}/{SCRATCH if run.role == SCRATCH else first['criterion']}"


def _name_series(runs: list[RunData]) -> None:
    """``arch/criterion`` for pruned runs, ``arch/scratch`` for the seed's approach; runs whose labels collide but
    whose recipes differ in anything else (allocation, schedule, steps, distillation, …) get those differences
    appended, e.g. ``hg1/l1 (allocation=uniform)``, so two different methods never draw as one line."""
    for run in runs:
        run.series = default_series(run)
    by_label: dict[str, list[RunData]] = {}
    for run in runs:
        by_label.setdefault(run.series, []).append(run)
    for group in by_label.values():
        with_recipe = [r for r in group if r.recipe is not None]
        if len(with_recipe) < 2:
            continue
        differing: set[str] = set()
        for other in with_recipe[1:]:
            _, changed = recipe_changes(with_recipe[0].recipe, other.recipe)
            same = _SAME_SERIES + (_SAME_SCRATCH_SERIES if other.role == SCRATCH else ())
            differing |= {p for p in changed if not any(p == k or p.startswith(k + ".") for k in same)}
        for run in with_recipe if differing else []:
            values = run.recipe.to_dict()
            parts = []
            for path in sorted(differing):
                value = values
                for key in path.split("."):
                    value = value.get(key) if isinstance(value, dict) else None
                parts.append(f"{path.rsplit('.', 1)[-1]}={value}")
            run.series += f" ({', '.join(parts)})"
