"""TensorBoard event files (hgprune.tracking): read back, their scalars equal metrics.csv and log.csv."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pandas as pd
import pytest

from hgprune.cli import main
from hgprune.errors import HgpruneError
from hgprune.metrics import GROUPS
from hgprune.models import load_model
from hgprune.tracking import EPOCH_PREFIX, EVENTS_DIR, STEP_PREFIX, kept_channels, require_tensorboard

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests" / "recipes" / "tiny.yaml"


@pytest.fixture
def cache(tmp_path_factory, monkeypatch):
    path = tmp_path_factory.getbasetemp() / "synth-cache"
    monkeypatch.setenv("HGPRUNE_CACHE", str(path))
    return path


def _events(directory: Path):
    event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    accumulator = event_accumulator.EventAccumulator(str(directory), size_guidance={"scalars": 0, "tensors": 0})
    accumulator.Reload()
    return accumulator


def _scalars(accumulator, tag: str) -> dict[int, float]:
    return {event.step: event.value for event in accumulator.Scalars(tag)}


def test_run_scalars_equal_metrics_csv(tmp_path, cache):
    pytest.importorskip("tensorboard")
    out = tmp_path / "run"
    assert main(["run", str(TINY), "--out", str(out), "--set", "output.tensorboard=true"]) == 0
    events = _events(out / EVENTS_DIR)
    metrics = pd.read_csv(out / "metrics.csv")
    numeric = [c for c in metrics.columns if c != "step" and pd.api.types.is_numeric_dtype(metrics[c])]
    assert {"params", "macs_fvcore", "pckh_mean", "pckh_seed_mean", *(f"pckh_{g}" for g in GROUPS)} <= set(numeric)
    tags = set(events.Tags()["scalars"])
    checked = 0
    for column in numeric:
        expected = {int(s): float(v) for s, v in zip(metrics["step"], metrics[column]) if not math.isnan(v)}
        if not expected:  # a column the tiny recipe leaves empty (latency, thop): no curve either
            assert STEP_PREFIX + column not in tags
            continue
        assert _scalars(events, STEP_PREFIX + column) == pytest.approx(expected, rel=1e-6), column
        checked += 1
    assert checked >= 15

    final = kept_channels(load_model(out / "final" / "model.pt"))
    last = int(metrics["step"].max())
    for part, channels in final.items():
        assert _scalars(events, f"{STEP_PREFIX}channels/{part}")[last] == channels
    first = {part: _scalars(events, f"{STEP_PREFIX}channels/{part}")[0] for part in final}
    assert sum(final.values()) < sum(first.values())  # pruning shows in the per-part curves

    recipe_text = events.Tensors("recipe/text_summary")[0].tensor_proto.string_val[0].decode()
    assert "criterion: taylor" in recipe_text and "tensorboard: true" in recipe_text
    assert events.PluginTagToContent("hparams")  # the recipe as hyper-parameters


def test_train_scalars_equal_log_csv(tmp_path, cache):
    pytest.importorskip("tensorboard")
    out = tmp_path / "ckpt"
    data = ["--dataset=synthpose", f"--data-root={cache}", "--synth-train=32", "--synth-val=16", "--synth-size=64"]
    model = ["--arch=hg1", "--N=8", "--M=16", "--input_shape=64"]
    argv = ["train", *model, "--epochs=2", "--train-batch=8", "--test-batch=16", "--schedule", "1", "--workers=0",
            f"--checkpoint={out}", "--tensorboard", *data]  # fmt: skip
    assert main(argv) == 0
    events = _events(out / EVENTS_DIR)
    log = pd.read_csv(out / "log.csv")
    assert list(log["epoch"]) == [1, 2]
    for column in ("lr", "loss", "val_loss", "pckh", "pckh_seed", "pckh_01", "auc"):
        expected = dict(zip(log["epoch"].astype(int), log[column].astype(float)))
        assert _scalars(events, EPOCH_PREFIX + column) == pytest.approx(expected, rel=1e-5), column
    assert _scalars(events, EPOCH_PREFIX + "lr")[2] == pytest.approx(0.1 * _scalars(events, EPOCH_PREFIX + "lr")[1])
    for group in GROUPS:
        values = _scalars(events, f"{EPOCH_PREFIX}pckh_{group}")
        assert set(values) == {1, 2} and all(0 <= v <= 100 for v in values.values())
    settings = events.Tensors("recipe/text_summary")[0].tensor_proto.string_val[0].decode()
    assert "arch: hg1" in settings and "_main" not in settings


def test_without_tensorboard_the_option_names_the_install_command(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # what an environment without it imports
    with pytest.raises(HgpruneError, match=r"pip install 'hgprune\[tracking\]'"):
        require_tensorboard()
    assert main(["run", str(TINY), "--out", str(tmp_path / "run"), "--set", "output.tensorboard=true"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and "hgprune[tracking]" in error
    assert not (tmp_path / "run").exists()  # refused before anything was written
    argv = ["train", "--tensorboard", f"--checkpoint={tmp_path / 'ckpt'}", "--dataset=synthpose"]
    assert main(argv) == 2
    assert "hgprune[tracking]" in capsys.readouterr().err
