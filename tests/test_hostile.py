"""Hostile input (issue 16): every bad file, value or race is a one-line HgpruneError or a correct result.

Each test names the case it covers; the property-based tests at the end generate hostile recipes, annotation records
and checkpoint configs and accept only success or a one-line error.
"""

from __future__ import annotations

import gzip
import json
import os
import resource
import socket
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
import scipy.io
import torch
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hgprune.cli import main
from hgprune.data import mpii
from hgprune.data import transforms as T
from hgprune.data.dataset import PoseDataset
from hgprune.errors import HgpruneError
from hgprune.fsutil import atomic_torch_save
from hgprune.metrics import pckh
from hgprune.models import build_preset
from hgprune.models.checkpoints import load_checkpoint, load_model, save_model
from hgprune.recipe import MAX_RECIPE_BYTES, Recipe, apply_overrides, load_recipe
from hgprune.report import write_report
from hgprune.report.runs import read_metrics
from hgprune.report.tables import pareto_mask
from hgprune.rundir import RunDir

DEAD_PID = 2**31 - 1  # above any kernel's pid_max: never a live process


def one_line(error: pytest.ExceptionInfo, *needles: str) -> str:
    """The error's message, checked to be one short line that contains every needle."""
    message = str(error.value)
    assert "\n" not in message and len(message) < 400, message[:400]
    for needle in needles:
        assert needle in message, message
    return message


def cli_error(capsys, argv: list[str], *needles: str) -> str:
    """Run the CLI, expect exit 2 with one line on stderr containing every needle."""
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err and len(err) < 400, err[:400]
    for needle in needles:
        assert needle in err, err
    return err


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# ---------------------------------------------------------------------------------------------------------------
# 1. Recipes


def test_duplicate_section_is_an_error_naming_key_and_lines(tmp_path):
    path = write(tmp_path / "r.yaml", "prune:\n  steps: 3\nmodel:\n  N: 64\nprune:\n  steps: 1\n")
    with pytest.raises(HgpruneError) as err:
        load_recipe(path)
    one_line(err, f"{path}:5:", "duplicate key 'prune'", "first at line 1")


def test_duplicate_nested_and_flow_keys_are_errors(tmp_path):
    with pytest.raises(HgpruneError) as err:
        load_recipe(write(tmp_path / "a.yaml", "model:\n  N: 64\n  M: 32\n  N: 16\n"))
    one_line(err, ":4:", "duplicate key 'N'")
    with pytest.raises(HgpruneError) as err:
        load_recipe(write(tmp_path / "b.yaml", "prune: {steps: 1, steps: 2}\n"))
    one_line(err, "duplicate key 'steps'")
    with pytest.raises(HgpruneError) as err:
        apply_overrides({}, ["prune.target={kept: 0.5, kept: 0.3}"])
    one_line(err, "--set prune.target", "duplicate key 'kept'")


def test_merge_keys_still_work(tmp_path):
    path = write(tmp_path / "m.yaml", "finetune:\n  train: &t {lr: 0.001}\nbaseline:\n  train:\n    <<: *t\n")
    assert load_recipe(path).baseline.train.lr == 0.001


BILLION_LAUGHS = (
    "".join(
        f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]\n" if i else 'l0: &l0 ["lol", "lol", "lol", "lol", "lol"]\n'
        for i in range(9)
    )
    + "name: [*l8, *l8, *l8, *l8, *l8, *l8, *l8, *l8, *l8]\n"
)


def test_alias_bomb_is_refused_before_expansion(tmp_path):
    with pytest.raises(HgpruneError) as err:
        load_recipe(write(tmp_path / "bomb.yaml", BILLION_LAUGHS))
    one_line(err, "more than 100,000 values (aliases expanded)")


def test_self_referencing_alias_and_deep_nesting_are_one_line(tmp_path):
    with pytest.raises(HgpruneError) as err:
        load_recipe(write(tmp_path / "loop.yaml", "name: &a [*a]\n"))
    one_line(err, "refers to a value that contains it")
    with pytest.raises(HgpruneError) as err:
        load_recipe(write(tmp_path / "deep.yaml", "name: " + "[" * 100_000 + "]" * 100_000 + "\n"))
    one_line(err, "nested deeper than 64 levels")


