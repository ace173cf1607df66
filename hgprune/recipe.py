"""Recipes: YAML → frozen dataclasses, validated with the key path of every error.

``yaml.safe_load`` only (no Python object tags); unknown keys fail with a close-match suggestion; wrong types and
out-of-range values fail with ``section.key: must be …, got …``. ``--set key.path=value`` overrides go through the
same checks because they are applied to the raw mapping before validation.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from hgprune.errors import HgpruneError


def _check(rule: str, test) -> dict:
    return {"rule": rule, "test": test}


def _positive() -> dict:
    return _check("must be > 0", lambda v: v > 0)


def _non_negative() -> dict:
    return _check("must be >= 0", lambda v: v >= 0)


def _fraction() -> dict:
    return _check("must be in (0, 1]", lambda v: 0 < v <= 1)


@dataclass(frozen=True)
class ModelSection:
    arch: Literal["hg1", "hg2", "hg3", "hg4", "hg5", "hg6", "hg7", "hg8"] = "hg2"
    N: int = field(default=128, metadata=_check("must be an even integer >= 2", lambda v: v >= 2 and v % 2 == 0))
    M: int = field(default=256, metadata=_check("must be an even integer >= 2", lambda v: v >= 2 and v % 2 == 0))
    num_joints: int = field(default=16, metadata=_positive())
    input_size: int = field(
        default=256, metadata=_check("must be a positive multiple of 64", lambda v: v > 0 and v % 64 == 0)
    )
    # input normalisation of a baseline trained here (a baseline checkpoint brings its own): see models/normalization
    normalization: Literal["seed", "imagenet"] = "seed"


@dataclass(frozen=True)
class TrainSection:
    """Optimisation settings shared by baseline training and fine-tuning (seed defaults: RMSprop 2.5e-4)."""

    epochs: int = field(default=0, metadata=_non_negative())
    lr: float = field(default=2.5e-4, metadata=_positive())
    momentum: float = field(default=0.0, metadata=_check("must be in [0, 1)", lambda v: 0 <= v < 1))
    weight_decay: float = field(default=0.0, metadata=_non_negative())
    schedule: list[int] = field(default_factory=list)
    gamma: float = field(default=0.1, metadata=_positive())
    batch_size: int = field(default=6, metadata=_positive())


@dataclass(frozen=True)
class BaselineSection:
    checkpoint: str | None = None  # hgprune or seed checkpoint; None = train from scratch with `train`
    train: TrainSection = field(default_factory=lambda: TrainSection(epochs=10, lr=2.5e-4))


@dataclass(frozen=True)
class SynthSection:
    # defaults = hgprune.data.synthpose.SynthConfig's (a test keeps them equal), which documents each field
    num_train: int = field(default=4000, metadata=_positive())
    num_val: int = field(default=500, metadata=_positive())
    size: int = field(default=128, metadata=_check("must be >= 32", lambda v: v >= 32))
    seed: int = 0
    max_rotation: float = field(default=15.0, metadata=_check("must be in [0, 180]", lambda v: 0 <= v <= 180))
    occlusion_prob: float = field(default=0.2, metadata=_check("must be in [0, 1]", lambda v: 0 <= v <= 1))
    max_distractors: int = field(default=1, metadata=_non_negative())
    clutter: int = field(default=4, metadata=_non_negative())
    noise: float = field(default=3.0, metadata=_non_negative())


@dataclass(frozen=True)
class DataSection:
    dataset: Literal["synthpose", "mpii"] = "synthpose"
    annotations: str | None = None  # MPII annotation JSON (seed or HRNet layout)
    image_path: str | None = None  # MPII images directory
    gt_mat: str | None = None  # gt_valid.mat-layout file with head boxes for the validation split
    cache_dir: str | None = None  # where SynthPose is generated once (default $HGPRUNE_CACHE or ~/.cache/hgprune)
    synth: SynthSection = field(default_factory=SynthSection)
    workers: int = field(default=0, metadata=_non_negative())
    augment: bool = True  # the seed's augmentation on the training split (scale, rotation, flip, colour)
    target_weight: Literal["visible", "annotated"] = "visible"  # joint loss weights (hgprune.data.TARGET_WEIGHTS)
    calibration_batches: int = field(default=4, metadata=_non_negative())
    val_limit: int | None = field(default=None, metadata=_check("must be > 0", lambda v: v is None or v > 0))


@dataclass(frozen=True)
class TargetSection:
    kind: Literal["macs", "params", "channels"] = "macs"
    kept: float = field(default=0.5, metadata=_fraction())


@dataclass(frozen=True)
class PruneSection:
    criterion: str = "l1"  # a registered name or package.module:Class
    target: TargetSection = field(default_factory=TargetSection)
    steps: int = field(default=2, metadata=_check("must be >= 0 (0 = no pruning)", lambda v: v >= 0))
    schedule: Literal["linear", "cubic"] = "linear"
    global_ranking: bool = True
    prune_trunk: bool = False
    round_to: int = field(default=8, metadata=_check("must be >= 1", lambda v: v >= 1))
    round_mode: Literal["nearest", "down", "up"] = "nearest"
    max_layer_ratio: float = field(default=0.9, metadata=_fraction())
    part_ratios: dict[str, float] = field(default_factory=dict)
    tolerance: float = field(default=0.02, metadata=_check("must be in (0, 0.5]", lambda v: 0 < v <= 0.5))


@dataclass(frozen=True)
class DistillSection:
    weight: float = field(default=0.0, metadata=_non_negative())


@dataclass(frozen=True)
class FinetuneSection:
    epochs_per_step: int = field(default=1, metadata=_non_negative())
    final_epochs: int = field(default=0, metadata=_non_negative())
    train: TrainSection = field(default_factory=TrainSection)
    bn_l1: float = field(default=0.0, metadata=_non_negative())
    distill: DistillSection = field(default_factory=DistillSection)


@dataclass(frozen=True)
class EvalSection:
    batch_size: int = field(default=32, metadata=_positive())
    flip_test: bool = False


@dataclass(frozen=True)
class ProfileSection:
    latency: bool = True
    repeats: int = field(default=5, metadata=_positive())
    warmup: int = field(default=1, metadata=_non_negative())
    threads: int | None = field(default=None, metadata=_check("must be > 0", lambda v: v is None or v > 0))
    input_size: int | None = None  # default: model.input_size
    thop: bool = True


@dataclass(frozen=True)
class ExportSection:
    formats: list[Literal["hgprune", "torchscript", "onnx"]] = field(default_factory=lambda: ["hgprune"])


@dataclass(frozen=True)
class OutputSection:
    dir: str | None = None  # default runs/<name>
    keep_step_checkpoints: bool = True


@dataclass(frozen=True)
class SweepSection:
    """A grid of runs sharing everything else: every arch × criterion × kept fraction (+ from-scratch baselines)."""

    arch: list[str] = field(default_factory=list)
    criterion: list[str] = field(default_factory=list)
    kept: list[float] = field(default_factory=list)
    scratch: bool = False  # also train uniformly narrower N/M models from scratch at each budget (the seed's approach)


@dataclass(frozen=True)
class Recipe:
    name: str = "run"
    seed: int = 0
    device: str = "cpu"
    model: ModelSection = field(default_factory=ModelSection)
    baseline: BaselineSection = field(default_factory=BaselineSection)
    data: DataSection = field(default_factory=DataSection)
    prune: PruneSection = field(default_factory=PruneSection)
    finetune: FinetuneSection = field(default_factory=FinetuneSection)
    eval: EvalSection = field(default_factory=EvalSection)
    profile: ProfileSection = field(default_factory=ProfileSection)
    export: ExportSection = field(default_factory=ExportSection)
    output: OutputSection = field(default_factory=OutputSection)
    sweep: SweepSection | None = None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# ---------------------------------------------------------------------------------------------------------------
# Building dataclasses from plain mappings, with the key path in every error.


_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is list:
        return f"a list of {_type_name(typing.get_args(tp)[0])}"
    if origin is dict:
        return f"a mapping of {_type_name(typing.get_args(tp)[1])}"
    if tp is type(None):
        return "null"
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string"}.get(tp, str(tp))


def _convert(value: Any, tp: Any, path: str) -> Any:
    origin = typing.get_origin(tp)
    shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:77] + "..."
    fail = HgpruneError(f"{path}: must be {_type_name(tp)}, got {shown}")
    if origin is Literal:
        if value not in typing.get_args(tp):
            raise fail
        return value
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None:
            if type(None) in args:
                return None
            raise fail
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(value, arg, path)
            except HgpruneError:
                continue
        raise fail
    if dataclasses.is_dataclass(tp):
        if value is None:
            return tp()
        if not isinstance(value, dict):
            raise fail
        return build(tp, value, path)
    if origin is list:
        if not isinstance(value, list):
            raise fail
        (item,) = typing.get_args(tp)
        return [_convert(v, item, f"{path}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise fail
        key_tp, val_tp = typing.get_args(tp)
        return {_convert(k, key_tp, path): _convert(v, val_tp, f"{path}.{_printable(k)}") for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            raise fail
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise fail
        return value
    if tp is float:
        if isinstance(value, str) and _FLOAT.fullmatch(value.strip()):
            return float(value)  # PyYAML reads 1e-3 (no dot) as a string
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise fail
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise fail
        return value
    raise fail


def _printable(key: Any) -> str:
    """A key as it can appear inside a one-line message (odd keys — newlines, non-strings — are quoted)."""
    return key if isinstance(key, str) and key and key.isprintable() and key.strip() == key else repr(key)


def build(cls: type, raw: dict, path: str = "") -> Any:
    """Build dataclass ``cls`` from ``raw``; every problem is reported with its dotted key path."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in raw:
        if key not in fields:
            where = f"{path}.{_printable(key)}" if path else _printable(key)
            close = difflib.get_close_matches(str(key), fields, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; valid keys: {', '.join(fields)}"
            raise HgpruneError(f"{where}: unknown key{hint}")
    kwargs = {}
    for name, value in raw.items():
        where = f"{path}.{name}" if path else name
        converted = _convert(value, hints[name], where)
        check = fields[name].metadata.get("test")
        if check is not None and converted is not None and not check(converted):
            raise HgpruneError(f"{where}: {fields[name].metadata['rule']}, got {value!r}")
        kwargs[name] = converted
    return cls(**kwargs)


# ---------------------------------------------------------------------------------------------------------------
# Files and overrides.


def read_yaml(path: str | Path) -> dict:
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise HgpruneError(f"{path}: no such recipe file") from None
    except (IsADirectoryError, PermissionError, UnicodeDecodeError) as exc:
        raise HgpruneError(f"{path}: cannot read recipe ({type(exc).__name__})") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.constructor.ConstructorError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else "?"
        raise HgpruneError(
            f"{path}:{line}: YAML tag not allowed ({exc.problem}); recipes hold plain values only"
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise HgpruneError(f"{path}{line}: invalid YAML ({problem})") from None
    if raw is None:
        raise HgpruneError(f"{path}: recipe is empty")
    if not isinstance(raw, dict):
        raise HgpruneError(f"{path}: recipe must be a mapping of sections, got {type(raw).__name__}")
    return raw


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    """Apply ``key.path=value`` strings (values parsed as YAML scalars/lists) to a copy of ``raw``."""
    import copy

    raw = copy.deepcopy(raw)
    for item in overrides:
        if "=" not in item:
            raise HgpruneError(f"--set {item!r}: expected key.path=value")
        key_path, text = item.split("=", 1)
        try:
            value = yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError:
            raise HgpruneError(f"--set {key_path}: value {text!r} is not valid YAML") from None
        _set_path(raw, key_path.strip(), value)
    return raw


def _set_path(raw: dict, key_path: str, value: Any) -> None:
    keys = key_path.split(".")
    cls: Any = Recipe
    node = raw
    for depth, key in enumerate(keys):
        fields = {f.name: f for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else {}
        is_free_mapping = typing.get_origin(cls) is dict
        if not is_free_mapping and key not in fields:
            where = ".".join(keys[: depth + 1])
            close = difflib.get_close_matches(key, fields, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise HgpruneError(f"--set {key_path}: no such key {where!r}{hint}")
        if depth == len(keys) - 1:
            node[key] = value
            return
        next_cls = typing.get_args(cls)[1] if is_free_mapping else typing.get_type_hints(cls)[key]
        if typing.get_origin(next_cls) in (typing.Union, types.UnionType):
            next_cls = next(a for a in typing.get_args(next_cls) if a is not type(None))
        child = node.get(key)
        if child is None:
            child = node[key] = {}
        if not isinstance(child, dict):
            raise HgpruneError(f"--set {key_path}: {'.'.join(keys[: depth + 1])} is not a mapping")
        node, cls = child, next_cls


def load_recipe(path: str | Path, overrides: list[str] | None = None) -> Recipe:
    """Read, override and validate a recipe file; errors name the file and the key path."""
    raw = apply_overrides(read_yaml(path), overrides or [])
    try:
        recipe = build(Recipe, raw)
    except HgpruneError as exc:
        raise HgpruneError(f"{path}: {exc}") from None
    if recipe.name == "run":
        recipe = dataclasses.replace(recipe, name=Path(path).stem)
    return recipe


def dump_recipe(recipe: Recipe, version: str) -> str:
    """The resolved recipe as YAML, stamped with the hgprune version that ran it."""
    header = f"# resolved recipe, written by hgprune {version}\n"
    return header + yaml.safe_dump({"hgprune_version": version, **recipe.to_dict()}, sort_keys=False)


def recipe_from_resolved(text: str) -> Recipe:
    raw = yaml.safe_load(text)
    raw.pop("hgprune_version", None)
    return build(Recipe, raw)
