"""INT8 ONNX: ONNX Runtime static quantisation (QDQ, per-channel weights) calibrated on training images and gated on
the validation PCKh it costs.

Quantisation trades accuracy for speed, so nothing is written before the INT8 graph has been scored against the FP32
one on the validation split: above ``max_pckh_drop`` points the export is refused unless forced. BatchNorms that
could not be folded (the pre-activation ones) stay in float: quantising their rank-1 parameters per channel is not
supported and would only add Quantize/Dequantize pairs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from hgprune.errors import HgpruneError
from hgprune.export import runtime
from hgprune.export.core import build_export, export_metadata, model_input_size
from hgprune.fsutil import atomic_write_bytes
from hgprune.settings import PCKH_DROP, Samples, check

CALIBRATION_METHODS = ("minmax", "entropy", "percentile")
# ops given Quantize/Dequantize pairs. BatchNormalization stays float (see the module docstring); so do the residual
# Adds: on a briefly trained tiny model (32 SynthPose images, FP32 17.0 PCKh) quantising them cost 5.4 points,
# the rest 0.9
QUANTIZED_OPS = ("Conv", "MaxPool", "Resize", "Relu")


@dataclass
class QuantizeResult:
    """Both graphs' validation PCKh (mpii protocol, %) and latency, and whether the INT8 graph was written."""

    path: str
    written: bool
    pckh_fp32: float
    pckh_int8: float
    max_pckh_drop: float
    calibration_images: int
    validation_images: int
    calibration_method: str
    size_bytes_fp32: int
    size_bytes_int8: int
    threads: int | None = None
    latency_ms: dict[str, float] = field(default_factory=dict)  # median batch-1 ms: onnxruntime_fp32 / _int8

    @property
    def pckh_drop(self) -> float:
        return self.pckh_fp32 - self.pckh_int8

    def to_dict(self) -> dict:
        return {**asdict(self), "pckh_drop": self.pckh_drop}


def calibration_datasets(source, normalization, input_size: int):
    """(train, val) datasets, un-augmented, from a recipe (YAML path or :class:`~hgprune.recipe.Recipe`) or an
    annotations file / SynthPose folder.

    A recipe brings its own dataset, image folder and ``data.val_limit``; an annotations path (seed/HRNet JSON, or a
    folder holding ``annotations.json``) reads its images from ``images/`` beside it.
    """
    from hgprune.data import build_dataset
    from hgprune.recipe import Recipe, load_recipe

    if isinstance(source, Recipe) or Path(source).suffix in (".yaml", ".yml"):
        from hgprune.pipeline import Pipeline

        recipe = source if isinstance(source, Recipe) else load_recipe(source)
        recipe = dataclasses.replace(
            recipe,
            model=dataclasses.replace(recipe.model, input_size=input_size),
            data=dataclasses.replace(recipe.data, augment=False),
        )
        pipeline = Pipeline.from_recipe(recipe, normalization)
        return pipeline.train_set, pipeline.val_set
    source = Path(source)
    annotations = source / "annotations.json" if source.is_dir() else source
    if not annotations.is_file():
        raise HgpruneError(f"{source}: not a recipe (.yaml), an annotations file or a folder with annotations.json")
    common = dict(annotations=annotations, input_size=input_size, augment=False, normalization=normalization)
    return build_dataset("mpii", "train", **common), build_dataset("mpii", "val", **common)


def calibration_batches(dataset, count: int, batch_size: int = 8, seed: int = 0) -> Iterator[np.ndarray]:
    """``count`` training crops (a seeded random choice, so a rerun calibrates identically) in (B, 3, S, S) batches."""
    check("calibration images", count, Samples)
    order = np.random.default_rng(seed).permutation(len(dataset))[:count]
    for start in range(0, len(order), batch_size):
        yield np.stack([dataset[int(i)][0].numpy() for i in order[start : start + batch_size]])


