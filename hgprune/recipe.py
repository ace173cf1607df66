"""Recipes: YAML → frozen dataclasses, validated with the key path of every error.

``yaml.safe_load`` only (no Python object tags); unknown keys fail with a close-match suggestion; wrong types and
out-of-range values fail with ``section.key: must be …, got …``. ``--set key.path=value`` overrides go through the
same checks because they are applied to the raw mapping before validation.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import re
import reprlib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from hgprune.errors import HgpruneError
from hgprune.models.hourglass import ARCHS, CONFIG_LIMITS, HourglassConfig, check_input_size, parse_arch
from hgprune.prune.allocation import resolve_allocation
from hgprune.prune.depth import get_importance
from hgprune.prune.targets import SCHEDULES

MAX_INPUT, MAX_JOINTS = CONFIG_LIMITS["input_size"], CONFIG_LIMITS["num_joints"]  # the model's own bounds
MAX_DEPTH = CONFIG_LIMITS["depth"]


def _check(rule: str, test) -> dict:
    return {"rule": rule, "test": test}


def _positive() -> dict:
    return _check("must be > 0", lambda v: v > 0)


def _non_negative() -> dict:
    return _check("must be >= 0", lambda v: v >= 0)


def _valid_input_size(size: int) -> bool:
    try:
        return check_input_size(size) == size and size <= MAX_INPUT
    except HgpruneError:
        return False


def _finite_multipliers(ratios: dict) -> bool:
    return all(0 <= v < float("inf") for v in ratios.values())  # NaN fails both comparisons


def _fraction() -> dict:
    return _check("must be in (0, 1]", lambda v: 0 < v <= 1)


@dataclass(frozen=True)
class ModelSection:
    arch: Literal[ARCHS] = "hg2"  # the architecture registry (hgprune.models.ARCHITECTURES)
    N: int = field(default=128, metadata=_check("must be an even integer >= 2", lambda v: v >= 2 and v % 2 == 0))
    M: int = field(default=256, metadata=_check("must be an even integer >= 2", lambda v: v >= 2 and v % 2 == 0))
    num_joints: int = field(
        default=16, metadata=_check(f"must be in [1, {MAX_JOINTS}]", lambda v: 1 <= v <= MAX_JOINTS)
    )
    input_size: int = field(
        default=256, metadata=_check(f"must be a positive multiple of 64, at most {MAX_INPUT}", _valid_input_size)
    )
    # levels per hourglass (the seed: 4). Each halves the resolution: a 64-px input's 16x16 features reach 1x1 at
    # depth 4, where BatchNorm sees one value per image; depth 3 stops at 2x2. Depth d needs input_size % 2**(d+2) = 0.
    depth: int = field(default=4, metadata=_check(f"must be in [1, {MAX_DEPTH}]", lambda v: 1 <= v <= MAX_DEPTH))
    # input normalisation of a baseline trained here (a baseline checkpoint brings its own): see models/normalization
    normalization: Literal["seed", "imagenet"] = "seed"

    def hourglass_config(self) -> HourglassConfig:
        """The architecture this section describes: what a new baseline is built as and an imported one must be."""
        return HourglassConfig(
            num_stacks=parse_arch(self.arch),
            N=self.N,
            M=self.M,
            num_joints=self.num_joints,
            depth=self.depth,
            input_size=self.input_size,
            normalization=self.normalization,
        )


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
    precise_bn: int = field(default=0, metadata=_non_negative())  # batches; TrainConfig.precise_bn


@dataclass(frozen=True)
class BaselineSection:
    checkpoint: str | None = None  # hgprune or seed checkpoint; None = train from scratch with `train`
    train: TrainSection = field(default_factory=lambda: TrainSection(epochs=10, lr=2.5e-4))


@dataclass(frozen=True)
class SynthSection:
    # defaults = hgprune.data.synthpose.SynthConfig's (a test keeps them equal), which documents each field
    num_train: int = field(default=4000, metadata=_positive())
    num_val: int = field(default=500, metadata=_positive())
    size: int = field(default=128, metadata=_check("must be in [32, 4096]", lambda v: 32 <= v <= 4096))
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
class SearchSection:
    """Bounds of ``prune.allocation: search`` (defaults = hgprune.prune.allocation.SearchSettings'; a test keeps
    them equal). Candidates are scored on the training split only, never on validation data."""

    candidates: int = field(default=12, metadata=_positive())  # allocations scored, uniform and global included
    batches: int = field(default=4, metadata=_positive())  # training batches for BatchNorm re-estimation
    holdout: int = field(default=256, metadata=_positive())  # training samples that score each candidate
    batch_size: int = field(default=16, metadata=_positive())
    sensitivity: str | None = None  # `hgprune sensitivity` CSV: less sensitive parts are sampled to lose more


@dataclass(frozen=True)
class PruneSection:
    # a registered name or package.module:Class; taylor is the default recipe's (reports/benchmarks/accuracy.md)
    criterion: str = "taylor"
    target: TargetSection = field(default_factory=TargetSection)
    steps: int = field(default=2, metadata=_check("must be >= 0 (0 = no pruning)", lambda v: v >= 0))
    schedule: Literal[SCHEDULES] = "linear"
    # which group keeps how many channels (hgprune.prune.allocation); null = its ALLOCATION_DEFAULT (uniform)
    allocation: Literal["uniform", "global", "search"] | None = None
    global_ranking: bool | None = None  # deprecated: true == allocation global, false == allocation uniform
    # re-estimate BatchNorm statistics on training batches after every prune: better right after pruning in 36 of 40
    # probe cells, identical after fine-tuning (reports/benchmarks/allocation_study.md)
    recalibrate_bn: bool = True
    search: SearchSection = field(default_factory=SearchSection)
    prune_trunk: bool = False
    round_to: int = field(default=16, metadata=_check("must be >= 1", lambda v: v >= 1))
    round_mode: Literal["nearest", "down", "up"] = "nearest"
    max_layer_ratio: float = field(default=0.9, metadata=_fraction())
    part_ratios: dict[str, float] = field(
        default_factory=dict, metadata=_check("values must be finite multipliers >= 0", _finite_multipliers)
    )
    tolerance: float = field(default=0.02, metadata=_check("must be in (0, 0.5]", lambda v: 0 < v <= 0.5))
    # depth pruning (hgprune.prune.depth): whole residual blocks and/or stacks removed before channels; none until
    # measured on trained parents (docs/depth.md)
    depth: Literal["none", "blocks", "stacks", "all"] = "none"
    depth_importance: str = "loss"  # hgprune.prune.depth.IMPORTANCES: how a removable unit is ranked

    def __post_init__(self) -> None:
        """Resolve ``allocation`` once, so the resolved recipe names it whichever key the file used."""
        object.__setattr__(self, "allocation", resolve_allocation(self.allocation, self.global_ranking))
        if ":" not in self.depth_importance:  # an unknown name fails at load, not after the baseline trained
            get_importance(self.depth_importance)
        if self.depth != "none" and self.target.kind == "channels":
            raise HgpruneError("prune.depth: depth pruning needs a macs or params target, not channels")


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
    input_size: int | None = field(  # default: model.input_size
        default=None,
        metadata=_check(
            f"must be a positive multiple of 64, at most {MAX_INPUT}", lambda v: v is None or _valid_input_size(v)
        ),
    )
    thop: bool = True


@dataclass(frozen=True)
class ExportSection:
    # onnx_int8: INT8 ONNX Runtime graph, written only when its PCKh is within 1.0 of FP32's (hgprune.export.quantize)
    formats: list[Literal["hgprune", "torchscript", "onnx", "onnx_int8"]] = field(default_factory=lambda: ["hgprune"])


@dataclass(frozen=True)
class OutputSection:
    dir: str | None = None  # default runs/<name>
    tensorboard: bool = False  # TensorBoard event files in <run>/tensorboard (hgprune.tracking; hgprune[tracking])


@dataclass(frozen=True)
class SweepSection:
    """A grid of runs sharing everything else: every arch × criterion × kept fraction (+ from-scratch baselines)."""

    arch: list[str] = field(default_factory=list)
    criterion: list[str] = field(default_factory=list)
    kept: list[float] = field(default_factory=list)
    scratch: bool = False  # also train uniformly narrower N/M models from scratch at each budget (the seed's approach)


# What a run is, for reports: a pruning run, a sweep's shared baseline-only entry, or the seed's approach (a narrower
# model trained from scratch). The one home of these names.
PRUNE, BASELINE, SCRATCH = ROLES = ("prune", "baseline", "scratch")
MAX_SEED = 2**32 - 1  # the range every RNG hgprune seeds (NumPy's legacy seeding included) accepts
MAX_NAME_CHARS = 128
NAME_RULE = f"must be a plain directory name (1-{MAX_NAME_CHARS} printable characters, no / \\ : or NUL, not . or ..)"
_DEVICE = re.compile(r"cpu|mps|cuda(:\d{1,3})?")


def is_safe_name(name: str) -> bool:
    """A run name is used as ``runs/<name>``: it must stay one component inside ``runs/`` whatever the platform."""
    return (
        0 < len(name) <= MAX_NAME_CHARS
        and name.isprintable()
        and name.strip() == name
        and not any(c in name for c in "/\\\0:")
        and name not in (".", "..")
    )


def _valid_device(device: str) -> bool:
    return _DEVICE.fullmatch(device) is not None


@dataclass(frozen=True)
class Recipe:
    # the run directory's name (runs/<name> without --out): one plain path component
    name: str = field(default="run", metadata=_check(NAME_RULE, lambda v: is_safe_name(v)))
    # what the run is, for reports: prune (the default), baseline (a sweep's shared baseline-only entry) or scratch
    # (the seed's approach: a narrower model trained from scratch); sweeps set it, recipes rarely need to
    role: Literal[ROLES] = PRUNE
    seed: int = field(default=0, metadata=_check(f"must be in [0, {MAX_SEED}]", lambda v: 0 <= v <= MAX_SEED))
    device: str = field(default="cpu", metadata=_check("must be cpu, cuda, cuda:<index> or mps", _valid_device))
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
    fail = HgpruneError(f"{path}: must be {_type_name(tp)}, got {_shown(value)}")
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


# What an error message may show of a value: a few items and characters, whatever the value's size.
_SHOWN = reprlib.Repr()
_SHOWN.maxlevel, _SHOWN.maxlist, _SHOWN.maxdict, _SHOWN.maxstring, _SHOWN.maxlong, _SHOWN.maxother = 2, 4, 4, 60, 40, 60
MAX_SHOWN_CHARS = 80


def _shown(value: Any) -> str:
    """``repr(value)`` cut to one short line: never formats a whole (possibly huge, alias-expanded) structure."""
    text = _SHOWN.repr(value)
    return text if len(text) <= MAX_SHOWN_CHARS else text[: MAX_SHOWN_CHARS - 3] + "..."


def _printable(key: Any) -> str:
    """A key as it can appear inside a one-line message (odd keys — newlines, non-strings, long ones — are quoted)."""
    plain = isinstance(key, str) and key and key.isprintable() and key.strip() == key and len(key) <= MAX_SHOWN_CHARS
    return key if plain else _shown(key)


def build(cls: type, raw: dict, path: str = "") -> Any:
    """Build dataclass ``cls`` from ``raw``; every problem is reported with its dotted key path."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in raw:
        if key not in fields:
            where = f"{path}.{_printable(key)}" if path else _printable(key)
            close = difflib.get_close_matches(str(key)[:MAX_SHOWN_CHARS], fields, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; valid keys: {', '.join(fields)}"
            raise HgpruneError(f"{where}: unknown key{hint}")
    kwargs = {}
    for name, value in raw.items():
        where = f"{path}.{name}" if path else name
        converted = _convert(value, hints[name], where)
        check = fields[name].metadata.get("test")
        if check is not None and converted is not None and not check(converted):
            raise HgpruneError(f"{where}: {fields[name].metadata['rule']}, got {_shown(value)}")
        kwargs[name] = converted
    return cls(**kwargs)


# ---------------------------------------------------------------------------------------------------------------
# Files and overrides.


# Limits on a recipe file, checked while it is read so that nothing large is ever built: recipes are a few KB of
# settings nested four deep; the limits leave a wide margin and stop alias bombs ("billion laughs") and absurd files.
MAX_RECIPE_BYTES = 1_000_000
MAX_RECIPE_NODES = 100_000  # YAML nodes with every alias counted as the nodes it expands to
MAX_RECIPE_DEPTH = 64  # nesting of mappings and lists


class RecipeYAMLError(yaml.MarkedYAMLError):
    """A YAML document hgprune refuses although it is valid YAML (duplicate key, over a limit)."""


class _RecipeLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` (plain values, no Python tags) that refuses duplicate keys and counts nodes as they are
    composed, aliases expanded, so a bomb or absurd nesting stops before any Python object is built."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._nodes = 0
        self._depth = 0
        self._expanded: dict[int, int] = {}  # id(node) → nodes it stands for, aliases expanded

    def _count(self, nodes: int, mark: yaml.Mark) -> None:
        self._nodes += nodes
        if self._nodes > MAX_RECIPE_NODES:
            problem = f"more than {MAX_RECIPE_NODES:,} values (aliases expanded)"
            raise RecipeYAMLError(problem=problem, problem_mark=mark)

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        mark = self.peek_event().start_mark
        if self.check_event(yaml.AliasEvent):
            node = super().compose_node(parent, index)
            if id(node) not in self._expanded:  # an alias inside its own anchor: an infinitely deep value
                raise RecipeYAMLError(problem="an alias refers to a value that contains it", problem_mark=mark)
            self._count(self._expanded[id(node)], mark)
            return node
        self._depth += 1
        if self._depth > MAX_RECIPE_DEPTH:
            raise RecipeYAMLError(problem=f"nested deeper than {MAX_RECIPE_DEPTH} levels", problem_mark=mark)
        before = self._nodes
        self._count(1, mark)
        node = super().compose_node(parent, index)
        self._depth -= 1
        self._expanded[id(node)] = self._nodes - before
        return node

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        first_line: dict[Any, int] = {}
        for key_node, _ in node.value if isinstance(node, yaml.MappingNode) else []:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node)
            try:
                if key in first_line:
                    raise RecipeYAMLError(
                        problem=f"duplicate key {_shown(key)} (first at line {first_line[key] + 1}); "
                        "the later one would silently replace it",
                        problem_mark=key_node.start_mark,
                    )
                first_line[key] = key_node.start_mark.line
            except TypeError:
                continue  # an unhashable key: SafeLoader reports it below
        return super().construct_mapping(node, deep=deep)


def load_yaml_text(text: str) -> Any:
    """Parse recipe YAML with :class:`_RecipeLoader`; YAML errors propagate (callers name the file)."""
    loader = _RecipeLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def read_yaml(path: str | Path) -> dict:
    """A recipe file as a mapping: at most :data:`MAX_RECIPE_BYTES`, plain values only, no duplicate keys."""
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_RECIPE_BYTES + 1)
        if len(data) > MAX_RECIPE_BYTES:
            raise HgpruneError(f"{path}: recipe is larger than {MAX_RECIPE_BYTES:,} bytes; recipes hold settings only")
        text = data.decode("utf-8")
    except FileNotFoundError:
        raise HgpruneError(f"{path}: no such recipe file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise HgpruneError(f"{path}: cannot read recipe ({type(exc).__name__})") from None
    try:
        raw = load_yaml_text(text)
    except RecipeYAMLError as exc:
        raise HgpruneError(f"{path}:{exc.problem_mark.line + 1}: {exc.problem}") from None
    except yaml.constructor.ConstructorError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else "?"
        raise HgpruneError(
            f"{path}:{line}: YAML tag not allowed ({exc.problem}); recipes hold plain values only"
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise HgpruneError(f"{path}{line}: invalid YAML ({problem[:MAX_SHOWN_CHARS]})") from None
    if raw is None:
        raise HgpruneError(f"{path}: recipe is empty")
    if not isinstance(raw, dict):
        raise HgpruneError(f"{path}: recipe must be a mapping of sections, got {type(raw).__name__}")
    return raw


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    """Apply ``key.path=value`` strings (values parsed as YAML scalars/lists) to a copy of ``raw``."""
    raw = copy.deepcopy(raw)
    for item in overrides:
        if "=" not in item:
            raise HgpruneError(f"--set {_shown(item)}: expected key.path=value")
        key_path, text = item.split("=", 1)
        key_path = key_path.strip()
        try:
            value = load_yaml_text(text) if text.strip() else None
        except RecipeYAMLError as exc:
            raise HgpruneError(f"--set {_printable(key_path)}: {exc.problem}") from None
        except yaml.YAMLError:
            raise HgpruneError(f"--set {_printable(key_path)}: value {_shown(text)} is not valid YAML") from None
        _set_path(raw, key_path, value)
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
        _check_removed(raw, drop=False)
        recipe = build(Recipe, raw)
    except HgpruneError as exc:
        raise HgpruneError(f"{path}: {exc}") from None
    if recipe.name == "run":
        stem = Path(path).stem
        if not is_safe_name(stem):
            raise HgpruneError(f"{path}: the run name would be {_shown(stem)}, which {NAME_RULE}; set name: in it")
        recipe = dataclasses.replace(recipe, name=stem)
    return recipe


def dump_recipe(recipe: Recipe, version: str) -> str:
    """The resolved recipe as YAML, stamped with the hgprune version that ran it."""
    header = f"# resolved recipe, written by hgprune {version}\n"
    return header + yaml.safe_dump({"hgprune_version": version, **recipe.to_dict()}, sort_keys=False)


# Keys older versions accepted (and resolved recipes in old run directories still hold) that no longer exist:
# a user recipe naming one gets this explanation; a resolved recipe of an old run drops it.
REMOVED_KEYS: dict[tuple[str, str], str] = {
    ("output", "keep_step_checkpoints"): "removed (never read): every step checkpoint is kept, resume uses them",
}

# What a resumed run may change: keys no completed step depends on (where files go, speed of the data loader and of
# evaluation batches, how latency is sampled). Everything else must equal the recipe the run started with.
RESUME_MUTABLE = ("export", "output", "data.workers", "eval.batch_size", "profile.repeats", "profile.warmup")


def _check_removed(raw: dict, drop: bool) -> None:
    for (section, key), why in REMOVED_KEYS.items():
        node = raw.get(section)
        if isinstance(node, dict) and key in node:
            if not drop:
                raise HgpruneError(f"{section}.{key}: {why}; delete it from the recipe")
            del node[key]


def recipe_from_resolved(text: str) -> Recipe:
    """The recipe a run directory recorded (``recipe.yaml``), including those written by older versions."""
    raw = load_yaml_text(text)
    if not isinstance(raw, dict):
        raise HgpruneError(f"resolved recipe must be a mapping of sections, got {type(raw).__name__}")
    raw.pop("hgprune_version", None)
    _check_removed(raw, drop=True)
    return build(Recipe, raw)


def recipe_changes(old: Recipe, new: Recipe) -> tuple[list[str], list[str]]:
    """Key paths whose values differ between two recipes, split into (allowed on resume, refused on resume)."""
    changed: list[str] = []

    def walk(a: Any, b: Any, path: str) -> None:
        if isinstance(a, dict) and isinstance(b, dict):
            for key in sorted(set(a) | set(b), key=str):
                walk(a.get(key), b.get(key), f"{path}.{key}" if path else str(key))
        elif a != b:
            changed.append(path)

    walk(old.to_dict(), new.to_dict(), "")
    allowed = [p for p in changed if any(p == m or p.startswith(m + ".") for m in RESUME_MUTABLE)]
    return allowed, [p for p in changed if p not in allowed]
