"""What one run computes with: its datasets (normalised as its model expects), trainer settings, calibration batches.

Built once per run from the recipe and the baseline model's input normalisation, and shared by every stage.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch

from hgprune.data import build_datasets, limit_dataset
from hgprune.models.normalization import Normalization
from hgprune.recipe import Recipe, TrainSection
from hgprune.train import TrainConfig


@dataclass
class Pipeline:
    recipe: Recipe
    train_set: Any
    val_set: Any

    @classmethod
    def from_recipe(cls, recipe: Recipe, normalization: Normalization) -> Pipeline:
        """The recipe's datasets, normalised as the model to be trained or measured expects (its
        ``config.normalization``); validation never augmented and cut to ``data.val_limit``."""
        data = recipe.data
        sets = build_datasets(
            data.dataset,
            ("train", "val"),
            normalization=normalization,
            target_weight=data.target_weight,
            input_size=recipe.model.input_size,
            augment=None if data.augment else False,  # None: the seed's augmentation on train only
            annotations=data.annotations,
            image_path=data.image_path,
            synth=dataclasses.asdict(data.synth),
            cache_dir=data.cache_dir,
            seed=recipe.seed,
            **({"gt_mat": data.gt_mat} if data.gt_mat else {}),
        )
        val_set = sets["val"] if data.val_limit is None else limit_dataset(sets["val"], data.val_limit)
        return cls(recipe, sets["train"], val_set)

    def train_config(
        self, section: TrainSection, epochs: int, start_epoch: int = 0, bn_l1: float = 0.0, distill: float = 0.0
    ) -> TrainConfig:
        """Trainer settings; LR milestones are relative to the first epoch of this phase."""
        r = self.recipe
        return TrainConfig(
            epochs=start_epoch + epochs,
            lr=section.lr,
            momentum=section.momentum,
            weight_decay=section.weight_decay,
            schedule=tuple(start_epoch + m for m in section.schedule),
            gamma=section.gamma,
            batch_size=section.batch_size,
            test_batch_size=r.eval.batch_size,
            workers=r.data.workers,
            device=r.device,
            seed=r.seed,
            bn_l1=bn_l1,
            distill_weight=distill,
            flip_test=r.eval.flip_test,
            precise_bn=section.precise_bn,
        )

    def calibration_batches(self, step: int) -> list:
        """The same training batches for the same (seed, step), whether the run was resumed or not."""
        count = self.recipe.data.calibration_batches
        if count == 0:
            return []
        generator = torch.Generator().manual_seed(self.recipe.seed * 7919 + step)
        loader = torch.utils.data.DataLoader(
            self.train_set,
            batch_size=self.recipe.finetune.train.batch_size,
            shuffle=True,
            generator=generator,
            num_workers=0,
        )
        batches = []
        for batch in loader:
            batches.append(batch)
            if len(batches) >= count:
                break
        return batches
