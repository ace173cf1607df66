"""Pose datasets: MPII (real annotations) and SynthPose (generated), behind one ``build_dataset``."""

from __future__ import annotations

import os
from pathlib import Path

from hgprune.data import transforms
from hgprune.data.dataset import MAX_BAD_FRACTION, TARGET_WEIGHTS, PoseDataset, SampleSubset
from hgprune.data.mpii import (
    JOINT_NAMES,
    GroundTruth,
    PoseRecord,
    check_order,
    load_annotations,
    load_ground_truth_mat,
    load_predictions_mat,
    save_predictions_mat,
    split_records,
)
from hgprune.data.transforms import FLIP_PAIRS, FLIP_PERM, Augment
from hgprune.errors import HgpruneError
from hgprune.models.normalization import DEFAULT as DEFAULT_NORMALIZATION

DATASETS = ("mpii", "synthpose")
GT_MAT_NAMES = ("gt_valid.mat", "detections_our_format.mat")
# MPII's public annotations in the seed's format, shipped with hgprune as the seed ships them (resources/README.md)
SHIPPED_MPII_ANNOTATIONS = Path(__file__).parent / "resources" / "mpii_annotations.json.gz"

__all__ = [
    "DATASETS", "FLIP_PAIRS", "FLIP_PERM", "JOINT_NAMES", "TARGET_WEIGHTS", "Augment", "GroundTruth", "PoseDataset",
    "PoseRecord", "build_dataset", "build_datasets", "default_cache_dir", "limit_dataset", "load_annotations",
    "load_ground_truth_mat", "load_predictions_mat", "save_predictions_mat", "split_records", "transforms",
]  # fmt: skip


def default_cache_dir() -> Path:
    """``$HGPRUNE_CACHE`` or ``~/.cache/hgprune``: where generated SynthPose sets live."""
    return Path(os.environ.get("HGPRUNE_CACHE") or Path.home() / ".cache" / "hgprune")


def _augment_for(split: str, augment) -> Augment | None:
    if augment is None:
        return Augment() if split == "train" else None
    if augment is True:
        return Augment()
    if augment is False:
        return None
    if isinstance(augment, dict):
        return Augment(**augment)
    if isinstance(augment, Augment):
        return augment
    raise HgpruneError(f"augment: expected None, a bool, a dict or an Augment, got {type(augment).__name__}")


def _find_gt_mat(annotations: Path) -> Path | None:
    for name in GT_MAT_NAMES:
        candidate = annotations.parent / name
        if candidate.is_file():
            return candidate
    return None


def mpii_paths(annotations, image_path, where: str = "") -> tuple[Path, Path]:
    """The annotation file and image folder MPII data is read from: the annotations default to the file hgprune
    ships (the seed reads it too), which then needs ``image_path``; otherwise the images default to ``images/``
    beside the annotations. ``where`` prefixes the key in the error (``data.`` for a recipe)."""
    if annotations is None:
        if image_path is None:
            raise HgpruneError(
                f"{where}image_path is required for dataset mpii with the shipped annotations (the MPII images folder)"
            )
        return Path(SHIPPED_MPII_ANNOTATIONS), Path(image_path)
    annotations = Path(annotations)
    return annotations, Path(image_path) if image_path is not None else annotations.parent / "images"


def build_dataset(
    name: str,
    split: str,
    *,
    input_size: int = 256,
    augment=None,
    annotations=None,
    image_path=None,
    synth=None,
    cache_dir=None,
    seed: int = 0,
    gt_mat=None,
    max_bad_fraction: float = MAX_BAD_FRACTION,
    normalization=None,
    target_weight: str = "visible",
) -> PoseDataset:
    """A :class:`PoseDataset` for ``name`` ("mpii" | "synthpose") and ``split`` ("train" | "val").

    ``normalization``: the model's input normalisation (``model.config.normalization``; default: the seed's).
    ``target_weight``: "visible" (the seed's) or "annotated", see :data:`TARGET_WEIGHTS`.
    ``augment``: None = the seed's augmentation on train and none on val; True/False/dict/Augment override it.
    MPII: ``annotations`` (seed or HRNet JSON, gzip or plain), ``image_path`` (image folder) and, for val, ``gt_mat``
    (gt_valid.mat layout; by default a gt_valid.mat or detections_our_format.mat next to the annotations).
    SynthPose: ``synth`` = dict/SynthConfig of generation parameters (``seed`` is its default seed); generated once into
    ``cache_dir`` (default :func:`default_cache_dir`), or read from ``annotations``/``image_path`` when given.
    """
    if name not in DATASETS:
        raise HgpruneError(f"dataset: unknown {name!r}; choose one of {', '.join(DATASETS)}")
    if split not in ("train", "val"):
        raise HgpruneError(f"split: must be 'train' or 'val', got {split!r}")
    aug = _augment_for(split, augment)
    if name == "synthpose" and annotations is None:
        from hgprune.data.synthpose import ensure_generated

        root = ensure_generated(synth, cache_dir=cache_dir or default_cache_dir(), seed=seed)
        annotations, image_path, gt_mat = root / "annotations.json", root / "images", None
    annotations, image_path = mpii_paths(annotations, image_path)
    records = split_records(load_annotations(annotations), split)
    if not records:
        raise HgpruneError(f"{annotations}: no people in the {split} split")
    ground_truth = None
    if split == "val" and any(r.headbox is None for r in records):
        gt_file = Path(gt_mat) if gt_mat else _find_gt_mat(annotations)
        if gt_file is not None:
            ground_truth = load_ground_truth_mat(gt_file)
            check_order(records, ground_truth, str(gt_file))
    return PoseDataset(
        records,
        image_path,
        input_size=input_size,
        augment=aug,
        ground_truth=ground_truth,
        max_bad_fraction=max_bad_fraction,
        name=name,
        normalization=normalization if normalization is not None else DEFAULT_NORMALIZATION,
        target_weight=target_weight,
    )


def build_datasets(name: str, splits: tuple[str, ...] = ("train", "val"), *, data_root=None, **kwargs) -> dict:
    """:func:`build_dataset` for each split, with the same arguments: what ``train``, ``evaluate``, ``run`` and
    ``sensitivity`` all build their data with.

    ``data_root`` is the SynthPose cache directory, or a directory written by ``hgprune data synth --out DIR``
    (it holds ``annotations.json`` and ``images/``), which is then read as is.
    """
    generated = Path(data_root or ".") / "annotations.json"
    if name == "synthpose" and kwargs.get("annotations") is None and data_root and generated.is_file():
        kwargs.update(annotations=generated, image_path=kwargs.get("image_path") or generated.parent / "images")
    elif data_root is not None:
        kwargs["cache_dir"] = data_root
    return {split: build_dataset(name, split, **kwargs) for split in splits}


def limit_dataset(dataset, limit: int):
    """The first ``limit`` samples of ``dataset`` as a dataset whose ``ground_truth()`` matches them."""
    return dataset if len(dataset) <= limit else SampleSubset(dataset, range(limit))
