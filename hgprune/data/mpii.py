"""MPII annotation I/O: the seed's JSON, HRNet's JSON list and ``gt_valid.mat``-layout ground truth.

Files are 1-based MATLAB pixels; everything returned here is 0-based. Malformed input raises
:class:`~hgprune.errors.HgpruneError` naming the file and the record, so a user finds the fault in seconds.
"""

from __future__ import annotations

import gzip
import io
import json
import math
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hgprune.errors import HgpruneError

NUM_JOINTS = 16
JOINT_NAMES = [
    "r_ankle", "r_knee", "r_hip", "l_hip", "l_knee", "l_ankle", "pelvis", "thorax",
    "upper_neck", "head_top", "r_wrist", "r_elbow", "r_shoulder", "l_shoulder", "l_elbow", "l_wrist",
]  # fmt: skip
SEED_FIELDS = ("img_paths", "objpos", "scale_provided", "joint_self")
HRNET_FIELDS = ("image", "center", "scale", "joints", "joints_vis")
# MPII's scale_provided is head-size based: 0.6 × head-box diagonal = 25 × scale exactly on the validation set.
HEAD_NORM_PER_SCALE = 25.0
# Header text of every .mat hgprune writes: how `evaluate` tells its own preds.mat from one it must not overwrite.
MAT_STAMP = b"MATLAB 5.0 MAT-file, written by hgprune"

# Bounds on what an annotation file may hold, checked before anything uses it (MPII's own annotations are 33 MB of
# JSON, images at most 1920 px wide, scales below 40): a value outside them is a broken or hostile file.
MAX_ANNOTATION_BYTES = 64 * 2**20  # after gzip decompression (memory: about 16 bytes per byte)
MAX_SCALE = 100.0  # crop side / 200 px
MAX_COORD = 100_000.0  # |x| and |y| of any centre, joint or head box, in pixels
MAX_IMAGE_SIDE = 65_535  # img_width / img_height (JPEG's own limit)
MAX_IMAGE_NAME_CHARS = 1024


@dataclass
class PoseRecord:
    """One annotated person: crop centre/scale already adjusted as the seed does (y += 15·s, s ×= 1.25)."""

    image: str
    center: np.ndarray  # (2,) 0-based crop centre
    scale: float  # crop side / 200 px
    joints: np.ndarray  # (J, 2) 0-based
    annotated: np.ndarray  # (J,) bool: the joint has coordinates (not "missing")
    visible: np.ndarray  # (J,) bool: annotated and not occluded (MPII's visibility flag)
    is_val: bool
    headbox: np.ndarray | None = None  # (2, 2) 0-based [[x1, y1], [x2, y2]]
    width: float | None = None
    height: float | None = None
    raw_scale: float = 1.0  # scale_provided before the ×1.25


@dataclass
class GroundTruth:
    """What PCKh needs: joints (N, J, 2) 0-based, missing (N, J) bool, headboxes (N, 2, 2)."""

    joints: np.ndarray
    missing: np.ndarray
    headboxes: np.ndarray


def read_json(path: str | os.PathLike) -> object:
    """Parse a JSON file, gzip-compressed or plain; corruption becomes a one-line error naming the file."""
    path = Path(path)
    if not path.is_file():
        raise HgpruneError(f"{path}: annotation file not found")
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_ANNOTATION_BYTES + 1)
        if raw[:2] == b"\x1f\x8b":
            with gzip.GzipFile(fileobj=io.BytesIO(raw)) as unzipped:
                raw = unzipped.read(MAX_ANNOTATION_BYTES + 1)  # never more, whatever the file claims
        if len(raw) > MAX_ANNOTATION_BYTES:
            raise HgpruneError(
                f"{path}: larger than {MAX_ANNOTATION_BYTES:,} bytes (decompressed); not an annotation file"
            )
        return json.loads(raw.decode("utf-8"))
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise HgpruneError(f"{path}: truncated or corrupt gzip file ({str(exc)[:100]})") from None
    except (UnicodeDecodeError, ValueError) as exc:  # ValueError: bad JSON, or an integer of over 4300 digits
        raise HgpruneError(f"{path}: not valid JSON ({str(exc)[:100]})") from None
    except RecursionError:
        raise HgpruneError(f"{path}: not valid JSON (nested too deeply)") from None


