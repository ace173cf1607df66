"""End-to-end runs of tiny recipes: files written, resume, refusals, kill-anywhere."""

from __future__ import annotations

import dataclasses
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from hgprune.cli import main
from hgprune.models import load_model
from hgprune.recipe import load_recipe
from hgprune.sweep import expand
from tests.conftest import load_script

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests" / "recipes" / "tiny.yaml"
# columns that depend on the clock, not on the computation
TIMING = ["latency_ms", "latency_p90_ms", "wall_s"]


@pytest.fixture
def cache(tmp_path_factory, monkeypatch):
    path = tmp_path_factory.getbasetemp() / "synth-cache"
    monkeypatch.setenv("HGPRUNE_CACHE", str(path))
    return path


def _metrics(run: Path) -> pd.DataFrame:
    return pd.read_csv(run / "metrics.csv").drop(columns=TIMING)


def test_tiny_run_end_to_end_then_refusals(tmp_path, cache, capsys):
    out = tmp_path / "run"
    assert main(["run", str(TINY), "--out", str(out)]) == 0
    files = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()}
    expected = {"recipe.yaml", "run.json", "metrics.csv", "metrics.json", "final/model.pt", "report/report.md"}
    expected |= {f"checkpoints/step_{k:03d}.pt" for k in range(3)}
    assert expected <= files
    assert not any(name.endswith(".tmp") or name == ".lock" for name in files)
    state = json.loads((out / "run.json").read_text())
    assert state["status"] == "finished" and state["hgprune_version"]

    rows = pd.read_csv(out / "metrics.csv")
    assert list(rows["step"]) == [0, 1, 2]
    assert rows["macs_fvcore"].is_monotonic_decreasing and rows["params"].is_monotonic_decreasing
    assert list(rows["target"]) == pytest.approx([1.0, 0.8, 0.6])
    assert json.loads((out / "metrics.json").read_text())[2]["step"] == 2

    raw = torch.load(out / "final" / "model.pt", weights_only=True)
    model = load_model(out / "final" / "model.pt")
    from hgprune.prune import model_size

    base = model_size(load_model(out / "checkpoints" / "step_000.pt"), 64)
    kept = model_size(model, 64)["macs"] / base["macs"]
    assert kept == pytest.approx(0.6, abs=0.02)
    assert raw["meta"]["row"]["step"] == 2
    assert "PCKh" in capsys.readouterr().out

    # the per-part sensitivity map of the run's unpruned model
    assert main(["sensitivity", str(out), "--ratios", "0.5", "--parts", "stem", "hg0"]) == 0
    sens = pd.read_csv(out / "sensitivity" / "sensitivity.csv")
    assert list(sens["part"]) == ["none", "stem", "hg0"]
    assert sens.loc[0, "pckh"] == pytest.approx(rows.loc[0, "pckh_mean"], abs=1e-3)
    assert (out / "sensitivity" / "sensitivity.png").stat().st_size > 0

    # a second run into the same directory is refused; --resume with another recipe too
    assert main(["run", str(TINY), "--out", str(out)]) == 2
    assert "pass --resume" in capsys.readouterr().err
    assert json.loads((out / "run.json").read_text())["status"] == "finished"  # a refusal changes nothing
    assert main(["run", str(TINY), "--out", str(out), "--resume", "--set", "prune.target.kept=0.5"]) == 2
    err = capsys.readouterr().err
    assert "recipe differs" in err and "in prune.target.kept," in err
    # keys no completed step depends on may change: a resumed run can add an export format
    formats = "export.formats=[hgprune, torchscript]"
    assert main(["run", str(TINY), "--out", str(out), "--resume", "--set", formats]) == 0
    assert (out / "final" / "model.torchscript.pt").stat().st_size > 0
    # --resume of a finished run recomputes nothing and keeps the metrics
    before = {p: p.stat().st_mtime_ns for p in (out / "checkpoints").iterdir()}
    assert main(["run", str(TINY), "--out", str(out), "--resume"]) == 0
    assert before == {p: p.stat().st_mtime_ns for p in (out / "checkpoints").iterdir()}


