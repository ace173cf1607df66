"""``hgprune pckh`` and ``hgprune data inspect|synth`` through the real CLI entry point."""

from __future__ import annotations

import json

import cv2
import numpy as np
import scipy.io

from hgprune.cli import main

JOINTS = [[100.0 + 5 * j, 80.0 + 8 * j, 1.0] for j in range(16)]


def _gt(path, pred_offset: float = 0.0, n: int = 3):
    gt = np.tile(np.array(JOINTS)[:, :2, None], (1, 1, n))
    scipy.io.savemat(
        str(path),
        {
            "pos_gt_src": gt,
            "pos_pred_src": gt + pred_offset,
            "jnt_missing": np.zeros((16, n), np.uint8),
            "headboxes_src": np.tile(np.array([[[0.0], [0.0]], [[6.0], [8.0]]]), (1, 1, n)),
        },
    )
    return str(path)


def test_pckh_json_defaults_to_own_predictions(tmp_path, capsys):
    gt = _gt(tmp_path / "gt.mat", pred_offset=2.0)  # 2·√2 = 2.83 px < 3 px threshold: all hits
    assert main(["pckh", gt, "--protocol", "mpii", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"protocol", "groups", "joints", "mean", "pckh@0.1", "auc"}
    assert out["mean"] == 100.0 and out["groups"]["Head"] == 100.0 and out["pckh@0.1"] == 0.0


def test_pckh_table_both_protocols_with_separate_predictions(tmp_path, capsys):
    gt = _gt(tmp_path / "gt.mat")
    pred = _gt(tmp_path / "pred.mat", pred_offset=10.0)  # all misses
    assert main(["pckh", gt, pred]) == 0
    out = capsys.readouterr().out
    assert "Head" in out and "Ankle" in out
    rows = [line.split() for line in out.splitlines() if line.startswith(("mpii ", "seed "))]
    assert [r[0] for r in rows] == ["mpii", "seed"] and all(float(v) == 0.0 for r in rows for v in r[1:])


def test_pckh_mismatched_files_fail_with_exit_2(tmp_path, capsys):
    gt = _gt(tmp_path / "gt.mat", n=3)
    pred = _gt(tmp_path / "pred.mat", n=2)
    assert main(["pckh", gt, pred]) == 2
    assert "2 predictions for 3 ground-truth people" in capsys.readouterr().err


def test_data_inspect_lists_missing_and_unreadable(tmp_path, capsys):
    recs = []
    for i in range(4):
        recs.append({"img_paths": f"{i}.jpg", "img_width": 320.0, "img_height": 240.0, "objpos": [140.0, 140.0],
                     "scale_provided": 0.8, "joint_self": JOINTS, "isValidation": float(i == 3)})  # fmt: skip
    recs.append({**recs[0]})  # a second person in image 0
    (tmp_path / "ann.json").write_text(json.dumps(recs))
    images = tmp_path / "img"
    images.mkdir()
    cv2.imwrite(str(images / "0.jpg"), np.zeros((240, 320, 3), np.uint8))
    cv2.imwrite(str(images / "3.jpg"), np.zeros((240, 320, 3), np.uint8))
    (images / "1.jpg").write_bytes(b"junk")
    args = ["data", "inspect", "--annotations", str(tmp_path / "ann.json"), "--image-path", str(images), "--json"]
    assert main(args) == 1  # missing and unreadable images: the check fails (issue 34)
    report = json.loads(capsys.readouterr().out)
    assert report["splits"]["train"] == {"people": 4, "images": 3, "missing_images": 1, "unreadable_images": 1}
    assert report["splits"]["val"] == {"people": 1, "images": 1, "missing_images": 0, "unreadable_images": 0}
    assert report["missing"] == ["2.jpg"] and report["unreadable"] == ["1.jpg"]


def test_data_inspect_real_file(shared, tmp_path, capsys):
    ann = shared / "data/mpii/mpii_annotations.json.gz"
    assert main(["data", "inspect", "--annotations", str(ann), "--image-path", str(tmp_path)]) == 1  # no images
    out = capsys.readouterr().out
    assert "22,246 people" in out and "2,958 people" in out


def test_data_synth_writes_dataset(tmp_path, capsys):
    out = tmp_path / "synth"
    assert main(["data", "synth", "--out", str(out), "--num-train", "5", "--num-val", "2", "--size", "64"]) == 0
    records = json.loads((out / "annotations.json").read_text())
    assert len(records) == 7 and sum(r["isValidation"] for r in records) == 2
    assert len(list((out / "images").glob("*.jpg"))) == 7
    gt = scipy.io.loadmat(str(out / "gt_valid.mat"))
    assert gt["pos_gt_src"].shape == (16, 2, 2) and gt["headboxes_src"].shape == (2, 2, 2)
    assert cv2.imread(str(out / "images" / records[0]["img_paths"])).shape == (64, 64, 3)