def _array(value, shape_tail: tuple[int, ...], where: str) -> np.ndarray:
    """A numeric array of the given shape whose values are finite and within ±:data:`MAX_COORD`."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        raise HgpruneError(f"{where}: not a numeric array") from None
    if arr.ndim != len(shape_tail) or any(t is not None and s != t for s, t in zip(arr.shape, shape_tail)):
        raise HgpruneError(f"{where}: expected shape {shape_tail}, got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise HgpruneError(f"{where}: contains NaN or infinity")
    if arr.size and np.abs(arr).max() > MAX_COORD:
        raise HgpruneError(f"{where}: value {np.abs(arr).max():.4g} is beyond ±{MAX_COORD:g} pixels")
    return arr


def _number(value, where: str, low: float, high: float) -> float:
    """A finite number in (low, high]: infinities, NaN and absurd sizes would become NaN crops much later."""
    if isinstance(value, bool):
        raise HgpruneError(f"{where} must be a number, got {value}")
    number = float(value)  # TypeError / ValueError / OverflowError: reported with the record
    if not (math.isfinite(number) and low < number <= high):
        raise HgpruneError(f"{where} must be > {low:g} and at most {high:g}, got {number:.4g}")
    return number


def _image_name(value, where: str) -> str:
    """An image path relative to the image folder (never absolute, never leaving it)."""
    if not isinstance(value, str) or not 0 < len(value) <= MAX_IMAGE_NAME_CHARS or "\0" in value:
        raise HgpruneError(f"{where}: must be a file name of 1-{MAX_IMAGE_NAME_CHARS} characters")
    parts = value.replace("\\", "/").split("/")
    if value.startswith(("/", "\\")) or ".." in parts or ":" in parts[0]:
        raise HgpruneError(f"{where}: must be relative to the image folder, got {value[:80]!r}")
    return value


def _image_side(item: dict, key: str, where: str) -> float | None:
    value = item.get(key)
    return _number(value, f"{where}: {key}", 0, MAX_IMAGE_SIDE) if value else None


def _check_joints(rec: PoseRecord, where: str) -> None:
    """Refuse annotated joints far outside the image (or far from the person): a sign of a broken file."""
    pts = rec.joints[rec.annotated]
    if len(pts) == 0:
        return
    if rec.width and rec.height:
        w, h = rec.width, rec.height
        bad = (pts[:, 0] < -0.5 * w) | (pts[:, 0] > 1.5 * w) | (pts[:, 1] < -0.5 * h) | (pts[:, 1] > 1.5 * h)
        if bad.any():
            raise HgpruneError(f"{where}: joint {pts[bad][0].round(1).tolist()} is far outside the {w:g}x{h:g} image")
    far = np.abs(pts - rec.center).max(axis=1) > 2.0 * 200.0 * rec.scale
    if far.any():
        raise HgpruneError(f"{where}: joint {pts[far][0].round(1).tolist()} is far from the person (centre/scale)")


def _seed_record(item: dict, where: str) -> PoseRecord:
    raw = _array(item["joint_self"], (NUM_JOINTS, 3), f"{where}: joint_self")
    scale = _number(item["scale_provided"], f"{where}: scale_provided", 0, MAX_SCALE)
    center = _array(item["objpos"], (2,), f"{where}: objpos") - 1.0
    annotated = ~((raw[:, 0] == 0) & (raw[:, 1] == 0))
    headbox = None
    if item.get("headbox") is not None:
        headbox = _array(item["headbox"], (2, 2), f"{where}: headbox") - 1.0
    rec = PoseRecord(
        image=_image_name(item["img_paths"], f"{where}: img_paths"),
        center=center + np.array([0.0, 15.0 * scale]),
        scale=scale * 1.25,
        joints=raw[:, :2] - 1.0,
        annotated=annotated,
        visible=annotated & (raw[:, 2] > 0),
        is_val=bool(item.get("isValidation", 0)),
        headbox=headbox,
        width=_image_side(item, "img_width", where),
        height=_image_side(item, "img_height", where),
        raw_scale=scale,
    )
    _check_joints(rec, where)
    return rec


def _hrnet_record(item: dict, where: str) -> PoseRecord:
    joints = _array(item["joints"], (NUM_JOINTS, 2), f"{where}: joints")
    vis = _array(item["joints_vis"], (NUM_JOINTS,), f"{where}: joints_vis") > 0
    scale = _number(item["scale"], f"{where}: scale", 0, MAX_SCALE)
    center = _array(item["center"], (2,), f"{where}: center") - 1.0
    rec = PoseRecord(
        image=_image_name(item["image"], f"{where}: image"),
        center=center + np.array([0.0, 15.0 * scale]),
        scale=scale * 1.25,
        joints=joints - 1.0,
        annotated=vis,
        visible=vis,
        is_val=bool(item.get("isValidation", 0)),
        raw_scale=scale,
    )
    _check_joints(rec, where)
    return rec


def load_annotations(path: str | os.PathLike) -> list[PoseRecord]:
    """All records of a seed-format or HRNet-format MPII annotation file (format detected per file)."""
    data = read_json(path)
    if isinstance(data, dict) and "root" in data:
        data = data["root"]
    if not isinstance(data, list) or not data:
        raise HgpruneError(f"{path}: expected a non-empty JSON list of person records")
    first = data[0]
    if isinstance(first, dict) and "joint_self" in first:
        fields, parse = SEED_FIELDS, _seed_record
    elif isinstance(first, dict) and "joints" in first:
        fields, parse = HRNET_FIELDS, _hrnet_record
    else:
        raise HgpruneError(f"{path}: record 0 is neither seed format (joint_self, …) nor HRNet format (joints, …)")
    records = []
    for i, item in enumerate(data):
        where = f"{path}: record {i}"
        if not isinstance(item, dict):
            raise HgpruneError(f"{where}: not a JSON object")
        missing = [f for f in fields if f not in item]
        if missing:
            raise HgpruneError(f"{where}: missing field {missing[0]!r}")
        try:
            records.append(parse(item, where))
        except (TypeError, ValueError, OverflowError) as exc:
            raise HgpruneError(f"{where}: malformed value ({str(exc)[:80]})") from None
    return records


def split_records(records: list[PoseRecord], split: str) -> list[PoseRecord]:
    """``train`` = isValidation 0, ``val`` = 1; a file without isValidation (HRNet's per-split files) is one split."""
    if split not in ("train", "val"):
        raise HgpruneError(f"split: must be 'train' or 'val', got {split!r}")
    if not any(r.is_val for r in records):
        return list(records)
    return [r for r in records if r.is_val == (split == "val")]


# Elements a .mat variable hgprune reads may declare (MPII's whole training set of predictions is 0.8 M): its
# header is checked before the variable is decompressed, and variables hgprune does not read are never loaded.
MAX_MAT_ELEMENTS = 10_000_000


def _loadmat(path: str | os.PathLike, wanted: tuple[str, ...]) -> dict:
    """The ``wanted`` variables of a MATLAB file (those present), each refused by its declared shape before it is
    decompressed when it holds more than :data:`MAX_MAT_ELEMENTS` values; the file's other variables are skipped."""
    import scipy.io

    path = Path(path)
    if not path.is_file():
        raise HgpruneError(f"{path}: file not found")
    try:
        declared = {name: shape for name, shape, _kind in scipy.io.whosmat(str(path))}
        for name in wanted:
            if name in declared and math.prod(declared[name]) > MAX_MAT_ELEMENTS:
                shape = "×".join(map(str, declared[name]))
                raise HgpruneError(
                    f"{path}: {name} declares {shape} values, more than {MAX_MAT_ELEMENTS:,}; refused unread"
                )
        present = [name for name in wanted if name in declared]
        return scipy.io.loadmat(str(path), variable_names=present) if present else {}
    except HgpruneError:
        raise
    except Exception as exc:  # scipy raises many types for corrupt files
        raise HgpruneError(f"{path}: not a readable MATLAB file ({str(exc)[:80]})") from None


_MAT_KINDS = {"U": "text", "S": "text", "O": "a cell array", "V": "a struct", "c": "complex numbers"}


def _mat_numeric(mat: dict, key: str, path) -> np.ndarray:
    """Variable ``key`` as float64; text, cell and struct variables are refused by name, not by a traceback."""
    arr = np.asarray(mat[key])
    if arr.dtype.kind not in "biuf":
        kind = _MAT_KINDS.get(arr.dtype.kind, f"dtype {arr.dtype}")
        raise HgpruneError(f"{path}: {key} must be a numeric array, got {kind}")
    return arr.astype(np.float64)


def _mat_field(mat: dict, key: str, path, shape_head: tuple[int, ...]) -> np.ndarray:
    if key not in mat:
        raise HgpruneError(f"{path}: no variable {key!r} (expected the gt_valid.mat layout)")
    arr = _mat_numeric(mat, key, path)
    if arr.ndim != len(shape_head) + 1 or arr.shape[: len(shape_head)] != shape_head:
        raise HgpruneError(f"{path}: {key} has shape {arr.shape}, expected {shape_head + ('N',)}")
    return arr


def load_ground_truth_mat(path: str | os.PathLike) -> GroundTruth:
    """``gt_valid.mat`` layout: pos_gt_src (16×2×N), jnt_missing (16×N), headboxes_src (2×2×N), 1-based."""
    mat = _loadmat(path, ("pos_gt_src", "jnt_missing", "headboxes_src"))
    joints = _mat_field(mat, "pos_gt_src", path, (NUM_JOINTS, 2)).transpose(2, 0, 1) - 1.0
    flags = _mat_field(mat, "jnt_missing", path, (NUM_JOINTS,)).T
    odd = ~np.isin(flags, (0.0, 1.0))
    if odd.any():
        person, joint = (int(i) for i in np.argwhere(odd)[0])
        raise HgpruneError(
            f"{path}: jnt_missing must hold 0 (annotated) or 1 (missing), found {float(flags[person, joint]):g} for "
            f"joint {joint} of person {person}"
        )
    missing = flags.astype(bool)
    boxes = _mat_field(mat, "headboxes_src", path, (2, 2)).transpose(2, 0, 1) - 1.0
    if not (len(joints) == len(missing) == len(boxes)):
        raise HgpruneError(f"{path}: pos_gt_src, jnt_missing and headboxes_src disagree on the number of people")
    size = boxes[:, 1] - boxes[:, 0]
    bad = np.where(~(np.abs(size).min(axis=1) > 0))[0]
    if len(bad):
        raise HgpruneError(f"{path}: headboxes_src of record {int(bad[0])} has zero size {size[bad[0]].tolist()}")
    return GroundTruth(joints=joints, missing=missing, headboxes=boxes)


def load_predictions_mat(path: str | os.PathLike, key: str | None = None) -> np.ndarray:
    """Predictions (N, 16, 2) 0-based from 1-based pixels in a ``pos_pred_src`` (16×2×N) variable — MPII's layout,
    hgprune's ``preds.mat`` — or a ``preds`` (N×16×2) variable, the seed's ``preds.mat``. ``key`` picks one;
    by default ``pos_pred_src`` is used when present, else ``preds``."""
    mat = _loadmat(path, (key,) if key else ("pos_pred_src", "preds"))
    if key is None:
        key = "pos_pred_src" if "pos_pred_src" in mat or "preds" not in mat else "preds"
    if key == "preds":
        if key not in mat:
            raise HgpruneError(f"{path}: no variable 'preds' (expected the seed's N×16×2 predictions)")
        arr = _mat_numeric(mat, key, path)
        if arr.ndim != 3 or arr.shape[1:] != (NUM_JOINTS, 2):
            raise HgpruneError(f"{path}: preds has shape {arr.shape}, expected (N, {NUM_JOINTS}, 2)")
        return arr - 1.0
    return _mat_field(mat, key, path, (NUM_JOINTS, 2)).transpose(2, 0, 1) - 1.0


def save_predictions_mat(path: str | os.PathLike, preds: np.ndarray) -> None:
    """Write (N, 16, 2) 0-based predictions as ``preds.mat`` with ``pos_pred_src`` (16×2×N, 1-based), atomically."""
    from hgprune.fsutil import atomic_write_bytes

    atomic_write_bytes(path, mat_bytes({"pos_pred_src": np.asarray(preds, dtype=np.float64).transpose(1, 2, 0) + 1.0}))


def mat_bytes(variables: dict) -> bytes:
    """A MATLAB v5 file as bytes, with a fixed header text (scipy stamps the creation time, which breaks
    byte-for-byte reproducibility)."""
    import io

    import scipy.io

    buf = io.BytesIO()
    scipy.io.savemat(buf, variables)
    data = bytearray(buf.getvalue())
    data[:116] = MAT_STAMP.ljust(116, b" ")
    return bytes(data)


def check_order(records: list[PoseRecord], gt: GroundTruth, source: str, max_mismatch: float = 0.01) -> None:
    """Refuse a ground-truth file whose people are not the records' people in the same order."""
    if len(records) != len(gt.joints):
        raise HgpruneError(
            f"{source}: has {len(gt.joints)} people but the annotation split has {len(records)}; use the matching file"
        )
    joints = np.stack([r.joints for r in records])
    usable = ~gt.missing & np.stack([r.annotated for r in records])
    diff = np.where(usable, np.abs(joints - gt.joints).max(axis=2), 0.0)
    mismatched = int((diff.max(axis=1) > 1.0).sum())
    if mismatched > max_mismatch * len(records):
        raise HgpruneError(
            f"{source}: {mismatched} of {len(records)} people differ from the annotations' joints; "
            "the file is not in the annotations' validation order"
        )


def headboxes_from_scale(records: list[PoseRecord]) -> np.ndarray:
    """Square head boxes whose 0.6 × diagonal = 25 × scale_provided (MPII's own relation), centred on the head."""
    side = HEAD_NORM_PER_SCALE / 0.6 / np.sqrt(2.0) * np.array([r.raw_scale for r in records])
    centre = np.stack([(r.joints[8] + r.joints[9]) / 2.0 for r in records])
    return np.stack([centre - side[:, None] / 2, centre + side[:, None] / 2], axis=1)
