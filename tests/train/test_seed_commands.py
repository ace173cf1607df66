"""The seed's README commands run unchanged (paths aside), every seed flag is accepted, ``--seed`` reproduces.

Runs against ``shared/fixtures/seed-mpii`` (MPII-layout images of the real annotation file); skipped without it.
"""

from __future__ import annotations

import json

import pytest
import torch

from hgprune.cli import build_parser, main
from hgprune.data import SHIPPED_MPII_ANNOTATIONS, load_annotations, split_records
from hgprune.fsutil import safe_torch_load
from hgprune.models import build_preset, load_model, save_model
from hgprune.models.normalization import IMAGENET, SEED, Normalization


@pytest.fixture
def seed_mpii(shared):
    root = shared / "fixtures" / "seed-mpii"
    if not root.is_dir():
        pytest.skip(f"seed fixture not found at {root}")
    return root


def _readme_train(images, checkpoint) -> list[str]:
    """The training command of the seed's README, paths aside."""
    return ["train", "--arch=hg7", f"--image-path={images}", f"--checkpoint={checkpoint}", "--epochs=50",
            "--train-batch=24", "--test-batch=24", "--lr=1e-3", "--schedule", "20", "35", "45", "--workers=16",
            "--N=128", "--M=256"]  # fmt: skip


@pytest.mark.parametrize("with_annotations", [False, True])
def test_readme_train_command_runs_unchanged(seed_mpii, tmp_path, monkeypatch, with_annotations):
    """Everything up to the first step runs for real (model, data, optimiser); ``fit`` is recorded, not run, because
    the README trains hg7 for 50 epochs on all of MPII."""
    from hgprune.train.loop import Trainer

    seen = {}

    def fake_fit(self, start_epoch=0, on_epoch_end=None, epochs=None):
        seen.update(cfg=self.cfg, train=self.train_set, val=self.val_set, model=self.model, start=start_epoch)
        return []

    monkeypatch.setattr(Trainer, "fit", fake_fit)
    argv = _readme_train(seed_mpii / "images", tmp_path / "ckpt")
    if with_annotations:
        argv += ["--annotations", str(seed_mpii / "mpii_subset.json.gz")]
    assert main(argv) == 0
    cfg = seen["cfg"]
    assert (cfg.epochs, cfg.batch_size, cfg.test_batch_size, cfg.lr) == (50, 24, 24, 1e-3)
    assert (cfg.schedule, cfg.workers, seen["start"]) == ((20, 35, 45), 16, 0)
    model = seen["model"]
    assert (model.config.arch, model.config.N, model.config.M) == ("hg7", 128, 256)
    assert model.config.normalization == SEED
    people = (40, 40) if with_annotations else (22246, 2958)  # without --annotations: the file hgprune ships
    assert (len(seen["train"]), len(seen["val"])) == people
    assert seen["train"].normalization == SEED and seen["train"].target_weight == "visible"


def test_seed_defaults_and_short_flags():
    args = build_parser("train").parse_args(["train", "-a", "hg2", "-j", "3", "--learning-rate", "0.01"])
    assert (args.arch, args.workers, args.lr, args.N, args.M) == ("hg2", 3, 0.01, 128, 128)
    assert (args.epochs, args.train_batch, args.schedule, args.gamma, args.momentum) == (100, 6, [60, 90], 0.1, 0.0)
    assert args.start_epoch is None and args.snapshot == 0 and args.checkpoint == "checkpoint"
    ev = build_parser("evaluate").parse_args(["evaluate", "--model-file", "m", "--flip", "-a", "hg1", "-j", "2"])
    assert (ev.flip_test, ev.arch, ev.workers, ev.decode) == (True, "hg1", 2, "exact")


def test_readme_evaluate_command_runs_unchanged(seed_mpii, tmp_path, capsys):
    """The README's evaluate example (paths and the model's own arch/N/M aside) on the seed-trained model."""
    model_file = tmp_path / "model_best.pth.tar"
    model_file.write_bytes((seed_mpii / "seed_hg1_N16_M32_128px.pth.tar").read_bytes())
    vis = tmp_path / "vis"
    argv = ["evaluate", "--arch=hg1", f"--image-path={seed_mpii / 'images'}", f"--model-file={model_file}",
            "--batch-size=1", "--workers=0", "--visualize", "True", f"--visualization_path={vis}", "--N=16",
            "--M=32", "--annotations", str(seed_mpii / "mpii_subset.json.gz"), "--input_shape", "128"]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "input normalisation seed" in out
    assert len(list(vis.iterdir())) == 40 and (tmp_path / "preds.mat").is_file()