def _spawn(out: Path, resume: bool, env: dict) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "hgprune", "run", str(TINY), "--out", str(out)] + (["--resume"] if resume else [])
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def test_kill_anywhere_resume_matches_uninterrupted(tmp_path, cache):
    env = {**os.environ, "HGPRUNE_CACHE": str(cache), "OMP_NUM_THREADS": "1"}
    reference = tmp_path / "reference"
    started = time.perf_counter()
    proc = _spawn(reference, False, env)
    assert proc.wait(timeout=600) == 0, proc.stderr.read()
    duration = time.perf_counter() - started

    out = tmp_path / "killed"
    rng = random.Random(1234)
    seen: dict[Path, int] = {}
    kills = 0
    for _attempt in range(16):
        proc = _spawn(out, out.exists(), env)
        if kills < 3:
            time.sleep(rng.uniform(0.15, 0.9) * duration)
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                kills += 1
            elif kills == 0:
                # finished before the first kill: the reference was slowed by load, so start over with shorter delays
                assert proc.returncode == 0, proc.stderr.read()
                shutil.rmtree(out)
                seen.clear()
                duration /= 2
                continue
        else:
            assert proc.wait(timeout=600) == 0, proc.stderr.read()
        # a completed step is never recomputed: its checkpoint, once written, is never rewritten
        for path in (out / "checkpoints").glob("step_*.pt") if (out / "checkpoints").exists() else []:
            mtime = path.stat().st_mtime_ns
            assert seen.setdefault(path, mtime) == mtime, f"{path.name} was recomputed"
        if proc.returncode == 0:
            break
    assert kills >= 1
    assert json.loads((out / "run.json").read_text())["status"] == "finished"
    pd.testing.assert_frame_equal(_metrics(out), _metrics(reference))
    final, ref_final = load_model(out / "final" / "model.pt"), load_model(reference / "final" / "model.pt")
    for (name, a), (_, b) in zip(final.state_dict().items(), ref_final.state_dict().items()):
        assert torch.equal(a, b), name


