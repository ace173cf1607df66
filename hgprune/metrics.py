"""Heatmap decoding and PCKh under both protocols of docs/DESIGN.md §3 (``mpii`` as papers report it, ``seed``).

Everything is 0-based pixels. Heatmap pixel ``h`` and crop pixel ``u`` relate by ``u = 4h + 1.5`` (pixel centres),
which :func:`to_image_coords` inverts through the crop's affine matrix.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from hgprune.data.mpii import JOINT_NAMES
from hgprune.data.transforms import FLIP_PERM, affine_matrix, apply_affine, invert_affine
from hgprune.errors import HgpruneError

GROUPS: dict[str, tuple[int, ...]] = {
    "Head": (9,),
    "Shoulder": (12, 13),
    "Elbow": (11, 14),
    "Wrist": (10, 15),
    "Hip": (2, 3),
    "Knee": (1, 4),
    "Ankle": (0, 5),
}
SCORED_JOINTS = tuple(j for j in range(16) if j not in (6, 7))  # pelvis and thorax are excluded from the mean
PROTOCOLS = ("mpii", "seed")
AUC_THRESHOLDS = np.linspace(0.0, 0.5, 51)


def _numpy(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().double().numpy()
    return np.asarray(x, dtype=np.float64)


def check_heatmaps(heatmaps, num_joints: int | None = None, source: str = "the model") -> None:
    """Refuse heatmaps that would decode to made-up joints: any NaN or infinity (argmax of NaN is index 0, a joint in
    the corner with NaN confidence), or a channel count other than the ``num_joints`` the config names."""
    hm = heatmaps if isinstance(heatmaps, torch.Tensor) else torch.as_tensor(np.asarray(heatmaps))
    if hm.ndim != 4:
        raise HgpruneError(f"{source}: heatmaps must be (batch, joints, height, width), got shape {tuple(hm.shape)}")
    if num_joints is not None and hm.shape[1] != num_joints:
        raise HgpruneError(
            f"{source}: its score layer gives {hm.shape[1]} heatmap channel(s) but its config names {num_joints} "
            "joints; the checkpoint is inconsistent (fix its config's num_joints or its score layer)"
        )
    if hm.is_floating_point() and not bool(torch.isfinite(hm).all()):
        bad = int((~torch.isfinite(hm)).sum())
        raise HgpruneError(
            f"{source}: {bad} of {hm.numel()} heatmap values are NaN or infinite (diverged or corrupt weights); "
            "nothing is scored or written"
        )


def decode_heatmaps(heatmaps) -> tuple[np.ndarray, np.ndarray]:
    """Argmax of each (B, J, h, w) heatmap plus a quarter pixel toward the higher neighbour, in heatmap pixels.

    Returns (coords (B, J, 2) as x, y; maxvals (B, J)). The quarter-pixel step halves the quantisation error of a
    plain argmax, as the seed and most hourglass code do. Non-finite heatmaps are refused (:func:`check_heatmaps`).
    """
    check_heatmaps(heatmaps)
    hm = _numpy(heatmaps)
    batch, joints, height, width = hm.shape
    flat = hm.reshape(batch, joints, -1)
    idx = flat.argmax(axis=2)
    maxvals = np.take_along_axis(flat, idx[..., None], axis=2)[..., 0]
    xs, ys = (idx % width).astype(np.int64), (idx // width).astype(np.int64)
    coords = np.stack([xs, ys], axis=2).astype(np.float64)
    b, j = np.meshgrid(np.arange(batch), np.arange(joints), indexing="ij")
    inner_x = (xs > 0) & (xs < width - 1)
    inner_y = (ys > 0) & (ys < height - 1)
    xr, xl = hm[b, j, ys, np.minimum(xs + 1, width - 1)], hm[b, j, ys, np.maximum(xs - 1, 0)]
    yd, yu = hm[b, j, np.minimum(ys + 1, height - 1), xs], hm[b, j, np.maximum(ys - 1, 0), xs]
    coords[..., 0] += np.where(inner_x, 0.25 * np.sign(xr - xl), 0.0)
    coords[..., 1] += np.where(inner_y, 0.25 * np.sign(yd - yu), 0.0)
    return coords, maxvals


def to_image_coords(coords, center, scale, output_size: int, rotation=0) -> np.ndarray:
    """Map (B, J, 2) heatmap pixels back to original-image pixels through the inverse of each crop's affine."""
    coords = _numpy(coords)
    center = _numpy(center).reshape(-1, 2)
    scale = _numpy(scale).reshape(-1)
    rotation = np.broadcast_to(_numpy(rotation).reshape(-1), scale.shape)
    out = np.empty_like(coords)
    for i in range(len(coords)):
        inv = invert_affine(affine_matrix(center[i], float(scale[i]), float(rotation[i]), output_size))
        out[i] = apply_affine(coords[i], inv)
    return out


DECODERS = ("exact", "seed")


