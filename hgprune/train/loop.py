"""The one training loop used by ``hgprune train``, ``hgprune run`` fine-tuning and DDP.

RMSprop + MultiStepLR as the seed, intermediate supervision, optional BN-γ L1 and distillation, AMP on CUDA.
Every epoch reseeds all random number generators from ``(seed, epoch, rank)``, so what an epoch does depends only
on the weights it starts from — the property that makes resumed runs repeat uninterrupted ones exactly on CPU.
"""

from __future__ import annotations

import bisect
import itertools
import random
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset
from torch.utils.data.distributed import DistributedSampler
from tqdm import tqdm

from hgprune.calibration import recalibrate_bn
from hgprune.data.dataset import MAX_BAD_FRACTION
from hgprune.errors import HgpruneError
from hgprune.models.checkpoints import unwrap
from hgprune.train import distributed as ddp
from hgprune.train.config import TrainConfig
from hgprune.train.evaluation import evaluate_model
from hgprune.train.losses import bn_gamma_l1, distill_loss, heatmap_loss


def epoch_seed(seed: int, epoch: int, rank: int = 0, stream: int = 0) -> int:
    """A 32-bit seed that depends only on (seed, epoch, rank, stream); stream 0 is training's own."""
    entropy = [seed, epoch, rank] + ([stream] if stream else [])
    return int(np.random.SeedSequence(entropy).generate_state(1)[0])


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; returns a generator for the DataLoader's shuffling."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def seed_worker(worker_id: int) -> None:
    """DataLoader worker_init_fn: torch already seeded the worker from the loader's generator; follow it."""
    seed = torch.initial_seed() % 2**32
    random.seed(seed)
    np.random.seed(seed)


def show_progress() -> bool:
    return ddp.is_main() and sys.stderr.isatty()


