"""One definition per setting (hgprune.settings): the drift cases it fixed, and bounds on every number (issue 34)."""

from __future__ import annotations

import ast
import dataclasses
import inspect
from pathlib import Path

import pytest

from hgprune.cli import main
from hgprune.errors import HgpruneError
from hgprune.models import build_preset
from hgprune.prune import prune_to_target
from hgprune.prune.engine import prune_options, prune_with
from hgprune.recipe import PruneSection, Recipe, build, load_recipe
from hgprune.settings import SearchSettings, SynthSection, TrainSection, field_types, flag
from tests.train.fakes import TinyPoseDataset

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests" / "recipes" / "tiny.yaml"
SMALL_SEARCH = SearchSettings(candidates=3, batches=1, holdout=4, batch_size=4)


def cli_error(capsys, argv: list[str], *needles: str) -> str:
    """Exit 2 with one line on stderr, no traceback, containing every needle."""
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err and len(err) < 400, err[:400]
    for needle in needles:
        assert needle in err, err
    return err


# -- drift cases (issue 35) ------------------------------------------------------------------------------------


def test_mps_is_refused_by_the_recipe_as_by_training(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("device: mps\n")
    with pytest.raises(HgpruneError, match=r"r.yaml: device: must be cpu, cuda or cuda:<index>, got 'mps'"):
        load_recipe(path)
    assert load_recipe(path, ["device=cuda:1"]).device == "cuda:1"


def test_dry_run_derives_mpii_images_from_the_annotations_folder_as_the_run_does(tmp_path, capsys):
    annotations = tmp_path / "mpii.json"
    argv = ["run", str(TINY), "--dry-run", "--set", "data.dataset=mpii"]
    assert main([*argv, "--set", f"data.annotations={annotations}"]) == 0
    out = capsys.readouterr().out
    assert f"data.image_path {tmp_path / 'images'} does not exist here" in out
    cli_error(capsys, argv, "data.image_path is required for dataset mpii with the shipped annotations")


def test_engine_defaults_are_the_recipe_defaults():
    defaults = PruneSection()
    params = inspect.signature(prune_to_target).parameters
    for name in ("allocation", "round_to", "round_mode", "max_layer_ratio", "tolerance", "prune_trunk"):
        assert params[name].default == getattr(defaults, name), name
    assert params["round_to"].default == 16 and defaults.recalibrate_bn is True
    doc = prune_to_target.__doc__
    assert "global_ranking" not in doc and "neither → ``global``" not in doc


def test_engine_recalibrates_batchnorm_by_default_when_it_has_training_data():
    data = TinyPoseDataset(12, augment=False)
    result = prune_to_target(
        build_preset("tiny"), criterion="l1", kept=0.6, input_size=64, round_to=1, search=SMALL_SEARCH, train_set=data
    )
    assert result.bn_recalibrated
    result = prune_to_target(build_preset("tiny"), criterion="l1", kept=0.6, input_size=64, round_to=1)
    assert not result.bn_recalibrated  # nothing to re-estimate with
    with pytest.raises(HgpruneError, match="need the training split"):
        prune_to_target(build_preset("tiny"), criterion="l1", kept=0.6, input_size=64, recalibrate_bn=True)


@pytest.mark.parametrize("tolerance", [0.6, 0.0, float("inf"), float("nan")])
def test_engine_tolerance_has_the_recipe_bounds(tolerance):
    with pytest.raises(HgpruneError, match=r"prune.tolerance: must be in \(0, 0.5\]"):
        prune_to_target(build_preset("tiny"), criterion="l1", kept=0.5, input_size=64, tolerance=tolerance)


def test_prune_with_and_the_dry_run_preview_take_every_engine_option_from_one_mapping(monkeypatch):
    from hgprune.preview import preview_key
    from hgprune.prune import engine

    seen = {}
    monkeypatch.setattr(engine, "prune_to_target", lambda model, **kwargs: seen.update(kwargs))
    section = build(PruneSection, {"round_to": 4, "part_ratios": {"stem": 0.5}, "tolerance": 0.1})
    prune_with(None, section, kept=0.5, criterion="l1", reference=None, input_size=64)
    assert {k: seen[k] for k in prune_options(section)} == prune_options(section)
    base = Recipe()
    key = preview_key(base)
    changes = {"round_to": 8, "round_mode": "up", "max_layer_ratio": 0.5, "tolerance": 0.1, "prune_trunk": True}
    changes.update(part_ratios={"stem": 0.5})
    for name, value in changes.items():
        changed = dataclasses.replace(base, prune=dataclasses.replace(base.prune, **{name: value}))
        assert preview_key(changed) != key, name
    assert preview_key(dataclasses.replace(base, prune=dataclasses.replace(base.prune, criterion="l1"))) == key


def test_library_options_are_the_recipe_sections():
    from hgprune.data.synthpose import SynthConfig
    from hgprune.prune.allocation import SearchSettings as EngineSearch
    from hgprune.train import TrainConfig

    assert EngineSearch is type(Recipe().prune.search)
    assert issubclass(SynthConfig, SynthSection) and issubclass(TrainConfig, TrainSection)
    for name in ("lr", "gamma", "momentum", "weight_decay", "batch_size", "precise_bn"):
        assert field_types(TrainConfig)[name] == field_types(TrainSection)[name], name


def test_prune_and_train_do_not_import_each_other_and_the_search_leaves_the_dataset_alone():
    package = ROOT / "hgprune"
    for path in (package / "train").glob("*.py"):
        imported = [n.module or "" for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.ImportFrom)]
        assert not any(m.startswith("hgprune.prune") for m in imported), path
    tree = ast.parse((package / "prune" / "allocation.py").read_text())
    local = [n for f in ast.walk(tree) if isinstance(f, ast.FunctionDef) for n in ast.walk(f)]
    assert not any(isinstance(n, (ast.Import, ast.ImportFrom)) and "train" in ast.dump(n) for n in local)

    class Watched(TinyPoseDataset):
        writes: list = []

        def __setattr__(self, name, value):
            if name == "augment" and "augment" in self.__dict__:
                Watched.writes.append((id(self), value))
            super().__setattr__(name, value)

    data = Watched(16, augment=True)
    prune_to_target(
        build_preset("tiny"), criterion="l1", kept=0.6, input_size=64, round_to=1, allocation="search",
        search=SMALL_SEARCH, train_set=data, progress=False,
    )  # fmt: skip
    assert Watched.writes and all(who != id(data) for who, _ in Watched.writes)  # copies only
    assert data.augment is True


