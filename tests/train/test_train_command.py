"""``hgprune train``: seed flag spellings, the seed's checkpoint files, logs and --resume."""

from __future__ import annotations

import csv

import pytest
import torch

from hgprune.cli import build_parser, main
from hgprune.commands.common import parse_input_shape
from hgprune.errors import HgpruneError
from tests.train.fakes import TinyPoseDataset


def parse(argv: list[str]):
    return vars(build_parser("train").parse_args(["train", *argv]))


def test_seed_and_dashed_spellings_parse_identically():
    seed = ["--arch=hg7", "--image-path=./data/images", "--checkpoint=checkpoints/hg8", "--epochs=50",
            "--train-batch=24", "--test-batch=24", "--lr=1e-3", "--schedule", "20", "35", "45", "--workers=16",
            "--N=128", "--M=256", "--input_shape=(256, 256)", "--start-epoch=3", "--weight-decay=0.1"]  # fmt: skip
    dashed = ["--arch", "hg7", "--image_path", "./data/images", "--checkpoint", "checkpoints/hg8", "--epochs", "50",
              "--train_batch", "24", "--test_batch", "24", "--lr", "0.001", "--schedule", "20", "35", "45",
              "--workers", "16", "--N", "128", "--M", "256", "--input-shape", "256", "256", "--start_epoch", "3",
              "--weight_decay", "0.1"]  # fmt: skip
    a, b = parse(seed), parse(dashed)
    assert parse_input_shape(a.pop("input_shape")) == parse_input_shape(b.pop("input_shape")) == 256
    assert a == b
    assert a["schedule"] == [20, 35, 45] and a["train_batch"] == 24 and a["lr"] == 1e-3


@pytest.mark.parametrize("text", ["(256, 256)", "256,256", "256x256", "256", "[256, 256]"])
def test_input_shape_forms(text):
    assert parse_input_shape(text) == 256


@pytest.mark.parametrize("text", ["(256, 192)", "100", "a,b"])
def test_bad_input_shape_is_a_user_error(text):
    with pytest.raises(HgpruneError, match="--input_shape"):
        parse_input_shape(text)


@pytest.fixture
def fake_data(monkeypatch):
    sets = {"train": TinyPoseDataset(6), "val": TinyPoseDataset(4, seed=1, augment=False)}
    monkeypatch.setattr(
        "hgprune.commands.train.datasets_from_args", lambda args, size, splits, norm: {s: sets[s] for s in splits}
    )
    return sets


def test_train_writes_seed_files_and_resumes(tmp_path, fake_data, capsys):
    from hgprune.models import load_model

    out = tmp_path / "ckpt"
    common = ["train", "--arch=hg1", "--N=16", "--M=32", "--input_shape=64", "--workers=0", "--train-batch=4",
              "--test-batch=4", "--lr=1e-3", "--schedule", "1", "--snapshot=2", f"--checkpoint={out}"]  # fmt: skip
    assert main([*common, "--epochs=2"]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == ["checkpoint.pth.tar", "checkpoint_2.pth.tar", "log.csv", "log.txt", "model_best.pth.tar"]
    ckpt = torch.load(out / "checkpoint.pth.tar", weights_only=True)
    assert {"epoch", "arch", "state_dict", "best_acc", "optimizer", "config"} <= set(ckpt)
    assert ckpt["epoch"] == 2 and ckpt["arch"] == "hg1" and ckpt["config"]["input_size"] == 64
    assert all(k.startswith("module.") for k in ckpt["state_dict"])
    model = load_model(out / "checkpoint.pth.tar")
    assert (model.config.N, model.config.M) == (16, 32)
    with (out / "log.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert float(rows[1]["lr"]) == pytest.approx(1e-4)
    best = torch.load(out / "model_best.pth.tar", weights_only=True)
    assert best["best_acc"] == pytest.approx(max(float(r["pckh"]) for r in rows), abs=1e-3)
    assert ckpt["best_acc"] == best["best_acc"]

    assert main([*common, "--epochs=3", f"--resume={out / 'checkpoint.pth.tar'}"]) == 0
    resumed = torch.load(out / "checkpoint.pth.tar", weights_only=True)
    assert resumed["epoch"] == 3
    with (out / "log.csv").open() as handle:
        assert [r["epoch"] for r in csv.DictReader(handle)] == ["1", "2", "3"]
    # the resumed optimizer continued from the saved state (RMSprop step counts add up)
    steps = [float(s["step"]) for s in resumed["optimizer"]["state"].values()]
    assert steps and all(s == 3 * 2 for s in steps)  # 3 epochs × 2 batches of 4 from 6 samples
    assert "epoch   3/3" in capsys.readouterr().out


def test_precise_bn_flag_reaches_the_training_config_stored_in_the_checkpoint(tmp_path, fake_data):
    out = tmp_path / "ckpt"
    argv = ["train", "--arch=hg1", "--N=16", "--M=32", "--input_shape=64", "--workers=0", "--train-batch=4",
            "--test-batch=4", "--epochs=1", "--precise-bn=1", f"--checkpoint={out}"]  # fmt: skip
    assert main(argv) == 0
    assert torch.load(out / "checkpoint.pth.tar", weights_only=True)["train_config"]["precise_bn"] == 1
    assert parse([])["precise_bn"] == 0  # off by default, as the seed
