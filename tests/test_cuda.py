"""The CUDA paths: mixed-precision training, evaluation, pruning, profiling, a whole run, and NCCL.

CI has no GPU, so every test here skips there with a reason; they run on a machine with one (see README, "GPU").
The multi-rank NCCL test needs two GPUs; with one, a one-rank NCCL group still runs the Trainer's DDP code path.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from hgprune.cli import main
from hgprune.models import build_preset, load_model
from hgprune.profile import conv_macs, fvcore_macs, profile_model
from hgprune.prune import prune_to_target
from hgprune.train import TrainConfig, Trainer, evaluate_model
from tests.conftest import tiny_eval_model
from tests.train.fakes import TinyPoseDataset
from tests.train.test_ddp import free_port

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests" / "recipes" / "tiny.yaml"
CUDA = torch.cuda.is_available()
pytestmark = pytest.mark.skipif(not CUDA, reason="no CUDA device on this machine")


def test_amp_training_learns_keeps_float32_weights_and_resumes_with_its_scaler():
    torch.manual_seed(0)
    model = build_preset("tiny")
    start = copy.deepcopy(model.state_dict())
    train, val = TinyPoseDataset(32), TinyPoseDataset(8, seed=1, augment=False)
    cfg = TrainConfig(epochs=4, lr=2.5e-3, batch_size=8, test_batch_size=8, device="cuda", amp=True, seed=1)
    trainer = Trainer(model, train, val, cfg)
    rows = trainer.fit()
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4]
    assert all(np.isfinite(r["loss"]) and np.isfinite(r["val_loss"]) for r in rows)
    assert rows[-1]["loss"] < rows[0]["loss"]  # it learns under autocast
    assert all(p.dtype == torch.float32 and p.is_cuda for p in model.parameters())  # master weights stay fp32
    changed = [k for k, v in model.state_dict().items() if v.is_floating_point() and not torch.equal(v.cpu(), start[k])]
    assert len(changed) > len(start) // 2

    state = trainer.state_dict()
    assert state["scaler"]["scale"] > 0  # the grad scaler's state goes into training checkpoints
    resumed = Trainer(copy.deepcopy(model), train, val, cfg)
    resumed.load_state_dict(state)
    assert resumed.scaler.get_scale() == trainer.scaler.get_scale()
    more = resumed.fit(start_epoch=4, epochs=5)
    assert [r["epoch"] for r in more] == [5] and np.isfinite(more[0]["loss"])


def test_cuda_evaluation_scores_like_cpu(monkeypatch):
    # an untrained model's flat heatmaps have near-ties that any rounding flips: train one to clear peaks first
    torch.manual_seed(0)
    model = build_preset("tiny")
    cfg = TrainConfig(epochs=6, lr=2.5e-3, batch_size=8, test_batch_size=8, device="cuda", seed=1)
    Trainer(model, TinyPoseDataset(64), None, cfg).fit()
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)  # compare float32 with float32
    data = TinyPoseDataset(12, seed=2, augment=False)
    on_gpu = evaluate_model(model, data, batch_size=4, device="cuda", flip_test=True)
    on_cpu = evaluate_model(copy.deepcopy(model).cpu(), data, batch_size=4, device="cpu", flip_test=True)
    assert on_gpu.loss == pytest.approx(on_cpu.loss, rel=1e-5)
    np.testing.assert_allclose(on_gpu.preds, on_cpu.preds, atol=0.05)  # the same peaks, sub-pixel refinement
    assert on_gpu.mpii.mean == pytest.approx(on_cpu.mpii.mean, abs=1e-9)


def test_pruning_a_cuda_model_gives_the_cpu_structure_and_outputs():
    torch.manual_seed(0)
    base = tiny_eval_model()
    results, models = {}, {}
    for device in ("cpu", "cuda"):
        model = copy.deepcopy(base).to(device)
        results[device] = prune_to_target(
            model, criterion="l1", kind="macs", kept=0.5, input_size=64, round_to=2, prune_trunk=True, progress=False
        )
        models[device] = model
    cpu, gpu = models["cpu"], models["cuda"]
    assert results["cuda"].widths == results["cpu"].widths and results["cuda"].target_met
    assert all(p.is_cuda for p in gpu.parameters())
    assert {k: v.shape for k, v in gpu.state_dict().items()} == {k: v.shape for k, v in cpu.state_dict().items()}
    assert conv_macs(gpu, 64) == conv_macs(cpu, 64) < 0.52 * conv_macs(base, 64)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        out_cpu, out_gpu = cpu.eval()(x)[-1], gpu.eval()(x.cuda())[-1].cpu()
    torch.testing.assert_close(out_gpu, out_cpu, atol=1e-4, rtol=1e-3)


def test_profiling_a_cuda_model_counts_like_cpu_and_times_it():
    model = tiny_eval_model().cuda()
    assert fvcore_macs(model, 64) == fvcore_macs(model.cpu(), 64)
    model.cuda()
    prof = profile_model(model, 64, device="cuda", repeats=5, warmup=2)
    assert prof.macs_fvcore == fvcore_macs(tiny_eval_model(), 64)
    assert prof.latency is not None and prof.latency.median_ms > 0
    assert prof.memory["cuda_peak_bytes"] > prof.memory["param_bytes"] > 0


def test_a_recipe_runs_on_cuda_and_its_checkpoints_load_on_cpu(tmp_path, monkeypatch):
    monkeypatch.setenv("HGPRUNE_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "run"
    torch.cuda.reset_peak_memory_stats()
    assert main(["run", str(TINY), "--out", str(out), "--set", "device=cuda", "--set", "profile.latency=true"]) == 0
    assert torch.cuda.max_memory_allocated() > 0  # it ran on the GPU, not on a silent CPU fallback
    assert json.loads((out / "run.json").read_text())["status"] == "finished"
    rows = pd.read_csv(out / "metrics.csv")
    assert list(rows["step"]) == [0, 1, 2]
    assert (rows["latency_ms"] > 0).all() and rows["pckh_mean"].between(0, 100).all()
    assert (rows["macs_fvcore"].diff().dropna() < 0).all()
    model = load_model(out / "final" / "model.pt")  # saved from GPU tensors, loads on a CPU-only reader
    assert all(not p.is_cuda for p in model.parameters())
    assert model(torch.zeros(1, 3, 64, 64))[-1].shape == (1, 16, 16, 16)


def test_train_command_with_amp_on_cuda(tmp_path, monkeypatch):
    monkeypatch.setenv("HGPRUNE_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "train"
    argv = ["train", "--dataset", "synthpose", "--arch", "hg2", "--N", "8", "--M", "16", "--input-shape", "64"]
    argv += ["--depth", "3", "--epochs", "2", "--train-batch", "8", "--test-batch", "16", "--synth-size", "64"]
    argv += ["--synth-train", "64", "--synth-val", "16", "--device", "cuda", "--amp", "--checkpoint", str(out)]
    assert main(argv) == 0
    log = pd.read_csv(out / "log.csv")
    assert len(log) == 2 and np.isfinite(log.iloc[-1]["val_loss"])
    state = torch.load(out / "checkpoint.pth.tar", weights_only=True, map_location="cpu")
    assert state["epoch"] == 2 and "scaler" in state


def _nccl_worker(rank: int, world: int, port: int, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), LOCAL_RANK=str(rank), RANK=str(rank))
    os.environ.update(WORLD_SIZE=str(world))
    from hgprune.train import distributed as ddp

    device = ddp.init_from_env("cuda") if world > 1 else "cuda:0"
    if world == 1:  # one GPU: a one-rank NCCL group, with the Trainer told to take its multi-process path
        torch.cuda.set_device(0)
        dist.init_process_group("nccl", rank=0, world_size=1)
        ddp.is_distributed = lambda: True
    try:
        assert dist.get_backend() == "nccl"
        torch.manual_seed(rank)
        model = build_preset("tiny")
        train, val = TinyPoseDataset(8), TinyPoseDataset(5, seed=1, augment=False)
        cfg = TrainConfig(epochs=2, lr=1e-3, batch_size=2, test_batch_size=2, seed=4, device=device)
        trainer = Trainer(model, train, val, cfg)
        wrapped = type(trainer.model).__name__
        rows = trainer.fit()
        summed = ddp.all_reduce_sum([1.0, float(rank)])
        state = {k: v.cpu() for k, v in model.state_dict().items()}
        torch.save(
            {"state_dict": state, "rows": rows, "wrapped": wrapped, "summed": summed}, f"{out_dir}/rank{rank}.pt"
        )
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif(not dist.is_available() or not dist.is_nccl_available(), reason="NCCL is not available")
def test_one_rank_nccl_group_runs_the_ddp_training_path(tmp_path):
    mp.spawn(_nccl_worker, args=(1, free_port(), str(tmp_path)), nprocs=1, join=True)
    result = torch.load(tmp_path / "rank0.pt", weights_only=True)
    assert result["wrapped"] == "DistributedDataParallel"
    assert result["summed"] == [1.0, 0.0]  # went through NCCL's all_reduce (one rank: the values are its own)
    rows = result["rows"]
    assert [r["epoch"] for r in rows] == [1, 2] and all(np.isfinite(r["loss"]) for r in rows)
    model = build_preset("tiny")
    model.load_state_dict(result["state_dict"])
    single = evaluate_model(model, TinyPoseDataset(5, seed=1, augment=False), batch_size=2, distributed=False)
    assert rows[-1]["pckh"] == pytest.approx(single.mpii.mean, abs=1e-6)


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="multi-rank NCCL needs two GPUs")
def test_two_nccl_ranks_agree_on_weights_and_metrics(tmp_path):
    mp.spawn(_nccl_worker, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    w0, w1 = ranks[0]["state_dict"], ranks[1]["state_dict"]
    assert all(torch.equal(w0[k], w1[k]) for k in w0)
    assert ranks[0]["summed"] == ranks[1]["summed"] == [2.0, 1.0]
    assert [{k: v for k, v in r.items() if k != "wall_s"} for r in ranks[0]["rows"]] == [
        {k: v for k, v in r.items() if k != "wall_s"} for r in ranks[1]["rows"]
    ]