def test_evaluate_without_annotations_reads_the_shipped_file(seed_mpii, tmp_path, monkeypatch, capsys):
    """No --annotations: the shipped file's 2,958 validation people, images from --image-path (the fixture has
    only a few of them, so prediction itself is stubbed)."""
    seen = {}

    def fake_evaluate(model, dataset, **kw):
        seen["dataset"] = dataset
        raise SystemExit(0)

    monkeypatch.setattr("hgprune.commands.evaluate.evaluate_model", fake_evaluate)
    model_file = tmp_path / "m.pth.tar"
    model_file.write_bytes((seed_mpii / "seed_hg1_N16_M32_128px.pth.tar").read_bytes())
    with pytest.raises(SystemExit):
        main(["evaluate", f"--image-path={seed_mpii / 'images'}", f"--model-file={model_file}"])
    data = seen["dataset"]
    assert len(data) == 2958 and data.normalization == SEED
    shipped = split_records(load_annotations(SHIPPED_MPII_ANNOTATIONS), "val")
    assert [r.image for r in data.records] == [r.image for r in shipped]
    assert main(["evaluate", f"--model-file={model_file}"]) == 2
    assert "--image-path: required" in capsys.readouterr().err


def _train(seed_mpii, out, seed: int) -> dict[str, torch.Tensor]:
    argv = ["train", "--arch", "hg1", "--N", "16", "--M", "32", "--input_shape", "64", "--epochs", "1",
            "--train-batch", "8", "--test-batch", "20", "--workers", "0", "--seed", str(seed),
            "--image-path", str(seed_mpii / "images"), "--annotations", str(seed_mpii / "mpii_subset.json.gz"),
            "--checkpoint", str(out)]  # fmt: skip
    assert main(argv) == 0
    return safe_torch_load(out / "checkpoint.pth.tar")["state_dict"]


def test_train_with_the_same_seed_gives_identical_weights(seed_mpii, tmp_path, capsys):
    first = _train(seed_mpii, tmp_path / "a", 0)
    second = _train(seed_mpii, tmp_path / "b", 0)
    other = _train(seed_mpii, tmp_path / "c", 1)
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert not all(torch.equal(first[k], other[k]) for k in first)
    assert load_model(tmp_path / "a" / "checkpoint.pth.tar").config.normalization == SEED


def test_checkpoints_carry_their_normalisation(tmp_path):
    model = build_preset("tiny")
    assert model.config.normalization == SEED  # the default for new models
    custom = Normalization(mean=(0.5, 0.4, 0.3), std=(0.2, 0.2, 0.2))
    save_model(build_preset("tiny", normalization=custom), tmp_path / "custom.pt")
    assert load_model(tmp_path / "custom.pt").config.normalization == custom
    # an hgprune checkpoint written before the field existed was trained with ImageNet's statistics
    save_model(model, tmp_path / "old.pt")
    raw = torch.load(tmp_path / "old.pt", weights_only=True)
    del raw["config"]["normalization"]
    torch.save(raw, tmp_path / "old.pt")
    assert load_model(tmp_path / "old.pt").config.normalization == IMAGENET
    # a seed-layout plain state dict gets the seed's
    torch.save({f"module.{k}": v for k, v in model.state_dict().items()}, tmp_path / "plain.pth")
    assert load_model(tmp_path / "plain.pth").config.normalization == SEED
    bad = torch.load(tmp_path / "custom.pt", weights_only=True)
    bad["config"]["normalization"] = {"mean": [0.5, 0.5], "std": None}
    torch.save(bad, tmp_path / "bad.pt")
    from hgprune.errors import HgpruneError

    with pytest.raises(HgpruneError, match="normalization.mean"):
        load_model(tmp_path / "bad.pt")


def test_export_metadata_carries_the_normalisation(tmp_path):
    pytest.importorskip("onnx")
    import onnx

    from hgprune.export import export_model

    model = build_preset("tiny", normalization="imagenet")
    export_model(model, "onnx", tmp_path / "m.onnx", input_size=64)
    meta = {p.key: p.value for p in onnx.load(str(tmp_path / "m.onnx")).metadata_props}
    assert json.loads(meta["input_normalization"]) == IMAGENET.to_dict()
    assert json.loads(meta["hgprune_config"])["normalization"] == IMAGENET.to_dict()
