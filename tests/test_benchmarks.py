"""The benchmark suite and the studies as packages: what ``make bench`` runs, the engine benchmark's pinned allocation
on a tiny model, and the interleaved timer's clock hook. No timing is asserted."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
import time

import pytest

from benchmarks import data, engine, run_all
from tests.conftest import ROOT


def _modules(folder: str) -> set[str]:
    found = set()
    for path in (ROOT / folder).rglob("*.py"):
        found.update(part.removesuffix(".py") for part in path.relative_to(ROOT).parts)
    return found


def test_no_benchmark_or_study_module_is_named_like_a_standard_library_module():
    names = _modules("benchmarks") | _modules("studies")
    assert "profiler" in names and "run_all" in names
    assert names & set(sys.stdlib_module_names) == set()


def test_nothing_in_the_repository_imports_by_editing_sys_path():
    offenders = [
        str(path.relative_to(ROOT))
        for folder in ("hgprune", "benchmarks", "studies", "scripts", "tests")
        for path in (ROOT / folder).rglob("*.py")
        if path.name != "test_benchmarks.py"
        and ("sys.path.insert" in path.read_text() or "sys.path =" in path.read_text())
    ]
    assert offenders == []


def test_make_bench_runs_every_module_of_benchmarks_and_the_gpu_one_only_on_a_gpu():
    modules = {m.name for m in pkgutil.iter_modules([str(ROOT / "benchmarks")]) if not m.name.startswith("_")}
    on_cpu = run_all.selected(run_all.discover(), None, "cpu")
    on_gpu = run_all.selected(run_all.discover(), None, "cuda")
    assert set(on_gpu) == modules - {"common", "run_all"}
    assert set(on_cpu) == set(on_gpu) - run_all.GPU_ONLY and "gpu_latency" in on_gpu
    assert on_cpu[:4] == ["profiler", "engine", "data", "latency"] and on_cpu[-1] == "accuracy"
    assert run_all.selected(run_all.discover(), ["engine", "gpu_latency"], "cpu") == ["engine", "gpu_latency"]


def test_gpu_latency_target_without_a_gpu_is_one_line_and_writes_nothing(tmp_path, capsys, monkeypatch):
    from benchmarks import gpu_latency_target

    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    assert gpu_latency_target.main(["--device", "cuda", "--out", str(tmp_path)]) != 0
    err = capsys.readouterr().err.strip()
    assert err.startswith("gpu_latency_target: error:") and "\n" not in err and "GPU" in err
    assert list(tmp_path.iterdir()) == []


def test_run_all_runs_as_a_module_from_the_repository_root():
    done = subprocess.run([sys.executable, "-m", "benchmarks.run_all", "--list", "--device", "cuda"], cwd=ROOT,
                          capture_output=True, text=True, check=True)  # fmt: skip
    assert done.stdout.splitlines()[0] == "-m benchmarks.profiler --device cuda"
    assert "-m benchmarks.gpu_latency --device cuda" in done.stdout.splitlines()


@pytest.mark.parametrize("allocation", ["uniform", "global"])
def test_engine_benchmark_pins_the_same_allocation_on_both_sides(tmp_path, allocation):
    argv = ["--archs", "hg2", "--N", "16", "--M", "32", "--input-size", "64", "--repeats", "2"]
    assert engine.main([*argv, "--allocation", allocation, "--out-dir", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "engine.json").read_text())
    assert report["settings"]["allocation"] == allocation
    (row,) = report["results"]
    assert row["raw_tp"]["global_pruning"] is (allocation == "global")
    assert row["raw_tp"]["pruning_ratio"] == row["engine"]["channel_ratio"] > 0
    assert abs(row["engine"]["kept_macs"] - engine.KEPT) <= 0.02  # the engine's search hits its target
    assert 0 < row["raw_tp"]["kept_macs"] < 1  # raw tp pruned at the engine's ratio
    assert len(row["engine"]["wall_s_runs"]) == len(row["raw_tp"]["wall_s_runs"]) == 2
    assert row["wall_ratio"] == pytest.approx(row["engine"]["wall_s"] / row["raw_tp"]["wall_s"])
    assert f"allocation **{allocation}** on both sides" in (tmp_path / "engine.md").read_text()


def test_interleaved_timer_takes_its_milliseconds_from_the_clock_it_is_given():
    from hgprune.timing import time_interleaved

    ran: list[str] = []
    clock_values = iter(range(1, 100))
    times = time_interleaved(
        [lambda: ran.append("a"), lambda: ran.append("b")],
        warmup=1,
        repeats=2,
        clock=lambda call: (call(), next(clock_values))[1],
        settle_ms=0,
    )
    assert sorted(ran) == ["a"] * 3 + ["b"] * 3
    assert sorted(times[0] + times[1]) == [3, 4, 5, 6]  # rounds 2 and 3; round 1 (values 1, 2) was the warm-up


def test_interleaved_timer_settles_each_configuration_on_itself_before_timing_it():
    from hgprune.timing import time_interleaved

    ran: list[str] = []
    timed: list[tuple[str, str]] = []  # (the call timed, the call that ran just before it)

    def clock(call):
        before = ran[-1]
        call()
        timed.append((ran[-1], before))
        return 1.0

    calls = [lambda: (time.sleep(0.002), ran.append("a")), lambda: ran.append("b")]
    time_interleaved(calls, warmup=1, repeats=3, clock=clock, settle_ms=5)
    assert len(timed) == 8 and all(call == before for call, before in timed)  # never timed right after a neighbour
    assert 4 * 2 <= ran.count("a") <= 4 * 5  # each of 4 visits: 3 or 4 untimed 2-ms calls (≥ 5 ms) and the timed one
    assert ran.count("b") > 4 * 10  # a fast call runs many times in 5 ms


def test_settling_runs_at_least_once_and_not_at_all_when_off():
    from hgprune.timing import settle

    count = []
    assert settle(lambda: count.append(1), 0) == 0 and count == []
    assert settle(lambda: (time.sleep(0.03), count.append(1)), 1) == 1 and count == [1]


def test_data_benchmark_draws_its_samples_interleaved_and_counts_them():
    drawn: dict[str, list[int]] = {"fast": [], "slow": []}
    rates = data.images_per_s({"fast": (drawn["fast"].append, 3), "slow": (drawn["slow"].append, 1)}, rounds=4)
    assert drawn["fast"] == list(range(15)) and drawn["slow"] == list(range(5))  # one warm-up round + 4
    assert set(rates) == {"fast", "slow"} and all(rate > 0 for rate in rates.values())