def _seed_transform_matrix(center, scale: float, res: int) -> np.ndarray:
    """The seed's 3×3 crop transform (1-based pixels, crop centre → ``res / 2``) at resolution ``res``."""
    h = 200.0 * float(scale)
    t = np.zeros((3, 3))
    t[0, 0] = t[1, 1] = float(res) / h
    t[0, 2] = res * (-float(center[0]) / h + 0.5)
    t[1, 2] = res * (-float(center[1]) / h + 0.5)
    t[2, 2] = 1.0
    return t


def seed_final_preds(heatmaps, center, scale, res: int | None = None) -> np.ndarray:
    """What the seed's ``final_preds`` returns: (B, J, 2) **1-based integer** image pixels.

    Reproduces the seed's numbers, not a better decoding: 1-based argmax (0 where the peak is not positive), a
    quarter pixel toward the higher neighbour away from the border, +0.5, then 1 subtracted "to make it 0-based" and
    1 subtracted again inside the seed's inverse ``transform``, which also truncates toward zero before adding 1.
    The net effect is about one heatmap pixel up-left of the exact decoding (:func:`decode_heatmaps` +
    :func:`to_image_coords`). ``center`` is the seed's 1-based crop centre (objpos with ``y += 15·s``); ``scale``
    the seed's (``scale_provided × 1.25``); ``res`` the heatmap side (default: the heatmaps').
    """
    check_heatmaps(heatmaps)
    hm = torch.as_tensor(heatmaps).float()
    batch, joints, height, width = hm.shape
    res = int(res or width)
    maxval, idx = hm.reshape(batch, joints, -1).max(dim=2)
    idx = (idx + 1).float()
    coords = torch.stack([(idx - 1) % width + 1, torch.floor((idx - 1) / width) + 1], dim=2)
    coords = coords * (maxval > 0).float()[..., None]
    for n in range(batch):
        for p in range(joints):
            px, py = int(math.floor(coords[n, p, 0])), int(math.floor(coords[n, p, 1]))
            if 1 < px < res and 1 < py < res:
                m = hm[n, p]
                diff = torch.tensor([m[py - 1, px] - m[py - 1, px - 2], m[py, px - 1] - m[py - 2, px - 1]])
                coords[n, p] += diff.sign() * 0.25
    coords += 0.5 - 1.0
    center, scale = _numpy(center).reshape(-1, 2), _numpy(scale).reshape(-1)
    out = np.empty((batch, joints, 2))
    for n in range(batch):
        inverse = np.linalg.inv(_seed_transform_matrix(center[n], float(scale[n]), res))
        for p in range(joints):
            point = np.array([float(coords[n, p, 0]) - 1, float(coords[n, p, 1]) - 1, 1.0])
            out[n, p] = np.dot(inverse, point)[:2].astype(int) + 1
    return out


def decode_to_image(heatmaps, center, scale, output_size: int, rotation=0, decode: str = "exact") -> np.ndarray:
    """(B, J, 2) 0-based image pixels from heatmaps of crops at ``center``/``scale`` (hgprune's 0-based centre).

    ``exact`` (default) is hgprune's decoding; ``seed`` reproduces the seed's ``final_preds`` numbers (unrotated
    crops only), shifted to 0-based.
    """
    if decode == "exact":
        return to_image_coords(decode_heatmaps(heatmaps)[0], center, scale, output_size, rotation=rotation)
    if decode == "seed":
        if np.any(_numpy(rotation) != 0):
            raise ValueError("seed decoding: the seed's final_preds only handles unrotated crops")
        return seed_final_preds(heatmaps, _numpy(center).reshape(-1, 2) + 1.0, scale, output_size) - 1.0
    raise HgpruneError(f"decode: unknown {decode!r}; choose one of {', '.join(DECODERS)}")


def flip_back(heatmaps: torch.Tensor, flip_perm=FLIP_PERM, shift: bool = False) -> torch.Tensor:
    """Heatmaps of a horizontally flipped image, flipped back and with left/right joints swapped.

    With hgprune's pixel-centre crops the flipped-back maps align exactly; ``shift=True`` moves them one pixel
    right, which codebases that map the crop centre to ``out / 2`` (HRNet's SHIFT_HEATMAP) need instead.
    """
    out = heatmaps.flip(-1)[:, list(flip_perm)]
    if shift:
        out = out.clone()
        out[..., 1:] = out[..., :-1].clone()
    return out


@torch.no_grad()
def flip_test(model: torch.nn.Module, images: torch.Tensor, flip_perm=FLIP_PERM, shift: bool = False) -> torch.Tensor:
    """Average of the last stack's heatmaps for ``images`` and for their mirror images (flipped back)."""
    outputs = model(images)
    last = outputs[-1] if isinstance(outputs, (list, tuple)) else outputs
    flipped = model(images.flip(-1))
    flipped = flipped[-1] if isinstance(flipped, (list, tuple)) else flipped
    return (last + flip_back(flipped, flip_perm, shift)) / 2


