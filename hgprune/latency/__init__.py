"""Latency on the runtimes users deploy on: measuring it (``hgprune latency``), a calibrated per-machine latency
model (``hgprune latency calibrate``), the cost model a latency target plans with, and the target itself."""

from hgprune.latency.calibration import CalibrationSettings, calibrate, load_or_calibrate, load_table, parent_config
from hgprune.latency.cost import LatencyCost
from hgprune.latency.measure import TimingSettings, measure_models
from hgprune.latency.runtimes import RUNTIMES, Runtime, get_runtime
from hgprune.latency.table import LatencyTable, table_path
from hgprune.latency.target import LatencyTarget, latency_budget_ms

__all__ = [
    "RUNTIMES",
    "CalibrationSettings",
    "LatencyCost",
    "LatencyTable",
    "LatencyTarget",
    "Runtime",
    "TimingSettings",
    "calibrate",
    "get_runtime",
    "latency_budget_ms",
    "load_or_calibrate",
    "load_table",
    "measure_models",
    "parent_config",
    "table_path",
]
