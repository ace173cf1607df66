"""A latency target: ``prune.target: {kind: latency, kept: 0.5, runtime: ort, threads: 2, batch: 1}`` (a fraction of
the unpruned model's latency) or ``{kind: latency, budget_ms: 12.0, ...}`` (an absolute budget), validated with
errors that name the key, and the absolute budget it stands for."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from torch import nn

from hgprune.errors import HgpruneError
from hgprune.latency.runtimes import RUNTIMES

KIND = "latency"
MAX_THREADS = 1024
MAX_BATCH = 1024


@dataclass(frozen=True)
class LatencyTarget:
    """Prune until the model runs within a latency budget on ``runtime`` (``threads`` intra-op threads, ``batch``)."""

    runtime: str = "ort"
    kept: float | None = None  # fraction of the unpruned model's latency, in (0, 1]
    budget_ms: float | None = None  # or an absolute budget in ms
    threads: int = 1
    batch: int = 1
    kind: str = KIND

    def __post_init__(self) -> None:
        validate(self, "prune.target")

    @classmethod
    def from_mapping(cls, data: Mapping, key: str = "prune.target") -> LatencyTarget:
        """Built from a recipe mapping; unknown keys and bad values fail naming ``key.entry``."""
        if not isinstance(data, Mapping):
            raise HgpruneError(f"{key}: must be a mapping, got {type(data).__name__}")
        known = {"kind", "runtime", "kept", "budget_ms", "threads", "batch"}
        for name in data:
            if name not in known:
                raise HgpruneError(f"{key}.{name}: unknown key; valid: {', '.join(sorted(known))}")
        target = object.__new__(cls)
        for name, default in (("runtime", "ort"), ("kept", None), ("budget_ms", None), ("threads", 1), ("batch", 1),
                              ("kind", KIND)):  # fmt: skip
            object.__setattr__(target, name, data.get(name, default))
        validate(target, key)
        return target

    def to_dict(self) -> dict:
        out = {"kind": self.kind, "runtime": self.runtime, "threads": self.threads, "batch": self.batch}
        out.update({"kept": self.kept} if self.kept is not None else {"budget_ms": self.budget_ms})
        return out


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def validate(target: LatencyTarget, key: str) -> None:
    if target.kind != KIND:
        raise HgpruneError(f"{key}.kind: must be {KIND!r} for a latency target, got {str(target.kind)[:40]!r}")
    if target.runtime not in RUNTIMES:
        raise HgpruneError(f"{key}.runtime: unknown {str(target.runtime)[:40]!r}; valid: {', '.join(RUNTIMES)}")
    if (target.kept is None) == (target.budget_ms is None):
        raise HgpruneError(f"{key}: give exactly one of kept (a fraction of the unpruned latency) or budget_ms")
    if target.kept is not None and not (_number(target.kept) and 0 < target.kept <= 1):
        raise HgpruneError(f"{key}.kept: must be in (0, 1], got {str(target.kept)[:40]}")
    if target.budget_ms is not None and not (_number(target.budget_ms) and target.budget_ms > 0):
        raise HgpruneError(
            f"{key}.budget_ms: must be a positive number of milliseconds, got {str(target.budget_ms)[:40]}"
        )
    for name, high in (("threads", MAX_THREADS), ("batch", MAX_BATCH)):
        value = getattr(target, name)
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= high:
            raise HgpruneError(f"{key}.{name}: must be an integer in [1, {high}], got {str(value)[:40]}")


def latency_budget_ms(model: nn.Module, target: LatencyTarget, cost=None, measured_ms: float | None = None) -> float:
    """The absolute budget in ms: ``budget_ms``, or ``kept`` × the unpruned model's latency — measured when
    ``measured_ms`` is given, else predicted by ``cost`` (a :class:`~hgprune.latency.cost.LatencyCost`)."""
    if target.budget_ms is not None:
        return float(target.budget_ms)
    if measured_ms is None:
        if cost is None:
            raise HgpruneError("latency target: a kept fraction needs the model's latency (measured or predicted)")
        measured_ms = cost.cost(model)
    return float(target.kept) * float(measured_ms)