def int8_onnx_bytes(
    fp32: bytes,
    batches: Sequence[np.ndarray] | Iterator[np.ndarray],
    method: str = "minmax",
    metadata: dict[str, str] | None = None,
    op_types: Sequence[str] = QUANTIZED_OPS,
) -> bytes:
    """Static INT8 (QDQ, per-channel int8 weights, uint8 activations) of an FP32 graph, calibrated on ``batches``.

    Weights use 7 of their 8 bits (``reduce_range``): on x86 CPUs without VNNI (AVX2, AVX-512 before VNNI) ONNX
    Runtime multiplies uint8 × int8 pairs into int16 sums that saturate with full-range weights. On such a CPU
    (AMD EPYC, AVX2) a tiny test model's heatmap peaks moved by 6.0 % of their range with 8-bit weights, 1.4 % with 7.
    The graph is portable: it may be quantised on one machine and run on another.

    The graph keeps its metadata (config, normalisation) plus ``quantization``, so a Predictor can run it as is.
    ``op_types``: the ops given Quantize/Dequantize pairs (the benchmark also measures quantised residual adds).
    """
    onnx, _ = runtime.require_deploy()
    from onnxruntime import quantization as ortq

    methods = {
        "minmax": ortq.CalibrationMethod.MinMax,
        "entropy": ortq.CalibrationMethod.Entropy,
        "percentile": ortq.CalibrationMethod.Percentile,
    }
    if method not in methods:
        raise HgpruneError(f"calibration method: unknown {method!r}; choose one of {', '.join(CALIBRATION_METHODS)}")
    proto = onnx.load_from_string(fp32)
    input_name = proto.graph.input[0].name

    class Reader(ortq.CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter(batches)

        def get_next(self) -> dict | None:
            batch = next(self.batches, None)
            return None if batch is None else {input_name: np.ascontiguousarray(batch, dtype=np.float32)}

    with tempfile.TemporaryDirectory(prefix="hgprune-int8-") as tmp, _quiet_quantizer():
        fp32_path, pre_path, int8_path = (Path(tmp) / name for name in ("fp32.onnx", "pre.onnx", "int8.onnx"))
        fp32_path.write_bytes(fp32)
        # ORT's own pre-processing (graph optimisation + ONNX shape inference); its symbolic shape inference
        # cannot follow the hourglass's Resize with a dynamic batch, and the shapes are static otherwise
        ortq.quant_pre_process(str(fp32_path), str(pre_path), skip_symbolic_shape=True)
        try:
            ortq.quantize_static(
                str(pre_path), str(int8_path), Reader(), quant_format=ortq.QuantFormat.QDQ, per_channel=True,
                activation_type=ortq.QuantType.QUInt8, weight_type=ortq.QuantType.QInt8,
                op_types_to_quantize=list(op_types), calibrate_method=methods[method], reduce_range=True,
            )  # fmt: skip
        except Exception as exc:  # ORT raises many types; keep the user's message short
            raise HgpruneError(f"INT8 quantisation failed: {str(exc).strip().splitlines()[0][:200]}") from None
        quantized = onnx.load(str(int8_path))
    existing = {entry.key: entry for entry in quantized.metadata_props}
    for key, value in (metadata or {}).items():
        entry = existing.get(key) or quantized.metadata_props.add()
        entry.key, entry.value = key, str(value)
    return quantized.SerializeToString()


@contextlib.contextmanager
def _quiet_quantizer() -> Iterator[None]:
    """ORT's quantiser logs per-tensor notes through the root logger; they are expected, so hide them."""
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(previous)


class _Session(nn.Module):
    """An ONNX Runtime session shaped like a model, so ``evaluate_model`` scores it exactly as it scores PyTorch."""

    def __init__(self, session) -> None:
        super().__init__()
        self.run = runtime.ort_runner(session)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.run(x)


def score_onnx(data: bytes, dataset, threads: int | None = None, batch_size: int = 16) -> float:
    """Validation PCKh (mpii protocol, %) of an ONNX graph, computed by ``evaluate_model``."""
    from hgprune.train import evaluate_model

    session = runtime.ort_session(data, threads)
    with torch.inference_mode():
        return float(evaluate_model(_Session(session), dataset, batch_size=batch_size).mpii.mean)


def quantize_model(
    model: nn.Module,
    path: str | os.PathLike,
    calibration,
    *,
    calibration_images: int = 128,
    max_pckh_drop: float = 1.0,
    force: bool = False,
    input_size: int | None = None,
    method: str = "minmax",
    opset: int = 17,
    threads: int | None = None,
    repeats: int = 10,
    time_runtime: bool = True,
) -> QuantizeResult:
    """Export ``model`` as INT8 ONNX to ``path`` if its validation PCKh is within ``max_pckh_drop`` of FP32's.

    ``calibration``: a recipe (YAML or loaded) or an annotations path (see :func:`calibration_datasets`);
    ``calibration_images`` crops of its training split set the activation ranges, its validation split scores both
    graphs. With ``force`` the INT8 graph is written whatever the drop; when the gate refuses nothing is written
    (``result.written`` is False).
    """
    check("max_pckh_drop", max_pckh_drop, PCKH_DROP)
    runtime.require_deploy()
    path = Path(path)
    size = model_input_size(model, input_size)
    config = getattr(model, "config", None)
    if config is None:
        raise HgpruneError(f"{type(model).__name__}: has no config (input normalisation); load it with load_model")
    train_set, val_set = calibration_datasets(calibration, config.normalization, size)
    calibration_images = min(calibration_images, len(train_set))
    was_training = model.training
    model.eval()
    try:
        with runtime.torch_threads(threads) as used_threads:
            exported, fp32 = build_export(model, "onnx", path, size, opset=opset)
            description = {"format": "QDQ", "weights": "int8 per-channel, 7-bit range",
                           "activations": "uint8 per-tensor", "calibration": str(calibration),
                           "calibration_images": calibration_images, "method": method}  # fmt: skip
            int8 = int8_onnx_bytes(
                fp32,
                calibration_batches(train_set, calibration_images),
                method,
                {**export_metadata(model, exported.folded_bn), "quantization": json.dumps(description)},
            )
            result = QuantizeResult(
                path=str(path), written=False, pckh_fp32=score_onnx(fp32, val_set, used_threads),
                pckh_int8=score_onnx(int8, val_set, used_threads), max_pckh_drop=max_pckh_drop,
                calibration_images=calibration_images, validation_images=len(val_set), calibration_method=method,
                size_bytes_fp32=len(fp32), size_bytes_int8=len(int8), threads=used_threads,
            )  # fmt: skip
            if time_runtime:
                for name, data in (("onnxruntime_fp32", fp32), ("onnxruntime_int8", int8)):
                    run = runtime.ort_runner(runtime.ort_session(data, used_threads))
                    result.latency_ms[name] = runtime.median_ms(run, size, repeats=repeats)[0]
    finally:
        model.train(was_training)
    if force or result.pckh_drop <= max_pckh_drop:
        atomic_write_bytes(path, int8)
        result.written = True
    return result
