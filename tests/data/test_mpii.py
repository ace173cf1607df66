"""MPII loading: the real annotation file (placeholder images), HRNet format, and every kind of bad input."""

from __future__ import annotations

import gzip
import json

import cv2
import numpy as np
import pytest
import scipy.io
import torch

from hgprune.data import build_dataset, load_annotations, load_ground_truth_mat, split_records
from hgprune.data.mpii import check_order
from hgprune.errors import HgpruneError

JOINTS = [[100.0 + 5 * j, 80.0 + 8 * j, 1.0] for j in range(16)]


def _record(**over) -> dict:
    rec = {
        "img_paths": "a.jpg",
        "img_width": 320.0,
        "img_height": 240.0,
        "objpos": [140.0, 140.0],
        "scale_provided": 0.8,
        "joint_self": [list(j) for j in JOINTS],
        "isValidation": 0.0,
    }
    rec.update(over)
    return rec


def _write(path, records, compress=False) -> str:
    raw = json.dumps(records).encode()
    path.write_bytes(gzip.compress(raw) if compress else raw)
    return str(path)


@pytest.fixture(scope="module")
def real_records(request):
    from tests.conftest import shared_dir

    path = shared_dir() / "data/mpii/mpii_annotations.json.gz"
    if not path.is_file():
        pytest.skip(f"shared MPII annotations not found at {path} (set HGPRUNE_SHARED)")
    with gzip.open(path) as handle:
        return json.load(handle)


def test_real_file_split_sizes_and_coordinates(real_records, tmp_path, shared):
    subset = real_records[:3] + [r for r in real_records if r["isValidation"]][:3]
    ann = _write(tmp_path / "ann.json.gz", subset, compress=True)
    records = load_annotations(ann)
    assert [r.is_val for r in records] == [False] * 3 + [True] * 3
    first = subset[0]
    s = first["scale_provided"]
    assert np.allclose(records[0].joints, np.array(first["joint_self"])[:, :2] - 1)  # 1-based → 0-based
    assert np.allclose(records[0].center, np.array(first["objpos"]) - 1 + [0, 15 * s])
    assert records[0].scale == pytest.approx(1.25 * s)
    assert records[0].visible.tolist() == [v > 0 for _, _, v in first["joint_self"]]
    # placeholder images of the recorded size; the crop must land the joints on the right heatmap pixels
    for r in subset:
        image = np.full((int(r["img_height"]), int(r["img_width"]), 3), 90, np.uint8)
        cv2.imwrite(str(tmp_path / r["img_paths"]), image)
    ds = build_dataset("mpii", "train", input_size=64, annotations=ann, image_path=tmp_path, augment=False)
    image, target, weight, meta = ds[0]
    assert image.shape == (3, 64, 64) and target.shape == (16, 16, 16)
    peaks = target.flatten(1).argmax(1)
    from hgprune.data.transforms import affine_matrix, apply_affine

    expected = apply_affine(records[0].joints, affine_matrix(records[0].center, records[0].scale, 0, 16))
    for j in range(16):
        if weight[j] > 0:
            assert divmod(int(peaks[j]), 16) == (round(expected[j, 1]), round(expected[j, 0]))
    assert float(meta["scale"]) == pytest.approx(1.25 * s)


def test_real_file_counts_and_gt_order(shared):
    records = load_annotations(shared / "data/mpii/mpii_annotations.json.gz")
    assert len(split_records(records, "train")) == 22246
    val = split_records(records, "val")
    assert len(val) == 2958
    gt = load_ground_truth_mat(shared / "data/mpii/detections_our_format.mat")
    check_order(val, gt, "detections_our_format.mat")  # raises when the order is wrong
    with pytest.raises(HgpruneError, match="not in the annotations' validation order"):
        check_order(val[::-1], gt, "reversed")


def test_hrnet_format_is_read(tmp_path):
    item = {"image": "b.jpg", "center": [150.0, 120.0], "scale": 1.0, "joints": [j[:2] for j in JOINTS]}
    item["joints_vis"] = [1] * 15 + [0]
    records = load_annotations(_write(tmp_path / "valid.json", [item]))
    assert records[0].image == "b.jpg"
    assert np.allclose(records[0].center, [149.0, 119.0 + 15.0])
    assert records[0].annotated.tolist() == [True] * 15 + [False]
    assert len(split_records(records, "val")) == 1  # a per-split file is the split asked for


