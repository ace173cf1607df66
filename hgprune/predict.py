"""Run a (pruned) hourglass on photos: :class:`Predictor` crops, normalises, runs a backend and maps joints back.

Every step is the training pipeline's own: one ``cv2.warpAffine`` per crop (``transforms.affine_matrix`` /
``warp_image``, files decoded at the same JPEG reduction as the dataset reads them), ``to_normalized_chw`` with the
model's normalisation, the flip test of ``evaluate_model`` and ``metrics.decode_heatmaps`` + ``to_image_coords``. A
crop at a record's centre and scale therefore gives exactly the joints ``hgprune evaluate`` gives for that record.

Crops: without boxes the whole image is fitted (centre = image centre, the longer side fills the input); a person box
``(x1, y1, x2, y2)`` is cropped the way training crops a person, around the box centre with the seed's 1.25 padding
(``PoseRecord.scale`` is ``scale_provided × 1.25``).
"""

from __future__ import annotations

import copy
import json
import os
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

from hgprune.data import transforms as T
from hgprune.data.mpii import MAX_COORD
from hgprune.errors import HgpruneError
from hgprune.export import runtime
from hgprune.export.core import export_metadata
from hgprune.export.fold import fold_batchnorm
from hgprune.fsutil import check_zip_inflation
from hgprune.metrics import check_heatmaps, decode_heatmaps, to_image_coords
from hgprune.models import HourglassConfig, load_model
from hgprune.models.hourglass import check_input_size
from hgprune.settings import Batch, Threads, check
from hgprune.train.evaluation import predict_heatmaps

BACKENDS = ("torch", "torchscript", "onnxruntime")
COLORS = ("rgb", "bgr")
BOX_PADDING = 1.25  # crop side = 1.25 × the box's longer side, as the seed pads scale_provided
MIN_BOX_SIDE = 1.0  # px: a thinner box has no crop (its affine would be singular)

ModelSource = nn.Module | str | os.PathLike | bytes


def box_to_crop(box: Sequence[float]) -> tuple[np.ndarray, float]:
    """``(x1, y1, x2, y2)`` person box (0-based pixels) → crop ``(center, scale)`` in the training convention."""
    try:
        values = np.asarray(box, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError, OverflowError):
        values = np.full(1, np.nan)
    if (
        values.shape != (4,)
        or not np.all(np.abs(values) <= MAX_COORD)  # also refuses NaN
        or values[2] - values[0] < MIN_BOX_SIDE
        or values[3] - values[1] < MIN_BOX_SIDE
    ):
        shown = str(values.tolist() if values.shape == (4,) else np.asarray(box, dtype=object).tolist())[:80]
        raise HgpruneError(
            f"box {shown}: expected finite (x1, y1, x2, y2) with x2 > x1, y2 > y1 (sides of at least "
            f"{MIN_BOX_SIDE:g} px, coordinates within ±{MAX_COORD:g} px)"
        )
    center = (values[:2] + values[2:]) / 2.0
    return center, BOX_PADDING * float(max(values[2] - values[0], values[3] - values[1])) / 200.0


def crop_to_box(center: Sequence[float], scale: float) -> list[float]:
    """Inverse of :func:`box_to_crop` for a square box: the box whose crop is ``(center, scale)``."""
    half = 200.0 * float(scale) / BOX_PADDING / 2.0
    cx, cy = (float(v) for v in center)
    return [cx - half, cy - half, cx + half, cy + half]


def whole_image_crop(height: int, width: int) -> tuple[np.ndarray, float]:
    """Crop that fits the whole image: centred (pixel centres at integers), the longer side spanning the input."""
    return np.array([(width - 1) / 2.0, (height - 1) / 2.0]), max(height, width) / 200.0


def infer_backend(path: str | os.PathLike) -> str:
    """``onnxruntime`` for ``.onnx``, ``torchscript`` for a TorchScript archive (it holds code), else ``torch``."""
    path = Path(path)
    if path.suffix.lower() == ".onnx":
        return "onnxruntime"
    try:
        with zipfile.ZipFile(path) as archive:
            if any(name.endswith("/constants.pkl") or "/code/" in name for name in archive.namelist()):
                return "torchscript"
    except (OSError, zipfile.BadZipFile):
        pass
    return "torch"


