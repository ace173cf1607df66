"""torch.distributed plumbing: one code path for a single process and for ``torchrun`` with K processes.

Only rank 0 writes files; metrics are reduced (or predictions gathered) so every rank reports the same numbers.
"""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.distributed as dist
from torch import nn


def is_distributed() -> bool:
    """True inside an initialised process group of more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main() -> bool:
    """Whether this process may write files and print progress."""
    return rank() == 0


def init_from_env(device: str) -> str:
    """Join the process group ``torchrun`` describes in the environment (WORLD_SIZE > 1); returns this rank's device.

    gloo on CPU, NCCL on CUDA; each CUDA process takes the GPU numbered by its LOCAL_RANK.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or (dist.is_available() and dist.is_initialized()):
        return device
    if device.startswith("cuda"):
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local_rank)
        device = f"cuda:{local_rank}"
        dist.init_process_group(backend="nccl")
    else:
        dist.init_process_group(backend="gloo")
    return device


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _comm_device() -> torch.device:
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_reduce_sum(values: list[float]) -> list[float]:
    """Element-wise sum over ranks (identity in a single process)."""
    if not is_distributed():
        return list(values)
    tensor = torch.tensor(values, dtype=torch.float64, device=_comm_device())
    dist.all_reduce(tensor)
    return tensor.tolist()


def all_gather_objects(obj: Any) -> list[Any]:
    """Every rank's ``obj``, in rank order (``[obj]`` in a single process)."""
    if not is_distributed():
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast_buffers(module: nn.Module) -> None:
    """Copy rank 0's buffers (BatchNorm running statistics) to all ranks so every rank holds the same model.

    DDP broadcasts buffers at the start of each forward, so after the last training step they differ until this.
    """
    if not is_distributed():
        return
    for buffer in module.buffers():
        if buffer.is_floating_point() or buffer.dtype == torch.long:
            dist.broadcast(buffer.data, src=0)


def main_first(build):
    """``build()`` on rank 0 first, then on the others (e.g. so a dataset cache is generated once); without a
    process group just ``build()``."""
    if not is_distributed():
        return build()
    result = build() if is_main() else None
    dist.barrier()
    return result if result is not None else build()