@pytest.mark.parametrize(
    "content, message",
    [
        (b"{not json", "not valid JSON"),
        (gzip.compress(json.dumps([_record()]).encode(), mtime=0)[:-12], "truncated or corrupt gzip"),
        (json.dumps([_record(), {k: v for k, v in _record().items() if k != "scale_provided"}]).encode(),
         "record 1: missing field 'scale_provided'"),
        (json.dumps([_record(joint_self=[[5000.0, 80.0, 1.0]] + JOINTS[1:])]).encode(), "record 0: joint .* far"),
        (json.dumps([_record(joint_self=JOINTS[:3])]).encode(), r"record 0: joint_self: expected shape"),
        (json.dumps([_record(scale_provided=0)]).encode(), "scale_provided must be > 0"),
        (json.dumps({"a": 1}).encode(), "non-empty JSON list"),
    ],
)  # fmt: skip
def test_bad_annotation_files_name_file_and_record(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_bytes(content)
    with pytest.raises(HgpruneError, match=message) as info:
        load_annotations(path)
    assert str(path) in str(info.value)


def _gt_mat(path, n=2, boxes=None):
    boxes = np.tile(np.array([[[10.0], [10.0]], [[30.0], [40.0]]]), (1, 1, n)) if boxes is None else boxes
    scipy.io.savemat(
        str(path),
        {
            "pos_gt_src": np.tile(np.array(JOINTS)[:, :2, None], (1, 1, n)),
            "jnt_missing": np.zeros((16, n), np.uint8),
            "headboxes_src": boxes,
        },
    )
    return path


def test_gt_mat_zero_size_headbox_and_missing_variable(tmp_path):
    gt = load_ground_truth_mat(_gt_mat(tmp_path / "ok.mat"))
    assert gt.joints.shape == (2, 16, 2) and np.allclose(gt.joints[0, 0], [99.0, 79.0])
    boxes = np.tile(np.array([[[10.0], [10.0]], [[30.0], [40.0]]]), (1, 1, 2))
    boxes[1, :, 1] = boxes[0, :, 1]  # second person: zero-size box
    with pytest.raises(HgpruneError, match="bad.mat: headboxes_src of record 1 has zero size"):
        load_ground_truth_mat(_gt_mat(tmp_path / "bad.mat", boxes=boxes))
    scipy.io.savemat(str(tmp_path / "other.mat"), {"x": np.zeros(3)})
    with pytest.raises(HgpruneError, match="other.mat: no variable 'pos_gt_src'"):
        load_ground_truth_mat(tmp_path / "other.mat")
    (tmp_path / "junk.mat").write_bytes(b"garbage")
    with pytest.raises(HgpruneError, match="junk.mat: not a readable MATLAB file"):
        load_ground_truth_mat(tmp_path / "junk.mat")


def test_val_split_uses_gt_mat_next_to_annotations(tmp_path):
    ann = _write(tmp_path / "ann.json", [_record(isValidation=1.0), _record(isValidation=1.0), _record()])
    _gt_mat(tmp_path / "gt_valid.mat")
    cv2.imwrite(str(tmp_path / "a.jpg"), np.zeros((240, 320, 3), np.uint8))
    ds = build_dataset("mpii", "val", input_size=64, annotations=ann, image_path=tmp_path)
    gt = ds.ground_truth()
    assert np.allclose(gt.headboxes[0], [[9.0, 9.0], [29.0, 39.0]])
    assert ds.augment is None and len(ds) == 2


def test_missing_images_are_counted_then_refused(tmp_path):
    records = [_record(img_paths=f"{i}.jpg") for i in range(10)]
    ann = _write(tmp_path / "ann.json", records)
    for i in range(9):
        cv2.imwrite(str(tmp_path / f"{i}.jpg"), np.zeros((240, 320, 3), np.uint8))
    (tmp_path / "8.jpg").write_bytes(b"not a jpeg")  # corrupt
    ds = build_dataset("mpii", "train", input_size=64, annotations=ann, image_path=tmp_path, max_bad_fraction=0.2)
    with pytest.warns(UserWarning, match="8.jpg: missing or unreadable"):
        image, target, weight, meta = ds[8]
    assert meta["bad_image"] and weight.sum() == 0 and torch.all(image == 0)
    with pytest.warns(UserWarning):
        ds[9]
    assert ds.bad_images == 2 and ds.bad_image_paths[-1].endswith("9.jpg")
    assert not ds[0][3]["bad_image"]
    with pytest.warns(UserWarning), pytest.raises(HgpruneError, match="3 images missing or unreadable"):
        ds[9]


def test_augmentation_is_reproducible_from_torch_seed(tmp_path):
    ann = _write(tmp_path / "ann.json", [_record()])
    rng = np.random.default_rng(0)
    cv2.imwrite(str(tmp_path / "a.jpg"), rng.integers(0, 255, (240, 320, 3), dtype=np.uint8))
    ds = build_dataset("mpii", "train", input_size=64, annotations=ann, image_path=tmp_path)
    torch.manual_seed(5)
    a = ds[0]
    torch.manual_seed(5)
    b = ds[0]
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) and a[3]["rotation"] == b[3]["rotation"]


def test_samples_without_augmentation_are_read_once_and_handed_out_as_copies(tmp_path, monkeypatch):
    records = [_record(img_paths=f"{i}.jpg") for i in range(3)]
    ann = _write(tmp_path / "ann.json", records)
    for i in range(3):
        cv2.imwrite(str(tmp_path / f"{i}.jpg"), np.random.default_rng(i).integers(0, 255, (240, 320, 3), np.uint8))
    ds = build_dataset("mpii", "val", input_size=64, annotations=ann, image_path=tmp_path)
    fresh = build_dataset("mpii", "val", input_size=64, annotations=ann, image_path=tmp_path)
    first = ds[1]
    first[0].zero_()  # changing what was handed out changes nothing later
    first[3]["center"].zero_()
    reads = []
    monkeypatch.setattr(type(ds), "_read", lambda self, i: reads.append(i) or pytest.fail("read twice"))
    again = ds[1]
    assert reads == []
    monkeypatch.undo()
    want = fresh[1]
    for got, expected in zip(again[:3], want[:3]):
        assert torch.equal(got, expected)
    assert torch.equal(again[3]["center"], want[3]["center"]) and again[3]["index"] == 1
    # with augmentation every read is a new draw, never the cache
    train = build_dataset("mpii", "train", input_size=64, annotations=ann, image_path=tmp_path)
    torch.manual_seed(0)
    a = train[0][0]
    torch.manual_seed(1)
    assert not torch.equal(a, train[0][0])
