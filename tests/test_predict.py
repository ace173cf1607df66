"""``Predictor`` and ``hgprune predict``: the same joints as ``evaluate_model``, backends that agree, video in and out,
unreadable inputs skipped and counted, one-line errors."""

import csv
import json

import cv2
import numpy as np
import pytest
import torch

from hgprune import build_model, save_model
from hgprune.cli import main
from hgprune.data import build_dataset
from hgprune.data.synthpose import SynthConfig, generate
from hgprune.errors import HgpruneError
from hgprune.export import export_model
from hgprune.export import runtime as rt
from hgprune.metrics import pckh
from hgprune.predict import Predictor, box_to_crop, crop_to_box, infer_backend, whole_image_crop
from hgprune.train import evaluate_model
from tests.conftest import tiny_eval_model

SIZE = 64


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    """A few SynthPose images (96 px) with annotations; the val split is what gets predicted."""
    return generate(SynthConfig(num_train=8, num_val=6, size=96, seed=3), tmp_path_factory.mktemp("synth"))


@pytest.fixture(scope="module")
def model():
    return tiny_eval_model()


@pytest.fixture(scope="module")
def exported(model, tmp_path_factory):
    """The model as an hgprune checkpoint, a TorchScript archive and an ONNX graph: backend → path."""
    folder = tmp_path_factory.mktemp("models")
    save_model(model, folder / "m.pt")
    export_model(model, "torchscript", folder / "m.torchscript.pt", time_runtime=False)
    export_model(model, "onnx", folder / "m.onnx", time_runtime=False)
    return {"torch": folder / "m.pt", "torchscript": folder / "m.torchscript.pt", "onnxruntime": folder / "m.onnx"}


@pytest.fixture(scope="module")
def val_set(synth, model):
    return build_dataset(
        "mpii", "val", annotations=synth / "annotations.json", input_size=SIZE, normalization=model.config.normalization
    )


@pytest.fixture(scope="module")
def evaluated(model, val_set):
    return evaluate_model(model, val_set, batch_size=4)


def _boxes_file(val_set, path):
    """Boxes whose crops are exactly the records' (centre, scale): predict then sees what evaluate sees."""
    boxes = {r.image: [crop_to_box(r.center, r.scale)] for r in val_set.records}
    path.write_text(json.dumps(boxes))
    return path


def _one_line_error(capsys, match: str) -> None:
    err = capsys.readouterr().err
    assert err.startswith("hgprune: error:") and match in err and err.count("\n") == 1, err


def test_crop_conventions():
    center, scale = box_to_crop([10, 20, 50, 120])
    assert center.tolist() == [30.0, 70.0] and scale == pytest.approx(1.25 * 100 / 200)
    c, s = box_to_crop(crop_to_box([33.5, 41.0], 0.7))
    assert np.allclose(c, [33.5, 41.0]) and s == pytest.approx(0.7)
    center, scale = whole_image_crop(480, 640)  # (height, width): centred, the longer side fills the input
    assert center.tolist() == [319.5, 239.5] and scale == 3.2


@pytest.mark.parametrize("backend", ["torch", "torchscript", "onnxruntime"])
def test_cli_folder_scores_the_same_pckh_as_evaluate(backend, synth, exported, val_set, evaluated, tmp_path, capsys):
    out = tmp_path / "out"
    boxes = _boxes_file(val_set, tmp_path / "boxes.json")
    glob_input = str(synth / "images" / "val_*.jpg")
    argv = ["predict", str(exported[backend]), glob_input, "--out", str(out), "--boxes", str(boxes), "--draw"]
    assert main([*argv, "--batch-size", "4"]) == 0
    assert "wrote 6 image JSON files and 0 video frames" in capsys.readouterr().out
    preds = []
    for record in val_set.records:
        name = record.image.removesuffix(".jpg")
        data = json.loads((out / f"{name}.json").read_text())
        assert data["backend"] == backend and data["input_size"] == SIZE and len(data["people"]) == 1
        assert len(data["joint_names"]) == 16 and len(data["people"][0]["confidence"]) == 16
        preds.append(data["people"][0]["joints"])
        drawing = cv2.imread(str(out / f"{name}.pose.jpg"))
        assert drawing.shape == (96, 96, 3)
    preds = np.asarray(preds)
    gt = val_set.ground_truth()
    assert np.abs(preds - evaluated.preds).max() < 2e-3  # JSON rounds to 1e-3 px
    assert pckh(preds, gt.joints, gt.missing, gt.headboxes).mean == pytest.approx(evaluated.mpii.mean)


