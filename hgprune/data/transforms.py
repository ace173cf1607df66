"""OpenCV sample pipeline: one affine warp per sample (crop, scale, rotation, flip), colour jitter, heatmaps.

Coordinates are 0-based pixels with pixel *centres* at integers. A crop maps the square of side ``200 * scale``
around ``center`` onto an ``out × out`` image with ``center → ((out - 1) / 2, (out - 1) / 2)``; the same formula
at heatmap resolution makes input pixel ``u`` land on heatmap pixel ``(u - 1.5) / 4``, so targets and decoded
predictions agree with the images exactly.
"""

from __future__ import annotations

import functools
import os
import warnings
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image

from hgprune.models.normalization import DEFAULT as DEFAULT_NORMALIZATION
from hgprune.models.normalization import Normalization

# MPII order: 0 r-ankle … 15 l-wrist. A horizontal flip swaps left and right joints.
FLIP_PERM = [5, 4, 3, 2, 1, 0, 6, 7, 8, 9, 15, 14, 13, 12, 11, 10]
FLIP_PAIRS = [(0, 5), (1, 4), (2, 3), (10, 15), (11, 14), (12, 13)]


@dataclass(frozen=True)
class Augment:
    """Random augmentation, defaults = the seed's (docs/DESIGN.md §2). ``None`` augment means a plain centred crop."""

    scale_sigma: float = 0.25
    scale_min: float = 0.75
    scale_max: float = 1.25
    rot_sigma: float = 30.0
    rot_max: float = 60.0
    rot_prob: float = 0.6
    flip_prob: float = 0.5
    color_min: float = 0.8
    color_max: float = 1.2

    def sample(self, rng: np.random.Generator) -> tuple[float, float, bool, np.ndarray]:
        """(scale factor, rotation degrees, flip, per-channel colour factors)."""
        scale = float(np.clip(1.0 + self.scale_sigma * rng.standard_normal(), self.scale_min, self.scale_max))
        rot = float(np.clip(self.rot_sigma * rng.standard_normal(), -self.rot_max, self.rot_max))
        if rng.random() >= self.rot_prob:
            rot = 0.0
        flip = bool(rng.random() < self.flip_prob)
        color = rng.uniform(self.color_min, self.color_max, size=3).astype(np.float32)
        return scale, rot, flip, color


def affine_matrix(center, scale: float, rotation: float, out_size: int, flip: bool = False) -> np.ndarray:
    """2×3 matrix mapping original-image pixels to crop pixels (rotation in degrees, counter-clockwise on screen)."""
    k = out_size / (200.0 * float(scale))
    theta = np.deg2rad(rotation)
    cos, sin = np.cos(theta) * k, np.sin(theta) * k
    lin = np.array([[cos, sin], [-sin, cos]], dtype=np.float64)
    half = (out_size - 1) / 2.0
    c = np.asarray(center, dtype=np.float64)
    mat = np.concatenate([lin, (np.array([half, half]) - lin @ c)[:, None]], axis=1)
    if flip:
        mat = np.array([[-1.0, 0.0, out_size - 1.0], [0.0, 1.0, 0.0]]) @ np.vstack([mat, [0.0, 0.0, 1.0]])
    return mat


def invert_affine(mat: np.ndarray) -> np.ndarray:
    """Inverse of a 2×3 affine matrix."""
    full = np.vstack([np.asarray(mat, dtype=np.float64), [0.0, 0.0, 1.0]])
    return np.linalg.inv(full)[:2]


def apply_affine(points: np.ndarray, mat: np.ndarray) -> np.ndarray:
    """Transform (..., 2) points with a 2×3 matrix."""
    points = np.asarray(points, dtype=np.float64)
    return points @ mat[:, :2].T + mat[:, 2]


def reduction_factor(scale: float, out_size: int, image_shape: tuple[int, int] | None = None) -> int:
    """Largest JPEG decode reduction (1, 2, 4, 8) that still samples the crop at ≥ 1 source pixel per output pixel."""
    crop_pixels = 200.0 * scale
    for factor in (8, 4, 2):
        if crop_pixels / factor >= out_size:
            return factor
    return 1


