"""evaluate_model and ``hgprune evaluate``: coordinates, flip test, preds.mat layout, visualisations."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.io
import torch
from torch import nn

from hgprune.data import FLIP_PAIRS
from hgprune.models import build_preset
from hgprune.models.hourglass import HourglassConfig
from hgprune.train import evaluate_model, sides_swapped
from hgprune.train.evaluation import flip_permutation
from tests.train.fakes import TinyPoseDataset


class Oracle(nn.Module):
    """Returns the dataset's target heatmaps for the batch it is given (looked up by image identity)."""

    def __init__(self, dataset: TinyPoseDataset) -> None:
        super().__init__()
        self.items = [dataset[i] for i in range(len(dataset))]
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for image in images:
            match = [t for img, t, _, _ in self.items if torch.equal(img, image)]
            out.append(match[0] if match else torch.zeros(16, 16, 16))
        return [torch.stack(out)]


def test_perfect_heatmaps_give_near_exact_coords_and_full_pckh():
    data = TinyPoseDataset(5, augment=False)
    result = evaluate_model(Oracle(data), data, batch_size=2)
    assert result.preds.shape == (5, 16, 2)
    err = np.abs(result.preds - data.joints)
    assert err.max() <= 2.0  # quarter-pixel decoding at stride 4: at most ~1.5 px off
    assert result.mpii.mean == pytest.approx(100.0)
    assert result.seed.mean == pytest.approx(100.0)
    assert result.loss == pytest.approx(0.0)


def test_stack_picks_which_stacks_heatmaps_are_scored():
    class TwoStacks(Oracle):  # stack 0 is blank, stack 1 is perfect
        def forward(self, images):
            perfect = super().forward(images)[0]
            return [torch.zeros_like(perfect), perfect]

    data = TinyPoseDataset(4, augment=False)
    model = TwoStacks(data)
    model.config = HourglassConfig(num_stacks=2, N=8, M=16)
    assert evaluate_model(model, data, batch_size=2).mpii.mean == pytest.approx(100.0)  # default: the last stack
    assert evaluate_model(model, data, batch_size=2, stack=1).mpii.mean == pytest.approx(100.0)
    assert evaluate_model(model, data, batch_size=2, stack=0).mpii.mean < 30.0
    with pytest.raises(ValueError, match="stack: the model has 2 stack"):
        evaluate_model(model, data, batch_size=2, stack=2)
    with pytest.raises(ValueError, match="flip test averages only the last stack"):
        evaluate_model(model, data, batch_size=2, stack=0, flip_test=True)


def test_evaluate_restores_train_mode_and_untrained_model_scores_low(tiny_model):
    data = TinyPoseDataset(6, augment=False)
    tiny_model.train()
    result = evaluate_model(tiny_model, data, batch_size=4)
    assert tiny_model.training
    assert result.mpii.mean < 30.0
    assert result.loss > 0


def test_flip_permutation_accepts_pairs_or_permutation():
    perm = flip_permutation([(0, 5), (1, 4)], 6)
    assert perm == [5, 4, 2, 3, 1, 0]
    assert flip_permutation(perm, 6) == perm


def test_flip_test_of_a_mirror_symmetric_model_changes_nothing():
    class Symmetric(nn.Module):
        def forward(self, x):
            h = torch.nn.functional.avg_pool2d(x.mean(1, keepdim=True), 4).repeat(1, 16, 1, 1)
            return [h + torch.flip(h, dims=[3])]

    data = TinyPoseDataset(3, augment=False)
    plain = evaluate_model(Symmetric(), data, batch_size=3)
    flipped = evaluate_model(Symmetric(), data, batch_size=3, flip_test=True)
    assert np.allclose(plain.preds, flipped.preds)


def test_evaluate_command_writes_one_based_preds_mat_and_images(tmp_path, monkeypatch, capsys):
    from hgprune.cli import main
    from hgprune.commands import evaluate as evaluate_cmd
    from hgprune.models import save_model

    data = TinyPoseDataset(4, augment=False)
    monkeypatch.setattr("hgprune.commands.evaluate.datasets_from_args", lambda args, size, splits, norm: {"val": data})
    model = build_preset("tiny")
    save_model(model, tmp_path / "m.pt")
    argv = ["evaluate", "--model-file", str(tmp_path / "m.pt"), "--arch=hg1", "--N", "16", "--batch-size=2",
            "--workers", "0", "--visualize", "True", "--visualization_path", str(tmp_path / "vis"),
            "--json"]  # fmt: skip
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["num_samples"] == 4 and set(out) >= {"mpii", "seed", "preds"}
    mat = scipy.io.loadmat(tmp_path / "preds.mat")["pos_pred_src"]
    assert mat.shape == (16, 2, 4)
    expected = evaluate_model(model, data, batch_size=2).preds
    assert np.allclose(mat, expected.transpose(1, 2, 0) + 1.0)
    assert sorted(p.name for p in (tmp_path / "vis").iterdir()) == [f"{i:06d}.png" for i in range(4)]
    assert evaluate_cmd.parse_bool("False") is False
    assert main(argv[:3] + ["--arch", "hg2"]) == 2  # checkpoint/flag mismatch is a user error


class SideBlind(Oracle):
    """The oracle's heatmaps with each left/right pair replaced by their sum: both sides land on one of the two."""

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        heatmaps = super().forward(images)[0]
        perm = flip_permutation(FLIP_PAIRS, 16)
        return [heatmaps + heatmaps[:, perm] * torch.tensor([float(p != j) for j, p in enumerate(perm)])[:, None, None]]


def test_sides_swapped_tells_a_model_that_knows_left_from_right_from_one_that_does_not():
    data = TinyPoseDataset(6, augment=False)
    knows = evaluate_model(Oracle(data), data, batch_size=3)
    swapped = sides_swapped(knows, data)
    assert knows.mpii.mean == pytest.approx(100.0)
    assert swapped.groups["Head"] == pytest.approx(100.0)  # unpaired joints stay where they were
    assert swapped.groups["Shoulder"] < 50 and swapped.mean < 70  # random joints: the twin is far away
    blind = evaluate_model(SideBlind(data), data, batch_size=3)
    assert blind.mpii.mean < 90  # one side of each pair is wrong...
    assert sides_swapped(blind, data).mean == pytest.approx(blind.mpii.mean)  # ...and exchanging them changes nothing

    class Unpaired(TinyPoseDataset):
        flip_pairs = ()

    with pytest.raises(ValueError, match="Unpaired: no left/right joint pairs"):
        sides_swapped(knows, Unpaired(6, augment=False))
