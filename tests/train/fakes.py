"""A tiny dataset with the contract's item format, independent of hgprune.data, for fast Trainer tests."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import torch
from torch.utils.data import Dataset

FLIP_PAIRS = [(0, 5), (1, 4), (2, 3), (10, 15), (11, 14), (12, 13)]


class TinyPoseDataset(Dataset):
    """``size`` random 64×64 samples whose 16 joints are bright dots; augmentation draws from the global RNGs."""

    num_joints = 16
    flip_pairs = FLIP_PAIRS
    input_size = 64
    output_size = 16

    def __init__(self, size: int = 8, seed: int = 0, augment: bool = True) -> None:
        rng = np.random.default_rng(seed)
        self.joints = rng.uniform(8, 56, size=(size, 16, 2))  # input pixels (the crop is the whole image)
        self.visible = rng.uniform(size=(size, 16)) > 0.2
        self.augment = augment

    def __len__(self) -> int:
        return len(self.joints)

    def __getitem__(self, i: int):
        image = torch.zeros(3, 64, 64)
        target = torch.zeros(16, 16, 16)
        ys, xs = torch.meshgrid(torch.arange(16.0), torch.arange(16.0), indexing="ij")
        for j, (x, y) in enumerate(self.joints[i]):
            image[j % 3, int(y), int(x)] = 1.0
            cx, cy = (x - 1.5) / 4, (y - 1.5) / 4  # crop pixel u = 4h + 1.5 (hgprune.metrics)
            target[j] = torch.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / 2)
        if self.augment:  # noise from the global RNGs, which the Trainer reseeds per epoch
            image = image + 0.1 * torch.randn(3, 64, 64) + float(np.random.uniform(-0.1, 0.1))
        weight = torch.from_numpy(self.visible[i].astype(np.float32))
        meta = {"index": i, "center": torch.tensor([31.5, 31.5]), "scale": 64 / 200, "rotation": 0.0}  # crop = image
        return image, target, weight, meta

    def ground_truth(self) -> SimpleNamespace:
        n = len(self)
        headboxes = np.tile(np.array([[20.0, 20.0], [40.0, 40.0]]), (n, 1, 1))
        return SimpleNamespace(joints=self.joints.copy(), missing=~self.visible, headboxes=headboxes)
