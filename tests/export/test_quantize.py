"""INT8 export: a QDQ graph carrying its metadata, scored exactly as ``evaluate`` scores, gated on the PCKh drop.

The models here are untrained (random weights, non-trivial BatchNorm statistics), so their PCKh is near zero and a
"within 0.5 PCKh" check would pass for the wrong reason; the tests instead check that the INT8 graph's predictions
stay close to the FP32 graph's, that the gate compares the numbers it prints, and that the Predictor reproduces the
score the gate used. The 0.5-point goal itself is judged on a trained model (docs/deploy.md).
"""

import json

import numpy as np
import onnx
import pytest

from hgprune import save_model
from hgprune.cli import main
from hgprune.data.synthpose import SynthConfig, generate
from hgprune.errors import HgpruneError
from hgprune.export import quantize as q
from hgprune.export import quantize_model
from hgprune.metrics import pckh
from hgprune.predict import Predictor, crop_to_box
from tests.conftest import tiny_eval_model


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    return generate(SynthConfig(num_train=12, num_val=6, size=96, seed=5), tmp_path_factory.mktemp("synth"))


@pytest.fixture(scope="module")
def model():
    return tiny_eval_model()


@pytest.fixture(scope="module")
def checkpoint(model, tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    save_model(model, path)
    return path


@pytest.fixture(scope="module")
def quantized(model, synth, tmp_path_factory):
    path = tmp_path_factory.mktemp("int8") / "tiny.int8.onnx"
    result = quantize_model(model, path, synth, calibration_images=8, max_pckh_drop=100.0, repeats=1)
    return path, result


def _one_line_error(capsys, match: str) -> None:
    err = capsys.readouterr().err
    assert err.startswith("hgprune: error:") and match in err and err.count("\n") == 1, err


def test_int8_graph_is_qdq_per_channel_and_carries_metadata(quantized, model):
    path, result = quantized
    assert result.written and path.stat().st_size == result.size_bytes_int8
    assert result.calibration_images == 8 and result.validation_images == 6
    assert set(result.latency_ms) == {"onnxruntime_fp32", "onnxruntime_int8"}
    proto = onnx.load(str(path))
    ops = {node.op_type for node in proto.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Conv"} <= ops
    weight_scales = [
        init for init in proto.graph.initializer if init.name.endswith("weight_scale") and init.name.startswith("conv1")
    ]
    assert weight_scales and len(weight_scales[0].dims) == 1 and weight_scales[0].dims[0] == 8  # per channel
    meta = {entry.key: entry.value for entry in proto.metadata_props}
    assert json.loads(meta["hgprune_config"]) == model.config.to_dict()
    assert json.loads(meta["quantization"])["calibration_images"] == 8


def test_predictor_reproduces_the_gate_scores_and_int8_stays_close_to_fp32(quantized, model, synth):
    path, result = quantized
    val = q.calibration_datasets(synth, model.config.normalization, 64)[1]
    images = [synth / "images" / r.image for r in val.records]
    boxes = [[crop_to_box(r.center, r.scale)] for r in val.records]
    gt = val.ground_truth()
    int8 = Predictor(path, backend="onnxruntime").predict(images, boxes)
    fp32 = Predictor(model, backend="onnxruntime").predict(images, boxes)
    assert pckh(int8.joints, gt.joints, gt.missing, gt.headboxes).mean == pytest.approx(result.pckh_int8)
    assert pckh(fp32.joints, gt.joints, gt.missing, gt.headboxes).mean == pytest.approx(result.pckh_fp32)
    # INT8 rounding moves heatmap peaks by a fraction of their height, not by the whole range
    assert np.abs(int8.confidence - fp32.confidence).max() < 0.05 * np.abs(fp32.confidence).max()
    assert np.median(np.linalg.norm(int8.joints - fp32.joints, axis=2)) <= 4.0  # one heatmap pixel


def test_cli_prints_both_scores_and_writes_within_the_gate(checkpoint, synth, tmp_path, capsys):
    argv = ["export", str(checkpoint), "--format", "onnx", "--quantize", "int8", "--calibration", str(synth)]
    assert main([*argv, "--calibration-images", "4", "--max-pckh-drop", "100", "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    for text in ("PCKh FP32", "PCKh INT8", "PCKh drop", "onnxruntime_fp32", "onnxruntime_int8", "within the gate"):
        assert text in out
    written = checkpoint.with_name("tiny.int8.onnx")
    assert f"wrote {written}" in out and written.is_file()
    written.unlink()


def test_gate_refuses_above_the_drop_and_force_writes(checkpoint, synth, tmp_path, capsys, monkeypatch):
    scores = iter([60.0, 50.0, 60.0, 50.0])  # FP32 then INT8, twice
    monkeypatch.setattr(q, "score_onnx", lambda *args, **kwargs: next(scores))
    out_path = tmp_path / "m.onnx"
    argv = ["export", str(checkpoint), "--format", "onnx", "--quantize", "int8", "--calibration", str(synth),
            "--calibration-images", "4", "--no-latency", "--out", str(out_path)]  # fmt: skip
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert "PCKh drop             10.00   (max 1)" in captured.out
    assert not out_path.exists() and not list(tmp_path.iterdir())
    _one_line_error_text(captured.err, f"{out_path}: not written: INT8 loses 10.00 PCKh (> --max-pckh-drop 1)")
    assert main([*argv, "--force"]) == 0
    assert "forced past the gate" in capsys.readouterr().out and out_path.is_file()


def _one_line_error_text(err: str, match: str) -> None:
    assert err.startswith("hgprune: error:") and match in err and err.count("\n") == 1, err


def test_calibration_from_a_recipe(synth, model, tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        f"data:\n  dataset: synthpose\n  annotations: {synth / 'annotations.json'}\n  val_limit: 4\n"
        "model: {arch: hg1, N: 16, M: 32, input_size: 128}\n"
    )
    train, val = q.calibration_datasets(recipe, model.config.normalization, 64)
    assert (len(train), len(val)) == (12, 4)
    assert train.augment is None and train.input_size == 64  # the model's size, not the recipe's
    first = next(q.calibration_batches(train, 3))
    assert first.shape == (3, 3, 64, 64) and first.dtype == np.float32


@pytest.mark.parametrize(
    "extra, match",
    [
        (["--format", "torchscript", "--quantize", "int8", "--calibration", "x"], "needs --format onnx"),
        (["--format", "onnx", "--quantize", "int8"], "--quantize: needs --calibration"),
        (["--format", "onnx", "--quantize", "int8", "--calibration", "/no/such/dir"], "/no/such/dir not found"),
        (["--format", "onnx", "--quantize", "int4", "--calibration", "x"], "invalid choice: 'int4'"),
    ],
)
def test_cli_errors_are_one_line(checkpoint, extra, match, capsys):
    assert main(["export", str(checkpoint), *extra]) == 2
    _one_line_error(capsys, match)


def test_api_errors_name_the_value(model, synth, tmp_path):
    with pytest.raises(HgpruneError, match=r"max_pckh_drop: must be in \[0, 100\], got -1"):
        quantize_model(model, tmp_path / "m.onnx", synth, max_pckh_drop=-1)
    with pytest.raises(HgpruneError, match="calibration method: unknown 'kl'"):
        q.int8_onnx_bytes(b"", [], method="kl")
    with pytest.raises(HgpruneError, match="not a recipe"):
        q.calibration_datasets(tmp_path / "nothing.json", model.config.normalization, 64)