@pytest.mark.parametrize("flip", [False, True])
def test_backends_agree_to_a_tenth_of_a_pixel(flip, model, exported, synth):
    images = np.stack([cv2.imread(str(p))[..., ::-1] for p in sorted((synth / "images").glob("val_*.jpg"))])
    results = {}
    for backend, path in exported.items():
        results[backend] = Predictor(path, backend=backend, flip=flip, batch_size=4).predict(images)
    results["in-memory onnx"] = Predictor(model, backend="onnxruntime", flip=flip).predict(images)
    reference = results.pop("torch")
    assert reference.joints.shape == (6, 16, 2) and reference.image_index.tolist() == list(range(6))
    for backend, poses in results.items():
        assert np.abs(poses.joints - reference.joints).max() < 0.1, backend
        assert np.abs(poses.confidence - reference.confidence).max() < 1e-3, backend


def test_input_forms_and_colour(model, synth):
    predictor = Predictor(model, channels_last=False)
    path = synth / "images" / "val_000000.jpg"
    bgr = cv2.imread(str(path))
    from_path = predictor.predict(path)
    assert from_path.joints.shape == (1, 16, 2) and from_path.confidence.shape == (1, 16)
    same = [
        predictor.predict(np.ascontiguousarray(bgr[..., ::-1])),  # RGB array (the default)
        predictor.predict(bgr, color="bgr"),
        predictor.predict(torch.from_numpy(np.ascontiguousarray(bgr[..., ::-1]))),  # uint8 HWC tensor
        predictor.predict(torch.from_numpy(bgr[..., ::-1].transpose(2, 0, 1) / 255.0).float()),  # float CHW
    ]
    for poses in same:
        assert np.abs(poses.joints - from_path.joints).max() < 1e-6
    assert np.abs(predictor.predict(bgr).joints - from_path.joints).max() > 0  # BGR read as RGB is another image
    # one image, two people; then a batch with boxes for the second image only
    two = predictor.predict(path, boxes=[[10, 10, 60, 90], [40, 5, 90, 95]])
    assert two.joints.shape == (2, 16, 2) and two.image_index.tolist() == [0, 0]
    mixed = predictor.predict([path, path], boxes=[None, [[10, 10, 60, 90], [40, 5, 90, 95]]])
    assert mixed.image_index.tolist() == [0, 1, 1]
    assert np.allclose(mixed.joints[1:], two.joints) and np.allclose(mixed.joints[0], from_path.joints[0])
    assert np.allclose(Predictor(model, channels_last=True).predict(path).joints, from_path.joints, atol=1e-3)


def test_large_array_is_reduced_like_a_file(model):
    """An array far larger than the input is area-reduced before the warp, as JPEG decoding reduces files."""
    image = np.zeros((800, 600, 3), np.uint8)
    cv2.rectangle(image, (200, 100), (400, 700), (255, 255, 255), -1)
    poses = Predictor(model).predict(image)
    assert poses.scales.tolist() == [4.0] and np.isfinite(poses.joints).all()
    assert (poses.joints[..., 0] > -100).all() and (poses.joints[..., 0] < 700).all()


def test_video_in_annotated_video_and_csv_out(exported, synth, tmp_path, capsys):
    video = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 5, (96, 96))
    for path in sorted((synth / "images").glob("val_*.jpg"))[:4]:
        writer.write(cv2.imread(str(path)))
    writer.release()
    out = tmp_path / "out"
    assert main(["predict", str(exported["onnxruntime"]), str(video), "--out", str(out), "--draw"]) == 0
    assert "0 image JSON files and 4 video frames" in capsys.readouterr().out
    rows = list(csv.reader((out / "clip.csv").read_text().splitlines()))
    assert rows[0][:5] == ["frame", "person", "r_ankle_x", "r_ankle_y", "r_ankle_confidence"] and len(rows[0]) == 50
    assert [r[0] for r in rows[1:]] == ["0", "1", "2", "3"]
    frames = sorted((out / "clip").glob("frame_*.json"))
    assert len(frames) == 4
    first = json.loads(frames[0].read_text())["people"][0]
    assert [float(v) for v in rows[1][2:5]] == pytest.approx([*first["joints"][0], first["confidence"][0]], abs=1e-3)
    annotated = cv2.VideoCapture(str(out / "clip.pose.mp4"))
    count = 0
    while annotated.read()[0]:
        count += 1
    assert count == 4 and annotated.get(cv2.CAP_PROP_FRAME_WIDTH) == 96
    assert not list(out.glob(".*tmp*"))  # the temp video was renamed into place


