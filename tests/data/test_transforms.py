"""Affine crops, flips, heatmaps and reduced-resolution decoding agree with each other to sub-pixel precision."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from hgprune.data import transforms as T
from hgprune.models.normalization import IMAGENET, SEED


def test_inverse_affine_round_trips_within_half_pixel():
    rng = np.random.default_rng(0)
    for _ in range(50):
        center, scale = rng.uniform(0, 1000, 2), rng.uniform(0.5, 5)
        rot, flip = rng.uniform(-60, 60), bool(rng.integers(2))
        mat = T.affine_matrix(center, scale, rot, 64, flip)
        points = rng.uniform(0, 1000, (16, 2))
        back = T.apply_affine(T.apply_affine(points, mat), T.invert_affine(mat))
        assert np.abs(back - points).max() < 0.5
        assert np.abs(back - points).max() < 1e-6  # in fact exact up to float error


def test_crop_maps_center_to_middle_and_heatmap_is_quarter_of_input():
    mat = T.affine_matrix((100.0, 50.0), 1.0, 0.0, 256)
    assert np.allclose(T.apply_affine(np.array([100.0, 50.0]), mat), [127.5, 127.5])
    # 200 px of image → 256 px of crop
    assert np.allclose(T.apply_affine(np.array([200.0, 50.0]), mat) - 127.5, [128.0, 0.0])
    u = T.apply_affine(np.array([130.0, 70.0]), mat)
    h = T.apply_affine(np.array([130.0, 70.0]), T.affine_matrix((100.0, 50.0), 1.0, 0.0, 64))
    assert np.allclose(h, (u - 1.5) / 4)


def test_flip_mirrors_crop_and_swaps_joint_pairs():
    image = np.zeros((200, 200, 3), np.uint8)
    image[50:60, 20:30] = 255  # a bright square left of centre
    mat = T.affine_matrix((100.0, 100.0), 1.0, 0.0, 200, flip=False)
    fmat = T.affine_matrix((100.0, 100.0), 1.0, 0.0, 200, flip=True)
    plain, flipped = T.warp_image(image, mat, 200), T.warp_image(image, fmat, 200)
    assert np.array_equal(flipped, plain[:, ::-1])
    assert sorted(T.FLIP_PERM) == list(range(16))
    for a, b in T.FLIP_PAIRS:
        assert T.FLIP_PERM[a] == b and T.FLIP_PERM[b] == a
    for j in (6, 7, 8, 9):
        assert T.FLIP_PERM[j] == j


def test_heatmap_peak_is_one_at_warped_joint():
    joints = np.array([[30.0, 40.0], [70.0, 90.0], [500.0, 500.0]])
    mat = T.affine_matrix((50.0, 60.0), 0.8, 25.0, 64)
    points = T.apply_affine(joints, mat)
    maps, weights = T.gaussian_heatmaps(points, np.ones(3), 64)
    for j in range(2):
        y, x = np.unravel_index(maps[j].argmax(), maps[j].shape)
        assert (x, y) == (int(points[j, 0] + 0.5), int(points[j, 1] + 0.5))  # the seed's truncation
        assert maps[j].max() == pytest.approx(1.0)
        assert maps[j, y, x + 1] == pytest.approx(np.exp(-0.5))
    assert weights.tolist() == [1.0, 1.0, 0.0]  # the third joint falls outside the heatmap
    assert maps[2].max() == 0


def _paste_reference(points, weights, size, sigma):
    """The seed's draw_labelmap, one joint at a time: centre = int(v + 0.5) (v in hgprune's pixel-centre
    coordinates), skipped only when the whole 3σ patch misses the map, pasted where it overlaps."""
    radius = int(np.ceil(3 * sigma))
    grid = np.arange(-radius, radius + 1, dtype=np.float32)
    patch = np.exp(-(grid[None, :] ** 2 + grid[:, None] ** 2) / (2 * sigma**2))
    maps = np.zeros((len(points), size, size), np.float32)
    drawn = np.zeros(len(points), bool)
    for j, (px, py) in enumerate(points):
        x, y = int(px + 0.5), int(py + 0.5)
        if weights[j] <= 0 or any(int(c - 3 * sigma) >= size or int(c + 3 * sigma + 1) < 0 for c in (x, y)):
            continue
        drawn[j] = True
        for dy in range(-radius, radius + 1):
            for dx in range(-radius, radius + 1):
                if 0 <= y + dy < size and 0 <= x + dx < size:
                    maps[j, y + dy, x + dx] = patch[dy + radius, dx + radius]
    return maps, drawn


@pytest.mark.parametrize("size, sigma", [(64, 1.0), (16, 1.0), (16, 2.5), (8, 4.0)])
def test_vectorised_heatmaps_equal_the_per_joint_paste_bit_for_bit(size, sigma):
    rng = np.random.default_rng(size)
    for _ in range(30):
        points = rng.uniform(-4 - 3 * sigma, size + 4 + 3 * sigma, (16, 2))
        points[0] = [size - 0.5, 0.5]  # ties round half up, like the seed's int(v + 0.5)
        points[1] = [-0.7, -1.2]  # truncation toward zero: the seed puts this centre on pixel (0, 0)
        weights = (rng.random(16) > 0.2).astype(np.float32)
        weights[:2] = 1
        maps, out_weights = T.gaussian_heatmaps(points, weights, size, sigma)
        expected, drawn = _paste_reference(points, weights, size, sigma)
        assert maps.dtype == np.float32 and np.array_equal(maps, expected)
        assert np.array_equal(out_weights > 0, drawn)
        assert maps[1, 0, 0] == 1.0


def test_normalisation_equals_the_per_pixel_formula():
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    color = np.array([0.8, 1.0, 1.2], np.float32)
    rgb = image[:, :, ::-1].astype(np.float32) / 255.0
    for norm in (IMAGENET, SEED):
        expected = (np.clip(rgb * color, 0, 1) - np.array(norm.mean)) / norm.divisor
        assert np.allclose(T.to_normalized_chw(image, color, norm), expected.transpose(2, 0, 1), atol=1e-6)
    assert np.array_equal(T.to_normalized_chw(image, color), T.to_normalized_chw(image, color, SEED))  # default


def test_reduced_decode_gives_the_same_crop(tmp_path):
    rng = np.random.default_rng(1)
    small = rng.integers(0, 255, (45, 80, 3), dtype=np.uint8)
    image = cv2.resize(small, (1280, 720), interpolation=cv2.INTER_CUBIC)  # smooth content
    path = tmp_path / "img.jpg"
    cv2.imwrite(str(path), image, [cv2.IMWRITE_JPEG_QUALITY, 95])
    center, scale = (640.0, 360.0), 3.0  # 600 px crop → 64 px: decode at 1/8
    factor = T.reduction_factor(scale, 64)
    assert factor == 8
    mat = T.affine_matrix(center, scale, 15.0, 64)
    # Reference: full decode, area-averaged by 8 (pixel i covers 8i…8i+7, like JPEG DCT scaling), same matrix.
    area = cv2.resize(T.read_image(path, 1), (160, 90), interpolation=cv2.INTER_AREA)
    expected = T.warp_image(area, mat, 64, factor).astype(float)
    reduced = T.warp_image(T.read_image(path, factor), mat, 64, factor).astype(float)
    assert np.abs(expected - reduced).mean() < 2.0
    shifted = T.warp_image(area, mat, 64, 1)  # wrong: the full-resolution matrix used on the reduced image
    assert np.abs(expected - shifted.astype(float)).mean() > 10.0


@pytest.mark.parametrize("factor", [1, 2])
def test_exif_orientation_is_ignored_like_the_seed(tmp_path, factor):
    """Annotations live in the stored pixel grid; OpenCV's default would rotate an EXIF-tagged photo under them."""
    from PIL import Image

    stored = np.random.default_rng(0).integers(0, 255, (20, 40, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    path = tmp_path / "tagged.jpg"
    Image.fromarray(stored).save(path, exif=exif.tobytes())
    assert cv2.imread(str(path)).shape == (40, 20, 3)  # what OpenCV does by default
    assert T.read_image(path, factor).shape == (20 // factor, 40 // factor, 3)


def test_normalisation_and_colour_jitter():
    image = np.full((4, 4, 3), 255, np.uint8)
    mean, std = np.array(IMAGENET.mean), np.array(IMAGENET.std)
    out = T.to_normalized_chw(image, normalization=IMAGENET)
    assert out.shape == (3, 4, 4)
    assert np.allclose(out[:, 0, 0], (1.0 - mean) / std)
    dimmed = T.to_normalized_chw(image, np.array([0.5, 1.0, 1.2], np.float32), IMAGENET)
    assert np.allclose(dimmed[:, 0, 0], (np.array([0.5, 1.0, 1.0]) - mean) / std, atol=1e-6)
    assert np.allclose(T.to_rgb_image(dimmed, IMAGENET)[0, 0], [0.5, 1.0, 1.0], atol=1e-6)
    seed = T.to_normalized_chw(image, np.array([0.5, 1.0, 1.2], np.float32), SEED)
    assert np.allclose(seed[:, 0, 0], np.array([0.5, 1.0, 1.0]) - np.array(SEED.mean), atol=1e-6)  # no division


def test_augment_defaults_stay_in_seed_ranges():
    aug, rng = T.Augment(), np.random.default_rng(0)
    samples = [aug.sample(rng) for _ in range(2000)]
    scales = np.array([s[0] for s in samples])
    rots = np.array([s[1] for s in samples])
    flips = np.array([s[2] for s in samples])
    assert scales.min() >= 0.75 and scales.max() <= 1.25
    assert np.abs(rots).max() <= 60
    assert 0.35 < (rots == 0).mean() < 0.45  # rotation applied with p = 0.6
    assert 0.45 < flips.mean() < 0.55
