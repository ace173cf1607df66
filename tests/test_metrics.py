"""Heatmap decoding and PCKh on hand-built cases with known answers, and on the real MPII validation file."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hgprune.data.transforms import FLIP_PERM, affine_matrix, apply_affine, gaussian_heatmaps
from hgprune.metrics import decode_heatmaps, flip_back, pckh, to_image_coords


def test_decode_quarter_pixel_towards_higher_neighbour():
    hm = torch.zeros(1, 2, 8, 8)
    hm[0, 0, 3, 4], hm[0, 0, 3, 5], hm[0, 0, 4, 4] = 1.0, 0.5, 0.2  # right and lower neighbours higher
    hm[0, 1, 6, 2], hm[0, 1, 6, 1], hm[0, 1, 5, 2] = 0.8, 0.3, 0.1  # left and upper neighbours higher
    coords, maxvals = decode_heatmaps(hm)
    assert coords[0].tolist() == [[4.25, 3.25], [1.75, 5.75]]
    assert maxvals[0].tolist() == pytest.approx([1.0, 0.8])


def test_decode_at_border_has_no_offset():
    hm = torch.zeros(1, 1, 4, 4)
    hm[0, 0, 0, 3], hm[0, 0, 1, 3] = 1.0, 0.5
    coords, _ = decode_heatmaps(hm)
    assert coords[0, 0].tolist() == [3.0, 0.0]


def test_targets_decode_back_to_the_original_joints():
    rng = np.random.default_rng(0)
    joints = rng.uniform(300, 500, (16, 2))
    center, scale, rot = np.array([400.0, 400.0]), 1.6, 20.0
    points = apply_affine(joints, affine_matrix(center, scale, rot, 64))
    maps, _ = gaussian_heatmaps(points, np.ones(16), 64)
    coords, _ = decode_heatmaps(maps[None])
    back = to_image_coords(coords, center[None], np.array([scale]), 64, np.array([rot]))
    pixel = 200 * scale / 64  # one heatmap pixel in image pixels
    assert np.abs(back[0] - joints).max() < 0.75 * np.sqrt(2) * pixel


def test_flip_back_aligns_flipped_targets_exactly():
    joints = np.random.default_rng(3).uniform(10, 110, (16, 2))
    plain = apply_affine(joints, affine_matrix((60.0, 60.0), 0.6, 0.0, 64))
    flipped = apply_affine(joints, affine_matrix((60.0, 60.0), 0.6, 0.0, 64, flip=True))[FLIP_PERM]
    hm_plain, _ = gaussian_heatmaps(plain, np.ones(16), 64)
    hm_flip, _ = gaussian_heatmaps(flipped, np.ones(16), 64)
    back = flip_back(torch.from_numpy(hm_flip)[None])[0].numpy()
    assert np.array_equal(back, hm_plain)
    shifted = flip_back(torch.from_numpy(hm_flip)[None], shift=True)[0].numpy()
    assert not np.array_equal(shifted, hm_plain)


def _box(n: int) -> np.ndarray:
    """6 × 8 head boxes: diagonal 10, normaliser 0.6 × 10 = 6 px exactly."""
    return np.tile(np.array([[0.0, 0.0], [6.0, 8.0]]), (n, 1, 1))


def test_pckh_protocols_on_a_hand_built_case():
    norm = 6.0  # threshold 0.5 → 3 px
    gt = np.zeros((2, 16, 2))
    pred = gt.copy()
    missing = np.zeros((2, 16), bool)
    pred[0, 9, 0] = 0.5 * norm  # head exactly at the threshold: mpii hit (<=), seed miss (<)
    pred[1, 9, 0] = 0.1  # head hit in both
    pred[:, 0, 0] = 100.0  # r-ankle missed by everyone
    missing[1, 10] = True  # r-wrist of person 1 not annotated
    pred[0, 10, 0] = 100.0  # and person 0's r-wrist missed
    mpii = pckh(pred, gt, missing, _box(2), "mpii")
    seed = pckh(pred, gt, missing, _box(2), "seed")
    assert mpii.joints["head_top"] == 100.0 and seed.joints["head_top"] == 50.0
    assert mpii.joints["r_ankle"] == 0.0 and mpii.joints["r_wrist"] == 0.0
    assert mpii.groups["Wrist"] == 50.0 and mpii.groups["Ankle"] == 50.0
    # mpii: hits / visible over the 14 scored joints: 28 - 1 missing = 27 visible, misses: 2 ankle + 1 wrist.
    assert mpii.mean == pytest.approx(100 * 24 / 27)
    # seed: unweighted mean of 14 joints: ankle 0, wrist 0, head 50, eleven at 100.
    assert seed.mean == pytest.approx((11 * 100 + 50) / 14)
    assert mpii.to_dict()["mean"] == pytest.approx(100 * 24 / 27, abs=1e-4)
    assert set(mpii.to_dict()) == {"protocol", "groups", "joints", "mean", "pckh@0.1", "auc"}


def test_pckh_at_01_and_auc():
    gt = np.zeros((1, 16, 2))
    pred = gt.copy()
    pred[0, :, 0] = 0.205 * 6.0  # every joint at 0.205 normalised distance
    res = pckh(pred, gt, np.zeros((1, 16), bool), _box(1), "mpii")
    assert res.mean == 100.0 and res.pckh_01 == 0.0
    # hits at thresholds 0.21 … 0.50: 30 of the 51 thresholds 0, 0.01, …, 0.5
    assert res.auc == pytest.approx(100 * 30 / 51, abs=1e-6)


def test_pckh_on_real_file_protocols_differ_by_about_a_point(shared):
    scipy_io = pytest.importorskip("scipy.io")
    mat = scipy_io.loadmat(str(shared / "data/mpii/detections_our_format.mat"))
    gt = mat["pos_gt_src"].transpose(2, 0, 1)
    pred = mat["pos_pred_src"].transpose(2, 0, 1)
    visible = mat["jnt_missing"].T == 0
    boxes = mat["headboxes_src"].transpose(2, 0, 1)
    # Independent numpy computation of both protocols.
    dist = np.linalg.norm(pred - gt, axis=2) / (0.6 * np.linalg.norm(boxes[:, 1] - boxes[:, 0], axis=1))[:, None]
    scored = [j for j in range(16) if j not in (6, 7)]
    hits_le = ((dist <= 0.5) & visible)[:, scored].sum(0)
    hits_lt = ((dist < 0.5) & visible)[:, scored].sum(0)
    counts = visible[:, scored].sum(0)
    expected_mpii = 100 * hits_le.sum() / counts.sum()
    expected_seed = float(np.mean(100 * hits_lt / counts))
    mpii = pckh(pred - 1, gt - 1, ~visible, boxes - 1, "mpii")
    seed = pckh(pred - 1, gt - 1, ~visible, boxes - 1, "seed")
    assert mpii.mean == pytest.approx(expected_mpii, abs=1e-9)
    assert seed.mean == pytest.approx(expected_seed, abs=1e-9)
    assert 0.5 < mpii.mean - seed.mean < 1.5  # docs/DESIGN.md §3: about a point apart
    assert 80 < mpii.mean < 85
