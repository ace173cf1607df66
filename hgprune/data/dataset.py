"""The torch Dataset shared by MPII and SynthPose: records + images → (image, heatmaps, weights, meta)."""

from __future__ import annotations

import copy
import os
import warnings
from pathlib import Path

import numpy as np
import torch

from hgprune.data import transforms as T
from hgprune.data.mpii import GroundTruth, PoseRecord, headboxes_from_scale
from hgprune.errors import HgpruneError
from hgprune.models.hourglass import check_input_size
from hgprune.models.normalization import DEFAULT as DEFAULT_NORMALIZATION
from hgprune.models.normalization import Normalization, get_normalization

# How a joint's loss weight is set. "visible" is the seed's (MPII's visibility flag: occluded joints weigh 0);
# "annotated" weighs every annotated joint, occluded or not. Either way a joint whose Gaussian misses the heatmap
# weighs 0.
TARGET_WEIGHTS = ("visible", "annotated")
# Above this fraction of missing or unreadable images a run stops (the dataset and the trainer both apply it).
MAX_BAD_FRACTION = 0.01
# A sample read without augmentation is the same every time, so a dataset whose samples all fit in this many bytes
# keeps them in memory after their first read (a 64-px SynthPose training split of 4,000: 260 MB). At small widths
# the decode, warp and heatmaps otherwise cost a quarter of a CPU training epoch.
SAMPLE_CACHE_BYTES = 1 << 30


