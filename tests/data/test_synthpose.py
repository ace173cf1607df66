"""SynthPose: same seed → identical bytes; visibility flags tell the truth; the records load as a dataset."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from hgprune.data import build_dataset, limit_dataset, load_annotations
from hgprune.data.synthpose import SynthConfig, ensure_generated, generate, render_sample, synth_config
from hgprune.errors import HgpruneError

SMALL = SynthConfig(num_train=12, num_val=4, size=64, seed=3)


def _digest(root) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_gives_identical_bytes_and_other_seed_differs(tmp_path):
    a, b = _digest(generate(SMALL, tmp_path / "a")), _digest(generate(SMALL, tmp_path / "b"))
    assert a == b and len(a) == 16 + 3  # images + annotations.json, gt_valid.mat, synth.json
    c = _digest(generate(synth_config({**SMALL.__dict__, "seed": 4}), tmp_path / "c"))
    assert c["annotations.json"] != a["annotations.json"]


def test_visibility_flags_are_truthful():
    cfg = SynthConfig(size=96, occlusion_prob=1.0, seed=1)
    hidden = 0
    for i in range(30):
        _, rec, mask = render_sample(cfg, "train", i, return_mask=True)
        joints = np.array(rec["joint_self"])
        xy = np.round(joints[:, :2] - 1).astype(int)
        inside = (xy >= 0).all(1) & (xy < 96).all(1)
        covered = np.zeros(16, bool)
        covered[inside] = mask[xy[inside, 1], xy[inside, 0]] > 0
        assert (joints[:, 2] > 0).tolist() == (inside & ~covered).tolist()
        hidden += int((~inside | covered).sum())
    assert hidden > 10  # occlusion actually happens
    clear = SynthConfig(size=96, occlusion_prob=0.0, seed=1)
    for i in range(10):
        _, rec, mask = render_sample(clear, "train", i, return_mask=True)
        assert not mask.any()


def test_records_have_mpii_geometry_and_load(tmp_path):
    root = generate(SMALL, tmp_path / "s")
    records = load_annotations(root / "annotations.json")
    assert sum(r.is_val for r in records) == 4 and len(records) == 16
    for r in records:
        box = r.headbox
        # MPII's own relation: 0.6 × head-box diagonal = 25 × scale_provided
        assert 0.6 * np.linalg.norm(box[1] - box[0]) == pytest.approx(25 * r.raw_scale, rel=0.01)
    val = build_dataset("synthpose", "val", input_size=64, annotations=root / "annotations.json")
    gt = val.ground_truth()
    assert gt.joints.shape == (4, 16, 2) and not gt.missing.any()
    # data.val_limit: the first k samples, and ground truth that matches them field by field
    first = limit_dataset(val, 3)
    assert len(first) == 3 and first.num_joints == val.num_joints
    small = first.ground_truth()
    for name in ("joints", "missing", "headboxes"):
        assert np.array_equal(getattr(small, name), getattr(gt, name)[:3])
    assert limit_dataset(val, 10) is val


def test_cache_is_keyed_by_parameters(tmp_path):
    first = ensure_generated({"num_train": 8, "num_val": 2, "size": 64}, cache_dir=tmp_path, seed=0)
    again = ensure_generated({"num_train": 8, "num_val": 2, "size": 64}, cache_dir=tmp_path, seed=0)
    other = ensure_generated({"num_train": 8, "num_val": 2, "size": 64}, cache_dir=tmp_path, seed=1)
    assert first == again != other
    assert json.loads((first / "synth.json").read_text())["num_train"] == 8
    ds = build_dataset("synthpose", "train", input_size=64, synth={"num_train": 8, "num_val": 2, "size": 64},
                       cache_dir=tmp_path)  # fmt: skip
    assert len(ds) == 8 and ds[0][0].shape == (3, 64, 64)


def test_unknown_synth_parameter_is_named():
    with pytest.raises(HgpruneError, match="synth.colour: unknown parameter"):
        synth_config({"colour": 1})
    with pytest.raises(HgpruneError, match="synth.size"):
        synth_config({"size": 8})


def test_left_right_cue_survives_the_flip_augmentation():
    from hgprune.data.synthpose import facing_camera, sample_pose
    from hgprune.data.transforms import FLIP_PERM

    rng = np.random.default_rng(0)
    views = []
    for _ in range(50):
        joints = sample_pose(rng, 100.0)
        mirrored = (joints * [-1.0, 1.0])[FLIP_PERM]  # what the flip augmentation makes of it (labels swapped)
        assert facing_camera(mirrored) == facing_camera(joints)  # so the drawn face/shirt cue stays truthful
        views.append(facing_camera(joints))
    assert 10 < sum(views) < 40  # both front and back views occur
