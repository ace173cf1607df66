"""A calibrated latency model, stored per machine: the fitted coefficients of :data:`FEATURES`, the measurements they
were fitted on, the runtime's preferred channel multiple, and the fingerprint of the machine that measured them.

The file lives under hgprune's cache directory (``$HGPRUNE_CACHE/latency/``), one per runtime, thread count, batch,
input size and model family. It is only ever used on the machine it describes: reading it checks every fingerprint
entry (CPU model, logical CPUs, runtime and its version, threads, batch, input size) against this machine and refuses a
mismatch, or a corrupt file, with a one-line error naming the file and the entry at fault.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from torch import nn

from hgprune.data import default_cache_dir
from hgprune.errors import HgpruneError
from hgprune.fsutil import atomic_write_text
from hgprune.latency.runtimes import SPIN, Runtime
from hgprune.latency.structure import FEATURES, features, signature, trace_ops
from hgprune.timing import cpu_model

# Bumped when the file's layout, the features or the timer change: older files are recalibrated, never misread.
# 2: the timer settles each configuration before timing it (hgprune.timing.SETTLE_MS, 50 ms); format-1 ORT tables were
# inflated by the previous session's spinning threads.
FORMAT = 2
# The fingerprint entries a table must match to be used (``model family`` is in the file name and checked too).
FINGERPRINT_KEYS = ("format", "cpu", "logical_cpus", "runtime", "runtime_version", "device", "threads", "batch")
FINGERPRINT_KEYS += ("input_size",)
FAMILY_KEYS = ("arch", "N", "M", "depth", "num_joints")


def fingerprint(runtime: Runtime, threads: int, batch: int, input_size: int, device: str = "cpu") -> dict:
    """What a latency table is only valid for: this machine, this runtime and version, threads, batch, input size."""
    found = {
        "format": FORMAT,
        "cpu": cpu_model(),
        "logical_cpus": os.cpu_count(),
        "runtime": runtime.name,
        "runtime_version": runtime.version(),
        "device": device if runtime.name == "torch" else runtime.device,
        "threads": threads,
        "batch": batch,
        "input_size": input_size,
    }
    if runtime.name == "ort":
        found["ort_spinning"] = SPIN
    return found


def family_of(config) -> dict:
    """The model family a table was calibrated on (its parent's architecture and widths)."""
    return {"arch": config.arch, "N": config.N, "M": config.M, "depth": config.depth, "num_joints": config.num_joints}


def table_path(
    runtime: str, threads: int, batch: int, input_size: int, family: dict, root: Path | None = None, device: str = "cpu"
) -> Path:
    """Where the table of this runtime (and eager PyTorch's device), threads, batch, input size and model family is
    cached."""
    root = Path(root) if root is not None else default_cache_dir() / "latency"
    where = "" if device == "cpu" else "-" + device.replace(":", "")
    name = f"{runtime}{where}-t{threads}-b{batch}-{input_size}px-{family['arch']}-N{family['N']}-M{family['M']}"
    return root / f"{name}-d{family['depth']}-j{family['num_joints']}.json"


def model_key(model: nn.Module, input_size: int, batch: int) -> str:
    """A short hash of what decides a model's operators, for the table's exact measurements."""
    text = repr((signature(model), input_size, batch))
    return hashlib.sha256(text.encode()).hexdigest()[:20]


@dataclass
class Sample:
    """One calibration measurement: a model's features, its key and its measured median and p90 latency."""

    key: str
    features: list[float]
    median_ms: float
    p90_ms: float
    description: str = ""


@dataclass
class LatencyTable:
    """A latency model of one runtime on one machine: ``predict(model)`` in ms."""

    fingerprint: dict
    family: dict
    snap: int | None  # the channel multiple the runtime runs fast (None: no measured preference)
    coefficients: list[float]  # per FEATURES, ms per unit
    samples: list[Sample]
    snap_probe: dict = field(default_factory=dict)  # ms per MMAC by interior width, and the gain of each multiple
    record: dict = field(default_factory=dict)  # load before/after, timing settings, environment

    @property
    def runtime(self) -> str:
        return self.fingerprint["runtime"]

    @property
    def input_size(self) -> int:
        return self.fingerprint["input_size"]

    @property
    def batch(self) -> int:
        return self.fingerprint["batch"]

    @property
    def anchor(self) -> float:
        """The factor that makes the fit exact on the parent (``samples[0]``, the calibration's first model).

        Every prediction is the fit times this factor, never a stored measurement: a plan compares candidates, and
        mixing the parent's measurement with the fit for its pruned copies made removing a stack *cost* 0.12 ms
        (hg8 sweep size, ORT: measured 1.92 ms, fitted 2.16 ms). Anchored, the baseline predicts its measured latency
        and every comparison is the fit's."""
        if not self.samples:
            return 1.0
        fitted = float(np.dot(self.coefficients, self.samples[0].features))
        return self.samples[0].median_ms / fitted if fitted > 0 else 1.0

    def predict_features(self, values: list[float]) -> float:
        return self.anchor * float(np.dot(self.coefficients, values))

    def predict(self, model: nn.Module) -> float:
        """Predicted median latency (ms): the fit, anchored on the parent (:attr:`anchor`)."""
        return self.predict_features(features(trace_ops(model, self.input_size, self.batch), self.snap))

    def fit_errors(self) -> list[float]:
        """Relative errors of the fit on its own calibration samples (in-sample)."""
        return [abs(self.predict_features(s.features) / s.median_ms - 1) for s in self.samples]

    def to_json(self) -> str:
        data = {
            "fingerprint": self.fingerprint,
            "family": self.family,
            "snap": self.snap,
            "features": list(FEATURES),
            "coefficients": self.coefficients,
            "samples": [asdict(s) for s in self.samples],
            "snap_probe": self.snap_probe,
            "record": self.record,
        }
        return json.dumps(data, indent=2, default=str) + "\n"

    def save(self, path: Path) -> None:
        atomic_write_text(path, self.to_json())

    @classmethod
    def read(cls, path: Path, expected: dict | None = None, family: dict | None = None) -> LatencyTable:
        """The table at ``path``, checked; ``expected`` (this machine's fingerprint) and ``family`` must match it."""
        hint = "recalibrate with 'hgprune latency calibrate' (or delete it)"
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, ValueError, UnicodeDecodeError, RecursionError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not JSON"
            raise HgpruneError(f"{path}: unreadable latency table ({reason}); {hint}") from None
        if not isinstance(data, dict):
            raise HgpruneError(f"{path}: expected a JSON object, found {type(data).__name__}; {hint}")
        found = data.get("fingerprint")
        if not isinstance(found, dict) or found.get("format") != FORMAT:
            raise HgpruneError(f"{path}: not a latency table of format {FORMAT}; {hint}")
        for key, value in (expected or {}).items():
            if found.get(key) != value:
                raise HgpruneError(
                    f"{path}: calibrated for {key} {str(found.get(key))[:60]!r}, this machine has {str(value)[:60]!r}; "
                    f"a table from another machine or set-up is never used: {hint}"
                )
        if data.get("features") != list(FEATURES):
            raise HgpruneError(f"{path}: 'features' differ from this hgprune's {list(FEATURES)}; {hint}")
        coefficients = data.get("coefficients")
        if not _numbers(coefficients, len(FEATURES), low=0.0):
            raise HgpruneError(f"{path}: 'coefficients' must be {len(FEATURES)} finite numbers >= 0; {hint}")
        table_family = data.get("family")
        if not isinstance(table_family, dict) or any(k not in table_family for k in FAMILY_KEYS):
            raise HgpruneError(f"{path}: 'family' must name {', '.join(FAMILY_KEYS)}; {hint}")
        for key, value in (family or {}).items():
            if table_family.get(key) != value:
                raise HgpruneError(
                    f"{path}: calibrated on family {key}={table_family.get(key)!r}, not {value!r}; {hint}"
                )
        snap = data.get("snap")
        if snap is not None and (isinstance(snap, bool) or not isinstance(snap, int) or not 1 <= snap <= 1024):
            raise HgpruneError(
                f"{path}: 'snap' must be null or an integer in [1, 1024], got {str(snap)[:20]!r}; {hint}"
            )
        samples = []
        for index, raw in enumerate(data.get("samples") if isinstance(data.get("samples"), list) else [None]):
            ok = (
                isinstance(raw, dict)
                and isinstance(raw.get("key"), str)
                and _numbers(raw.get("features"), len(FEATURES))
            )
            ok = ok and _numbers([raw.get("median_ms"), raw.get("p90_ms")], 2, low=0.0, positive=True)
            if not ok:
                raise HgpruneError(f"{path}: samples[{index}] is not a calibration measurement; {hint}")
            samples.append(Sample(raw["key"], [float(v) for v in raw["features"]], float(raw["median_ms"]),
                                  float(raw["p90_ms"]), str(raw.get("description", ""))))  # fmt: skip
        return cls(
            fingerprint=found,
            family=table_family,
            snap=snap,
            coefficients=[float(c) for c in coefficients],
            samples=samples,
            snap_probe=data.get("snap_probe") if isinstance(data.get("snap_probe"), dict) else {},
            record=data.get("record") if isinstance(data.get("record"), dict) else {},
        )


def _numbers(values: object, count: int, low: float = -math.inf, positive: bool = False) -> bool:
    if not isinstance(values, list) or len(values) != count:
        return False
    for value in values:
        if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value < math.inf:
            return False
        if positive and value <= 0:
            return False
    return True


def fit_coefficients(rows: list[list[float]], latencies: list[float]) -> list[float]:
    """Non-negative coefficients minimising the *relative* squared error (each row weighted by 1 / its latency):
    least squares, dropping the most negative coefficient's feature until none is negative (a cost never helps)."""
    matrix = np.asarray(rows, dtype=float)
    target = np.asarray(latencies, dtype=float)
    weights = 1.0 / target
    scale = np.maximum(np.abs(matrix).max(axis=0), 1e-12)  # columns of very different magnitudes: solve scaled
    system, goal = (matrix / scale) * weights[:, None], target * weights
    active = list(range(matrix.shape[1]))
    solution = np.zeros(matrix.shape[1])
    while active:
        fitted, *_ = np.linalg.lstsq(system[:, active], goal, rcond=None)
        if (fitted >= 0).all():
            solution[active] = fitted
            break
        del active[int(np.argmin(fitted))]
    return [float(c) for c in solution / scale]