@dataclass
class Poses:
    """One row per person (crop): joints in original-image pixels (x, y; 0-based) and the heatmap peak per joint."""

    joints: np.ndarray  # (N, J, 2)
    confidence: np.ndarray  # (N, J)
    image_index: np.ndarray  # (N,) which input image each person is in
    centers: np.ndarray  # (N, 2) crop centres
    scales: np.ndarray  # (N,) crop side / 200 px
    unreadable: list[int] = field(default_factory=list)  # inputs skipped (skip_unreadable=True)

    def __len__(self) -> int:
        return len(self.joints)

    def of_image(self, index: int) -> list[dict]:
        """The people of input ``index`` as JSON-able dicts (joints, confidence, box of the crop)."""
        return [
            {
                "joints": np.round(self.joints[i], 3).tolist(),
                "confidence": np.round(self.confidence[i], 5).tolist(),
                "box": np.round(crop_to_box(self.centers[i], self.scales[i]), 3).tolist(),
                "center": np.round(self.centers[i], 3).tolist(),
                "scale": round(float(self.scales[i]), 5),
            }
            for i in np.flatnonzero(self.image_index == index)
        ]


@dataclass
class _Crop:
    image_index: int
    center: np.ndarray
    scale: float
    pixels: np.ndarray  # (3, S, S) normalised


