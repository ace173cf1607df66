"""SynthPose: a procedural 16-joint pose dataset, so training and pruning can be judged without MPII images.

Each image holds one labelled figure (MPII skeleton, human proportions, joint limits, random articulation, yaw,
scale, position and rotation) drawn with OpenCV over clutter, behind it an optional unlabelled distractor figure,
and over it optional occluders. A joint's visibility flag is 0 exactly when an occluder covers it or it lies outside
the image. Front and back views look different (face and shirt front vs hair), which resolves left from right in a
way that, unlike a colour per side, stays true under the horizontal-flip augmentation. Records use the seed's MPII
JSON format plus a ``headbox``; generation is a pure function of the configuration (one RNG stream per image), so a
seed gives identical bytes on every run.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import cv2
import numpy as np

from hgprune.errors import HgpruneError
from hgprune.fsutil import atomic_write_text

FORMAT_VERSION = 6
# person height H → MPII scale: scale = H / 200; head box side from 0.6 × diagonal = 25 × scale (MPII's relation)
HEAD_SIDE_PER_SCALE = 25.0 / (0.6 * np.sqrt(2.0))


@dataclass(frozen=True)
class SynthConfig:
    """Generation parameters; every field is part of the cache key."""

    num_train: int = 4000
    num_val: int = 500
    size: int = 128  # square image side in pixels
    seed: int = 0
    min_height: float = 0.45  # figure height as a fraction of the image side
    max_height: float = 0.8
    # difficulty, calibrated so the quickstart's reference model lands in 70–95 PCKh@0.5 (README, "Calibration")
    max_rotation: float = 15.0  # degrees (clipped normal, σ = max/2)
    occlusion_prob: float = 0.2
    max_distractors: int = 1
    clutter: int = 4  # background shapes per image
    noise: float = 3.0  # max Gaussian pixel noise σ
    jpeg_quality: int = 92

    def __post_init__(self) -> None:
        for name in ("num_train", "num_val", "size", "clutter", "max_distractors"):
            if getattr(self, name) < 0:
                raise HgpruneError(f"synth.{name}: must be >= 0, got {getattr(self, name)}")
        if self.size < 32:
            raise HgpruneError(f"synth.size: must be >= 32 pixels, got {self.size}")
        if not 0 < self.min_height <= self.max_height <= 1.5:
            raise HgpruneError("synth.min_height/max_height: need 0 < min_height <= max_height <= 1.5")

    def key(self) -> str:
        blob = json.dumps({"version": FORMAT_VERSION, **asdict(self)}, sort_keys=True)
        return hashlib.sha1(blob.encode()).hexdigest()[:12]


def synth_config(synth=None, seed: int | None = None) -> SynthConfig:
    """A SynthConfig from None, a dict (unknown keys fail, naming the key) or a SynthConfig."""
    if isinstance(synth, SynthConfig):
        return synth
    values = dict(synth or {})
    known = {f.name for f in fields(SynthConfig)}
    for key in values:
        if key not in known:
            raise HgpruneError(f"synth.{key}: unknown parameter; valid: {', '.join(sorted(known))}")
    if seed is not None and "seed" not in values:
        values["seed"] = seed
    return SynthConfig(**values)


# ---- skeleton ----------------------------------------------------------------------------------------------------
# Segment lengths as fractions of standing height H (anthropometric averages).
TORSO, NECK, HEAD = 0.30, 0.05, 0.13
SHOULDER_HALF, HIP_HALF = 0.12, 0.08
UPPER_ARM, FOREARM, THIGH, SHIN = 0.18, 0.16, 0.245, 0.245
LEFT_LIMBS = [(3, 4), (4, 5), (13, 14), (14, 15)]
RIGHT_LIMBS = [(2, 1), (1, 0), (12, 11), (11, 10)]


def _dir(angle: float) -> np.ndarray:
    """Unit vector at ``angle`` radians from straight down (positive = towards +x)."""
    return np.array([np.sin(angle), np.cos(angle)])


def sample_pose(rng: np.random.Generator, height: float) -> np.ndarray:
    """(16, 2) joints of one articulated figure around the origin (pelvis), before global rotation."""
    h = height
    j = np.zeros((16, 2))
    lean = np.deg2rad(np.clip(rng.normal(0, 12), -35, 35))
    up = -_dir(lean)  # towards the head
    side = np.array([up[1], -up[0]])  # perpendicular to the spine
    yaw = rng.uniform(-1.0, 1.0)  # cos(yaw): its sign picks front or back view, its size the shoulder width
    width = np.sign(yaw) * max(abs(yaw), 0.15)
    fore = rng.uniform(0.8, 1.0)
    j[6] = 0.0
    j[7] = j[6] + up * TORSO * h * fore
    head_dir = -_dir(lean + np.deg2rad(np.clip(rng.normal(0, 15), -40, 40)))
    j[8] = j[7] + head_dir * NECK * h
    j[9] = j[8] + head_dir * HEAD * h
    j[3], j[2] = j[6] + side * HIP_HALF * h * width, j[6] - side * HIP_HALF * h * width
    j[13], j[12] = j[7] + side * SHOULDER_HALF * h * width, j[7] - side * SHOULDER_HALF * h * width
    for shoulder, elbow, wrist, out in ((13, 14, 15, 1.0), (12, 11, 10, -1.0)):
        outward = out * np.sign(width)
        upper = lean + outward * np.deg2rad(np.clip(rng.normal(15, 40), -60, 180))  # abduction / raise limits
        bend = np.deg2rad(rng.uniform(0, 110)) * rng.choice([-1.0, 1.0])  # elbow flexion 0…110°
        j[elbow] = j[shoulder] + _dir(upper) * UPPER_ARM * h * rng.uniform(0.55, 1.0)
        j[wrist] = j[elbow] + _dir(upper + bend) * FOREARM * h * rng.uniform(0.55, 1.0)
    stride = rng.choice([-1.0, 1.0])  # which way "forward" points in the image
    for hip, knee, ankle, out in ((3, 4, 5, 1.0), (2, 1, 0, -1.0)):
        outward = out * np.sign(width)
        thigh = (
            lean + stride * np.deg2rad(np.clip(rng.normal(5, 25), -40, 110)) + outward * np.deg2rad(rng.uniform(0, 12))
        )
        knee_flex = -stride * np.deg2rad(np.clip(abs(rng.normal(0, 35)), 0, 140))  # knees bend backwards only
        j[knee] = j[hip] + _dir(thigh) * THIGH * h * rng.uniform(0.6, 1.0)
        j[ankle] = j[knee] + _dir(thigh + knee_flex) * SHIN * h * rng.uniform(0.6, 1.0)
    return j


def _rotate(points: np.ndarray, degrees: float, pivot: np.ndarray) -> np.ndarray:
    t = np.deg2rad(degrees)
    rot = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
    return (points - pivot) @ rot.T + pivot


# ---- drawing -----------------------------------------------------------------------------------------------------
def _hsv(h: float, s: float, v: float) -> tuple[int, int, int]:
    px = cv2.cvtColor(np.uint8([[[h % 180, s, v]]]), cv2.COLOR_HSV2BGR)[0, 0]
    return int(px[0]), int(px[1]), int(px[2])


def _pt(p: np.ndarray) -> tuple[int, int]:
    return int(p[0] * 16 + 0.5), int(p[1] * 16 + 0.5)  # 4 fractional bits for sub-pixel drawing


def _limb(img: np.ndarray, a: np.ndarray, b: np.ndarray, thick: float, color) -> None:
    """A shaded limb: dark outline, body colour, a highlight offset to one side, a dark joint disc at the end."""
    t = max(1, int(round(thick)))
    dark = tuple(int(c * 0.55) for c in color)
    light = tuple(min(255, int(c * 1.35 + 30)) for c in color)
    cv2.line(img, _pt(a), _pt(b), dark, t + 2, cv2.LINE_AA, 4)
    cv2.line(img, _pt(a), _pt(b), color, t, cv2.LINE_AA, 4)
    normal = np.array([b[1] - a[1], a[0] - b[0]])
    normal = normal / (np.linalg.norm(normal) + 1e-6) * thick * 0.2
    cv2.line(img, _pt(a + normal), _pt(b + normal), light, max(1, t // 3), cv2.LINE_AA, 4)
    cv2.circle(img, _pt(b), max(1, int(thick * 0.5)) * 16, dark, -1, cv2.LINE_AA, 4)


def facing_camera(joints: np.ndarray) -> bool:
    """True when the person's left shoulder lies to the right of the spine as seen from the camera (front view)."""
    up, across = joints[7] - joints[6], joints[13] - joints[12]
    return bool(up[0] * across[1] - up[1] * across[0] > 0)


