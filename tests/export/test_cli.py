"""``hgprune export``: files written, one-line user errors, the missing ``deploy`` extra."""

import sys

import pytest
import torch

from hgprune import save_model
from hgprune.cli import main
from hgprune.models import build_preset
from tests.conftest import prune_half


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "pruned.pth.tar"
    save_model(prune_half(build_preset("tiny")), path)
    return path


def _one_line_error(capsys, match: str) -> None:
    err = capsys.readouterr().err
    assert err.startswith("hgprune: error:") and match in err and err.count("\n") == 1, err


def test_export_onnx_default_out(checkpoint, capsys):
    assert main(["export", str(checkpoint), "--format", "onnx", "--no-latency"]) == 0
    out_path = checkpoint.with_name("pruned.onnx")
    assert out_path.stat().st_size > 10_000
    out = capsys.readouterr().out
    assert f"wrote {out_path}" in out and "BatchNorms folded  36" in out and "max abs diff" in out
    # Refuses to overwrite without --force, and names the file.
    assert main(["export", str(checkpoint), "--format", "onnx", "--no-latency"]) == 2
    _one_line_error(capsys, f"{out_path}: already exists; pass --force")


def test_export_torchscript_with_timing(checkpoint, tmp_path, capsys):
    out_path = tmp_path / "m.ts"
    argv = ["export", str(checkpoint), "--format", "torchscript", "--out", str(out_path), "--repeats", "2"]
    assert main([*argv, "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "torchscript" in out and "pytorch_eager" in out and "speedup vs eager" in out
    assert len(torch.jit.load(str(out_path))(torch.zeros(1, 3, 64, 64))) == 1


def test_missing_deploy_extra(checkpoint, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # makes `import onnxruntime` raise ImportError
    assert main(["export", str(checkpoint), "--format", "onnx", "--out", str(tmp_path / "m.onnx")]) == 2
    _one_line_error(capsys, "pip install 'hgprune[deploy]'")
    assert not (tmp_path / "m.onnx").exists()


@pytest.mark.parametrize(
    "extra, match",
    [
        (["--format", "tflite"], "invalid choice: 'tflite'"),
        (["--format", "onnx", "--tolerance", "0"], "--tolerance: must be in (0, 1000]"),
        (["--format", "onnx", "--input-size", "100"], "--input-size: must be a positive multiple of 64, got 100"),
    ],
)
def test_argument_errors(checkpoint, tmp_path, capsys, extra, match):
    assert main(["export", str(checkpoint), "--out", str(tmp_path / "m"), "--no-latency", *extra]) == 2
    _one_line_error(capsys, match)
    assert not (tmp_path / "m").exists()


def test_bad_checkpoints(tmp_path, capsys):
    assert main(["export", str(tmp_path / "missing.pt"), "--format", "onnx"]) == 2
    _one_line_error(capsys, "missing.pt: no such file")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    assert main(["export", str(garbage), "--format", "torchscript"]) == 2
    _one_line_error(capsys, "garbage.pt: not")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["garbage.pt"]


def test_out_equal_to_input_is_refused(checkpoint, capsys):
    assert main(["export", str(checkpoint), "--format", "hgprune", "--out", str(checkpoint), "--force"]) == 2
    _one_line_error(capsys, "is the input checkpoint")
