"""DDP on 2 CPU processes (gloo): the ranks end with identical weights and report the metrics they agreed on."""

from __future__ import annotations

import os
import socket

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from hgprune.models import build_preset
from hgprune.train import TrainConfig, Trainer, evaluate_model
from tests.train.fakes import TinyPoseDataset


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _worker(rank: int, world: int, port: int, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        torch.manual_seed(rank)  # different initial weights: DDP must broadcast rank 0's
        model = build_preset("tiny")
        train, val = TinyPoseDataset(6), TinyPoseDataset(5, seed=1, augment=False)  # 5: uneven val shards
        cfg = TrainConfig(epochs=2, lr=1e-3, batch_size=2, test_batch_size=2, seed=4)
        rows = Trainer(model, train, val, cfg).fit()
        torch.save(
            {"state_dict": model.state_dict(), "rows": rows},
            os.path.join(out_dir, f"rank{rank}.pt"),
        )
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not available")
def test_two_cpu_ranks_agree_on_weights_and_metrics(tmp_path):
    mp.spawn(_worker, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    w0, w1 = ranks[0]["state_dict"], ranks[1]["state_dict"]
    assert all(torch.equal(w0[k], w1[k]) for k in w0)  # parameters and BN statistics
    for a, b in zip(ranks[0]["rows"], ranks[1]["rows"]):
        assert {k: v for k, v in a.items() if k != "wall_s"} == {k: v for k, v in b.items() if k != "wall_s"}
    # the PCKh both ranks reported is that of the final weights on the *whole* validation set
    model = build_preset("tiny")
    model.load_state_dict(w0)
    single = evaluate_model(model, TinyPoseDataset(5, seed=1, augment=False), batch_size=2, distributed=False)
    last = ranks[0]["rows"][-1]
    assert last["pckh"] == pytest.approx(single.mpii.mean)
    assert last["val_loss"] == pytest.approx(single.loss, rel=1e-5)
    assert np.isfinite(last["loss"]) and last["epoch"] == 2