class Trainer:
    """Trains ``model`` in place on ``train_set``, validating on ``val_set`` (PCKh) after every epoch.

    ``model`` stays the caller's object: prune it in place and call :meth:`rebuild`. Under an initialised
    ``torch.distributed`` process group the model is wrapped in DDP and each rank sees its shard of the data.
    """

    def __init__(
        self,
        model: nn.Module,
        train_set: Dataset | None,
        val_set: Dataset | None,
        cfg: TrainConfig,
        teacher: nn.Module | None = None,
    ) -> None:
        self.cfg = cfg
        self.module = unwrap(model)
        self.train_set = train_set
        self.val_set = val_set
        self.device = torch.device(cfg.device)
        if cfg.amp and self.device.type != "cuda":
            warnings.warn("amp=True has no effect on CPU; training in float32", stacklevel=2)
        self.amp = cfg.amp and self.device.type == "cuda"
        if cfg.distill_weight > 0 and teacher is None:
            raise HgpruneError("train.distill_weight: > 0 needs a teacher model")
        self.teacher = None
        if teacher is not None:
            self.teacher = unwrap(teacher).to(self.device).eval()
            for p in self.teacher.parameters():
                p.requires_grad_(False)
        self.epoch = 0  # epochs completed
        self.rebuild()

    def rebuild(self) -> None:
        """Fresh optimizer, grad scaler and DDP wrapper for the model's current parameters; train mode.

        Needed after pruning: torch-pruning replaces Parameter objects and leaves the model in eval mode.
        """
        cfg = self.cfg
        self.module.to(self.device)
        self.module.train()
        if ddp.is_distributed():
            device_ids = [self.device.index or 0] if self.device.type == "cuda" else None
            self.model: nn.Module = DistributedDataParallel(self.module, device_ids=device_ids)
        else:
            self.model = self.module
        self.optimizer = torch.optim.RMSprop(
            self.module.parameters(), lr=cfg.lr, alpha=0.99, momentum=cfg.momentum, weight_decay=cfg.weight_decay
        )
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)

    def lr_at(self, epoch: int) -> float:
        """The seed's MultiStepLR schedule in closed form (no scheduler object, so a resumed run replays nothing)."""
        return self.cfg.lr * self.cfg.gamma ** bisect.bisect_right(sorted(self.cfg.schedule), epoch)

    def _set_epoch(self, epoch: int) -> float:
        lr = self.lr_at(epoch)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        return lr

    def state_dict(self) -> dict[str, Any]:
        """Optimizer and grad-scaler state for a training checkpoint (tensors and plain values only)."""
        state = {"optimizer": self.optimizer.state_dict()}
        if self.amp:
            state["scaler"] = self.scaler.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("optimizer"):
            self.optimizer.load_state_dict(state["optimizer"])
        if self.amp and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])

    def fit(
        self,
        start_epoch: int = 0,
        epochs: int | None = None,
        on_epoch_end: Callable[[dict], None] | None = None,
    ) -> list[dict]:
        """Train epochs ``start_epoch … epochs-1`` (``epochs`` defaults to ``cfg.epochs``); one dict per epoch.

        Each row holds ``epoch`` (epochs completed, as in the seed's checkpoints), ``lr``, ``loss`` (train heatmap
        loss) and, with a validation set, ``val_loss``, ``pckh`` (mpii protocol mean), ``pckh_seed``, ``pckh_01``
        and ``auc``. ``on_epoch_end(row)`` runs on every rank after each epoch (write checkpoints there).
        """
        end = self.cfg.epochs if epochs is None else epochs
        rows = []
        for epoch in range(start_epoch, end):
            started = time.perf_counter()
            lr = self._set_epoch(epoch)
            row: dict[str, Any] = {"epoch": epoch + 1, "lr": lr}
            row.update(self.train_epoch(epoch))
            ddp.broadcast_buffers(self.module)
            if self.val_set is not None:
                if self.cfg.precise_bn:
                    self.precise_bn(epoch)
                result = self.validate()
                row.update(
                    val_loss=result.loss,
                    pckh=result.mpii.mean,
                    pckh_seed=result.seed.mean,
                    pckh_01=result.mpii.pckh_01,
                    auc=result.mpii.auc,
                    pckh_groups=dict(result.mpii.groups),  # per joint group (hgprune.metrics.GROUPS)
                )
            row["wall_s"] = time.perf_counter() - started
            self.epoch = epoch + 1
            rows.append(row)
            if on_epoch_end is not None:
                on_epoch_end(row)
            self.module.train()
        return rows

    def validate(self):
        """PCKh of the current weights on the validation set, over the whole set under DDP."""
        result = evaluate_model(
            self.module,
            self.val_set,
            batch_size=self.cfg.test_batch_size,
            device=str(self.device),
            flip_test=self.cfg.flip_test,
            workers=self.cfg.workers,
        )
        self.module.train()
        return result

    def precise_bn(self, epoch: int) -> int:
        """PreciseBN (Wu & Johnson, "Rethinking 'Batch' in BatchNorm", 2021): replace every BatchNorm's running
        statistics by their exact average over ``cfg.precise_bn`` training batches; returns the batches used.

        The running averages that validation otherwise uses follow the last few dozen steps, so a deep model's
        validation PCKh can swing by points between epochs at a constant learning rate without its weights changing
        much. Weights are untouched, and the batches come from their own seeded stream after the epoch (the next
        epoch reseeds everything), so training follows the same path with and without it.
        """
        generator = seed_everything(epoch_seed(self.cfg.seed, epoch, ddp.rank(), stream=1))
        loader = DataLoader(
            self.train_set, batch_size=self.cfg.batch_size, shuffle=True, generator=generator,
            num_workers=self.cfg.workers, worker_init_fn=seed_worker,
            drop_last=len(self.train_set) > self.cfg.batch_size,  # a lone sample breaks train-mode BatchNorm
        )  # fmt: skip
        used = recalibrate_bn(self.module, itertools.islice(loader, self.cfg.precise_bn))
        ddp.broadcast_buffers(self.module)
        return used

    def _train_loader(self, epoch: int) -> DataLoader:
        generator = seed_everything(epoch_seed(self.cfg.seed, epoch, ddp.rank()))
        sampler = None
        if ddp.is_distributed():
            sampler = DistributedSampler(self.train_set, shuffle=True, seed=self.cfg.seed)
            sampler.set_epoch(epoch)
        shard = len(sampler) if sampler is not None else len(self.train_set)
        return DataLoader(
            self.train_set,
            batch_size=self.cfg.batch_size,
            shuffle=sampler is None,
            sampler=sampler,
            num_workers=self.cfg.workers,
            generator=generator,
            worker_init_fn=seed_worker,
            pin_memory=self.device.type == "cuda",
            # a lone last sample breaks train-mode BatchNorm where the hourglass bottom is 1x1 (64 px inputs)
            drop_last=shard % self.cfg.batch_size == 1 and shard > 1,
        )

    def train_epoch(self, epoch: int) -> dict[str, float]:
        """One pass over this rank's shard; returns the mean losses over all ranks' samples."""
        if self.train_set is None:
            raise HgpruneError("Trainer: no training set given")
        cfg = self.cfg
        loader = self._train_loader(epoch)
        self.model.train()
        sums = {"loss": 0.0, "distill": 0.0, "bn_l1": 0.0}
        samples = 0
        bad_images = 0
        bar = tqdm(loader, desc=f"epoch {epoch + 1}", leave=False, disable=not show_progress(), dynamic_ncols=True)
        for step, (images, target, target_weight, meta) in enumerate(bar):
            if "bad_image" in meta:  # unreadable images arrive as zero samples with zero weight
                bad_images += int(torch.as_tensor(meta["bad_image"]).sum())
            images = images.to(self.device, non_blocking=True)
            target = target.to(self.device, non_blocking=True)
            target_weight = target_weight.to(self.device, non_blocking=True)
            with torch.autocast(device_type="cuda", dtype=torch.float16, enabled=self.amp):
                outputs = self.model(images)
                if self.teacher is not None:
                    with torch.no_grad():
                        teacher_out = self.teacher(images)
            loss = heatmap_loss(outputs, target, target_weight)
            objective = loss
            terms = {"loss": loss.detach()}
            if self.teacher is not None and cfg.distill_weight > 0:
                term = distill_loss(outputs, teacher_out)
                objective = objective + cfg.distill_weight * term
                terms["distill"] = term.detach()
            if cfg.bn_l1 > 0:
                term = bn_gamma_l1(self.module)
                objective = objective + cfg.bn_l1 * term
                terms["bn_l1"] = term.detach()
            self._check_finite(objective, epoch, step)
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(objective).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            batch = images.shape[0]
            samples += batch
            for key, value in terms.items():
                sums[key] += float(value) * batch
            bar.set_postfix(loss=f"{float(terms['loss']):.3g}")
        keys = list(sums)
        reduced = ddp.all_reduce_sum([sums[k] for k in keys] + [bad_images, samples])
        total = max(reduced[-1], 1.0)
        self._check_bad_images(int(reduced[-2]), epoch)
        out = {"loss": reduced[0] / total}
        for key, value in zip(keys[1:], reduced[1:-2]):
            if (key == "distill" and self.teacher is not None and cfg.distill_weight > 0) or (
                key == "bn_l1" and cfg.bn_l1 > 0
            ):
                out[key] = value / total
        return out

    def _check_bad_images(self, bad: int, epoch: int) -> None:
        # the dataset's own threshold: with DataLoader workers each process counts its own, so the trainer sums
        fraction = getattr(self.train_set, "max_bad_fraction", MAX_BAD_FRACTION)
        allowed = max(1.0, fraction * len(self.train_set))
        if bad > allowed:
            root = getattr(self.train_set, "image_root", "the training set")
            raise HgpruneError(
                f"{root}: {bad} of {len(self.train_set)} training images were missing or unreadable in epoch "
                f"{epoch + 1} (more than {100 * fraction:g}%); check the dataset's image folder"
            )

    def _check_finite(self, objective: torch.Tensor, epoch: int, step: int) -> None:
        bad = 0.0 if bool(torch.isfinite(objective.detach())) else 1.0
        if ddp.is_distributed():
            bad = ddp.all_reduce_sum([bad])[0]
        if bad:
            raise HgpruneError(
                f"training diverged: the loss became {float(objective.detach()):g} in epoch {epoch + 1}, "
                f"batch {step + 1}; "
                "the last good checkpoint is kept; retry from it with a lower learning rate"
            )