@dataclass
class PCKhResult:
    """PCKh in percent: per joint, per group, the mean, PCKh@0.1 and the AUC over thresholds 0…0.5."""

    protocol: str
    mean: float
    groups: dict[str, float]
    joints: dict[str, float]
    pckh_01: float
    auc: float
    threshold: float = 0.5
    counts: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict:
        def clean(v):
            return None if v is None or (isinstance(v, float) and math.isnan(v)) else round(float(v), 4)

        return {
            "protocol": self.protocol,
            "groups": {k: clean(v) for k, v in self.groups.items()},
            "joints": {k: clean(v) for k, v in self.joints.items()},
            "mean": clean(self.mean),
            "pckh@0.1": clean(self.pckh_01),
            "auc": clean(self.auc),
        }


def _per_joint(dist: np.ndarray, visible: np.ndarray, threshold: float, protocol: str) -> tuple[np.ndarray, float]:
    hit = (dist <= threshold) if protocol == "mpii" else (dist < threshold)
    hits = (hit & visible).sum(axis=0).astype(np.float64)
    counts = visible.sum(axis=0).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_joint = 100.0 * hits / counts
    scored = list(SCORED_JOINTS)
    if protocol == "mpii":
        total = counts[scored].sum()
        mean = 100.0 * hits[scored].sum() / total if total else float("nan")
    else:
        values = per_joint[scored]
        mean = float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")
    return per_joint, float(mean)


def _check_finite(what: str, finite: np.ndarray) -> None:
    """NaN or infinity in scored inputs is an error: it would count as a miss and lower PCKh silently."""
    bad = np.argwhere(~finite)
    if len(bad):
        where = f"person {int(bad[0][0])}"
        if finite.ndim > 1:
            joint = int(bad[0][1])
            where += f", joint {JOINT_NAMES[joint] if joint < len(JOINT_NAMES) else joint}"
        raise HgpruneError(f"{what}: NaN or infinity at {where} ({len(bad)} in all); not scored")


def pckh(pred, gt, missing, headboxes, protocol: str = "mpii", threshold: float = 0.5) -> PCKhResult:
    """PCKh of (N, J, 2) predictions against ground truth; a joint counts when it is not ``missing``.

    ``mpii``: hit when distance ≤ threshold × 0.6 × head-box diagonal, mean weighted by visible-joint counts.
    ``seed``: hit when distance < threshold × normaliser, mean = unweighted average of the 14 scored joints.
    """
    if protocol not in PROTOCOLS:
        raise HgpruneError(f"protocol: must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")
    pred, gt, boxes = _numpy(pred), _numpy(gt), _numpy(headboxes)
    visible = ~np.asarray(missing, dtype=bool)
    if pred.shape != gt.shape or visible.shape != gt.shape[:2] or boxes.shape != (len(gt), 2, 2):
        raise ValueError(f"pckh: shapes disagree: pred {pred.shape}, gt {gt.shape}, missing {visible.shape}, "
                         f"headboxes {boxes.shape}")  # fmt: skip
    _check_finite("pred", np.isfinite(pred).all(axis=2))
    _check_finite("gt", np.isfinite(gt).all(axis=2) | ~visible)  # a missing joint's coordinates are never read
    _check_finite("headboxes", np.isfinite(boxes).all(axis=(1, 2)) | ~visible.any(axis=1))
    norm = 0.6 * np.linalg.norm(boxes[:, 1] - boxes[:, 0], axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        dist = np.linalg.norm(pred - gt, axis=2) / norm[:, None]
    dist = np.where(np.isfinite(dist), dist, np.inf)
    per_joint, mean = _per_joint(dist, visible, threshold, protocol)
    pckh_01 = _per_joint(dist, visible, 0.1, protocol)[1]
    auc = float(np.nanmean([_per_joint(dist, visible, t, protocol)[1] for t in AUC_THRESHOLDS]))
    names = JOINT_NAMES[: gt.shape[1]]
    groups = {name: float(np.mean(per_joint[list(idx)])) for name, idx in GROUPS.items()}
    return PCKhResult(
        protocol=protocol,
        mean=mean,
        groups=groups,
        joints={n: float(v) for n, v in zip(names, per_joint)},
        pckh_01=pckh_01,
        auc=auc,
        threshold=threshold,
        counts={n: int(c) for n, c in zip(names, visible.sum(axis=0))},
    )


def format_table(results: list[PCKhResult]) -> str:
    """The Head/Shoulder/…/Mean table, one row per protocol."""
    cols = [*GROUPS, "Mean", "@0.1", "AUC"]
    lines = [f"{'protocol':<9}" + "".join(f"{c:>9}" for c in cols)]
    for r in results:
        vals = [*r.groups.values(), r.mean, r.pckh_01, r.auc]
        lines.append(f"{r.protocol:<9}" + "".join(f"{v:>9.2f}" for v in vals))
    return "\n".join(lines)
