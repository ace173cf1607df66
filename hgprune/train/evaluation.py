"""Validation: heatmaps → original-image coordinates → PCKh under both protocols, over the whole set under DDP."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from hgprune.data.dataset import SampleSubset
from hgprune.metrics import DECODERS, check_heatmaps, decode_heatmaps, decode_to_image, flip_back, pckh
from hgprune.models.checkpoints import unwrap
from hgprune.train import distributed as ddp
from hgprune.train.losses import heatmap_loss


@dataclass
class EvalResult:
    """PCKh under the mpii (reported) and seed protocols, the predictions they were computed from and the loss."""

    mpii: Any  # hgprune.metrics.PCKhResult
    seed: Any  # hgprune.metrics.PCKhResult
    preds: np.ndarray  # (N, J, 2) original-image pixels, 0-based, in dataset order
    loss: float  # validation heatmap loss (summed over stacks, mean over samples)
    maxvals: np.ndarray | None = None  # (N, J) heatmap peak values (confidence)

    def to_dict(self) -> dict:
        return {"mpii": self.mpii.to_dict(), "seed": self.seed.to_dict(), "loss": self.loss, "num_samples": len(self)}

    def __len__(self) -> int:
        return int(self.preds.shape[0])


def flip_permutation(flip_pairs: Any, num_joints: int) -> list[int]:
    """Joint permutation for a mirrored image, from pairs ``[(a, b), ...]`` or a full permutation list."""
    pairs = list(flip_pairs or [])
    if len(pairs) == num_joints and all(isinstance(p, (int, np.integer)) for p in pairs):
        return [int(p) for p in pairs]
    perm = list(range(num_joints))
    for a, b in pairs:
        perm[int(a)], perm[int(b)] = int(b), int(a)
    return perm


def predict_heatmaps(model: nn.Module, images: torch.Tensor, flip_perm: list[int] | None = None) -> list[torch.Tensor]:
    """Model outputs; with ``flip_perm`` the last stack is averaged with the mirror image's un-mirrored heatmaps."""
    outputs = model(images)
    if flip_perm is not None:
        mirrored = flip_back(model(torch.flip(images, dims=[3]))[-1], flip_perm)
        outputs = list(outputs[:-1]) + [(outputs[-1].float() + mirrored.float()) / 2]
    return outputs