def test_huge_recipe_is_refused_unread(tmp_path):
    path = tmp_path / "huge.yaml"
    path.write_text("name: [" + "1, " * (MAX_RECIPE_BYTES // 3) + "1]\n")
    with pytest.raises(HgpruneError) as err:
        load_recipe(path)
    one_line(err, f"larger than {MAX_RECIPE_BYTES:,} bytes")


def test_error_messages_never_show_a_whole_value(tmp_path):
    items = ", ".join(f'"{"x" * 50}{i}"' for i in range(5000))  # 280 KB, under every limit
    with pytest.raises(HgpruneError) as err:
        load_recipe(write(tmp_path / "big.yaml", f"name: [{items}]\n"))
    assert "..." in one_line(err, "name: must be a string")
    with pytest.raises(HgpruneError) as err:
        load_recipe(write(tmp_path / "key.yaml", f"{'k' * 1000}: 1\n"))
    one_line(err, "unknown key")


@pytest.mark.parametrize("seed, ok", [(0, True), (2**32 - 1, True), (-1, False), (2**32, False), ("1e23", False)])
def test_seed_range(tmp_path, seed, ok):
    path = write(tmp_path / "s.yaml", f"seed: {seed}\n")
    if ok:
        assert load_recipe(path).seed == seed
        return
    with pytest.raises(HgpruneError) as err:
        load_recipe(path)
    one_line(err, "seed: must be")


@pytest.mark.parametrize("name", ["../../x", "/abs/x", "a\0b", "..", ".", "a/b", "a\\b", "c:x", "", "x" * 129, " x"])
def test_unsafe_run_names_are_refused(tmp_path, name):
    with pytest.raises(HgpruneError) as err:
        load_recipe(write(tmp_path / "n.yaml", yaml.safe_dump({"name": name})))
    one_line(err, "name: must be a plain directory name")


def test_run_name_from_an_odd_file_name_is_checked_too(tmp_path):
    assert load_recipe(write(tmp_path / "fine-name.yaml", "seed: 1\n")).name == "fine-name"
    with pytest.raises(HgpruneError) as err:
        load_recipe(write(tmp_path / "..yaml", "seed: 1\n"))
    one_line(err, "run name would be '.'")


@pytest.mark.parametrize("device, ok", [("cpu", True), ("cuda", True), ("cuda:1", True), ("gpu", False), ("", False)])
def test_device_syntax(tmp_path, device, ok):
    path = write(tmp_path / "d.yaml", yaml.safe_dump({"device": device}))
    if ok:
        assert load_recipe(path).device == device
    else:
        with pytest.raises(HgpruneError) as err:
            load_recipe(path)
        one_line(err, "device: must be")


# ---------------------------------------------------------------------------------------------------------------
# 2. Annotations


def seed_record(image: str = "a.jpg", **changes) -> dict:
    record = {
        "img_paths": image,
        "img_width": 64.0,
        "img_height": 64.0,
        "objpos": [33.0, 30.0],
        "scale_provided": 0.25,
        "joint_self": [[20.0 + j, 30.0, 1.0] for j in range(16)],
        "isValidation": 0.0,
    }
    record.update(changes)
    return record


def write_annotations(path: Path, records: list[dict]) -> Path:
    path.write_text(json.dumps(records))  # allow_nan: NaN / Infinity are written as JavaScript literals
    return path


@pytest.mark.parametrize(
    "field, value, needle",
    [
        ("scale_provided", float("inf"), "scale_provided must be > 0 and at most 100"),
        ("scale_provided", 1e308, "scale_provided must be > 0 and at most 100"),
        ("scale_provided", 10**400, "malformed value"),
        ("objpos", [1e308, 30.0], "objpos: value 1e+308 is beyond"),
        ("objpos", [float("nan"), 30.0], "objpos: contains NaN"),
        ("joint_self", [[1e300, 1.0, 1.0]] * 16, "joint_self: value 1e+300 is beyond"),
        ("img_width", 1e308, "img_width must be > 0 and at most 65535"),
        ("img_paths", "../../etc/passwd", "img_paths: must be relative"),
        ("img_paths", "/etc/passwd", "img_paths: must be relative"),
        ("img_paths", 5, "img_paths: must be a file name"),
    ],
)
def test_absurd_annotation_values_are_refused_with_the_record(tmp_path, field, value, needle):
    path = write_annotations(tmp_path / "a.json", [seed_record(), seed_record(**{field: value})])
    with pytest.raises(HgpruneError) as err:
        mpii.load_annotations(path)
    one_line(err, f"{path}: record 1", needle)


def test_hrnet_infinite_scale_is_refused(tmp_path):
    record = {"image": "a.jpg", "center": [33.0, 30.0], "scale": float("inf"), "joints": [[20.0, 30.0]] * 16}
    record["joints_vis"] = [1] * 16
    with pytest.raises(HgpruneError) as err:
        mpii.load_annotations(write_annotations(tmp_path / "h.json", [record]))
    one_line(err, "record 0: scale must be > 0 and at most 100")


@pytest.mark.parametrize(
    "text, needle",
    [
        ('[{"joint_self": ' + "9" * 5000 + "}]", "not valid JSON"),
        ("[" * 100_000 + "]" * 100_000, "not valid JSON"),
    ],
)
def test_huge_integers_and_deep_json_are_one_line(tmp_path, text, needle):
    with pytest.raises(HgpruneError) as err:
        mpii.load_annotations(write(tmp_path / "a.json", text))
    one_line(err, needle)


def test_annotation_size_limit_applies_after_decompression(tmp_path, monkeypatch):
    monkeypatch.setattr(mpii, "MAX_ANNOTATION_BYTES", 1000)
    path = tmp_path / "a.json.gz"
    path.write_bytes(gzip.compress(json.dumps([seed_record()] * 20).encode()))  # small file, > 1000 bytes inside
    with pytest.raises(HgpruneError) as err:
        mpii.load_annotations(path)
    one_line(err, "larger than 1,000 bytes (decompressed)")


# ---------------------------------------------------------------------------------------------------------------
# 3. Images


def jpeg_bytes(width: int = 64, height: int = 64) -> bytes:
    image = np.random.default_rng(0).integers(0, 255, (height, width, 3), dtype=np.uint8)
    ok, buf = cv2.imencode(".jpg", image)
    assert ok
    return buf.tobytes()


def bomb_jpeg(side: int = 60000) -> bytes:
    """A valid 8×8 JPEG whose frame header claims side × side pixels (a few hundred bytes)."""
    data = bytearray(jpeg_bytes(8, 8))
    sof = data.find(b"\xff\xc0")
    assert sof > 0
    data[sof + 5 : sof + 9] = side.to_bytes(2, "big") * 2
    return bytes(data)


@pytest.mark.parametrize("side", [12000, 60000])  # over hgprune's budget; 60000 is also over Pillow's own limit
def test_image_header_over_the_pixel_budget_is_never_decoded(tmp_path, monkeypatch, side):
    path = tmp_path / "bomb.jpg"
    path.write_bytes(bomb_jpeg(side))
    assert len(path.read_bytes()) < 1000 and not T.acceptable_size(T.image_size(path))
    monkeypatch.setattr(T.cv2, "imread", lambda *a: pytest.fail("decoded an image over the pixel budget"))
    assert T.read_image(path, 8) is None


def test_image_must_have_its_declared_size(tmp_path):
    path = tmp_path / "a.jpg"
    path.write_bytes(jpeg_bytes(64, 48))
    assert T.read_image(path, 1, declared=(64.0, 48.0)).shape == (48, 64, 3)
    assert T.read_image(path, 1, declared=(640.0, 480.0)) is None
    assert T.read_image(tmp_path / "missing.jpg") is None


def test_dataset_treats_a_bomb_as_a_bad_image(tmp_path):
    (tmp_path / "a.jpg").write_bytes(bomb_jpeg())
    records = mpii.load_annotations(write_annotations(tmp_path / "a.json", [seed_record()]))
    with pytest.warns(UserWarning, match="missing or unreadable"):
        image, target, weights, meta = PoseDataset(records, tmp_path, input_size=64)[0]
    assert meta["bad_image"] and float(weights.sum()) == 0.0


def test_inspect_verify_finds_truncated_and_oversized_images(tmp_path, capsys):
    images = tmp_path / "images"
    images.mkdir()
    good = jpeg_bytes()
    (images / "good.jpg").write_bytes(good)
    (images / "trunc.jpg").write_bytes(good[: len(good) // 2])
    (images / "bomb.jpg").write_bytes(bomb_jpeg())
    annotations = write_annotations(
        tmp_path / "a.json", [seed_record(n) for n in ("good.jpg", "trunc.jpg", "bomb.jpg")]
    )
    argv = ["data", "inspect", "--annotations", str(annotations), "--image-path", str(images), "--json"]
    assert main(argv) == 1  # the check failed (issue 34: a failed check exits non-zero)
    assert json.loads(capsys.readouterr().out)["unreadable"] == ["bomb.jpg"]  # a header check cannot see truncation
    assert main([*argv, "--verify"]) == 1
    assert json.loads(capsys.readouterr().out)["unreadable"] == ["bomb.jpg", "trunc.jpg"]


# ---------------------------------------------------------------------------------------------------------------
# 4. PCKh


def pckh_inputs(people: int = 2) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    gt = np.tile(np.arange(16.0)[:, None] * [2.0, 1.0], (people, 1, 1)) + 10.0
    boxes = np.tile(np.array([[0.0, 0.0], [20.0, 20.0]]), (people, 1, 1))
    return gt + 0.5, gt, np.zeros((people, 16), dtype=bool), boxes


@pytest.mark.parametrize(
    "which, needle",
    [
        ("pred", "pred: NaN or infinity at person 1, joint l_knee"),
        ("gt", "gt: NaN or infinity at person 1, joint l_knee"),
        ("headboxes", "headboxes: NaN or infinity at person 1"),
    ],
)
def test_pckh_refuses_non_finite_inputs(which, needle):
    pred, gt, missing, boxes = pckh_inputs()
    if which == "headboxes":
        boxes[1, 1, 0] = np.inf
    else:
        {"pred": pred, "gt": gt}[which][1, 4, 0] = np.nan
    with pytest.raises(HgpruneError) as err:
        pckh(pred, gt, missing, boxes)
    one_line(err, needle)


def test_pckh_ignores_nan_at_missing_joints():
    pred, gt, missing, boxes = pckh_inputs()
    gt[0, 3] = np.nan
    missing[0, 3] = True
    assert pckh(pred, gt, missing, boxes).mean == 100.0


def gt_mat(path: Path, people: int = 2) -> Path:
    _, gt, missing, boxes = pckh_inputs(people)
    scipy.io.savemat(
        path,
        {
            "pos_gt_src": gt.transpose(1, 2, 0) + 1,
            "jnt_missing": missing.T.astype(np.uint8),
            "headboxes_src": boxes.transpose(1, 2, 0) + 1,
        },
    )
    return path


@pytest.mark.parametrize(
    "value, needle",
    [
        ("not numbers", "got text"),
        (np.array([[1.0, "x"]], dtype=object), "got a cell array"),
        ({"a": 1.0}, "got a struct"),
    ],
)
def test_pckh_command_refuses_non_numeric_predictions(tmp_path, capsys, value, needle):
    pred = tmp_path / "pred.mat"
    scipy.io.savemat(pred, {"pos_pred_src": value})
    cli_error(
        capsys,
        ["pckh", str(gt_mat(tmp_path / "gt.mat")), str(pred)],
        str(pred),
        "pos_pred_src must be a numeric array",
        needle,
    )


def test_pckh_command_names_the_file_with_nan(tmp_path, capsys):
    pred_values = pckh_inputs()[0].transpose(1, 2, 0) + 1
    pred_values[2, 0, 1] = np.nan
    pred = tmp_path / "pred.mat"
    scipy.io.savemat(pred, {"pos_pred_src": pred_values})
    cli_error(capsys, ["pckh", str(gt_mat(tmp_path / "gt.mat")), str(pred)], f"{pred}: predictions: NaN", "person 1")


# ---------------------------------------------------------------------------------------------------------------
# 5. Checkpoints


@pytest.fixture
def checkpoint(tmp_path) -> dict:
    """A saved tiny model's raw payload, to be altered and saved again."""
    path = tmp_path / "tiny.pt"
    save_model(build_preset("tiny"), path)
    return torch.load(path, weights_only=True)


def save(payload, path: Path) -> Path:
    torch.save(payload, path)
    return path


@pytest.mark.parametrize(
    "key, value, needle",
    [
        ("num_stacks", 10**6, "num_stacks: must be at most 16"),
        ("N", 8192, "N: must be at most 4096"),
        ("M", 2**70, "M: must be at most 4096, got 1e18 or more"),
        ("num_joints", 100_000, "num_joints: must be at most 1024"),
        ("input_size", 65536, "input_size: must be at most 4096"),
        ("depth", 9, "depth: must be at most 8"),
        ("N", 16.0, "N: must be an integer"),
        ("N", -(2**70), "N: invalid value -1e18 or more"),
    ],
)
def test_config_bounds(tmp_path, checkpoint, key, value, needle):
    checkpoint["config"][key] = value
    with pytest.raises(HgpruneError) as err:
        load_model(save(checkpoint, tmp_path / "c.pt"))
    one_line(err, "invalid config", needle)


def test_config_claiming_huge_widths_allocates_only_the_stored_tensors(tmp_path, checkpoint):
    checkpoint["config"].update(N=2048, M=4096)  # gigabytes as an hg1; the stored tensors are the tiny model's
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    model = load_model(save(checkpoint, tmp_path / "c.pt"))
    assert model.conv1.out_channels == 8
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 500 * 1024  # KiB on Linux


def test_tensor_claiming_more_than_the_file_holds(tmp_path, checkpoint):
    checkpoint["state_dict"]["layer3.0.conv3.weight"] = torch.zeros(1).expand(4096, 16, 1, 1)
    with pytest.raises(HgpruneError) as err:
        load_model(save(checkpoint, tmp_path / "c.pt"))
    one_line(err, "tensor layer3.0.conv3.weight claims shape (4096, 16, 1, 1)", "stores only 4 bytes")


def test_tensor_wider_than_its_config(tmp_path, checkpoint):
    checkpoint["state_dict"]["conv1.weight"] = torch.zeros(64, 3, 7, 7)
    with pytest.raises(HgpruneError) as err:
        load_model(save(checkpoint, tmp_path / "c.pt"))
    one_line(err, "tensor conv1.weight has shape (64, 3, 7, 7), wider than")


def test_nan_weights_and_negative_variance_are_refused(tmp_path, checkpoint):
    broken = {**checkpoint, "state_dict": dict(checkpoint["state_dict"])}
    broken["state_dict"]["conv1.weight"] = broken["state_dict"]["conv1.weight"].clone()
    broken["state_dict"]["conv1.weight"][0, 0, 0, 0] = float("nan")
    path = save(broken, tmp_path / "nan.pt")
    with pytest.raises(HgpruneError) as err:
        load_model(path)
    one_line(err, "tensor conv1.weight holds NaN or infinity")
    assert load_model(path, check_finite=False).conv1.weight.isnan().any()  # the opt-out, for inspection
    checkpoint["state_dict"]["bn1.running_var"] = -checkpoint["state_dict"]["bn1.running_var"]
    with pytest.raises(HgpruneError) as err:
        load_model(save(checkpoint, tmp_path / "var.pt"))
    one_line(err, "tensor bn1.running_var holds a negative BatchNorm variance")


def test_storage_with_a_negative_element_count(tmp_path):
    good, bad = tmp_path / "good.pt", tmp_path / "bad.pt"
    torch.save({"w": torch.zeros(4)}, good)
    with zipfile.ZipFile(good) as source, zipfile.ZipFile(bad, "w") as target:
        for info in source.infolist():
            data = source.read(info)
            if info.filename.endswith("data.pkl"):  # the storage record's element count: BININT1 4 → BININT -5
                data = data.replace(b"cpuq\x06K\x04", b"cpuq\x06J" + (-5).to_bytes(4, "little", signed=True), 1)
                assert b"J\xfb\xff\xff\xff" in data
            target.writestr(info, data)
    with pytest.raises(HgpruneError) as err:
        load_model(bad)
    one_line(err, str(bad), "truncated or corrupt")


def test_non_string_state_dict_key(tmp_path, checkpoint):
    checkpoint["state_dict"][5] = torch.zeros(1)
    with pytest.raises(HgpruneError) as err:
        load_model(save(checkpoint, tmp_path / "k.pt"))
    one_line(err, "state dict key of type int")


def test_convert_with_list_or_null_meta(tmp_path, capsys, checkpoint):
    checkpoint["meta"] = [1, 2]
    src = save(checkpoint, tmp_path / "list.pt")
    cli_error(capsys, ["convert", str(src), str(tmp_path / "out.pt")], str(src), "meta must be a mapping")
    checkpoint["meta"] = None
    src = save(checkpoint, tmp_path / "none.pt")
    assert main(["convert", str(src), str(tmp_path / "out.pt")]) == 0
    _, info = load_checkpoint(tmp_path / "out.pt")
    assert info["meta"]["converted_from"] == str(src)
    cli_error(capsys, ["convert", str(src), str(tmp_path / "o2.pt"), "--input-size", "-64"], "--input-size: invalid")


# ---------------------------------------------------------------------------------------------------------------
# 6. Reports


def pareto_reference(cost, score) -> np.ndarray:
    """The definition, pairwise: not dominated by any other point (n² — only for small inputs)."""
    cost, score = np.asarray(cost, dtype=float), np.asarray(score, dtype=float)
    return np.array(
        [
            not (np.isnan(c) or np.isnan(s))
            and not any((c2 <= c and s2 >= s) and (c2 < c or s2 > s) for c2, s2 in zip(cost, score))
            for c, s in zip(cost, score)
        ],
        dtype=bool,
    )


values = st.one_of(st.sampled_from([0.0, 1.0, 2.0, np.nan, np.inf, -np.inf]), st.integers(0, 3).map(float))


@settings(max_examples=50, deadline=None)
@given(points=st.lists(st.tuples(values, values), max_size=12))
def test_pareto_sweep_matches_the_definition(points):
    cost = [c for c, _ in points]
    score = [s for _, s in points]
    assert pareto_mask(cost, score).tolist() == pareto_reference(cost, score).tolist()


@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "", "1e400"])
def test_non_finite_macs_stop_the_report_before_writing(tmp_path, value):
    run = tmp_path / "run"
    run.mkdir()
    header = "run,step,arch,N,M,criterion,macs_fvcore,pckh_mean\n"
    (run / "metrics.csv").write_text(header + "r,0,hg1,16,32,l1,100,50\n" + f"r,1,hg1,16,32,l1,{value},40\n")
    with pytest.raises(HgpruneError) as err:
        read_metrics(run / "metrics.csv")
    one_line(err, str(run / "metrics.csv"), "column 'macs_fvcore' row 2", "not a finite number")
    with pytest.raises(HgpruneError):
        write_report([run], tmp_path / "report")
    assert not (tmp_path / "report").exists()


def test_infinity_in_an_optional_column_is_refused(tmp_path):
    path = write(tmp_path / "metrics.csv", "step,arch,criterion,macs_fvcore,pckh_mean,latency_ms\n0,hg1,l1,1,2,inf\n")
    with pytest.raises(HgpruneError) as err:
        read_metrics(path)
    one_line(err, "column 'latency_ms' row 1")


# ---------------------------------------------------------------------------------------------------------------
# 7. Command-line values


@pytest.mark.parametrize(
    "flags, needle",
    [
        (["--input-size", "-64"], "--input-size: must be in [1, 4096], got -64"),
        (["--input-size", "65536"], "--input-size: must be in [1, 4096]"),
        (["--input-size", "100"], "--input-size: must be a positive multiple of 64, got 100"),
        (["--repeats", "0"], "--repeats: must be in [1,"),
        (["--repeats", "-1"], "--repeats: must be in [1,"),
        (["--threads", "-1"], "--threads: must be in [1,"),
        (["--batch-size", "0"], "--batch-size: must be in [1,"),
        (["--max-seconds", "nan"], "--max-seconds: must be in (0, 86400]"),
    ],
)
def test_profile_flags(capsys, flags, needle):
    cli_error(capsys, ["profile", "--arch", "hg1", "--N", "16", "--M", "32", "--no-latency", *flags], needle)


# ---------------------------------------------------------------------------------------------------------------
# 8. The run lock


def stale_lock(run: RunDir) -> str:
    run.prepare()
    text = json.dumps({"pid": DEAD_PID, "host": socket.gethostname()})
    run.lock_path.write_text(text)
    return text


def test_two_contenders_for_one_stale_lock_cannot_both_proceed(tmp_path):
    run = RunDir(tmp_path / "run")
    seen = stale_lock(run)  # both contenders read this content and judged it stale
    assert run._take_over_stale(seen)  # the first removes it ...
    run.acquire_lock()  # ... and takes the lock
    mine = run.lock_path.read_text()
    assert not run._take_over_stale(seen)  # the second, acting on what it saw, must not remove the fresh lock
    assert run.lock_path.read_text() == mine
    with pytest.raises(HgpruneError) as err:
        run.acquire_lock()
    one_line(err, f"pid {os.getpid()}")
    assert not (run.root / ".lock.takeover").exists()


def test_takeover_in_progress_blocks_a_second_takeover(tmp_path):
    run = RunDir(tmp_path / "run")
    seen = stale_lock(run)
    guard = run.root / ".lock.takeover"
    guard.write_text("")  # another process holds the takeover guard
    assert not run._take_over_stale(seen)
    assert run.lock_path.read_text() == seen
    with pytest.raises(HgpruneError) as err:
        run.acquire_lock()
    one_line(err, "could not take the run lock", ".lock.takeover")
    guard.unlink()
    run.acquire_lock()
    assert json.loads(run.lock_path.read_text())["pid"] == os.getpid()


@pytest.mark.parametrize("pid", [10**30, -1, 0, "x", None, True])
def test_hostile_lock_contents_are_refused_in_one_line(tmp_path, pid):
    run = RunDir(tmp_path / "run")
    run.prepare()
    run.lock_path.write_text(json.dumps({"pid": pid, "host": socket.gethostname() * 1000}))
    with pytest.raises(HgpruneError) as err:
        run.acquire_lock()
    one_line(err, "another hgprune run")


def test_deep_or_huge_lock_file_is_refused_in_one_line(tmp_path):
    run = RunDir(tmp_path / "run")
    run.prepare()
    run.lock_path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(HgpruneError) as err:
        run.acquire_lock()
    one_line(err, "another hgprune run")


# ---------------------------------------------------------------------------------------------------------------
# 9. A full disk during torch.save


def test_full_disk_during_torch_save_is_one_line_and_leaves_nothing(tmp_path, monkeypatch):
    path = tmp_path / "model.pt"
    path.write_bytes(b"previous")

    def full_disk(obj, handle):
        handle.write(b"partial")
        raise RuntimeError("[enforce fail at inline_container.cc:595] . PytorchStreamWriter failed writing file "
                           "data/0: file write failed\nNo space left on device")  # fmt: skip

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(HgpruneError) as err:
        atomic_torch_save({"x": torch.zeros(1)}, path)
    one_line(err, str(path), "write failed (No space left on device)", "previous version is intact")
    assert path.read_bytes() == b"previous" and sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]


# ---------------------------------------------------------------------------------------------------------------
# Property-based: hostile recipes, annotation records and checkpoint configs → success or one line


hostile_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(["../x", "/abs", "a\0b", "..", "cuda", "1e23", "x" * 3000, "hg8", "macs"]),
)
hostile_values = st.one_of(hostile_scalars, st.lists(hostile_scalars, max_size=4))
RECIPE_KEYS = {
    "": ["name", "seed", "device", "role"],
    "model": ["arch", "N", "M", "num_joints", "input_size"],
    "prune": ["steps", "criterion", "round_to"],
    "data": ["dataset", "workers", "val_limit"],
    "profile": ["repeats", "threads", "input_size"],
}
recipe_entries = st.lists(
    st.sampled_from([(section, key) for section, keys in RECIPE_KEYS.items() for key in keys]).flatmap(
        lambda where: st.tuples(st.just(where), hostile_values)
    ),
    max_size=6,
)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(entries=recipe_entries)
def test_hostile_recipes_are_a_recipe_or_one_line(tmp_path, entries):
    document: dict = {}
    for (section, key), value in entries:
        (document.setdefault(section, {}) if section else document)[key] = value
    path = tmp_path / "fuzz.yaml"
    path.write_text(yaml.safe_dump(document))
    try:
        recipe = load_recipe(path)
    except HgpruneError as exc:
        assert "\n" not in str(exc) and len(str(exc)) < 400
    else:
        assert isinstance(recipe, Recipe) and Path("runs", recipe.name).parent == Path("runs")


