"""Trainer: loss weighting, regularisers, determinism, resume and rebuild — all on a tiny model, no validation."""

from __future__ import annotations

import copy

import pytest
import torch

from hgprune.errors import HgpruneError
from hgprune.models import build_preset
from hgprune.train import TrainConfig, Trainer
from hgprune.train.losses import bn_gamma_l1, distill_loss, heatmap_loss, joints_mse
from tests.train.fakes import TinyPoseDataset


def tiny(seed: int = 0):
    torch.manual_seed(seed)
    return build_preset("tiny")


def weights(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_joints_mse_ignores_invisible_joints_and_sums_over_stacks():
    target = torch.zeros(2, 16, 4, 4)
    out = torch.zeros(2, 16, 4, 4)
    out[:, 3] = 2.0  # error 4 per pixel on joint 3 only
    weight = torch.ones(2, 16)
    assert joints_mse(out, target, weight).item() == pytest.approx(4.0 / 16)
    weight[:, 3] = 0.0
    assert joints_mse(out, target, weight).item() == 0.0
    weight[0, 3] = 1.0  # visible in one of two samples
    assert joints_mse(out, target, weight).item() == pytest.approx(4.0 / 32)
    assert heatmap_loss([out, out, out], target, weight).item() == pytest.approx(3 * 4.0 / 32)


def test_distill_loss_matches_stacks_or_uses_teacher_last():
    a, b = torch.zeros(1, 16, 4, 4), torch.ones(1, 16, 4, 4)
    assert distill_loss([a, a], [b, a]).item() == pytest.approx(1.0)
    assert distill_loss([a, a], [a, a, b]).item() == pytest.approx(2.0)


def test_bn_l1_moves_gammas_toward_zero():
    data = TinyPoseDataset(4)
    gammas = {}
    for bn_l1 in (0.0, 1e-2):
        model = tiny()
        Trainer(model, data, None, TrainConfig(epochs=2, lr=1e-3, batch_size=2, bn_l1=bn_l1)).fit()
        gammas[bn_l1] = bn_gamma_l1(model).item()
    start = bn_gamma_l1(tiny()).item()
    assert gammas[1e-2] < start - 1.0  # the penalty pulls Σ|γ| down by a clear margin
    assert gammas[1e-2] < gammas[0.0] - 1.0


def test_distillation_pulls_student_toward_teacher():
    data = TinyPoseDataset(4)
    teacher = tiny(seed=1).eval()
    images = torch.stack([data[i][0] for i in range(4)])

    def gap(model):
        model.eval()
        with torch.no_grad():
            return distill_loss(model(images), teacher(images)).item()

    gaps = {}
    for weight in (0.0, 50.0):
        model = tiny()
        rows = Trainer(
            model,
            data,
            None,
            TrainConfig(epochs=3, lr=1e-3, batch_size=2, distill_weight=weight),
            teacher=teacher if weight else None,
        ).fit()
        gaps[weight] = gap(model)
        assert ("distill" in rows[-1]) == bool(weight)
    assert gaps[50.0] < 0.85 * gaps[0.0]  # measured 0.35 vs 0.44
    assert all(not p.requires_grad for p in teacher.parameters())


def test_distill_weight_without_teacher_is_a_user_error():
    with pytest.raises(HgpruneError, match="distill_weight"):
        Trainer(tiny(), TinyPoseDataset(2), None, TrainConfig(epochs=1, distill_weight=1.0))


def test_two_fits_from_same_weights_and_seed_are_bit_identical():
    data = TinyPoseDataset(6)
    results = []
    for _ in range(2):
        model = tiny()
        torch.manual_seed(123)  # global state before fit must not matter
        rows = Trainer(model, data, None, TrainConfig(epochs=2, lr=1e-3, batch_size=4, seed=7)).fit()
        results.append((weights(model), [r["loss"] for r in rows]))
        torch.manual_seed(999)
    (w0, l0), (w1, l1) = results
    assert l0 == l1
    assert all(torch.equal(w0[k], w1[k]) for k in w0)
    model = tiny()
    Trainer(model, data, None, TrainConfig(epochs=2, lr=1e-3, batch_size=4, seed=8)).fit()
    assert not all(torch.equal(w0[k], v) for k, v in weights(model).items())  # the seed does matter


def test_resume_from_checkpoint_repeats_uninterrupted_run(tmp_path):
    from hgprune.train.checkpointing import load_training_checkpoint, save_training_checkpoint, training_payload

    data = TinyPoseDataset(6)
    cfg = TrainConfig(epochs=3, lr=1e-3, momentum=0.5, batch_size=4, schedule=(1,), gamma=0.5, seed=3)
    straight = tiny()
    Trainer(straight, data, None, cfg).fit()

    first = tiny()
    trainer = Trainer(first, data, None, cfg)
    trainer.fit(epochs=2)
    payload = training_payload(first, epoch=trainer.epoch, best_acc=0.0, trainer_state=trainer.state_dict())
    save_training_checkpoint(payload, tmp_path, is_best=False)
    state = load_training_checkpoint(tmp_path / "checkpoint.pth.tar")
    assert state["epoch"] == 2
    resumed = tiny(seed=5)
    resumed.load_state_dict(state["state_dict"])
    trainer = Trainer(resumed, data, None, cfg)
    trainer.load_state_dict(state)
    assert trainer.optimizer.state_dict()["state"][0]["square_avg"].abs().sum() > 0
    rows = trainer.fit(start_epoch=state["epoch"])
    assert [r["epoch"] for r in rows] == [3] and rows[0]["lr"] == pytest.approx(1e-3 * 0.5)
    assert all(torch.equal(v, resumed.state_dict()[k]) for k, v in straight.state_dict().items())


def test_lr_follows_multistep_schedule():
    trainer = Trainer(tiny(), TinyPoseDataset(2), None, TrainConfig(epochs=1, lr=1.0, schedule=(2, 4), gamma=0.1))
    assert [trainer.lr_at(e) for e in range(6)] == pytest.approx([1, 1, 0.1, 0.1, 0.01, 0.01])


def test_nan_loss_stops_with_a_clear_error():
    model = tiny()
    with torch.no_grad():
        model.score[0].bias.fill_(float("nan"))
    with pytest.raises(HgpruneError, match="diverged.*epoch 1, batch 1"):
        Trainer(model, TinyPoseDataset(2), None, TrainConfig(epochs=1, batch_size=2)).fit()


def test_rebuild_after_pruning_trains_the_new_parameters(tmp_path):
    from tests.conftest import prune_half

    data = TinyPoseDataset(4)
    model = tiny()
    trainer = Trainer(model, data, None, TrainConfig(epochs=2, lr=1e-3, batch_size=2))
    trainer.fit(epochs=1)
    prune_half(model)
    assert not model.training
    trainer.rebuild()
    assert model.training
    new_params = {id(p) for p in model.parameters()}
    assert {id(p) for g in trainer.optimizer.param_groups for p in g["params"]} == new_params
    before = weights(model)
    trainer.fit(start_epoch=1)
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items() if "weight" in k)