def reduced_to_full(factor: int) -> np.ndarray:
    """3×3 matrix mapping full-resolution pixels to pixels of an image decoded at 1/factor (pixel-centre aligned)."""
    if factor == 1:
        return np.eye(3)
    shift = (factor - 1) / 2.0
    return np.array([[1.0 / factor, 0.0, -shift / factor], [0.0, 1.0 / factor, -shift / factor], [0.0, 0.0, 1.0]])


# EXIF orientation is ignored: annotations are in the stored pixel grid (the seed's PIL/SciPy readers ignore it too),
# and OpenCV would otherwise rotate such images under the joints.
_READ_FLAGS = {
    1: cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION,
    2: cv2.IMREAD_REDUCED_COLOR_2 | cv2.IMREAD_IGNORE_ORIENTATION,
    4: cv2.IMREAD_REDUCED_COLOR_4 | cv2.IMREAD_IGNORE_ORIENTATION,
    8: cv2.IMREAD_REDUCED_COLOR_8 | cv2.IMREAD_IGNORE_ORIENTATION,
}


# Images are decoded only after their header passed this budget: a few hundred bytes of JPEG header can claim
# 60000 × 60000 pixels (10 GB decoded). MPII's images are about 1 megapixel.
MAX_IMAGE_PIXELS = 100_000_000


def image_size(path: str | os.PathLike) -> tuple[int, int] | None:
    """(width, height) as the file's header states it (no pixel data is read), or None when missing or unreadable."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                return image.size
    except Exception:  # Pillow's format plugins raise many types on a corrupt header; all mean "unreadable"
        return None


def acceptable_size(size: tuple[int, int] | None, declared: tuple[float, float] | None = None) -> bool:
    """A header size within :data:`MAX_IMAGE_PIXELS` and equal to the annotation's declared (width, height), if any."""
    if size is None or size[0] * size[1] > MAX_IMAGE_PIXELS:
        return False
    return declared is None or (round(declared[0]), round(declared[1])) == tuple(size)


def read_image(
    path: str | os.PathLike, factor: int = 1, declared: tuple[float, float] | None = None
) -> np.ndarray | None:
    """BGR uint8 image decoded at 1/factor resolution (JPEG DCT scaling), or None when missing or unreadable.

    The header is checked first (:func:`acceptable_size`): an image over the pixel budget, or not the size its
    annotation declares, counts as unreadable and is never decoded.
    """
    if not acceptable_size(image_size(path), declared):
        return None
    return cv2.imread(str(path), _READ_FLAGS[factor])