def test_the_deprecated_global_ranking_key_is_gone(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("prune: {global_ranking: true}\n")
    with pytest.raises(HgpruneError, match="prune.global_ranking: unknown key"):
        load_recipe(path)


@pytest.mark.parametrize(
    "text, message",
    [
        ('"[": null\n', "[: unknown key; valid keys: name,"),  # found by the fuzz test in CI
        ("prune: {'[x]': 1}\n", "prune.[x]: unknown key; valid keys: criterion,"),
        ("prune: {'a[b]': 1}\n", "prune.a[b]: unknown key"),
        ("prune: {part_ratios: {'[': x}}\n", "prune.part_ratios.[: must be a number, got 'x'"),
    ],
)
def test_keys_with_brackets_are_named_as_written(tmp_path, text, message):
    path = tmp_path / "r.yaml"
    path.write_text(text)
    with pytest.raises(HgpruneError) as info:
        load_recipe(path)
    assert str(info.value).startswith(f"{path}: {message}")


# -- bounds on every number (issue 34, pattern 1) --------------------------------------------------------------


@pytest.mark.parametrize(
    "override, key",
    [
        ("data.synth.seed=-1", "data.synth.seed: must be in [0, 4294967295]"),
        ("data.synth.noise=.inf", "data.synth.noise: must be in [0, 255]"),
        ("data.synth.num_train=1000000000000", "data.synth.num_train: must be in [1, 10000000]"),
        ("data.synth.num_train=1e12", "data.synth.num_train: must be an integer"),
        ("finetune.train.lr=.inf", "finetune.train.lr: must be in (0, 1e+30], got inf"),
        ("baseline.train.gamma=.inf", "baseline.train.gamma"),
        ("finetune.train.weight_decay=.nan", "finetune.train.weight_decay"),
        ("finetune.bn_l1=.inf", "finetune.bn_l1"),
        ("finetune.distill.weight=1e400", "finetune.distill.weight"),
        ("prune.steps=1000000000", "prune.steps: must be in [0, 1000]"),
        ("prune.part_ratios.stem=.nan", "prune.part_ratios.stem"),
        ("prune.search.candidates=100000", "prune.search.candidates"),
        ("profile.threads=100000", "profile.threads: must be in [1, 1024]"),
        ("eval.batch_size=0", "eval.batch_size"),
        ("sweep.kept=[.inf]", "sweep.kept[0]"),
        ("seed=-1", "seed: must be in [0, 4294967295]"),
        ("finetune.train.schedule=[-1]", "finetune.train.schedule[0]"),
        ("prune.target.budget_ms=5", "prune.target.budget_ms: applies to kind latency only"),
    ],
)
def test_every_recipe_number_is_bounded_and_finite_before_any_work(override, key, capsys):
    cli_error(capsys, ["run", str(TINY), "--dry-run", "--set", override], key)


def test_new_keys_validate_with_their_defaults(tmp_path):
    recipe = load_recipe(TINY, ["prune.depth=blocks", "prune.target.kind=latency", "prune.target.budget_ms=12.5"])
    assert (recipe.prune.depth, recipe.prune.target.budget_ms, recipe.prune.target.runtime) == ("blocks", 12.5, "ort")
    assert Recipe().prune.depth == "none" and Recipe().prune.target.kind == "macs"
    with pytest.raises(HgpruneError, match="prune.depth: must be one of 'none', 'blocks', 'stacks', 'all'"):
        load_recipe(TINY, ["prune.depth=some"])


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["train", "--seed", "-1"], "--seed: must be in [0, 4294967295], got -1"),
        (["train", "--lr", "inf"], "--learning-rate: must be in (0, 1e+30], got inf"),
        (["train", "--schedule", "10", "-3"], "--schedule: must be in [0, 100000], got -3"),
        (["train", "--epochs", "1e9"], "--epochs: must be an integer"),
        (["profile", "--threads", "1000000000000"], "--threads: must be in [1, 1024]"),
        (["predict", "m.onnx", "a.jpg", "--out", "o", "--threads", "100000"], "--threads: must be in [1, 1024]"),
        (["run", "r.yaml", "--launcher", "local", "--jobs", "1000000000"], "--jobs: must be in [1, 1024]"),
        (["export", "m.pt", "--format", "onnx", "--max-pckh-drop", "nan"], "--max-pckh-drop: must be in [0, 100]"),
        (["data", "synth", "--out", "o", "--num-train", "1000000000000"], "--num-train: must be in [1, 10000000]"),
        (["sensitivity", "r.yaml", "--ratios", "0.5", "nan"], "--ratios: must be in (0, 1]"),
        (["pckh", "gt.mat", "--threshold=-inf"], "--threshold: must be in (0, 10], got -inf"),
    ],
)
def test_every_numeric_flag_is_bounded_and_finite(argv, needle, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cli_error(capsys, argv, needle)
    assert list(tmp_path.iterdir()) == []


def test_flags_that_mirror_settings_take_their_defaults_and_bounds():
    from hgprune.commands import train
    from hgprune.train import TrainConfig

    parser = __import__("argparse").ArgumentParser()
    train.add_arguments(parser)
    args = parser.parse_args([])
    assert (args.lr, args.gamma, args.train_batch, args.schedule) == (2.5e-4, 0.1, 6, [60, 90])
    assert args.lr == TrainConfig().lr and args.schedule == list(TrainConfig().schedule)
    assert flag(field_types(TrainSection)["lr"])["type"]("0.5") == 0.5


@pytest.mark.parametrize(
    "make, needle",
    [
        (
            lambda: __import__("hgprune.train", fromlist=["TrainConfig"]).TrainConfig(epochs=1, lr=float("inf")),
            "train.lr",
        ),
        (lambda: __import__("hgprune.train", fromlist=["TrainConfig"]).TrainConfig(seed=-1), "train.seed"),
        (lambda: __import__("hgprune.data.synthpose", fromlist=["x"]).SynthConfig(noise=float("inf")), "synth.noise"),
        (lambda: __import__("hgprune.data.synthpose", fromlist=["x"]).SynthConfig(seed=-1), "synth.seed"),
        (lambda: SearchSettings(holdout=10**12), "prune.search.holdout"),
    ],
)
def test_library_options_refuse_out_of_range_values_with_the_key(make, needle):
    with pytest.raises(HgpruneError, match=needle):
        make()


def test_a_bad_sensitivity_file_is_refused_before_any_work(tmp_path, capsys):
    bad = tmp_path / "s.csv"
    bad.write_text("part,ratio\nstem,0.5\n")
    argv = ["run", str(TINY), "--out", str(tmp_path / "run"), "--set", "prune.allocation=search"]
    cli_error(capsys, [*argv, "--set", f"prune.search.sensitivity={bad}"], "prune.search.sensitivity", "pckh_drop")
    assert not (tmp_path / "run" / "recipe.yaml").exists()
    cli_error(capsys, [*argv, "--dry-run", "--set", f"prune.search.sensitivity={tmp_path / 'no.csv'}"], "cannot read")
