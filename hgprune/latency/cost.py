"""``LatencyCost``: the cost model a latency target plans with (``hgprune.prune.cost``'s protocol): predicted
milliseconds of a model on one runtime, from this machine's calibrated latency table."""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from hgprune.latency.structure import features, signature, trace_ops, trace_ops_by_module
from hgprune.latency.table import LatencyTable

CACHE_SIZE = 4096  # structures whose features are kept (a search revisits the same candidates)


class LatencyCost:
    """``cost(model)`` = predicted median latency in ms on ``table``'s runtime; ``snap`` = its preferred multiple."""

    def __init__(self, table: LatencyTable) -> None:
        self.table = table
        self.name = f"latency:{table.runtime}"
        self.snap: int | None = table.snap
        self._features: OrderedDict[tuple, list[float]] = OrderedDict()

    def cost(self, model: nn.Module) -> float:
        """Predicted milliseconds: the table's fit anchored on its parent (never a stored measurement, so every
        comparison a plan makes is between two predictions; :attr:`LatencyTable.anchor`)."""
        key = signature(model)
        values = self._features.get(key)
        if values is None:
            values = features(trace_ops(model, self.table.input_size, self.table.batch), self.snap)
            self._features[key] = values
            if len(self._features) > CACHE_SIZE:
                self._features.popitem(last=False)
        else:
            self._features.move_to_end(key)
        return self.table.predict_features(values)

    def module_costs(self, model: nn.Module) -> dict[str, float]:
        """Predicted milliseconds of each module's own operators (:func:`trace_ops_by_module`; the fixed per-call
        overhead belongs to none): the fit is linear in operator features, so the operators a unit's modules run
        add up to what removing the unit saves, and the depth planner prices every unit from one trace."""
        ops: dict[str, list] = {}
        for name, op in trace_ops_by_module(model, self.table.input_size, self.table.batch):
            ops.setdefault(name, []).append(op)
        return {name: self.table.predict_features(features(part, self.snap, call=0.0)) for name, part in ops.items()}

    def __call__(self, model: nn.Module) -> float:
        return self.cost(model)

    def record(self) -> dict:
        """What a run records of the model it planned with, so a resume plans with the same numbers."""
        return {"name": self.name, "snap": self.snap, "fingerprint": self.table.fingerprint,
                "family": self.table.family, "coefficients": self.table.coefficients}  # fmt: skip