def verify_image(path: str | os.PathLike, declared: tuple[float, float] | None = None) -> bool:
    """Decode the whole file (JPEGs at 1/8 scale, which still reads every byte of the scan) and report whether it is
    complete: a truncated image decodes "successfully" in OpenCV with grey rows, but fails here."""
    if not acceptable_size(image_size(path), declared):
        return False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(path)
        with image:
            image.draft(image.mode, (max(1, image.size[0] // 8), max(1, image.size[1] // 8)))
            image.load()
        return True
    except Exception:  # as in image_size: any failure to decode means "unreadable"
        return False


def warp_image(image: np.ndarray, mat: np.ndarray, out_size: int, factor: int = 1) -> np.ndarray:
    """One cv2.warpAffine from a (possibly reduced) decoded image to the ``out × out`` crop; ``mat`` is full-res."""
    if factor != 1:
        mat = mat @ np.linalg.inv(reduced_to_full(factor))
    return cv2.warpAffine(
        image, mat.astype(np.float64), (out_size, out_size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT
    )


def to_normalized_chw(
    image_bgr: np.ndarray, color: np.ndarray | None = None, normalization: Normalization = DEFAULT_NORMALIZATION
) -> np.ndarray:
    """BGR uint8 → RGB float32 (3, H, W) normalised the model's way, with optional per-channel (RGB) colour factors.

    Values are computed in float32 as ``uint8 / 255`` (jittered and clipped), minus the mean, divided by the std if
    the convention has one — the same arithmetic as the seed's ``im_to_torch`` + ``color_normalize``. One lookup
    table per channel does it in a single ``cv2.LUT`` per plane (several times faster than a NumPy gather).
    """
    levels = np.arange(256, dtype=np.float32)[None, :] / np.float32(255.0)
    if color is not None:
        levels = np.clip(levels * np.asarray(color, np.float32)[:, None], 0.0, 1.0)
    else:
        levels = np.repeat(levels, 3, axis=0)
    mean = np.asarray(normalization.mean, np.float32)[:, None]
    lut = levels - mean if normalization.std is None else (levels - mean) / normalization.divisor[:, None]
    planes = cv2.split(image_bgr)  # B, G, R
    out = np.empty((3, *image_bgr.shape[:2]), dtype=np.float32)
    for c in range(3):
        np.copyto(out[c], cv2.LUT(planes[2 - c], np.ascontiguousarray(lut[c][None])))
    return out


def to_rgb_image(chw: np.ndarray, normalization: Normalization = DEFAULT_NORMALIZATION) -> np.ndarray:
    """Inverse of :func:`to_normalized_chw` (without jitter): (3, H, W) model input → HWC RGB float in [0, 1]."""
    rgb = np.asarray(chw, np.float32).transpose(1, 2, 0) * normalization.divisor + np.asarray(normalization.mean)
    return rgb.clip(0.0, 1.0)


def _table_half(size: int, sigma: float) -> int:
    return size + int(np.ceil(3 * sigma)) + 1


@functools.lru_cache(maxsize=16)
def _gaussian_table(size: int, sigma: float) -> np.ndarray:
    """Read-only table of the seed's 3σ-cut Gaussian patch, indexed by (dy + half, dx + half) with
    half = :func:`_table_half`; entry [0, 0] lies outside the patch and is 0."""
    radius, half = int(np.ceil(3 * sigma)), _table_half(size, sigma)
    grid = np.arange(-radius, radius + 1, dtype=np.float32)
    patch = np.exp(-(grid[None, :] ** 2 + grid[:, None] ** 2) / (2 * sigma**2))
    table = np.zeros((2 * half + 1, 2 * half + 1), dtype=np.float32)
    table[half - radius : half + radius + 1, half - radius : half + radius + 1] = patch
    table.flags.writeable = False
    return table


def heatmap_centres(points: np.ndarray) -> np.ndarray:
    """Integer heatmap pixel of each (x, y) point, exactly as the seed places its Gaussians.

    hgprune's pixel-centre coordinate ``v`` is the seed's ``v + 0.5`` (the seed maps the crop centre to ``out / 2``),
    and the seed truncates that toward zero (``astype(int)``): the centre is ``trunc(v + 0.5)``.
    """
    return np.trunc(np.asarray(points, dtype=np.float64) + 0.5).astype(np.int64)


def gaussian_heatmaps(
    points: np.ndarray, weights: np.ndarray, size: int, sigma: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """(J, size, size) Gaussians with peak 1 at :func:`heatmap_centres` (seed style, cut at 3σ).

    As in the seed, a joint keeps its weight while any part of its 3σ patch overlaps the heatmap (a centre just
    outside still draws its visible edge) and gets weight 0 beyond that. All joints are one gather from a cached
    table of the patch, so the values are exactly those of pasting the patch per joint.
    """
    weights = np.asarray(weights, dtype=np.float32).copy()
    centres = heatmap_centres(points)  # (J, 2) as x, y
    lower = np.trunc(centres - 3 * sigma)  # the seed's ul = int(pt - 3σ), br = int(pt + 3σ + 1)
    upper = np.trunc(centres + 3 * sigma + 1)
    overlaps = np.all((lower < size) & (upper >= 0), axis=1)
    weights[~overlaps] = 0.0
    # offsets from each centre, shifted into the table; inactive joints point at a zero entry (the table's corner)
    index = np.arange(size, dtype=np.int64)[None, None, :] - centres[:, :, None] + _table_half(size, sigma)
    index[weights <= 0] = 0
    maps = _gaussian_table(size, float(sigma))[index[:, 1, :, None], index[:, 0, None, :]]
    return maps, weights
