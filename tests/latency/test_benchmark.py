"""benchmarks/latency_model.py on the tiny scale with the fake timer: what it writes, and errors of ~0 when the
runtime is exactly what the model can express."""

from __future__ import annotations

import importlib
import json

import pytest

from hgprune.latency.measure import Timed, TimingRecord
from tests.latency.test_model import _fake, fake_ms


@pytest.fixture
def bench(monkeypatch):
    module = importlib.import_module("benchmarks.latency_model")
    _fake(monkeypatch)

    def measure_models(models, runtime, size, timing, progress=None):
        ms = [fake_ms(m) for m in models]
        return [Timed(str(i), v, v, v, 1) for i, v in enumerate(ms)], TimingRecord([0.1] * 3, [0.1] * 3)

    monkeypatch.setattr(module, "measure_models", measure_models)
    monkeypatch.setattr(module, "SCALES", {**module.SCALES, "tiny": ("hg2", 16, 32, 64, 3)})  # test_model's family
    return module


def test_benchmark_writes_json_and_markdown(bench, tmp_path, monkeypatch):
    monkeypatch.setenv("HGPRUNE_CACHE", str(tmp_path / "cache"))
    argv = ["--scale", "tiny", "--runtime", "torch", "--candidates", "3", "--calibration-candidates", "10",
            "--repeats", "1", "--warmup", "0", "--force", "--out", str(tmp_path)]  # fmt: skip
    assert bench.main(argv) == 0
    data = json.loads((tmp_path / "latency_model.json").read_text())
    (result,) = data["results"]
    assert (result["scale"], result["runtime"], result["snap"], len(result["candidates"])) == ("tiny", "torch", 4, 3)
    assert result["median_abs_error"] < 1e-3 and result["worst_abs_error"] < 1e-3 and result["goal_met"]
    assert data["command"].startswith("python -m benchmarks.latency_model --scale tiny")
    assert "| tiny | torch | 3 | 4 |" in (tmp_path / "latency_model.md").read_text()
    assert (tmp_path / "cache" / "latency").is_dir()