@pytest.mark.parametrize("recipe", sorted((ROOT / "recipes").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_recipe_passes_dry_run(recipe, capsys, tmp_path):
    assert main(["run", str(recipe), "--dry-run", "--out", str(tmp_path / "never")]) == 0
    out = capsys.readouterr().out
    assert "step" in out and "baseline" in out
    assert not (tmp_path / "never").exists()


def test_dry_run_plans_macs_targets(tmp_path, capsys):
    assert main(["run", str(TINY), "--dry-run", "--set", "prune.steps=3", "--set", "prune.schedule=cubic"]) == 0
    lines = [line.split() for line in capsys.readouterr().out.splitlines() if line.strip()[:1].isdigit()]
    kept = [float(cols[1]) for cols in lines]
    assert kept[0] == 1.0 and kept[-1] == pytest.approx(0.6) and len(kept) == 4
    macs = [float(cols[2].replace(",", "")) for cols in lines]
    assert macs[-1] == pytest.approx(0.6 * macs[0], rel=1e-6)


def test_dry_run_rejects_unknown_criterion(capsys):
    assert main(["run", str(TINY), "--dry-run", "--set", "prune.criterion=l3"]) == 2
    assert "l1" in capsys.readouterr().err


def test_sweep_expansion_names_and_scratch_budget(tmp_path, capsys):
    path = tmp_path / "sweep.yaml"
    path.write_text(
        TINY.read_text() + "sweep: {arch: [hg1, hg2], criterion: [l1, random], kept: [0.5], scratch: true}\n"
    )
    entries = dict(expand(load_recipe(path)))
    names = ["hg1-l1-50", "hg1-random-50", "hg1-scratch-50", "hg2-l1-50", "hg2-random-50", "hg2-scratch-50"]
    assert sorted(entries) == sorted(names + ["hg1-baseline", "hg2-baseline"])
    # the baseline is trained once per architecture and shared by the entries that prune it
    assert entries["hg2-baseline"].prune.steps == 0 and entries["hg2-baseline"].baseline.checkpoint is None
    assert entries["hg2-random-50"].baseline.checkpoint == str(Path("runs/tiny/hg2-baseline/final/model.pt"))
    scratch = entries["hg2-scratch-50"]
    assert scratch.prune.steps == 0 and scratch.role == "scratch"
    assert scratch.model.N < 8 or scratch.model.M < 16
    assert scratch.baseline.train.epochs == 1 + 2 * 1 + 1  # same total epochs as the pruned entries
    from hgprune.models import build_model
    from hgprune.profile import conv_macs

    full = conv_macs(build_model("hg2", N=8, M=16, input_size=64), 64)
    narrow = conv_macs(build_model("hg2", N=scratch.model.N, M=scratch.model.M, input_size=64), 64)
    assert narrow / full == pytest.approx(0.5, abs=0.1)
    capsys.readouterr()
    assert main(["run", str(path), "--only", "hg2-l1-50", "--dry-run"]) == 0  # the dry run shows what --only runs
    planned = [line for line in capsys.readouterr().out.splitlines() if not line.startswith(" ")]
    assert len(planned) == 1 and planned[0].startswith("hg2-l1-50: hg2 ")
    assert planned[0].endswith(f"→ {Path('runs/tiny/hg2-l1-50')}")  # a sweep entry's own directory
    assert main(["run", str(path), "--only", "nope", "--dry-run"]) == 2
    assert "no such sweep entry; valid: hg1-baseline, hg1-l1-50" in capsys.readouterr().err


def test_sweep_imports_one_baseline_per_architecture(tmp_path):
    """``{arch}`` in baseline.checkpoint: no baseline entries, each entry (scratch aside) loads its own parent, and
    scripts/sweep_parents.py trains exactly those files with the recipe's settings."""

    from hgprune.models import build_model
    from hgprune.profile import conv_macs

    path = tmp_path / "sweep.yaml"
    path.write_text(TINY.read_text() + "sweep: {arch: [hg1, hg2], criterion: [l1], kept: [0.5], scratch: true}\n")
    baseline = ["baseline.checkpoint=parents/{arch}/checkpoint.pth.tar", "baseline.train.epochs=3",
                "baseline.train.lr=0.002", "baseline.train.schedule=[2]"]  # fmt: skip
    recipe = load_recipe(path, baseline)
    entries = dict(expand(recipe))
    assert sorted(entries) == ["hg1-l1-50", "hg1-scratch-50", "hg2-l1-50", "hg2-scratch-50"]
    assert entries["hg2-l1-50"].baseline.checkpoint == "parents/hg2/checkpoint.pth.tar"
    assert entries["hg1-l1-50"].model.arch == "hg1"
    scratch = entries["hg2-scratch-50"]
    assert scratch.baseline.checkpoint is None and scratch.model.arch == "hg2"
    assert scratch.baseline.train.epochs == 3 + 2 * 1 + 1 and scratch.baseline.train.schedule == [2]

    script = load_script("scripts/sweep_parents.py")
    cmd, out = script.train_command(recipe, "hg2")
    assert out == Path("parents/hg2")
    flags = dict(zip(cmd[4::2], cmd[5::2]))
    assert cmd[2:4] == ["hgprune", "train"]
    assert flags["--arch"] == "hg2" and flags["--epochs"] == "3" and flags["--lr"] == "0.002"
    assert (flags["--N"], flags["--M"]) == (str(recipe.model.N), str(recipe.model.M))
    assert cmd[cmd.index("--schedule") + 1] == "2" and flags["--checkpoint"] == "parents/hg2"
    hg2_mmacs = conv_macs(build_model("hg2", N=recipe.model.N, M=recipe.model.M, input_size=64), 64) / 1e6
    assert f"| hg2 | {hg2_mmacs:.1f} | 0 | | | not trained | |" in script.summary(recipe, ["hg2"])
    assert "| hg2 | not trained | | |" in script.diagnose(recipe, ["hg2"])


def test_sweep_parents_diagnose_scores_every_stack_and_training_images(tmp_path, cache, monkeypatch):
    """--diagnose: validation PCKh of each stack's heatmaps and the last stack's PCKh on training images."""

    from hgprune.data import limit_dataset
    from hgprune.models import build_model, save_model
    from hgprune.pipeline import Pipeline
    from hgprune.train import evaluate_model

    monkeypatch.chdir(tmp_path)
    path = tmp_path / "sweep.yaml"
    path.write_text(TINY.read_text() + "sweep: {arch: [hg2], criterion: [taylor], kept: [0.5]}\n")
    recipe = load_recipe(path, ["baseline.checkpoint=parents/{arch}/checkpoint.pth.tar"])
    torch.manual_seed(0)
    model = build_model("hg2", N=8, M=16, input_size=64)
    save_model(model, tmp_path / "parents" / "hg2" / "checkpoint.pth.tar")
    (tmp_path / "parents" / "hg2" / "log.csv").write_text("epoch,loss,val_loss,pckh\n1,0.5,2.0,10.0\n")  # 1 epoch
    script = load_script("scripts/sweep_parents.py")
    row = script.diagnose(recipe, ["hg2"]).splitlines()[-1]
    plain = dataclasses.replace(recipe, data=dataclasses.replace(recipe.data, augment=False))  # scored unaugmented
    data = Pipeline.from_recipe(plain, model.config.normalization)
    first, last = (evaluate_model(model, data.val_set, 16, stack=k).mpii.mean for k in (0, 1))
    train = evaluate_model(model, limit_dataset(data.train_set, 1000), 16).mpii.mean
    assert row == f"| hg2 | {first:.2f} → {last:.2f} | {train:.2f} | {train - last:+.2f} |"
    assert script.summary(recipe, ["hg2"]).splitlines()[-1].endswith("| 1 | 10.00 | +0.00 | yes | 4.00 |")


def test_baseline_still_training_is_refused(tmp_path, cache, capsys):
    """A sweep importing ``{arch}`` baselines while they train must not prune a half-trained checkpoint.pth.tar; a
    finished one, or a model_best.pth.tar chosen from any epoch, loads."""
    from hgprune.models import build_model
    from hgprune.models.checkpoints import load_checkpoint
    from hgprune.train.checkpointing import BEST, check_finished, save_training_checkpoint, training_payload

    model = build_model("hg1", N=8, M=16, input_size=64)

    def save(directory, epoch):
        payload = training_payload(model, epoch=epoch, best_acc=1.0, trainer_state={}, train_config={"epochs": 3})
        save_training_checkpoint(payload, tmp_path / directory, is_best=True)
        return tmp_path / directory / "checkpoint.pth.tar"

    partial = save("partial", 2)
    argv = ["run", str(TINY), "--out", str(tmp_path / "run"), "--set", "prune.steps=1", "--set",
            "finetune.final_epochs=0", "--set"]  # fmt: skip
    assert main([*argv, f"baseline.checkpoint={partial}"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"baseline.checkpoint {partial}: saved at epoch 2 of the 3" in err
    assert not (tmp_path / "run" / "metrics.csv").exists()
    best = partial.parent / BEST
    check_finished(best, load_checkpoint(best)[1]["meta"])  # the same epoch-2 weights, chosen as the best: no error
    finished = save("finished", 3)
    assert main([*argv, f"baseline.checkpoint={finished}", "--out", str(tmp_path / "run2")]) == 0


def test_sweep_refuses_an_unfinished_imported_baseline_before_any_entry_starts(tmp_path, cache, capsys):
    """With ``{arch}`` baselines, one still training (its checkpoint.pth.tar short of its planned epochs) stops the
    whole sweep at launch with a one-line error naming it: no entry directory, no log, sequential or launched."""
    from hgprune.models import build_model
    from hgprune.train.checkpointing import save_training_checkpoint, training_payload

    for arch, epoch in (("hg1", 3), ("hg2", 1)):
        model = build_model(arch, N=8, M=16, input_size=64)
        payload = training_payload(model, epoch=epoch, best_acc=1.0, trainer_state={}, train_config={"epochs": 3})
        save_training_checkpoint(payload, tmp_path / "parents" / arch, is_best=True)
    path = tmp_path / "sweep.yaml"
    path.write_text(TINY.read_text() + "sweep: {arch: [hg1, hg2], criterion: [l1], kept: [0.5]}\n")
    parent = tmp_path / "parents" / "hg2" / "checkpoint.pth.tar"
    out = tmp_path / "sweep"
    base = [
        "run",
        str(path),
        "--out",
        str(out),
        "--set",
        f"baseline.checkpoint={tmp_path}/parents/{{arch}}/checkpoint.pth.tar",
    ]
    for extra in ([], ["--launcher", "local", "--jobs", "2"], ["--only", "hg2-l1-50"]):
        assert main([*base, *extra]) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and f"baseline.checkpoint {parent}: saved at epoch 1 of the 3" in err
        assert not out.exists()
    # a parent of another width than the recipe's is refused at launch too, naming the file and the mismatch
    wide = build_model("hg2", N=8, M=32, input_size=64)
    payload = training_payload(wide, epoch=3, best_acc=1.0, trainer_state={}, train_config={"epochs": 3})
    save_training_checkpoint(payload, tmp_path / "parents" / "hg2", is_best=True)
    assert main([*base, "--launcher", "local"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"{parent}: checkpoint is hg2 N=8 M=32" in err and "(mismatch in M)" in err
    assert not out.exists()
    # hg1's parent is finished: an entry that only needs it is not held back by hg2's
    assert main([*base, "--only", "hg1-l1-50", "--set", "prune.steps=1", "--set", "finetune.final_epochs=0"]) == 0
    assert (out / "hg1-l1-50" / "final" / "model.pt").is_file() and not (out / "hg2-l1-50").exists()


def test_the_sweeps_committed_baselines_are_finished_and_match_its_recipe():
    """``recipes/sweep_hg1_hg8.yaml`` imports one baseline per architecture (``reports/sweep_hg1_hg8/parents``): each
    committed log has a row per planned epoch, and each committed checkpoint is of its architecture and the recipe's
    widths and depth and trained for every planned epoch (what the launch check would otherwise refuse hours into a
    sweep)."""
    from hgprune.models.checkpoints import load_checkpoint
    from hgprune.sweep import ARCH_FIELD
    from hgprune.train.checkpointing import check_finished

    recipe = load_recipe(ROOT / "recipes" / "sweep_hg1_hg8.yaml")
    assert recipe.sweep.arch == [f"hg{k}" for k in range(1, 9)]
    paths = {arch: ROOT / recipe.baseline.checkpoint.replace(ARCH_FIELD, arch) for arch in recipe.sweep.arch}
    for path in paths.values():  # the committed training logs
        log = pd.read_csv(path.parent / "log.csv")
        assert list(log["epoch"]) == list(range(1, recipe.baseline.train.epochs + 1)), path
    assert [str(p) for p in paths.values() if not p.is_file()] == []  # committed (issue 32): nothing to retrain
    for arch, path in paths.items():
        meta = load_checkpoint(path, expect=dataclasses.replace(recipe.model, arch=arch).hourglass_config())[1]["meta"]
        check_finished(path, meta)
        assert meta["epoch"] == meta["planned_epochs"] == recipe.baseline.train.epochs, path


def test_the_committed_sweep_entries_are_the_sweep_recipe_with_its_documented_override():
    """The 32 entries under ``reports/sweep_hg1_hg8/runs`` ran before the recipe's fine-tuning rate moved to 2.5e-3
    (study v3); the recipe header's reproduction override (lr 1e-3) gives back exactly the recipe each one recorded,
    and without it the fine-tuning rate is the only difference."""
    from hgprune.recipe import recipe_changes, recipe_from_resolved

    path = ROOT / "recipes" / "sweep_hg1_hg8.yaml"
    assert "--set finetune.train.lr=1e-3" in path.read_text()
    runs = sorted((ROOT / "reports" / "sweep_hg1_hg8" / "runs").glob("*/recipe.yaml"))
    assert len(runs) == 32
    for override, differs in (([], ["finetune.train.lr"]), (["finetune.train.lr=1e-3"], [])):
        entries = dict(expand(load_recipe(path, override)))
        for run in runs:
            recorded = recipe_from_resolved(run.read_text())
            assert recipe_changes(recorded, entries[run.parent.name]) == ([], differs), run


def test_model_depth_reaches_every_stage(tmp_path, cache, capsys):
    """model.depth (levels per hourglass) builds, prunes, fine-tunes and checkpoints a depth-3 model; the dry run and
    the sweep's scratch widths use it too; a depth the input size cannot carry is a one-line error naming the key."""
    out = tmp_path / "run"
    argv = ["run", str(TINY), "--out", str(out), "--set", "model.depth=3", "--set", "prune.steps=1"]
    assert main([*argv, "--dry-run"]) == 0
    assert main(argv) == 0
    for path in (out / "checkpoints" / "step_000.pt", out / "final" / "model.pt"):
        assert load_model(path).config.depth == 3
    assert len(load_model(out / "final" / "model.pt").hg[0].hg) == 3
    recipe = load_recipe(TINY, ["model.depth=3", "model.arch=hg2"])
    deep = load_recipe(TINY, ["model.arch=hg2"])
    from hgprune.sweep import scratch_recipe

    assert scratch_recipe(recipe, 0.5, "s").model.depth == 3
    capsys.readouterr()
    assert main(["run", str(TINY), "--out", str(tmp_path / "bad"), "--set", "model.depth=5", "--dry-run"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "model.input_size" in err and "Traceback" not in err
    assert deep.model.depth == 4  # the seed's depth stays the default


@pytest.mark.parametrize("legacy", [True, False])
def test_run_feeds_a_baseline_checkpoint_its_own_normalisation(tmp_path, cache, legacy):
    """An old hgprune checkpoint (no normalisation field: ImageNet) and a seed-normalised one are each measured,
    pruned and fine-tuned on inputs normalised their own way."""
    from hgprune.data import build_dataset
    from hgprune.models import build_model, save_model
    from hgprune.models.normalization import IMAGENET, SEED
    from hgprune.train import evaluate_model

    torch.manual_seed(0)
    model = build_model("hg1", N=8, M=16, input_size=64)
    ckpt = tmp_path / "base.pt"
    save_model(model, ckpt)
    if legacy:
        raw = torch.load(ckpt, weights_only=True)
        del raw["config"]["normalization"]
        torch.save(raw, ckpt)
    expected_norm = IMAGENET if legacy else SEED
    out = tmp_path / "run"
    argv = ["run", str(TINY), "--out", str(out), "--set", f"baseline.checkpoint={ckpt}", "--set", "prune.steps=1",
            "--set", "finetune.final_epochs=0"]  # fmt: skip
    assert main(argv) == 0
    assert load_model(out / "checkpoints" / "step_000.pt").config.normalization == expected_norm
    assert load_model(out / "final" / "model.pt").config.normalization == expected_norm
    recipe = load_recipe(TINY)
    val = build_dataset("synthpose", "val", input_size=64, synth=vars(recipe.data.synth), seed=recipe.seed,
                        normalization=expected_norm)  # fmt: skip
    rows = pd.read_csv(out / "metrics.csv")
    result = evaluate_model(model, val, batch_size=16).mpii  # differs between the two normalisations
    assert (rows.loc[0, "pckh_mean"], rows.loc[0, "auc"]) == pytest.approx((result.mean, result.auc), abs=1e-3)


def test_a_missing_cuda_device_is_refused_before_anything_is_written(tmp_path, cache, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    out = tmp_path / "run"
    assert main(["run", str(TINY), "--out", str(out), "--set", "device=cuda"]) == 2
    err = capsys.readouterr().err
    assert "no CUDA device is available" in err and err.count("\n") == 1
    assert not (out / "run.json").exists() and not (out / "recipe.yaml").exists()


def test_dry_run_of_an_mpii_recipe_needs_images_not_annotations(tmp_path, capsys):
    """Annotations default to the file hgprune ships (as in the seed); the image folder is what must be given."""
    argv = ["run", str(TINY), "--dry-run", "--set", "data.dataset=mpii"]
    assert main([*argv, "--set", f"data.image_path={tmp_path}"]) == 0
    assert main(argv) == 2
    assert "data.image_path is required for dataset mpii" in capsys.readouterr().err
