"""``export_model``: one (pruned) model → an hgprune checkpoint, a TorchScript archive or an ONNX graph, each checked
against the unfolded PyTorch model before anything is written (so a failed export never leaves a file behind)."""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from torch import nn

from hgprune.errors import HgpruneError
from hgprune.export import runtime
from hgprune.export.fold import fold_batchnorm
from hgprune.fsutil import atomic_write_bytes
from hgprune.models.hourglass import check_input_size

FORMATS = ("hgprune", "torchscript", "onnx")
SUFFIXES = {"hgprune": ".pt", "torchscript": ".torchscript.pt", "onnx": ".onnx"}


@dataclass
class ExportResult:
    """What an export wrote and how closely it matches the PyTorch model it came from."""

    format: str
    path: str
    size_bytes: int
    input_size: int
    folded_bn: int
    max_abs_diff: float
    tolerance: float
    checked_inputs: int
    opset: int | None = None
    frozen: bool | None = None
    threads: int | None = None
    # median ms at batch 1, keyed pytorch_eager / torchscript / onnxruntime
    latency_ms: dict[str, float] = field(default_factory=dict)

    @property
    def speedup(self) -> float | None:
        """Deployed runtime vs eager PyTorch on the same model (same process, back to back)."""
        deployed = self.latency_ms.get("onnxruntime") or self.latency_ms.get("torchscript")
        eager = self.latency_ms.get("pytorch_eager")
        return eager / deployed if deployed and eager else None

    def to_dict(self) -> dict:
        return {**asdict(self), "speedup": self.speedup}


def model_input_size(model: nn.Module, input_size: int | None) -> int:
    """``input_size`` or the model's own, checked against the hourglass's divisibility rule."""
    config = getattr(model, "config", None)
    size = input_size or getattr(config, "input_size", None) or 256
    return check_input_size(size, getattr(config, "depth", 4))


def export_metadata(model: nn.Module, folded: int) -> dict[str, str]:
    """What a deployment needs besides the graph: the config (input size, joints) and the input normalisation.

    ONNX graphs carry it as ``metadata_props``, TorchScript archives as extra files of the same names, so
    :class:`hgprune.predict.Predictor` can run either without the checkpoint it came from.
    """
    from hgprune import __version__

    config = getattr(model, "config", None)
    meta = {"hgprune_version": __version__, "folded_batchnorms": str(folded)}
    if config is not None and hasattr(config, "to_dict"):
        meta["hgprune_config"] = json.dumps(config.to_dict())
    if getattr(config, "normalization", None) is not None:
        # what a deployment does to RGB in [0, 1] before the graph: (rgb - mean) / std (no std: no division)
        meta["input_normalization"] = json.dumps(config.normalization.to_dict())
    return meta


def export_model(
    model: nn.Module,
    fmt: str,
    path: str | os.PathLike,
    input_size: int | None = None,
    *,
    fold_bn: bool = True,
    freeze: bool = True,
    opset: int = 17,
    dynamic_batch: bool = True,
    tolerance: float = 1e-4,
    num_checks: int = 2,
    time_runtime: bool = True,
    warmup: int = 2,
    repeats: int = 10,
    threads: int | None = None,
    ort_optimization: str = "all",
    meta: dict | None = None,
) -> ExportResult:
    """Export ``model`` as ``fmt`` to ``path`` after checking it against the unfolded model on random inputs.

    ``fold_bn`` folds BatchNorm into the preceding conv wherever that is exact (a copy; the caller's model is left
    as it was). Raises :class:`HgpruneError` when the max abs difference exceeds ``tolerance``; nothing is written
    then. ``time_runtime`` adds median batch-1 latencies of eager PyTorch and of the exported runtime.
    """
    if fmt not in FORMATS:
        raise HgpruneError(f"--format: unknown export format {fmt!r}; valid: {', '.join(FORMATS)}")
    if fmt == "onnx":
        runtime.require_deploy()  # fail before any slow work
    path = Path(path)
    size = model_input_size(model, input_size)
    was_training = model.training
    model.eval()
    try:
        with runtime.torch_threads(threads) as used_threads:
            result, data = build_export(
                model, fmt, path, size, fold_bn, freeze, opset, dynamic_batch, tolerance, num_checks, meta
            )  # fmt: skip
            atomic_write_bytes(path, data)
            result.threads = used_threads
            if time_runtime:
                result.latency_ms = _latencies(model, fmt, path, size, warmup, repeats, used_threads, ort_optimization)
    finally:
        model.train(was_training)
    return result


def build_export(
    model: nn.Module,
    fmt: str,
    path: Path,
    size: int,
    fold_bn: bool = True,
    freeze: bool = True,
    opset: int = 17,
    dynamic_batch: bool = True,
    tolerance: float = 1e-4,
    num_checks: int = 2,
    meta: dict | None = None,
) -> tuple[ExportResult, bytes]:
    """The exported bytes, checked against ``model`` (eval mode) but not written: INT8 quantisation starts from
    them, and :func:`export_model` writes them only once the check passed. ``path`` only names the file in errors."""
    inputs = runtime.check_inputs(size, num_checks, batch_sizes=(1, 2) if dynamic_batch or fmt != "onnx" else (1,))
    result = ExportResult(fmt, str(path), 0, size, 0, float("nan"), tolerance, len(inputs))
    if fmt == "hgprune":
        data, candidate = _hgprune_payload(model, path, meta)
    else:
        deployable, pairs = fold_batchnorm(model) if fold_bn else (model, [])
        result.folded_bn = len(pairs)
        metadata = export_metadata(model, len(pairs))
        if fmt == "torchscript":
            module = runtime.torchscript_module(deployable, size, freeze=freeze)
            data = runtime.torchscript_bytes(module, metadata)
            candidate = runtime.torchscript_load(data)  # check what was serialised, not the in-memory module
            result.frozen = freeze
        else:
            data = runtime.onnx_bytes(deployable, size, opset, dynamic_batch, metadata)
            candidate = runtime.ort_runner(runtime.ort_session(data))
            result.opset = opset
    result.max_abs_diff = runtime.max_abs_diff(model, candidate, inputs)
    if not result.max_abs_diff <= tolerance:  # also catches NaN
        raise HgpruneError(
            f"{path}: not written: {fmt} export differs from the PyTorch model by {result.max_abs_diff:.3g} "
            f"(> tolerance {tolerance:g}); raise --tolerance or try --no-fold-bn"
        )
    result.size_bytes = len(data)
    return result, data


def _hgprune_payload(model: nn.Module, path: Path, meta: dict | None):
    """Bytes of hgprune's own checkpoint (pickle-free, unfolded so still trainable), reloaded from a temp file."""
    from hgprune.models.checkpoints import load_model, save_model

    tmp = path.with_name(f".{path.name}.export.tmp")
    try:
        save_model(model, tmp, meta=meta)
        data = tmp.read_bytes()
        candidate = load_model(tmp)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return data, candidate


def _latencies(model, fmt, path, size, warmup, repeats, threads, ort_optimization) -> dict[str, float]:
    times = {"pytorch_eager": runtime.median_ms(model, size, warmup, repeats)[0]}
    if fmt == "torchscript":
        times["torchscript"] = runtime.median_ms(runtime.torchscript_load(path.read_bytes()), size, warmup, repeats)[0]
    elif fmt == "onnx":
        session = runtime.ort_session(path.read_bytes(), threads, ort_optimization)
        times["onnxruntime"] = runtime.median_ms(runtime.ort_runner(session), size, warmup, repeats)[0]
    return times