def test_config_errors_name_the_key():
    with pytest.raises(HgpruneError, match="train.lr"):
        TrainConfig(epochs=1, lr=-1)
    assert TrainConfig(epochs=1, schedule=[3, 5]).schedule == (3, 5)


def test_precise_bn_reestimates_statistics_before_validating_without_changing_the_training_path():
    """PreciseBN: the same weights epoch after epoch, and BatchNorm statistics that are the exact average over
    ``precise_bn`` training batches (not the running average), so validation sees different statistics."""
    data, val = TinyPoseDataset(12), TinyPoseDataset(4, seed=1, augment=False)
    runs = {}
    for batches in (0, 2):
        model = tiny()
        cfg = TrainConfig(epochs=2, lr=1e-3, batch_size=4, test_batch_size=4, seed=3, precise_bn=batches)
        rows = Trainer(model, data, val, cfg).fit()
        runs[batches] = (model, rows)
    (plain, plain_rows), (precise, precise_rows) = runs[0], runs[2]
    params = dict(plain.named_parameters())
    assert all(torch.equal(params[k], p) for k, p in precise.named_parameters())  # training took the same path
    assert [r["loss"] for r in plain_rows] == [r["loss"] for r in precise_rows]
    bn = next(n for n, m in precise.named_modules() if isinstance(m, torch.nn.BatchNorm2d))
    stats = {k: dict(m.named_buffers()) for k, m in ((0, plain.get_submodule(bn)), (2, precise.get_submodule(bn)))}
    assert not torch.allclose(stats[0]["running_mean"], stats[2]["running_mean"])
    # the exact average over the same two batches, re-done by hand from the same seeded stream
    replay = copy.deepcopy(precise)
    trainer = Trainer(replay, data, val, TrainConfig(epochs=2, lr=1e-3, batch_size=4, seed=3, precise_bn=2))
    assert trainer.precise_bn(epoch=1) == 2
    assert torch.allclose(dict(replay.get_submodule(bn).named_buffers())["running_mean"], stats[2]["running_mean"])
    assert (
        precise_rows[-1]["pckh"] != plain_rows[-1]["pckh"] or precise_rows[-1]["val_loss"] != plain_rows[-1]["val_loss"]
    )  # validation saw the re-estimated statistics


def test_precise_bn_must_not_be_negative():
    with pytest.raises(HgpruneError, match=r"train.precise_bn: must be in \[0, 100000\], got -1"):
        TrainConfig(epochs=1, precise_bn=-1)