class Predictor:
    """Joints of people in photos from an hgprune/seed checkpoint, a TorchScript archive or an ONNX graph.

    ``model_or_path``: an ``nn.Module`` with a ``config`` (an :class:`HourglassNet`), a checkpoint / archive / graph
    path, or the bytes of an exported archive or graph. Exports must be hgprune's: their metadata carries the config
    and the input normalisation. ``backend="torch"`` is the fast eager path: BatchNorm folded where exact,
    ``torch.inference_mode``, ``channels_last`` (default on CPU, where it measured 1.4× faster on the pruned hg8 in
    ``reports/benchmarks/latency.md``) and ``threads`` intra-op threads; a module given with ``torchscript`` or
    ``onnxruntime`` is exported in memory. ``input_size`` defaults to the model's; ``flip`` averages with the mirror
    image's heatmaps as ``hgprune evaluate --flip`` does.
    """

    def __init__(
        self,
        model_or_path: ModelSource,
        backend: str = "torch",
        input_size: int | None = None,
        flip: bool = False,
        device: str = "cpu",
        threads: int | None = None,
        *,
        batch_size: int = 8,
        channels_last: bool | None = None,
        fold_bn: bool = True,
    ) -> None:
        if backend not in BACKENDS:
            raise HgpruneError(f"backend: unknown {backend!r}; choose one of {', '.join(BACKENDS)}")
        check("batch_size", batch_size, Batch)
        check("threads", threads, Threads | None)
        if backend == "onnxruntime" and device != "cpu":
            raise HgpruneError(f"device: the onnxruntime backend runs on cpu here, got {device!r}")
        self.backend, self.flip, self.device, self.threads, self.batch_size = backend, flip, device, threads, batch_size
        self.channels_last = (device == "cpu") if channels_last is None else channels_last
        self.name = str(model_or_path) if isinstance(model_or_path, str | os.PathLike) else type(model_or_path).__name__
        self.config: HourglassConfig
        self._run: Callable[[torch.Tensor], list[torch.Tensor]]
        loaders = {"torch": self._load_torch, "torchscript": self._load_torchscript, "onnxruntime": self._load_onnx}
        loaders[backend](model_or_path, input_size, fold_bn)
        self.normalization = self.config.normalization
        if flip and self.config.num_joints != len(T.FLIP_PERM):
            raise HgpruneError(
                f"flip: needs the {len(T.FLIP_PERM)} MPII joints, the model has {self.config.num_joints}"
            )

    # -- backends ------------------------------------------------------------------------------------------------

    def _size(self, input_size: int | None, fixed: int | None = None) -> int:
        size = check_input_size(int(input_size or fixed or self.config.input_size), self.config.depth)
        if fixed is not None and size != fixed:
            raise HgpruneError(f"{self.name}: the graph takes {fixed}×{fixed} inputs; input_size {size} cannot run")
        return size

    def _load_torch(self, source: ModelSource, input_size: int | None, fold_bn: bool) -> None:
        if isinstance(source, bytes):
            raise HgpruneError("backend 'torch' takes a module or a checkpoint path, not bytes")
        if not isinstance(source, nn.Module):
            if infer_backend(source) != "torch":
                raise HgpruneError(f"{source}: is an export; use backend={infer_backend(source)!r}")
            source = load_model(source)
        self.config = _module_config(source)
        self.input_size = self._size(input_size)
        model = _deployable(source, fold_bn)[0].to(self.device)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model = model
        self._run = self._torch_run

    def _torch_run(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = x.to(self.device)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return runtime.as_list(self.model(x))

    def _load_torchscript(self, source: ModelSource, input_size: int | None, fold_bn: bool) -> None:
        metadata: dict[str, str] = {}
        if isinstance(source, nn.Module):
            self.config = _module_config(source)
            size = self._size(input_size)
            module = runtime.torchscript_module(_deployable(source, fold_bn)[0], size)
        else:
            data = source if isinstance(source, bytes) else _read_bytes(source)
            module = runtime.torchscript_load(data, metadata)
            self.config = _metadata_config(metadata, self.name)
        self.input_size = self._size(input_size)
        self.model = module.to(self.device)
        self._run = lambda x: runtime.as_list(self.model(x.to(self.device)))

    def _load_onnx(self, source: ModelSource, input_size: int | None, fold_bn: bool) -> None:
        if isinstance(source, nn.Module):
            self.config = _module_config(source)
            size = self._size(input_size)
            deployable, pairs = _deployable(source, fold_bn)
            data = runtime.onnx_bytes(deployable, size, metadata=export_metadata(source, len(pairs)))
        else:
            data = source if isinstance(source, bytes) else _read_bytes(source)
        self.session = runtime.ort_session(data, self.threads)
        if not isinstance(source, nn.Module):
            self.config = _metadata_config(runtime.onnx_metadata(self.session), self.name)
        shape = self.session.get_inputs()[0].shape
        fixed = shape[-1] if isinstance(shape[-1], int) else None
        self.input_size = self._size(input_size, fixed)
        self._run = runtime.ort_runner(self.session)

    # -- inference -----------------------------------------------------------------------------------------------

    def heatmaps(self, batch: torch.Tensor) -> torch.Tensor:
        """Last stack's (B, J, S/4, S/4) heatmaps of normalised crops (B, 3, S, S), flip-averaged when ``flip``."""
        perm = list(T.FLIP_PERM) if self.flip else None
        with runtime.torch_threads(self.threads), torch.inference_mode():
            heatmaps = predict_heatmaps(self._run, batch, perm)[-1].float().cpu()
        check_heatmaps(heatmaps, self.config.num_joints, self.name)
        return heatmaps

    def predict(
        self,
        images,
        boxes=None,
        *,
        color: str = "rgb",
        skip_unreadable: bool = False,
    ) -> Poses:
        """Joints of one image or a batch: paths, HWC uint8 arrays / tensors, or float CHW tensors in [0, 1].

        ``images``: a path, an (H, W, 3) or (H, W) uint8 array or tensor, a (3, H, W) float tensor, an (N, H, W, 3)
        / (N, 3, H, W) batch of those, or a list of any of them. Arrays and tensors are RGB; ``color="bgr"`` takes
        OpenCV's order instead (files are always read correctly, whatever ``color`` says). ``boxes``: ``None`` (fit
        each whole image), the person boxes of one image, or one entry per image (``None`` or a list of boxes).
        Unreadable files raise an error naming them, or with ``skip_unreadable`` are listed in ``Poses.unreadable``.
        """
        if color not in COLORS:
            raise HgpruneError(f"color: must be one of {', '.join(COLORS)}, got {color!r}")
        items = _as_items(images)
        per_image = _boxes_per_image(boxes, len(items), single=not _is_batch(images))
        joints, confidence, index, centers, scales, unreadable = [], [], [], [], [], []
        pending: list[_Crop] = []

        def flush() -> None:
            batch = torch.from_numpy(np.stack([c.pixels for c in pending]))
            heatmaps = self.heatmaps(batch)
            coords, peaks = decode_heatmaps(heatmaps)
            crop_centers = np.stack([c.center for c in pending])
            crop_scales = np.array([c.scale for c in pending])
            joints.append(to_image_coords(coords, crop_centers, crop_scales, heatmaps.shape[-1]))
            confidence.append(peaks)
            index.extend(c.image_index for c in pending)
            centers.append(crop_centers)
            scales.append(crop_scales)
            pending.clear()

        for i, (item, item_boxes) in enumerate(zip(items, per_image, strict=True)):
            crops = self._crops(i, item, item_boxes, color)
            if crops is None:
                if not skip_unreadable:
                    raise HgpruneError(f"{item}: missing or unreadable image")
                unreadable.append(i)
                continue
            for crop in crops:  # built one at a time: memory holds one batch of crops, however many boxes
                pending.append(crop)
                if len(pending) >= self.batch_size:
                    flush()
        if pending:
            flush()
        joints_count = self.config.num_joints
        return Poses(
            joints=np.concatenate(joints) if joints else np.zeros((0, joints_count, 2)),
            confidence=np.concatenate(confidence) if confidence else np.zeros((0, joints_count)),
            image_index=np.asarray(index, dtype=np.int64),
            centers=np.concatenate(centers) if centers else np.zeros((0, 2)),
            scales=np.concatenate(scales) if scales else np.zeros(0),
            unreadable=unreadable,
        )

    def _crops(self, index: int, item, boxes, color: str) -> Iterator[_Crop] | None:
        """The normalised crops of one input, built lazily (one batch in memory at a time), or None when it is a
        file that cannot be read. Every box is checked, and every decoding the crops need is made, up front."""
        size = self.input_size
        crops = [box_to_crop(b) for b in boxes] if boxes is not None else None
        if isinstance(item, str | os.PathLike) and crops is not None:
            decoded: dict[int, np.ndarray | None] = {}
            for _center, scale in crops:  # decoded as the dataset decodes, at 1/factor where the crop allows
                factor = T.reduction_factor(scale, size)
                if factor not in decoded:
                    decoded[factor] = T.read_image(str(item), factor)
                if decoded[factor] is None:
                    return None
            return (self._crop(index, decoded[T.reduction_factor(s, size)], c, s, T.reduction_factor(s, size))
                    for c, s in crops)  # fmt: skip
        image = _to_bgr(item, color)
        if image is None:
            return None
        crops = crops if crops is not None else [whole_image_crop(*image.shape[:2])]
        reduced: dict[int, np.ndarray] = {}

        def build() -> Iterator[_Crop]:
            for center, scale in crops:
                factor = T.reduction_factor(scale, size)
                if factor not in reduced:
                    reduced[factor] = _reduce(image, factor)
                yield self._crop(index, reduced[factor], center, scale, factor)

        return build()

    def _crop(self, index: int, image: np.ndarray, center: np.ndarray, scale: float, factor: int) -> _Crop:
        mat = T.affine_matrix(center, scale, 0.0, self.input_size)
        pixels = T.to_normalized_chw(T.warp_image(image, mat, self.input_size, factor), None, self.normalization)
        return _Crop(index, np.asarray(center, dtype=np.float64), float(scale), pixels)


# -- helpers ---------------------------------------------------------------------------------------------------


def _deployable(model: nn.Module, fold_bn: bool) -> tuple[nn.Module, list]:
    """An eval-mode copy (BatchNorm folded where exact) and the pairs folded: the caller's module stays as it was."""
    return fold_batchnorm(model) if fold_bn else (copy.deepcopy(model).eval(), [])


def _read_bytes(path: str | os.PathLike) -> bytes:
    check_zip_inflation(path)  # a TorchScript archive is a zip: bounded by what it holds, not what it declares
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise HgpruneError(f"{path}: cannot read ({exc.strerror or exc})") from None


def _module_config(model: nn.Module) -> HourglassConfig:
    config = getattr(model, "config", None)
    if not isinstance(config, HourglassConfig):
        raise HgpruneError(f"{type(model).__name__}: has no HourglassConfig 'config' (input size, normalisation)")
    return config


def _metadata_config(metadata: dict[str, str], name: str) -> HourglassConfig:
    """The config an hgprune export carries; without it the input normalisation is unknown, so refuse."""
    if "hgprune_config" not in metadata:
        raise HgpruneError(
            f"{name}: has no hgprune_config metadata (not exported by this hgprune); re-export it with hgprune export"
        )
    try:
        return HourglassConfig(**json.loads(metadata["hgprune_config"]))
    except (TypeError, ValueError, HgpruneError) as exc:
        raise HgpruneError(f"{name}: invalid hgprune_config metadata ({exc})") from None


def _is_batch(images) -> bool:
    if isinstance(images, list | tuple):
        return True
    if isinstance(images, np.ndarray) and images.ndim == 4:
        return True
    return isinstance(images, torch.Tensor) and images.ndim == 4


def _as_items(images) -> list:
    if isinstance(images, list | tuple):
        return list(images)
    if _is_batch(images):
        return list(images)  # first axis
    return [images]


def _boxes_per_image(boxes, count: int, single: bool) -> list:
    if boxes is None:
        return [None] * count
    if single:
        return [_box_list(boxes, "boxes")]
    if len(boxes) != count:
        raise HgpruneError(f"boxes: {len(boxes)} entries for {count} images; give one list (or None) per image")
    return [None if b is None else _box_list(b, f"boxes[{i}]") for i, b in enumerate(boxes)]


def _box_list(boxes, where: str) -> list:
    try:
        array = np.asarray(boxes, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        raise HgpruneError(f"{where}: expected a list of numeric boxes (x1, y1, x2, y2)") from None
    if array.ndim == 1 and array.shape == (4,):
        array = array[None]
    if array.ndim != 2 or array.shape[1] != 4:
        raise HgpruneError(f"{where}: expected boxes (x1, y1, x2, y2), got shape {tuple(array.shape)}")
    return list(array)


def _to_bgr(item, color: str) -> np.ndarray | None:
    """BGR uint8 (H, W, 3) from a path (None if unreadable), an array or a tensor."""
    if isinstance(item, str | os.PathLike):
        return T.read_image(str(item))
    if isinstance(item, torch.Tensor):
        if item.is_floating_point():  # (3, H, W) in [0, 1], torchvision's layout
            if item.ndim != 3 or item.shape[0] != 3:
                raise HgpruneError(f"image tensor: float images must be (3, H, W) in [0, 1], got {tuple(item.shape)}")
            item = (item.detach().cpu().clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0)
        item = item.detach().cpu().numpy()
    array = np.asarray(item)
    if array.dtype != np.uint8:
        raise HgpruneError(f"image array: expected uint8 (H, W, 3), got {array.dtype}; scale floats to 0..255 first")
    if array.ndim == 2:
        return cv2.cvtColor(array, cv2.COLOR_GRAY2BGR)
    if array.ndim != 3 or array.shape[2] != 3:
        raise HgpruneError(f"image array: expected (H, W, 3) or (H, W), got shape {array.shape}")
    return np.ascontiguousarray(array[..., ::-1] if color == "rgb" else array)


def _reduce(image: np.ndarray, factor: int) -> np.ndarray:
    """An in-memory image at 1/factor, aligned like a JPEG decoded at 1/factor (pixel blocks averaged), so arrays
    are sampled as files are; the image is zero-padded to a multiple of ``factor`` first."""
    if factor == 1:
        return image
    height, width = image.shape[:2]
    pad_h, pad_w = -height % factor, -width % factor
    if pad_h or pad_w:
        image = cv2.copyMakeBorder(image, 0, pad_h, 0, pad_w, cv2.BORDER_CONSTANT, value=0)
    return cv2.resize(image, ((width + pad_w) // factor, (height + pad_h) // factor), interpolation=cv2.INTER_AREA)
