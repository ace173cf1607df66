"""Latency targets: validation errors name the key; the absolute budget a target stands for."""

from __future__ import annotations

import pytest

from hgprune.errors import HgpruneError
from hgprune.latency import LatencyTarget, latency_budget_ms


@pytest.mark.parametrize(
    "mapping, message",
    [
        ({"kind": "latency", "kept": 1.5}, r"^prune\.target\.kept: must be in \(0, 1\], got 1\.5$"),
        ({"kind": "latency", "kept": 0.0}, r"^prune\.target\.kept: must be in \(0, 1\]"),
        ({"kind": "latency", "kept": True}, r"^prune\.target\.kept: must be in \(0, 1\]"),
        ({"kind": "latency", "budget_ms": -2}, r"^prune\.target\.budget_ms: must be a positive number"),
        ({"kind": "latency", "budget_ms": float("nan")}, r"^prune\.target\.budget_ms: must be a positive number"),
        ({"kind": "latency"}, r"^prune\.target: give exactly one of kept .* or budget_ms"),
        ({"kind": "latency", "kept": 0.5, "budget_ms": 3.0}, r"^prune\.target: give exactly one of kept"),
        (
            {"kind": "latency", "kept": 0.5, "runtime": "tensorrt"},
            r"^prune\.target\.runtime: unknown 'tensorrt'; "
            r"valid: torch, ort, cuda-graph$",
        ),  # fmt: skip
        ({"kind": "latency", "kept": 0.5, "threads": 0}, r"^prune\.target\.threads: must be an integer in \[1, "),
        ({"kind": "latency", "kept": 0.5, "batch": 2.5}, r"^prune\.target\.batch: must be an integer in \[1, "),
        ({"kind": "latency", "kept": 0.5, "thread": 2}, r"^prune\.target\.thread: unknown key; valid: "),
        ({"kind": "macs", "kept": 0.5}, r"^prune\.target\.kind: must be 'latency'"),
    ],
)
def test_validation_errors_name_the_key(mapping, message):
    with pytest.raises(HgpruneError, match=message):
        LatencyTarget.from_mapping(mapping)


def test_a_valid_target_round_trips_and_the_constructor_checks_too():
    target = LatencyTarget.from_mapping({"kind": "latency", "kept": 0.5, "runtime": "ort", "threads": 2, "batch": 1})
    assert (target.kept, target.budget_ms, target.runtime, target.threads, target.batch) == (0.5, None, "ort", 2, 1)
    assert LatencyTarget.from_mapping(target.to_dict()) == target
    assert LatencyTarget.from_mapping({"budget_ms": 12}, key="steps[1].target").budget_ms == 12
    with pytest.raises(HgpruneError, match=r"^steps\[1\]\.target\.kept: "):
        LatencyTarget.from_mapping({"kept": 2}, key="steps[1].target")
    with pytest.raises(HgpruneError, match=r"^prune\.target\.kept: "):
        LatencyTarget(kept=-1.0)


class FixedCost:
    name, snap = "latency:fake", 8

    def cost(self, model) -> float:
        return 40.0


def test_budget_is_kept_times_the_models_latency_or_the_absolute_budget(tiny_model):
    assert latency_budget_ms(tiny_model, LatencyTarget(kept=0.25), FixedCost()) == 10.0
    assert latency_budget_ms(tiny_model, LatencyTarget(kept=0.25), measured_ms=8.0) == 2.0  # measured wins
    assert latency_budget_ms(tiny_model, LatencyTarget(budget_ms=12.0), FixedCost()) == 12.0
    with pytest.raises(HgpruneError, match="needs the model's latency"):
        latency_budget_ms(tiny_model, LatencyTarget(kept=0.5))
