"""Exports of a *pruned* model match PyTorch, reload, and never leave a partial file behind."""

import pytest
import torch

from hgprune import build_model, load_model, save_model
from hgprune.errors import HgpruneError
from hgprune.export import export_model
from hgprune.export.runtime import torch_threads
from hgprune.models import build_preset
from tests.conftest import prune_half, randomize_bn


def _pruned(arch: str):
    torch.manual_seed(0)
    model = build_model(arch, N=16, M=32, input_size=64)
    randomize_bn(model)
    prune_half(model)
    return model.eval()


@pytest.fixture(scope="module")
def pruned():
    return _pruned("hg1")


@pytest.fixture(scope="module")
def pruned2():
    return _pruned("hg2")


def _outputs(model, x):
    with torch.no_grad():
        return model(x)


def test_onnx_export_matches_and_reloads(pruned2, tmp_path):
    import onnx
    import onnxruntime as ort

    path = tmp_path / "m.onnx"
    result = export_model(pruned2, "onnx", path, time_runtime=False)
    assert result.max_abs_diff < 1e-4 and result.folded_bn == 65 and result.opset == 17
    assert result.size_bytes == path.stat().st_size
    proto = onnx.load(str(path))
    assert [o.name for o in proto.graph.output] == ["heatmaps_0", "heatmaps_1"]
    assert not any(n.op_type == "BatchNormalization" and "bn2" in n.name for n in proto.graph.node)
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["folded_batchnorms"] == "65" and '"num_stacks": 2' in meta["hgprune_config"]
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = torch.randn(3, 3, 64, 64)  # batch 3: the batch axis is dynamic
    got = session.run(None, {"image": x.numpy()})
    ref = _outputs(pruned2, x)
    assert got[0].shape == (3, 16, 16, 16)
    assert max(float((torch.from_numpy(g) - r).abs().max()) for g, r in zip(got, ref, strict=True)) < 1e-4


@pytest.mark.parametrize("freeze", [True, False])
def test_torchscript_export_matches_and_reloads(pruned, tmp_path, freeze):
    path = tmp_path / "m.torchscript.pt"
    result = export_model(pruned, "torchscript", path, freeze=freeze, time_runtime=False)
    assert result.max_abs_diff < 1e-4 and result.frozen is freeze and result.folded_bn == 36
    loaded = torch.jit.load(str(path))
    x = torch.randn(2, 3, 64, 64)
    got, ref = _outputs(loaded, x), _outputs(pruned, x)
    assert len(got) == 1 and max(float((g - r).abs().max()) for g, r in zip(got, ref, strict=True)) < 1e-4


def test_hgprune_export_rebuilds_pruned_shapes(pruned, tmp_path):
    path = tmp_path / "m.pt"
    result = export_model(pruned, "hgprune", path, time_runtime=False, meta={"note": "x"})
    assert result.max_abs_diff == 0.0 and result.folded_bn == 0
    loaded = load_model(path)
    assert loaded.layer1[0].conv1.weight.shape == pruned.layer1[0].conv1.weight.shape
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pt"]  # no temp file left


def test_no_fold_keeps_batchnorms(pruned, tmp_path):
    result = export_model(pruned, "onnx", tmp_path / "m.onnx", fold_bn=False, time_runtime=False)
    assert result.folded_bn == 0 and result.max_abs_diff < 1e-4


def test_export_leaves_caller_model_in_training_mode_and_unchanged(tmp_path):
    model = build_preset("tiny").train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    export_model(model, "torchscript", tmp_path / "m.ts", time_runtime=False)
    assert model.training and all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())


@pytest.mark.parametrize("fmt", ["onnx", "torchscript", "hgprune"])
def test_failed_parity_writes_nothing_and_keeps_old_file(pruned, tmp_path, fmt):
    path = tmp_path / "out.bin"
    path.write_bytes(b"previous")
    # A negative tolerance can never be met: the check must fail before anything is written.
    with pytest.raises(HgpruneError, match=r"out.bin: not written: .* differs from the PyTorch model"):
        export_model(pruned, fmt, path, tolerance=-1.0, time_runtime=False)
    assert path.read_bytes() == b"previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]


def test_unknown_format_and_bad_size(pruned, tmp_path):
    with pytest.raises(HgpruneError, match="unknown export format 'tflite'"):
        export_model(pruned, "tflite", tmp_path / "m")
    with pytest.raises(HgpruneError, match="multiple of 64, got 100"):
        export_model(pruned, "onnx", tmp_path / "m", input_size=100)


def test_timing_reports_medians(pruned, tmp_path):
    result = export_model(pruned, "onnx", tmp_path / "m.onnx", repeats=3, warmup=1, threads=1)
    assert set(result.latency_ms) == {"pytorch_eager", "onnxruntime"} and result.threads == 1
    assert all(ms > 0 for ms in result.latency_ms.values())
    assert result.speedup == pytest.approx(result.latency_ms["pytorch_eager"] / result.latency_ms["onnxruntime"])


def test_torch_threads_is_restored():
    with torch_threads(2) as used:
        assert used == torch.get_num_threads() == 2
    assert torch.get_num_threads() == 1


def test_saved_checkpoint_roundtrip_then_export(pruned, tmp_path):
    save_model(pruned, tmp_path / "p.pt")
    model = load_model(tmp_path / "p.pt")
    result = export_model(model, "onnx", tmp_path / "p.onnx", time_runtime=False)
    assert result.max_abs_diff < 1e-4