@torch.no_grad()
def evaluate_model(
    model: nn.Module,
    dataset: Dataset,
    batch_size: int = 6,
    device: str = "cpu",
    flip_test: bool = False,
    workers: int = 0,
    *,
    distributed: bool | None = None,
    decode: str = "exact",
    stack: int = -1,
) -> EvalResult:
    """Predict every sample of ``dataset`` and score it with PCKh (both protocols).

    Under an initialised process group (or ``distributed=True``) each rank predicts every world-size-th sample and
    the predictions are gathered, so every rank returns the PCKh of the whole set. The model's train/eval mode is
    restored afterwards. ``decode="seed"`` reproduces the seed's ``final_preds`` numbers instead of hgprune's exact
    decoding (see :func:`hgprune.metrics.decode_to_image`). ``stack`` picks the stack whose heatmaps are scored
    (default the last, as the seed does; 0 = the first, for per-stack diagnostics; the flip test needs the last);
    the loss covers every stack.
    """

    if decode not in DECODERS:
        raise ValueError(f"decode: must be one of {', '.join(DECODERS)}, got {decode!r}")
    module = unwrap(model)
    stacks = getattr(getattr(module, "config", None), "num_outputs", None)  # a depth-pruned model: its kept stacks
    if stacks is not None and not -stacks <= stack < stacks:
        raise ValueError(f"stack: the model has {stacks} stack(s), got {stack}")
    if flip_test and stack not in (-1, (stacks or 0) - 1):
        raise ValueError(f"stack: the flip test averages only the last stack's heatmaps; got stack={stack}")
    was_training = module.training
    module.to(device).eval()
    use_ddp = ddp.is_distributed() if distributed is None else distributed
    rank, world = (ddp.rank(), ddp.world_size()) if use_ddp else (0, 1)
    indices = list(range(rank, len(dataset), world))
    loader = DataLoader(
        Subset(dataset, indices), batch_size=batch_size, shuffle=False, num_workers=workers, drop_last=False
    )
    num_joints = int(getattr(dataset, "num_joints", 16))
    flip_perm = flip_permutation(getattr(dataset, "flip_pairs", None), num_joints) if flip_test else None
    output_size = getattr(dataset, "output_size", None)
    preds, maxvals = [], []
    loss_sum = 0.0
    try:
        for images, target, target_weight, meta in loader:
            outputs = predict_heatmaps(module, images.to(device), flip_perm)
            loss_sum += float(heatmap_loss(outputs, target.to(device), target_weight.to(device))) * images.shape[0]
            heatmaps = outputs[stack].float().cpu()
            if output_size is None:
                output_size = heatmaps.shape[-1]
            check_heatmaps(heatmaps, num_joints)  # NaN or a score layer narrower than the joints: never scored
            peak = decode_heatmaps(heatmaps)[1]
            rotation = meta.get("rotation", 0)
            image_coords = decode_to_image(
                heatmaps, meta["center"], meta["scale"], output_size, rotation=rotation, decode=decode
            )
            preds.append(np.asarray(_numpy(image_coords), dtype=np.float64))
            maxvals.append(np.asarray(_numpy(peak), dtype=np.float64))
    finally:
        module.train(was_training)
    local = {
        "indices": indices,
        "preds": np.concatenate(preds) if preds else np.zeros((0, num_joints, 2)),
        "maxvals": np.concatenate(maxvals) if maxvals else np.zeros((0, num_joints)),
        "loss_sum": loss_sum,
    }
    parts = ddp.all_gather_objects(local) if use_ddp else [local]
    all_preds = np.zeros((len(dataset), num_joints, 2))
    all_maxvals = np.zeros((len(dataset), num_joints))
    for part in parts:
        all_preds[part["indices"]] = part["preds"]
        all_maxvals[part["indices"]] = part["maxvals"]
    loss = sum(part["loss_sum"] for part in parts) / max(len(dataset), 1)
    gt = dataset.ground_truth()
    results = {
        protocol: pckh(all_preds, gt.joints, gt.missing, gt.headboxes, protocol=protocol)
        for protocol in ("mpii", "seed")
    }
    return EvalResult(mpii=results["mpii"], seed=results["seed"], preds=all_preds, loss=loss, maxvals=all_maxvals)


def sides_swapped(result: EvalResult, dataset: Dataset, protocol: str = "mpii"):
    """PCKh of ``result``'s predictions with every left joint exchanged for its right twin (``dataset.flip_pairs``).

    A diagnostic for side confusion: a model that tells left from right loses the paired joints (shoulders, elbows,
    ... fall towards 0 when the sides are far apart), one that cannot scores about the same either way, since it
    puts each pair on the same spot or picks a side by chance. Unpaired joints (head, pelvis) are unchanged.
    """
    num_joints = result.preds.shape[1]
    perm = flip_permutation(getattr(dataset, "flip_pairs", None), num_joints)
    if perm == list(range(num_joints)):
        raise ValueError(f"{type(dataset).__name__}: no left/right joint pairs (flip_pairs) to exchange")
    gt = dataset.ground_truth()
    return pckh(result.preds[:, perm], gt.joints, gt.missing, gt.headboxes, protocol=protocol)


def _numpy(value: Any) -> Any:
    return value.detach().cpu().numpy() if torch.is_tensor(value) else value


def heldout_pckh(model: nn.Module, dataset, indices, batch_size: int) -> float:
    """PCKh (MPII protocol) of ``model`` on ``dataset[indices]`` as seen at test time (no augmentation): what the
    allocation search scores candidates with. ``dataset`` itself is never changed (a shallow copy drops its
    augmentation)."""
    plain = copy.copy(dataset)
    if getattr(plain, "augment", None) is not None:
        plain.augment = None
    device = str(next(model.parameters()).device)
    return float(
        evaluate_model(model, SampleSubset(plain, list(indices)), batch_size=batch_size, device=device).mpii.mean
    )