def draw_figure(img: np.ndarray, joints: np.ndarray, height: float, rng: np.random.Generator) -> None:
    """Draw a figure whose front and back look different: face and shirt front vs hair and plain back.

    That is the left/right cue. It survives the horizontal-flip augmentation (a mirrored front view is still a front
    view, with the swapped labels on the matching sides), whereas a colour per side would be contradicted by every
    flipped sample and teach the network nothing.
    """
    limb_colour = _hsv(rng.uniform(0, 180), rng.uniform(120, 255), rng.uniform(120, 255))
    leg_hue = rng.uniform(0, 180)
    leg_colour = _hsv(leg_hue, rng.uniform(60, 255), rng.uniform(60, 220))
    shin_colour = _hsv(leg_hue + rng.uniform(60, 120), rng.uniform(40, 200), rng.uniform(120, 250))
    forearm_colour = _hsv(rng.uniform(0, 180), rng.uniform(120, 255), rng.uniform(60, 160))
    body = _hsv(rng.uniform(0, 180), rng.uniform(0, 120), rng.uniform(60, 200))
    skin = _hsv(rng.uniform(5, 20), rng.uniform(40, 140), rng.uniform(140, 240))
    hair = _hsv(rng.uniform(0, 30), rng.uniform(50, 200), rng.uniform(15, 70))
    front_view = facing_camera(joints)
    arm, leg = 0.065 * height, 0.085 * height
    sides = [LEFT_LIMBS, RIGHT_LIMBS]
    if rng.random() < 0.5:
        sides.reverse()  # which side is nearer the camera
    # clothes change colour at the elbows and knees (rolled sleeves, shorts over socks): an edge at the joint;
    # bare hands and shoes mark the wrists and ankles
    segments = ((leg, leg_colour), (leg, shin_colour), (arm, limb_colour), (arm, forearm_colour))
    for (a, b), (thick, colour) in zip(sides[0], segments):
        _limb(img, joints[a], joints[b], thick, colour)
    torso = np.array([joints[12], joints[13], joints[3], joints[2]])
    shade = body if front_view else tuple(int(c * 0.7) for c in body)
    cv2.fillConvexPoly(img, np.round(torso * 16).astype(np.int32), shade, cv2.LINE_AA, 4)
    cv2.polylines(img, [np.round(torso * 16).astype(np.int32)], True, tuple(c // 2 for c in body), 1, cv2.LINE_AA, 4)
    if front_view:  # shirt front: a contrasting stripe down the middle and a collar
        contrast = tuple(255 - c for c in body)
        top, bottom = (joints[12] + joints[13]) / 2, (joints[2] + joints[3]) / 2
        cv2.line(img, _pt(top), _pt(bottom), contrast, max(1, int(0.03 * height)), cv2.LINE_AA, 4)
        cv2.circle(img, _pt(top), max(1, int(0.03 * height)) * 16, contrast, -1, cv2.LINE_AA, 4)
    _limb(img, joints[7], joints[8], 0.05 * height, skin)
    head_c = (joints[8] + joints[9]) / 2
    axis = joints[9] - joints[8]
    angle = float(np.degrees(np.arctan2(axis[1], axis[0])))
    half = max(1.0, np.linalg.norm(axis) / 2 * 1.1)
    axes = (int(half * 16), int(half * 0.75 * 16))
    cv2.ellipse(img, _pt(head_c), axes, angle, 0, 360, skin if front_view else hair, -1, cv2.LINE_AA, 4)
    cv2.circle(img, _pt(joints[9] - axis * 0.1), max(1, int(half * 0.5)) * 16, hair, -1, cv2.LINE_AA, 4)
    if front_view:  # eyes
        normal = np.array([-axis[1], axis[0]]) / (np.linalg.norm(axis) + 1e-6) * half * 0.35
        for sign in (-1, 1):
            cv2.circle(img, _pt(head_c + axis * 0.1 + sign * normal), 16, (20, 20, 20), -1, cv2.LINE_AA, 4)
    for (a, b), (thick, colour) in zip(sides[1], segments):
        _limb(img, joints[a], joints[b], thick, colour)
    # hands and feet: local cues that pin the end joints down (a photo has them too)
    shoe = _hsv(rng.uniform(0, 180), rng.uniform(0, 100), rng.uniform(20, 80))
    for wrist in (10, 15):
        cv2.circle(img, _pt(joints[wrist]), int(0.035 * height * 16), skin, -1, cv2.LINE_AA, 4)
    for ankle in (0, 5):
        cv2.circle(img, _pt(joints[ankle]), int(0.04 * height * 16), shoe, -1, cv2.LINE_AA, 4)


def _background(rng: np.random.Generator, size: int, clutter: int) -> np.ndarray:
    c0 = np.array(_hsv(rng.uniform(0, 180), rng.uniform(0, 150), rng.uniform(40, 220)), np.float32)
    c1 = np.array(_hsv(rng.uniform(0, 180), rng.uniform(0, 150), rng.uniform(40, 220)), np.float32)
    ends = np.stack([c0, c1])[None] if rng.random() < 0.5 else np.stack([c0, c1])[:, None]
    img = cv2.resize(ends.astype(np.uint8), (size, size), interpolation=cv2.INTER_LINEAR)
    for _ in range(clutter):
        color = _hsv(rng.uniform(0, 180), rng.uniform(0, 255), rng.uniform(30, 255))
        kind = rng.choice(4, p=[0.15, 0.3, 0.3, 0.25])  # few lines: they look like limbs
        p = rng.uniform(-0.1, 1.1, 2) * size
        r = rng.uniform(0.03, 0.2) * size
        if kind == 0:
            q = p + rng.normal(0, 0.3, 2) * size
            cv2.line(img, _pt(p), _pt(q), color, int(rng.integers(1, max(2, size // 25))), cv2.LINE_AA, 4)
        elif kind == 1:
            q = p + rng.uniform(-1, 1, 2) * r
            cv2.rectangle(img, _pt(p), _pt(q), color, -1 if rng.random() < 0.6 else 2, cv2.LINE_AA, 4)
        elif kind == 2:
            cv2.circle(img, _pt(p), int(r * 16), color, -1 if rng.random() < 0.6 else 2, cv2.LINE_AA, 4)
        else:
            axes = (int(r * 16), int(r * rng.uniform(0.2, 0.6) * 16))
            cv2.ellipse(img, _pt(p), axes, rng.uniform(0, 180), 0, 360, color, -1, cv2.LINE_AA, 4)
    return img


def _place(rng: np.random.Generator, cfg: SynthConfig, height: float, center: np.ndarray) -> np.ndarray:
    joints = sample_pose(rng, height)
    rot = float(np.clip(rng.normal(0, cfg.max_rotation / 2), -cfg.max_rotation, cfg.max_rotation))
    joints = _rotate(joints, rot, np.zeros(2))
    mid = (joints.min(axis=0) + joints.max(axis=0)) / 2
    return joints - mid + center


def render_sample(cfg: SynthConfig, split: str, index: int, return_mask: bool = False):
    """One image (BGR uint8) and its seed-format record; a pure function of (cfg, split, index).

    ``return_mask`` also returns the occluder mask, so tests can check the visibility flags against it.
    """
    rng = np.random.default_rng([cfg.seed, 0 if split == "train" else 1, index, FORMAT_VERSION])
    size = cfg.size
    img = _background(rng, size, cfg.clutter)
    height = rng.uniform(cfg.min_height, cfg.max_height) * size
    center = size / 2 + rng.uniform(-0.15, 0.15, 2) * size
    for _ in range(int(rng.integers(0, cfg.max_distractors + 1))):
        d_height = height * rng.uniform(0.5, 1.1)
        offset = rng.choice([-1.0, 1.0]) * rng.uniform(0.45, 0.8) * size
        d_center = center + np.array([offset, rng.uniform(-0.3, 0.3) * size])
        draw_figure(img, _place(rng, cfg, d_height, d_center), d_height, rng)
    joints = _place(rng, cfg, height, center)
    draw_figure(img, joints, height, rng)
    occluded = np.zeros((size, size), np.uint8)
    if rng.random() < cfg.occlusion_prob:
        for _ in range(int(rng.integers(1, 3))):
            target = joints[rng.integers(16)] + rng.normal(0, 0.05, 2) * height
            half = rng.uniform(0.06, 0.16, 2) * height
            color = _hsv(rng.uniform(0, 180), rng.uniform(0, 200), rng.uniform(40, 230))
            box = np.round(np.array([target - half, target + half]) * 16).astype(int)
            for canvas, col in ((img, color), (occluded, 255)):
                if rng.random() < 0.5 and canvas is img:
                    cv2.rectangle(canvas, tuple(box[0]), tuple(box[1]), col, -1, cv2.LINE_8, 4)
                    shape = "rect"
                elif canvas is img:
                    shape = "ellipse"
                    cv2.ellipse(canvas, _pt(target), tuple(np.round(half * 16).astype(int)), 0, 0, 360, col, -1,
                                cv2.LINE_8, 4)  # fmt: skip
                elif shape == "rect":
                    cv2.rectangle(canvas, tuple(box[0]), tuple(box[1]), col, -1, cv2.LINE_8, 4)
                else:
                    cv2.ellipse(canvas, _pt(target), tuple(np.round(half * 16).astype(int)), 0, 0, 360, col, -1,
                                cv2.LINE_8, 4)  # fmt: skip
    sigma = rng.uniform(0, cfg.noise)
    noisy = img.astype(np.float32) + rng.standard_normal(img.shape, dtype=np.float32) * np.float32(sigma)
    img = np.clip(noisy, 0, 255).astype(np.uint8)
    if rng.random() < 0.3:
        img = cv2.GaussianBlur(img, (3, 3), 0)
    ij = np.round(joints).astype(int)
    inside = (ij[:, 0] >= 0) & (ij[:, 0] < size) & (ij[:, 1] >= 0) & (ij[:, 1] < size)
    covered = np.zeros(16, bool)
    covered[inside] = occluded[ij[inside, 1], ij[inside, 0]] > 0
    visible = inside & ~covered
    scale = height / 200.0
    head_c = (joints[8] + joints[9]) / 2
    side = HEAD_SIDE_PER_SCALE * scale
    record = {
        "dataset": "SynthPose",
        "isValidation": float(split == "val"),
        "img_paths": f"{split}_{index:06d}.jpg",
        "img_width": float(size),
        "img_height": float(size),
        # objpos: the person's middle, placed so the seed's crop (y + 15·s, s × 1.25) frames the figure like MPII
        "objpos": (joints.min(axis=0) + joints.max(axis=0)) / 2 - np.array([0.0, 15.0 * scale]) + 1.0,
        "scale_provided": round(float(scale), 4),
        "joint_self": np.concatenate([joints + 1.0, visible[:, None]], axis=1),
        "headbox": np.array([head_c - side / 2, head_c + side / 2]) + 1.0,
    }
    return (img, record, occluded) if return_mask else (img, record)


def _round(obj):
    if isinstance(obj, np.ndarray):
        return np.round(obj, 3).tolist()
    return obj


def _render_chunk(args: tuple[SynthConfig, str, list[int], str]) -> list[dict]:
    cfg, split, indices, image_dir = args
    records = []
    for i in indices:
        img, rec = render_sample(cfg, split, i)
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, cfg.jpeg_quality])
        Path(image_dir, rec["img_paths"]).write_bytes(buf.tobytes())
        records.append({k: _round(v) for k, v in rec.items()})
    return records


def generate(cfg: SynthConfig, out_dir: str | os.PathLike, workers: int = 0, progress: bool = False) -> Path:
    """Write ``images/*.jpg``, ``annotations.json`` (seed format + headbox), ``gt_valid.mat`` and ``synth.json``."""

    out = Path(out_dir)
    image_dir = out / "images"
    image_dir.mkdir(parents=True, exist_ok=True)
    jobs = []
    for split, count in (("train", cfg.num_train), ("val", cfg.num_val)):
        for start in range(0, count, 256):
            jobs.append((cfg, split, list(range(start, min(count, start + 256))), str(image_dir)))
    if workers > 0:
        import multiprocessing

        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            chunks = pool.map(_render_chunk, jobs)
    else:
        iterator = jobs
        if progress:
            from tqdm import tqdm

            iterator = tqdm(jobs, desc="synthpose", unit="chunk")
        chunks = [_render_chunk(job) for job in iterator]
    records = [r for chunk in chunks for r in chunk]
    atomic_write_text(out / "annotations.json", json.dumps(records, separators=(",", ":")))
    val = [r for r in records if r["isValidation"]]
    if val:
        joints = np.array([r["joint_self"] for r in val])
        from hgprune.data.mpii import mat_bytes

        payload = mat_bytes(
            {
                "pos_gt_src": joints[:, :, :2].transpose(1, 2, 0),
                "jnt_missing": np.zeros((16, len(val)), np.uint8),
                "headboxes_src": np.array([r["headbox"] for r in val]).transpose(1, 2, 0),
            },
        )
        from hgprune.fsutil import atomic_write_bytes

        atomic_write_bytes(out / "gt_valid.mat", payload)
    atomic_write_text(out / "synth.json", json.dumps({"version": FORMAT_VERSION, **asdict(cfg)}, indent=2))
    return out


def ensure_generated(synth=None, *, cache_dir: str | os.PathLike, seed: int = 0, workers: int = 0) -> Path:
    """The cached SynthPose directory for these parameters, generating it (once, atomically) when absent."""
    cfg = synth_config(synth, seed)
    root = Path(cache_dir) / f"synthpose-{cfg.size}px-{cfg.key()}"
    if (root / "synth.json").is_file():
        return root
    tmp = Path(cache_dir) / f".{root.name}.{os.getpid()}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    generate(cfg, tmp, workers=workers, progress=True)
    try:
        os.replace(tmp, root)
    except OSError:  # another process finished first
        shutil.rmtree(tmp, ignore_errors=True)
    return root