RECORD_FIELDS = ["scale_provided", "objpos", "joint_self", "img_width", "img_height", "img_paths", "isValidation"]
record_values = st.one_of(
    hostile_values,
    st.sampled_from([10**400, 1e308, -1e308]),
    st.lists(
        st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=3, max_size=3), min_size=16, max_size=16
    ),
)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(changes=st.dictionaries(st.sampled_from(RECORD_FIELDS), record_values, max_size=3))
def test_hostile_annotation_records_are_records_or_one_line(tmp_path, changes):
    path = write_annotations(tmp_path / "fuzz.json", [seed_record(), seed_record(**changes)])
    try:
        records = mpii.load_annotations(path)
    except HgpruneError as exc:
        assert "\n" not in str(exc) and len(str(exc)) < 400
    else:
        for record in records:
            assert 0 < record.scale <= 1.25 * mpii.MAX_SCALE and np.isfinite(record.center).all()
            assert np.abs(record.joints).max() <= mpii.MAX_COORD + 1


CONFIG_KEYS = ["num_stacks", "N", "M", "num_joints", "depth", "input_size"]
config_values = st.one_of(
    st.integers(-(2**70), 2**70), st.integers(0, 64), st.sampled_from([4096, 1024, 16.0, "16", None, True, [16]])
)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(changes=st.dictionaries(st.sampled_from(CONFIG_KEYS), config_values, min_size=1, max_size=2))
def test_hostile_checkpoint_configs_load_or_are_one_line(tmp_path, checkpoint, changes):
    payload = {**checkpoint, "config": {**checkpoint["config"], **changes}}
    try:
        model = load_model(save(payload, tmp_path / "fuzz.pt"))
    except HgpruneError as exc:
        assert "\n" not in str(exc) and len(str(exc)) < 400
    else:
        stored = {k: tuple(v.shape) for k, v in checkpoint["state_dict"].items()}
        assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == stored


def test_export_repeats_must_be_positive(tmp_path, capsys):
    from hgprune.cli import main
    from hgprune.models import build_preset, save_model

    save_model(build_preset("tiny"), tmp_path / "m.pt")
    assert main(["export", str(tmp_path / "m.pt"), "--format", "torchscript", "--repeats", "0"]) == 2
    assert "--repeats: must be in [1, 100000], got 0" in capsys.readouterr().err
    assert not (tmp_path / "m.torchscript.pt").exists()
