"""Hostile input, round three (issue 34, patterns 2-7): one mechanism per pattern, each tested on cases of its own.

2. secondary read paths → :func:`hgprune.fsutil.reading` (one line naming the file), bounded JSON, worker errors;
3. memory bounded by what a file holds → zip inflation, .mat declared shapes, lazy crops, video frame budget;
4. no silent garbage → :func:`hgprune.metrics.check_heatmaps`, metrics.csv column bounds, 0/1 missing flags;
5. output names unique and safe by construction → ``output_names``, symlink-safe globbing, report names;
6. records survive later failures → ``RunDir.record_status``, :func:`hgprune.fsutil.sweep_stale_temps`, ENOSPC;
7. ``hgprune data inspect`` exits non-zero when its check fails.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import zipfile
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import scipy.io
import torch

from hgprune import fsutil
from hgprune.cli import main
from hgprune.commands import predict as predict_command
from hgprune.data import mpii
from hgprune.data import transforms as T
from hgprune.data.dataset import PoseDataset
from hgprune.errors import HgpruneError, user_message
from hgprune.metrics import check_heatmaps, decode_heatmaps
from hgprune.models import build_preset, save_model
from hgprune.predict import Predictor
from hgprune.report import write_report
from hgprune.rundir import METRIC_COLUMNS, RunDir, check_epochs_done, step_row
from tests.test_hostile import cli_error, one_line, seed_record, write_annotations

# ---------------------------------------------------------------------------------------------------------------
# helpers


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "tiny.pt"
    save_model(build_preset("tiny").eval(), path)
    return path


def write_video(path: Path, frames: int = 3, side: int = 64) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 5.0, (side, side))
    assert writer.isOpened()
    for i in range(frames):
        writer.write(np.full((side, side, 3), 40 * i, np.uint8))
    writer.release()
    return path


def metrics_row(step: int, **changes) -> dict:
    row = {c: "" for c in METRIC_COLUMNS}
    row.update(run="r", step=step, arch="hg1", N=16, M=8, role="prune", criterion="l1", target_kind="macs",
               target=1.0 if step == 0 else 0.5, params=1000 - 100 * step, macs_fvcore=10_000 - 1000 * step,
               conv_macs=9000, macs_ratio=1.0 - 0.1 * step, params_ratio=1.0 - 0.1 * step, pckh_mean=80.0 - step,
               pckh_seed_mean=79.0, pckh_01=30.0, auc=50.0, finetune_epochs=1)  # fmt: skip
    row.update(changes)
    return row


@pytest.fixture
def no_figures(monkeypatch):
    """Reports without drawing (what these tests check is in the text and the files, not the plots)."""
    from hgprune.report import figures

    for name in ("pareto_figure", "latency_figure", "pckh_groups_figure"):
        monkeypatch.setattr(figures, name, lambda *args, **kwargs: None)


def run_dir(root: Path, rows: list[dict]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    lines = [",".join(METRIC_COLUMNS)] + [",".join(str(r[c]) for c in METRIC_COLUMNS) for r in rows]
    (root / "metrics.csv").write_text("\n".join(lines) + "\n")
    return root


# ---------------------------------------------------------------------------------------------------------------
# 2. Secondary read paths: one line naming the file


@pytest.mark.parametrize(
    "text, needle",
    [
        ("name: !!python/object/apply:os.system ['echo x']\n", "unreadable run recipe"),
        ("name: !custom x\n", "unreadable run recipe"),
        ("seed: !!float x\n", "unreadable run recipe"),
        ("- just\n- a list\n", "must be a mapping"),
        ("name: " + "[" * 5000 + "]" * 5000 + "\n", "run recipe"),
    ],
)
def test_a_run_directorys_own_recipe_is_read_like_any_input(tmp_path, text, needle):
    run = RunDir(tmp_path)
    run.recipe.write_text(text)
    with pytest.raises(HgpruneError) as err:
        run.read_recipe()
    one_line(err, str(run.recipe), needle)


def test_a_huge_run_recipe_is_refused_unread(tmp_path):
    run = RunDir(tmp_path)
    run.recipe.write_bytes(b"#" * (2 << 20))
    with pytest.raises(HgpruneError) as err:
        run.read_recipe()
    one_line(err, "larger than")


@pytest.mark.parametrize(
    "meta, needle",
    [
        ({}, "no metrics 'row'"),
        ({"row": [1, 2]}, "no metrics 'row'"),
        ({"step": 1, "row": {"step": 1, "macs_fvcore": "many"}}, "'macs_fvcore' must be a finite number"),
        ({"step": 1, "row": {**metrics_row(1), "step": 2, "macs_fvcore": 5, "pckh_mean": 1.0}}, "not this file's"),
        ({"row": {**metrics_row(0), "pckh_mean": float("nan")}}, "'pckh_mean' must be a finite number"),
    ],
)
def test_step_checkpoint_metadata_is_checked(tmp_path, meta, needle):
    with pytest.raises(HgpruneError) as err:
        step_row(tmp_path / "step_001.pt", meta)
    one_line(err, "step_001.pt", needle)


def test_a_good_step_row_passes():
    row = metrics_row(2)
    assert step_row(Path("step_002.pt"), {"step": 2, "row": row}) is row


@pytest.mark.parametrize(
    "text, needle",
    [
        ("[" * 200_000 + "]" * 200_000, "RecursionError"),
        ('{"a.jpg": [[0, 0, 1e308, 1e308]]}', "within ±"),
        ('{"a.jpg": [[0, 0, 1e400, 5]]}', "within ±"),
        ('{"a.jpg": [[10, 10, 10.5, 20]]}', "sides of at least 1 px"),
        ('{"a.jpg": [[0, 0, "9", 9]]}', "must hold numbers"),
        ('{"a.jpg": [[0, 0, 9]]}', "must be a list of [x1, y1, x2, y2]"),
        ('{"a.jpg": [[0, 0, ' + "9" * 5000 + ", 9]]}", "unreadable boxes file"),
        ("[1, 2]", "expected a JSON object"),
        ("{", "unreadable boxes file"),
    ],
)
def test_boxes_file_is_checked_before_any_work(tmp_path, text, needle):
    path = tmp_path / "boxes.json"
    path.write_text(text)
    with pytest.raises(HgpruneError) as err:
        predict_command.read_boxes(str(path))
    one_line(err, str(path), needle)


def test_errors_inside_dataloader_workers_are_their_own_line():
    from torch._utils import ExceptionWrapper

    try:  # what a DataLoader worker sends back, re-raised as the main process does
        raise HgpruneError("img_0.jpg: broken beyond repair")
    except HgpruneError:
        wrapped = ExceptionWrapper(where="in DataLoader worker process 0")
    with pytest.raises(HgpruneError) as err:
        wrapped.reraise()
    assert "Original Traceback" in str(err.value)  # what torch hands back …
    assert user_message(err.value) == "img_0.jpg: broken beyond repair"  # … and what the user sees
    assert user_message(HgpruneError("a: b")) == "a: b"


def test_an_image_folder_that_does_not_exist_is_refused_before_loading(tmp_path, capsys):
    records = mpii.load_annotations(write_annotations(tmp_path / "a.json", [seed_record()]))
    with pytest.raises(HgpruneError) as err:
        PoseDataset(records, tmp_path / "no_such_dir", input_size=64)
    one_line(err, "no_such_dir", "image folder not found")
    cli_error(capsys, ["evaluate", "--dataset", "mpii", "--image-path", str(tmp_path / "nope"), "--model-file",
                       str(tmp_path / "m.pt")], "image folder not found")  # fmt: skip


def test_slurm_launcher_without_slurm_is_one_line(tmp_path, monkeypatch):
    pytest.importorskip("submitit")
    from hgprune.launch import LaunchOptions, submit_slurm

    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(HgpruneError) as err:
        submit_slurm([], tmp_path / "out", LaunchOptions())
    one_line(err, "needs Slurm")


def test_video_draw_into_a_file_or_read_only_folder_is_the_real_error(tmp_path, capsys, model_file):
    video = write_video(tmp_path / "clip.avi")
    blocker = tmp_path / "out_is_a_file"
    blocker.write_text("x")
    cli_error(capsys, ["predict", str(model_file), str(video), "--out", str(blocker), "--draw"], "cannot write output")
    if os.geteuid() != 0:
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o500)
        try:
            cli_error(capsys, ["predict", str(model_file), str(video), "--out", str(locked), "--draw"],
                      "cannot write output")  # fmt: skip
            assert list(locked.iterdir()) == []
        finally:
            locked.chmod(0o700)


# ---------------------------------------------------------------------------------------------------------------
# 3. Memory bounded by what a file holds


def test_a_checkpoint_that_would_inflate_is_refused_unread(tmp_path, monkeypatch, model_file):
    monkeypatch.setattr(fsutil, "INFLATION_ALLOWANCE", 0)
    bomb = tmp_path / "bomb.pt"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("bomb/data.pkl", b"\0" * (4 << 20))  # 4 MB of zeros in a few KB
    assert bomb.stat().st_size < 100_000
    with pytest.raises(HgpruneError) as err:
        fsutil.safe_torch_load(bomb)
    one_line(err, str(bomb), "would inflate", "refused unread")
    assert isinstance(fsutil.safe_torch_load(model_file), dict)  # a real (stored) checkpoint is within the bound


def test_mat_variables_are_checked_by_declared_shape_and_only_wanted_ones_load(tmp_path, monkeypatch):
    path = tmp_path / "preds.mat"
    preds = np.ones((16, 2, 40))
    scipy.io.savemat(path, {"pos_pred_src": preds, "unused": np.zeros((50, 50))}, do_compression=True)
    loaded: list = []
    real_loadmat = scipy.io.loadmat
    monkeypatch.setattr(scipy.io, "loadmat", lambda *a, **k: loaded.append(k) or real_loadmat(*a, **k))
    assert mpii.load_predictions_mat(path).shape == (40, 16, 2)
    assert loaded[-1]["variable_names"] == ["pos_pred_src"]
    monkeypatch.setattr(mpii, "MAX_MAT_ELEMENTS", 1000)
    loaded.clear()
    with pytest.raises(HgpruneError) as err:
        mpii.load_predictions_mat(path)
    one_line(err, "pos_pred_src declares 16×2×40 values", "refused unread")
    assert loaded == []  # refused from the header: nothing was decompressed


def test_many_boxes_hold_one_batch_of_crops_at_a_time(monkeypatch):
    predictor = Predictor(build_preset("tiny").eval(), batch_size=4)
    made, seen_at_forward = [], []
    real_crop, real_heatmaps = Predictor._crop, Predictor.heatmaps
    monkeypatch.setattr(Predictor, "_crop", lambda self, *a: made.append(1) or real_crop(self, *a))
    monkeypatch.setattr(
        Predictor, "heatmaps", lambda self, b: seen_at_forward.append(len(made)) or real_heatmaps(self, b)
    )
    boxes = [[i % 20, i % 20, i % 20 + 30, i % 20 + 40] for i in range(22)]
    poses = predictor.predict(np.zeros((64, 64, 3), np.uint8), boxes)
    assert len(poses) == 22
    assert seen_at_forward == [4, 8, 12, 16, 20, 22]  # crops built as batches need them, never all up front


def test_video_frames_over_the_pixel_budget_are_refused_before_decoding(tmp_path, capsys, monkeypatch, model_file):
    video = write_video(tmp_path / "big.avi", side=96)
    monkeypatch.setattr(T, "MAX_IMAGE_PIXELS", 64 * 64)
    reads = []
    real_capture = cv2.VideoCapture

    class Counting:
        def __init__(self, *args):
            self.inner = real_capture(*args)

        def read(self):
            reads.append(1)
            return self.inner.read()

        def __getattr__(self, name):
            return getattr(self.inner, name)

    monkeypatch.setattr(cv2, "VideoCapture", Counting)
    out = tmp_path / "out"
    cli_error(capsys, ["predict", str(model_file), str(video), "--out", str(out)], "96×96 pixels exceed the budget")
    assert reads == [] and not (out / "big").exists() and not (out / "big.csv").exists()


# ---------------------------------------------------------------------------------------------------------------
# 4. No silent garbage


def test_nan_heatmaps_are_never_decoded_or_scored():
    heatmaps = torch.rand(2, 16, 8, 8)
    heatmaps[1, 3, 2, 2] = float("nan")
    with pytest.raises(HgpruneError) as err:
        decode_heatmaps(heatmaps)
    one_line(err, "1 of 2048 heatmap values are NaN or infinite")
    heatmaps[1, 3, 2, 2] = float("inf")
    with pytest.raises(HgpruneError):
        check_heatmaps(heatmaps)
    with pytest.raises(HgpruneError) as err:
        check_heatmaps(torch.rand(1, 15, 8, 8), 16, "m.pt")
    one_line(err, "m.pt", "15 heatmap channel(s)", "names 16 joints")


def test_a_nan_model_predicts_nothing(tmp_path, capsys):
    model = build_preset("tiny").eval()
    with torch.no_grad():
        next(model.parameters()).fill_(float("nan"))
    with pytest.raises(HgpruneError) as err:
        Predictor(model, fold_bn=False).predict(np.zeros((64, 64, 3), np.uint8))
    one_line(err, "NaN or infinite")
    path = tmp_path / "nan.pt"
    torch.save({"state_dict": model.state_dict(), "config": model.config.to_dict()}, path)
    image = tmp_path / "a.jpg"
    cv2.imwrite(str(image), np.zeros((64, 64, 3), np.uint8))
    out = tmp_path / "out"
    assert main(["predict", str(path), str(image), "--out", str(out)]) == 2
    assert not (out / "a.json").exists()


def test_a_score_layer_narrower_than_the_config_predicts_nothing():
    model = build_preset("tiny").eval()
    model.config = dataclasses.replace(model.config, num_joints=15)  # 16 score channels, 15 joints claimed
    with pytest.raises(HgpruneError) as err:
        Predictor(model).predict(np.zeros((64, 64, 3), np.uint8))
    one_line(err, "16 heatmap channel(s)", "names 15 joints")


@pytest.mark.parametrize(
    "rows, needle",
    [
        ([metrics_row(0), metrics_row(2**63)], "column 'step' row 2"),
        ([metrics_row(0), metrics_row(1), metrics_row(0, pckh_mean=1.0)], "step 0 appears on rows 1, 3"),
        ([metrics_row(0), metrics_row(1, macs_fvcore=0)], "column 'macs_fvcore' row 2 is '0', outside"),
        ([metrics_row(0, pckh_mean=1e308)], "column 'pckh_mean' row 1"),
        ([metrics_row(0), metrics_row(1, pckh_Head=-1e308)], "column 'pckh_Head' row 2"),
        ([metrics_row(0, auc=100.5)], "column 'auc' row 1"),
        ([metrics_row(0, macs_ratio=-0.5)], "column 'macs_ratio'"),
        ([metrics_row(0, run="x" * 300)], "column 'run' row 1 must be at most 128"),
        ([metrics_row(0, criterion="l1\u2028# injected")], "column 'criterion' row 1"),
    ],
)
def test_hostile_metrics_stop_the_report_before_anything_is_written(tmp_path, rows, needle):
    run = run_dir(tmp_path / "run", rows)
    out = tmp_path / "report"
    with pytest.raises(HgpruneError) as err:
        write_report([run], out)
    one_line(err, "metrics.csv", needle)
    assert not out.exists() or list(out.rglob("*")) == []


def test_a_report_failing_late_leaves_the_previous_report_whole(tmp_path, monkeypatch, no_figures):
    run = run_dir(tmp_path / "run", [metrics_row(0), metrics_row(1)])
    out = tmp_path / "report"
    write_report([run], out)
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    from hgprune.report import markdown

    monkeypatch.setattr(markdown, "render", lambda *a, **k: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        write_report([run_dir(tmp_path / "run", [metrics_row(0), metrics_row(1, pckh_mean=5.0)])], out)
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before


@pytest.mark.parametrize("flag", [2.0, -1.0, 0.5, float("nan")])
def test_ground_truth_missing_flags_must_be_0_or_1(tmp_path, flag):
    missing = np.zeros((16, 3))
    missing[4, 1] = flag
    path = tmp_path / "gt.mat"
    scipy.io.savemat(path, {"pos_gt_src": np.ones((16, 2, 3)), "jnt_missing": missing,
                            "headboxes_src": np.tile(np.array([[1.0, 1.0], [20.0, 20.0]])[..., None], 3)})  # fmt: skip
    with pytest.raises(HgpruneError) as err:
        mpii.load_ground_truth_mat(path)
    one_line(err, str(path), "jnt_missing must hold 0 (annotated) or 1 (missing)", "joint 4 of person 1")


def test_a_partial_step_cannot_claim_more_epochs_than_planned(tmp_path):
    check_epochs_done(tmp_path / "p.pt", 2, 2)
    with pytest.raises(HgpruneError) as err:
        check_epochs_done(tmp_path / "p.pt", 1000, 2)
    one_line(err, "claims 1000 finished epoch(s) of a step that trains 2")


# ---------------------------------------------------------------------------------------------------------------
# 5. Output names unique and safe by construction


def test_output_names_are_unique_whatever_the_inputs():
    paths = [Path(p) for p in ("a/ok.jpg", "b/ok.png", "c/ok_1.jpg", "d/OK.jpg", "e/ok.mp4", "f/ok_2.avi")]
    names = predict_command.output_names(paths)
    assert len({n.casefold() for n in names.values()}) == len(paths)
    assert names[Path("a/ok.jpg")] == "ok" and names[Path("c/ok_1.jpg")] not in ("ok", "ok_1")


@pytest.mark.parametrize("stem", ["..", ".hidden", "a\nb", "<b>x</b>", "x" * 400, "a b", "é"])
def test_output_names_are_safe_file_names(stem):
    name = predict_command.output_names([Path(f"{stem}.jpg")])[Path(f"{stem}.jpg")]
    assert name and not name.startswith(".") and "/" not in name and "\n" not in name
    assert len(name) <= predict_command.MAX_NAME_CHARS and name.isprintable() and "<" not in name


def test_two_videos_of_one_name_keep_both_results(tmp_path, capsys, model_file):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first, second = write_video(tmp_path / "a" / "clip.avi", 2), write_video(tmp_path / "b" / "clip.avi", 3)
    out = tmp_path / "out"
    assert main(["predict", str(model_file), str(first), str(second), "--out", str(out)]) == 0
    assert "5 video frames" in capsys.readouterr().out
    csvs = sorted(out.glob("*.csv"))
    assert [p.name for p in csvs] == ["clip.csv", "clip_1.csv"]
    assert [len(p.read_text().splitlines()) for p in csvs] == [3, 4]  # header + one person per frame
    assert len(list((out / "clip").iterdir())) == 2 and len(list((out / "clip_1").iterdir())) == 3


def test_recursive_glob_does_not_follow_a_symlink_loop(tmp_path):
    root = tmp_path / "imgs"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "x.jpg").write_bytes(b"")
    (root / "y.jpg").write_bytes(b"")
    (root / "sub" / "loop").symlink_to(root, target_is_directory=True)
    (root / "sub" / "loop2").symlink_to(root / "sub", target_is_directory=True)
    found = predict_command.glob_files(str(root / "**" / "*.jpg"))
    assert found == [root / "sub" / "x.jpg", root / "y.jpg"]
    assert predict_command.glob_files(str(root / "**" / "[xz].jpg")) == [root / "sub" / "x.jpg"]


def test_run_names_cannot_inject_markdown_or_html(tmp_path, no_figures):
    run = run_dir(tmp_path / "run", [metrics_row(0, run="<img src=x onerror=alert(1)> `x` | *y*"), metrics_row(1)])
    text = write_report([run], tmp_path / "report").read_text()
    assert (
        "<img" not in text
        and "&lt;img src=x onerror=alert(1)&gt;" in text
        and "<" not in text.replace("<sub>", "").replace("</sub>", "")
    )
    state = RunDir(run).state
    state.write_text(json.dumps({"status": "finished", "command": "hgprune run x\n```\n<script>alert(1)</script>"}))
    text = write_report([run], tmp_path / "report2").read_text()
    lines = text.splitlines()
    fence = lines.index("````sh")  # longer than the ``` inside the command, which cannot close it
    inside = lines[fence + 1 : lines.index("````", fence)]
    assert [line for line in lines if "<script>" in line] == [line for line in inside if "<script>" in line]
    assert len([line for line in inside if "<script>" in line]) == 1  # the command, on its one line


def test_a_run_name_too_long_is_refused_before_any_file(tmp_path):
    run = run_dir(tmp_path / ("d" * 40), [metrics_row(0, run="")])
    (run / "run.json").write_text(json.dumps({"name": "n" * 300}))
    out = tmp_path / "report"
    with pytest.raises(HgpruneError) as err:
        write_report([run], out)
    one_line(err, "must be 1-128 printable characters")
    assert not out.exists() or list(out.rglob("*")) == []


# ---------------------------------------------------------------------------------------------------------------
# 6. Records survive later failures


def test_a_finished_run_stays_finished_when_a_resume_fails(tmp_path):
    run = RunDir(tmp_path)
    run.write_state(status="finished", finished="then")
    run.record_status("running", command="hgprune run --resume")
    run.record_status("failed", error="x.pt: write failed (No space left on device)")
    state = run.read_state()
    assert state["status"] == "finished" and state["finished"] == "then"
    assert state["last_attempt"] == "failed" and "No space left" in state["last_error"]
    run.write_state(status="finished", finished="now")
    assert "last_error" not in run.read_state()


def test_recording_a_failure_never_hides_it(tmp_path, monkeypatch):
    run = RunDir(tmp_path)
    run.write_state(status="running")

    def full(*args, **kwargs):
        raise HgpruneError("run.json: write failed (No space left on device)")

    monkeypatch.setattr(RunDir, "write_state", full)
    run.record_status("failed", error="the real error")  # best effort: no exception replaces the real one
    with pytest.raises(HgpruneError):
        run.record_status("running")


def test_temp_files_of_dead_writers_are_swept(tmp_path):
    dead = 2**31 - 1
    names = {
        ".x.tmp": False,
        ".metrics.csv.ab12cd.tmp": False,
        f".metrics.csv.{dead}-ab12.tmp": False,
        ".clip.pose.tmp.mp4": False,
        f".clip.pose.{dead}.tmp.avi": False,
        f".run.json.{os.getpid()}-zz.tmp": True,  # a live writer's (ours)
        f".log.csv.{dead}@{fsutil._HOST}-x.tmp": False,  # a dead writer of this host
        f".log.csv.{dead}@{'f' if fsutil._HOST[0] != 'f' else 'e'}{fsutil._HOST[1:]}-x.tmp": True,  # another host's
        "x.tmp": True,  # not a dot file: not ours
        ".config": True,
        "report.md": True,
    }
    for name in names:
        (tmp_path / name).write_text("x")
    fsutil.atomic_write_text(tmp_path / "new.txt", "y")
    left = {p.name for p in tmp_path.iterdir()}
    assert left == {name for name, kept in names.items() if kept} | {"new.txt"}


def test_predict_output_folder_is_swept_of_a_killed_runs_temp_files(tmp_path, model_file):
    out = tmp_path / "out"
    out.mkdir()
    (out / ".clip.pose.tmp.mp4").write_bytes(b"half")
    (out / f".a.json.{2**31 - 1}-x.tmp").write_bytes(b"half")
    image = tmp_path / "a.jpg"
    cv2.imwrite(str(image), np.zeros((64, 64, 3), np.uint8))
    assert main(["predict", str(model_file), str(image), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["a.json"]


def test_a_full_disk_inside_torch_save_says_so(tmp_path, monkeypatch):
    real_fdopen = os.fdopen

    class FillsUp:
        def __init__(self, handle):
            self.handle, self.written = handle, 0

        def write(self, data):
            self.written += len(data)
            if self.written > 64:
                raise OSError(errno.ENOSPC, "No space left on device")
            return self.handle.write(data)

        def __getattr__(self, name):
            return getattr(self.handle, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.handle.close()

    monkeypatch.setattr(fsutil.os, "fdopen", lambda fd, mode: FillsUp(real_fdopen(fd, mode)))
    path = tmp_path / "m.pt"
    with pytest.raises(HgpruneError) as err:
        fsutil.atomic_torch_save({"w": torch.zeros(1000)}, path)
    one_line(err, "write failed (No space left on device)")
    assert list(tmp_path.iterdir()) == []


def test_torchs_position_mismatch_on_a_full_disk_is_named(tmp_path, monkeypatch):
    def mismatch(obj, handle):
        raise RuntimeError("[enforce fail at inline_container.cc:778] . PytorchStreamWriter failed writing file "
                           "data/0: unexpected pos 64 vs 0")  # fmt: skip

    monkeypatch.setattr(torch, "save", mismatch)
    monkeypatch.setattr(fsutil.shutil, "disk_usage", lambda path: SimpleNamespace(total=1, used=1, free=0))
    with pytest.raises(HgpruneError) as err:
        fsutil.atomic_torch_save({}, tmp_path / "m.pt")
    one_line(err, "No space left on device")


# ---------------------------------------------------------------------------------------------------------------
# 7. A check command fails when its check fails


def test_data_inspect_exit_status_gates_scripts(tmp_path, capsys):
    images = tmp_path / "images"
    images.mkdir()
    cv2.imwrite(str(images / "a.jpg"), np.zeros((64, 64, 3), np.uint8))
    good = write_annotations(tmp_path / "good.json", [seed_record("a.jpg")])
    bad = write_annotations(tmp_path / "bad.json", [seed_record("a.jpg"), seed_record("gone.jpg")])
    base = ["data", "inspect", "--image-path", str(images)]
    assert main([*base, "--annotations", str(good)]) == 0
    capsys.readouterr()
    assert main([*base, "--annotations", str(bad)]) == 1
    assert "check failed: 1 missing and 0 unreadable" in capsys.readouterr().err
    assert main([*base, "--annotations", str(bad), "--json"]) == 1