class PoseDataset(torch.utils.data.Dataset):
    """Crops of annotated people, one cv2.warpAffine each, with seed-default augmentation when ``augment`` is set.

    Images are normalised with ``normalization``, which must be the model's own
    (``model.config.normalization``); target weights follow ``target_weight`` (:data:`TARGET_WEIGHTS`).

    Missing or unreadable images are skipped (a zero sample with zero target weight, ``meta["bad_image"] = True``)
    and counted in :attr:`bad_images`; above ``max_bad_fraction`` of the dataset a :class:`HgpruneError` stops the
    run. With DataLoader workers each process counts its own; the trainer can sum ``meta["bad_image"]`` instead.
    """

    num_joints = 16
    flip_pairs = T.FLIP_PAIRS
    flip_perm = T.FLIP_PERM

    def __init__(
        self,
        records: list[PoseRecord],
        image_root: str | os.PathLike,
        *,
        input_size: int = 256,
        augment: T.Augment | None = None,
        ground_truth: GroundTruth | None = None,
        max_bad_fraction: float = MAX_BAD_FRACTION,
        sigma: float = 1.0,
        name: str = "mpii",
        normalization: Normalization | str | dict = DEFAULT_NORMALIZATION,
        target_weight: str = "visible",
    ) -> None:
        check_input_size(input_size)
        if target_weight not in TARGET_WEIGHTS:
            raise HgpruneError(f"target_weight: unknown {target_weight!r}; choose one of {', '.join(TARGET_WEIGHTS)}")
        self.normalization = get_normalization(normalization)
        self.target_weight = target_weight
        self.records = records
        self.image_root = Path(image_root)
        if records and not self.image_root.is_dir():  # refused here, not as one failed read per sample in a worker
            raise HgpruneError(f"{self.image_root}: image folder not found (is the image path right?)")
        self.input_size = input_size
        self.output_size = input_size // 4
        self.augment = augment
        self.sigma = sigma
        self.max_bad_fraction = max_bad_fraction
        self.name = name
        self.bad_images = 0
        self.bad_image_paths: list[str] = []
        self._ground_truth = ground_truth
        per_sample = 4 * (3 * input_size**2 + self.num_joints * (self.output_size**2 + 1))
        self._cache: dict[int, tuple] | None = {} if len(records) * per_sample <= SAMPLE_CACHE_BYTES else None

    def __len__(self) -> int:
        return len(self.records)

    def image_file(self, index: int) -> Path:
        return self.image_root / self.records[index].image

    def ground_truth(self) -> GroundTruth:
        """0-based joints, missing flags and head boxes (from the gt .mat when given, else the records)."""
        if self._ground_truth is not None:
            return self._ground_truth
        joints = np.stack([r.joints for r in self.records])
        missing = ~np.stack([r.annotated for r in self.records])
        if all(r.headbox is not None for r in self.records):
            boxes = np.stack([r.headbox for r in self.records])
        else:
            boxes = headboxes_from_scale(self.records)
        return GroundTruth(joints=joints, missing=missing, headboxes=boxes)

    def _bad(self, index: int, path: Path) -> None:
        self.bad_images += 1
        self.bad_image_paths.append(str(path))
        warnings.warn(f"{path}: missing or unreadable image, skipped ({self.bad_images} so far)", stacklevel=3)
        if self.bad_images > max(1.0, self.max_bad_fraction * len(self)):
            raise HgpruneError(
                f"{self.image_root}: {self.bad_images} images missing or unreadable (more than "
                f"{100 * self.max_bad_fraction:g}% of {len(self)}), e.g. {path}; check the image folder"
            )

    def __getitem__(self, index: int):
        if self.augment is not None or self._cache is None:
            return self._read(index)
        sample = self._cache.get(index)
        if sample is None:
            sample = self._read(index)
            if sample[3]["bad_image"]:  # counted again at every read, as without the cache
                return sample
            self._cache[index] = sample
        image, target, weights, meta = sample  # copies: a caller may change what it gets in place
        return image.clone(), target.clone(), weights.clone(), {**meta, "center": meta["center"].clone()}

    def _read(self, index: int):
        rec = self.records[index]
        center, scale, rotation, flip, color = rec.center.copy(), rec.scale, 0.0, False, None
        if self.augment is not None:
            # Torch's RNG is seeded per DataLoader worker and per epoch by the trainer, so this is reproducible.
            rng = np.random.default_rng(int(torch.randint(0, 2**62, (1,)).item()))
            factor, rotation, flip, color = self.augment.sample(rng)
            scale = scale * factor
        size, out = self.input_size, self.output_size
        path = self.image_root / rec.image
        reduce = T.reduction_factor(scale, size)
        declared = (rec.width, rec.height) if rec.width and rec.height else None
        image = T.read_image(path, reduce, declared)
        meta = {
            "index": index,
            "center": torch.tensor(center, dtype=torch.float32),
            "scale": float(scale),
            "rotation": float(rotation),
            "flipped": flip,
            "bad_image": image is None,
        }
        if image is None:
            self._bad(index, path)
            zeros = torch.zeros(self.num_joints)
            return torch.zeros(3, size, size), torch.zeros(self.num_joints, out, out), zeros, meta
        mat = T.affine_matrix(center, scale, rotation, size, flip)
        crop = T.warp_image(image, mat, size, reduce)
        # as the seed: every annotated joint is drawn, the weight is the visibility flag (or annotated) × "drawn"
        annotated = rec.annotated.astype(np.float32)
        flags = rec.visible.astype(np.float32) if self.target_weight == "visible" else annotated
        points = T.apply_affine(rec.joints, T.affine_matrix(center, scale, rotation, out, flip))
        if flip:
            points, annotated, flags = points[T.FLIP_PERM], annotated[T.FLIP_PERM], flags[T.FLIP_PERM]
        target, drawn = T.gaussian_heatmaps(points, annotated, out, self.sigma)
        weights = drawn * flags
        return (
            torch.from_numpy(T.to_normalized_chw(crop, color, self.normalization)),
            torch.from_numpy(target),
            torch.from_numpy(weights),
            meta,
        )


class SampleSubset(torch.utils.data.Subset):
    """Some samples of a pose dataset, still a pose dataset: ``ground_truth()`` matches the samples (as
    :func:`hgprune.train.evaluate_model` needs) and the attributes evaluation reads are carried over."""

    ATTRIBUTES = ("num_joints", "flip_pairs", "input_size", "output_size", "normalization")

    def __init__(self, dataset, indices) -> None:
        super().__init__(dataset, list(indices))
        for attr in self.ATTRIBUTES:
            if hasattr(dataset, attr):
                setattr(self, attr, getattr(dataset, attr))

    def ground_truth(self):
        sliced = copy.copy(self.dataset.ground_truth())
        for name in ("joints", "missing", "headboxes"):
            setattr(sliced, name, np.asarray(getattr(sliced, name))[self.indices])
        return sliced