def test_unreadable_inputs_are_skipped_and_counted(exported, synth, tmp_path, capsys):
    folder = tmp_path / "images"
    folder.mkdir()
    for name in ("val_000000.jpg", "val_000001.jpg"):
        (folder / name).write_bytes((synth / "images" / name).read_bytes())
    (folder / "broken.jpg").write_bytes(b"not a jpeg")
    out = tmp_path / "out"
    assert main(["predict", str(exported["torch"]), str(folder), str(tmp_path / "gone.png"), "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "wrote 2 image JSON files" in captured.out and "2 unreadable input(s) skipped" in captured.out
    assert (
        "broken.jpg: missing or unreadable image, skipped" in captured.err
        and "gone.png: no such file or no match, skipped" in captured.err
    )
    assert sorted(p.name for p in out.iterdir()) == ["val_000000.json", "val_000001.json"]
    with pytest.raises(HgpruneError, match="broken.jpg: missing or unreadable image"):
        Predictor(exported["torch"]).predict(folder / "broken.jpg")


def test_infer_backend(exported):
    assert {b: infer_backend(p) for b, p in exported.items()} == {b: b for b in exported}


def test_cli_errors_are_one_line(exported, synth, tmp_path, capsys):
    images = str(synth / "images" / "val_000000.jpg")
    assert main(["predict", str(tmp_path / "none.pt"), images, "--out", str(tmp_path)]) == 2
    _one_line_error(capsys, "none.pt: model file not found")
    assert main(["predict", str(exported["torch"]), str(tmp_path / "nothing*.jpg"), "--out", str(tmp_path)]) == 2
    _one_line_error(capsys, "no images or videos found")
    bad_boxes = tmp_path / "boxes.json"
    bad_boxes.write_text(json.dumps({"val_000000.jpg": [[1, 2, 3]]}))
    assert main(["predict", str(exported["torch"]), images, "--out", str(tmp_path), "--boxes", str(bad_boxes)]) == 2
    _one_line_error(capsys, "boxes of 'val_000000.jpg' must be a list of [x1, y1, x2, y2]")
    argv = ["predict", str(exported["onnxruntime"]), images, "--out", str(tmp_path), "--backend", "torch"]
    assert main(argv) == 2
    _one_line_error(capsys, "m.onnx: is an export; use backend='onnxruntime'")
    assert main(["predict", str(exported["torch"]), images, "--out", str(tmp_path), "--batch-size", "0"]) == 2
    _one_line_error(capsys, "--batch-size: must be in [1, 4096], got 0")


def test_api_errors_name_the_value(model, tmp_path):
    plain = tmp_path / "plain.onnx"
    plain.write_bytes(rt.onnx_bytes(model, SIZE))  # no hgprune metadata: the normalisation would be a guess
    with pytest.raises(HgpruneError, match="plain.onnx: has no hgprune_config metadata"):
        Predictor(plain, backend="onnxruntime")
    with pytest.raises(HgpruneError, match="backend: unknown 'tensorrt'"):
        Predictor(model, backend="tensorrt")
    with pytest.raises(HgpruneError, match="input_size: must be a positive multiple of 64, got 100"):
        Predictor(model, input_size=100)
    with pytest.raises(HgpruneError, match="the graph takes 64×64 inputs; input_size 128 cannot run"):
        Predictor(_exported_onnx(model, tmp_path), "onnxruntime", 128)
    predictor = Predictor(model)
    image = np.zeros((32, 32, 3), np.uint8)
    with pytest.raises(HgpruneError, match="color: must be one of rgb, bgr, got 'hsv'"):
        predictor.predict(image, color="hsv")
    with pytest.raises(HgpruneError, match=r"box \[5.0, 5.0, 1.0, 9.0\]: expected finite"):
        predictor.predict(image, boxes=[[5, 5, 1, 9]])
    with pytest.raises(HgpruneError, match="boxes: 1 entries for 2 images"):
        predictor.predict([image, image], boxes=[None])
    with pytest.raises(HgpruneError, match="image array: expected uint8"):
        predictor.predict(image.astype(np.float32))


def _exported_onnx(model, tmp_path):
    path = tmp_path / "sized.onnx"
    export_model(model, "onnx", path, time_runtime=False)
    return path


@pytest.mark.parametrize("fold_bn", [True, False])
def test_the_callers_model_is_left_as_it_was(fold_bn):
    net = build_model("hg1", N=16, M=32, input_size=SIZE).train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    poses = Predictor(net, fold_bn=fold_bn, channels_last=True).predict(np.zeros((50, 70, 3), np.uint8))
    assert poses.joints.shape == (1, 16, 2) and net.training
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())
    assert net.conv1.weight.is_contiguous()  # not converted to channels_last in place
