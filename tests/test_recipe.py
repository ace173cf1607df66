import dataclasses
import textwrap

import pytest
import yaml

from hgprune.errors import HgpruneError
from hgprune.recipe import Recipe, apply_overrides, build, dump_recipe, load_recipe, recipe_from_resolved


def write(tmp_path, text: str, name: str = "r.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_defaults_and_values(tmp_path):
    path = write(tmp_path, "model: {arch: hg3, N: 64}\nprune: {target: {kind: params, kept: 0.3}, steps: 3}\n")
    recipe = load_recipe(path)
    assert recipe.name == "r"  # from the file name when not given
    assert (recipe.model.arch, recipe.model.N, recipe.model.M) == ("hg3", 64, 256)
    assert recipe.prune.target.kind == "params" and recipe.prune.target.kept == 0.3 and recipe.prune.steps == 3
    with pytest.raises(dataclasses.FrozenInstanceError):
        recipe.model.N = 3


@pytest.mark.parametrize(
    "text, match",
    [
        ("", "recipe is empty"),
        ("- 1\n- 2\n", "must be a mapping"),
        ("model: {arch: hg2\n", r"r.yaml:\d+: invalid YAML"),
        ("model:\n  arch: hg2\n   N: 3\n", r"r.yaml:3: invalid YAML"),
        ("modle: {arch: hg2}\n", "modle: unknown key; did you mean 'model'"),
        ('"a\\nb": 1\n', r"'a\\nb': unknown key"),  # found by the fuzzer: keys are quoted, messages stay one line
        ("prune: {targte: {kept: 0.5}}\n", "prune.targte: unknown key; did you mean 'target'"),
        ("model: {N: sixty}\n", "model.N: must be an integer, got 'sixty'"),
        ("model: {N: 7}\n", "model.N: must be an even integer >= 2, got 7"),
        ("model: {arch: hg9}\n", "model.arch: must be one of 'hg1'"),
        ("prune: {target: {kept: 1.5}}\n", r"prune.target.kept: must be in \(0, 1\], got 1.5"),
        ("prune: {target: {kind: flops}}\n", "prune.target.kind: must be one of 'macs', 'params', 'channels'"),
        ("finetune: {train: {lr: -1}}\n", r"finetune.train.lr: must be in \(0, 1e\+30\], got -1"),
        ("eval: {flip_test: 3}\n", "eval.flip_test: must be true or false"),
        ("model: !!python/object/apply:os.system [echo hi]\n", "YAML tag not allowed"),
        ("data: {dataset: coco}\n", "data.dataset: must be one of 'synthpose', 'mpii'"),
    ],
)
def test_bad_recipes_fail_with_key_path(tmp_path, text, match):
    path = write(tmp_path, text)
    with pytest.raises(HgpruneError, match=match) as err:
        load_recipe(path)
    message = str(err.value)
    assert str(path) in message and "\n" not in message


def test_python_tag_is_never_constructed(tmp_path):
    marker = tmp_path / "ran"
    path = write(
        tmp_path, f"name: !!python/object/apply:pathlib.Path.touch [!!python/object/apply:pathlib.Path ['{marker}']]\n"
    )
    with pytest.raises(HgpruneError, match="YAML tag not allowed"):
        load_recipe(path)
    assert not marker.exists()


def test_missing_file(tmp_path):
    with pytest.raises(HgpruneError, match="no such recipe file"):
        load_recipe(tmp_path / "nope.yaml")


def test_overrides_are_type_checked(tmp_path):
    path = write(tmp_path, "model: {arch: hg2}\n")
    recipe = load_recipe(path, ["prune.target.kept=0.25", "finetune.train.lr=1e-3", "prune.part_ratios.stem=0.1"])
    assert recipe.prune.target.kept == 0.25 and recipe.finetune.train.lr == 1e-3
    assert recipe.prune.part_ratios == {"stem": 0.1}
    with pytest.raises(HgpruneError, match=r"prune.target.kept: must be in \(0, 1\], got 2"):
        load_recipe(path, ["prune.target.kept=2"])
    with pytest.raises(HgpruneError, match="--set prune.targt.kept: no such key 'prune.targt'; did you mean 'target'"):
        load_recipe(path, ["prune.targt.kept=0.5"])
    with pytest.raises(HgpruneError, match="expected key.path=value"):
        apply_overrides({}, ["prune.steps"])
    with pytest.raises(HgpruneError, match="model.N: must be an integer"):
        load_recipe(path, ["model.N=[1, 2]"])


def test_resolved_recipe_round_trips():
    recipe = build(Recipe, {"name": "x", "prune": {"part_ratios": {"hg0": 0.3}}, "export": {"formats": ["onnx"]}})
    text = dump_recipe(recipe, "9.9")
    assert yaml.safe_load(text)["hgprune_version"] == "9.9"
    assert recipe_from_resolved(text) == recipe


def test_synth_section_defaults_are_synthpose_defaults():
    """A recipe that says nothing about difficulty gets the same SynthPose as `hgprune data synth` and `train`."""
    from hgprune.data.synthpose import SynthConfig

    section = Recipe().data.synth
    for field in dataclasses.fields(section):
        assert getattr(section, field.name) == getattr(SynthConfig(), field.name), field.name


def test_recorded_recipes_drop_unset_keys_of_earlier_versions_and_resume_compares_the_rest():
    from hgprune.recipe import recipe_changes

    old = recipe_from_resolved("hgprune_version: 0.1\nname: r\nprune: {global_ranking: null, steps: 2}\n")
    assert old.prune.steps == 2 and old.prune.allocation == "uniform"
    with pytest.raises(HgpruneError, match="prune.global_ranking: unknown key"):
        recipe_from_resolved("name: r\nprune: {global_ranking: true}\n")
    new = dataclasses.replace(old, export=dataclasses.replace(old.export, formats=["hgprune", "onnx"]))
    new = dataclasses.replace(new, prune=dataclasses.replace(new.prune, steps=5))
    assert recipe_changes(old, new) == (["export.formats"], ["prune.steps"])
