"""studies/sweep_hg1_hg8/widths.py: unpruned models at several widths, timed eager and in ONNX Runtime side by side."""

from __future__ import annotations

import json

import pytest

from studies.sweep_hg1_hg8 import widths


@pytest.fixture(scope="module")
def script():
    return widths


def test_times_every_width_in_both_backends_and_records_the_load(script, tmp_path):
    argv = ["--arch", "hg1", "--widths", "8x16", "8x14", "--repeats", "2", "--warmup", "0", "--force"]
    assert script.main([*argv, "--out", str(tmp_path)]) == 0
    data = json.loads((tmp_path / "widths.json").read_text())
    rows = {(r["N"], r["M"]): r for r in data["rows"]}
    assert list(rows) == [(8, 16), (8, 14)]
    assert rows[(8, 16)]["aligned_to_8"] and not rows[(8, 14)]["aligned_to_8"]
    assert rows[(8, 16)]["mmacs"] > rows[(8, 14)]["mmacs"] > 0
    assert all(r["eager_ms"] > 0 and r["ort_ms"] > 0 for r in rows.values())
    assert "--widths 8x16 8x14" in data["environment"]["command"]
    markdown = (tmp_path / "widths.md").read_text()
    assert "| 8 | 16 | yes |" in markdown and "| 8 | 14 | no |" in markdown


def test_a_busy_machine_is_refused_and_nothing_is_written(script, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(script, "load_average", lambda: [3.0, 2.0, 1.0])
    assert script.main(["--arch", "hg1", "--widths", "8x16", "--out", str(tmp_path)]) != 0
    assert "load average 3.00" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("width", ["8", "ax16", "8x16x2"])
def test_a_malformed_width_is_a_usage_error(script, width, capsys):
    with pytest.raises(SystemExit) as exc:
        script.parse_args(["--widths", width])
    assert exc.value.code == 2
    assert f"width {width!r} must look like NxM" in capsys.readouterr().err


def test_interleaved_timing_runs_every_call_each_round_in_a_shuffled_order():
    from hgprune.timing import time_interleaved  # the one interleaved timer of the studies and benchmarks

    log: list[str] = []
    calls = [lambda name=name: log.append(name) for name in "abcd"]
    # settle_ms=0: only the timed calls are logged (settling is tested in tests/test_benchmarks.py)
    times = time_interleaved(calls, warmup=2, repeats=3, settle_ms=0)
    assert [len(t) for t in times] == [3, 3, 3, 3]
    assert all(ms >= 0 for t in times for ms in t)
    rounds = [log[i : i + 4] for i in range(0, len(log), 4)]
    assert len(rounds) == 5 and all(sorted(r) == list("abcd") for r in rounds)
    assert len({tuple(r) for r in rounds}) > 1  # the order changes between rounds


def test_markdown_tables_keep_three_significant_digits_including_trailing_zeros():
    from benchmarks.common import md_table

    table = md_table(["a", "b", "c", "d", "e"], [[3.0, 0.5, 123.4, 12345.6, None]])
    assert table.splitlines()[-1] == "| 3.00 | 0.500 | 123 | 12,346 |  |"
