"""Every setting, defined once: type, default, bounds and help.

The recipe's sections (``hgprune.recipe`` reads YAML into :class:`Recipe`), the library's option objects
(:class:`TrainConfig`, :class:`SearchSettings`, ``hgprune.data.synthpose.SynthConfig``, the engine's defaults) and the
CLI flags that mirror recipe keys (:func:`flag`) all take theirs from here. Adding a key = one line in its section.

Every number has a lower and an upper bound and must be finite: the bounds sit far above any sensible value and far
below what would exhaust memory or time before an error could be raised, and they are checked before any work starts.
Sections are frozen pydantic dataclasses: ``dataclasses.replace``/``asdict`` work on them, and building one with a
bad value raises :class:`~hgprune.errors.HgpruneError` naming the key (``train.lr: must be in (0, 10], got inf``).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import re
import reprlib
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, ConfigDict, Field, StrictBool, StrictInt, StrictStr
from pydantic import ValidationError as _PydanticError
from pydantic.dataclasses import dataclass as _pydantic_dataclass

from hgprune.errors import HgpruneError
from hgprune.models.hourglass import ARCHS, CONFIG_LIMITS, check_input_size, parse_arch

# -- names and limits with no other home -----------------------------------------------------------------------------
SCHEDULES = ("linear", "cubic", "geometric")  # hgprune.prune.targets.schedule_targets
ROUND_MODES = ("nearest", "down", "up")  # hgprune.prune.targets.round_keep
ALLOCATIONS = ("uniform", "global", "search")  # hgprune.prune.allocation
PRUNE_KINDS = ("macs", "params", "channels")  # what the engine counts; latency is planned from a measured model
DEPTH_MODES = ("none", "blocks", "stacks", "all")  # prune.depth: which residual blocks / stacks may be removed
RUNTIMES = ("ort", "torch", "cuda-graph")  # prune.target.runtime of a latency target
# What a run is, for reports: a pruning run, a sweep's shared baseline-only entry, or the seed's approach.
PRUNE, BASELINE, SCRATCH = ROLES = ("prune", "baseline", "scratch")
MAX_SEED = 2**32 - 1  # the range every RNG hgprune seeds (NumPy's legacy seeding included) accepts
MAX_NAME_CHARS = 128
MAX_EPOCHS = 100_000
MAX_BATCH = 4096
MAX_BATCHES = 100_000  # BatchNorm re-estimation and calibration batches
MAX_SAMPLES = 10_000_000  # dataset sizes and sample counts
MAX_WORKERS = 256  # DataLoader workers and generation processes
MAX_THREADS = 1024  # CPU threads (torch, ONNX Runtime): far beyond any machine, far below a crash
MAX_STEPS = 1000  # prune steps
MAX_REPEATS = 100_000  # timed repeats and warm-up runs
MAX_JOBS = 1024  # sweep entries launched at once
MAX_INPUT, MAX_JOINTS, MAX_DEPTH, MAX_WIDTH = (CONFIG_LIMITS[k] for k in ("input_size", "num_joints", "depth", "N"))
NAME_RULE = f"must be a plain directory name (1-{MAX_NAME_CHARS} printable characters, no / \\ : or NUL, not . or ..)"
_DEVICE = re.compile(r"cpu|cuda(:\d{1,3})?")  # what training runs on; mps has no kernels for every op hgprune uses


# -- typed, bounded values ---------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Rule:
    """The sentence an out-of-range value is refused with (``must be in [0, 1]``), carried by its type."""

    text: str


def _interval(lo, hi, lo_open: bool, hi_open: bool) -> str:
    def text(x) -> str:
        return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else f"{x:g}"

    return f"must be in {'(' if lo_open else '['}{text(lo)}, {text(hi)}{')' if hi_open else ']'}"


def Int(lo: int, hi: int, rule: str | None = None) -> Any:  # noqa: N802 (a type, used as one)
    """An integer in ``[lo, hi]`` (never a bool or a float)."""
    return Annotated[StrictInt, Field(ge=lo, le=hi), Rule(rule or _interval(lo, hi, False, False))]


def _number(value: Any) -> Any:
    if isinstance(value, bool) or (
        isinstance(value, str) and not re.fullmatch(r"\s*[-+]?[\d.]+([eE][-+]?\d+)?\s*", value)
    ):
        raise ValueError("must be a number")  # PyYAML reads 1e-3 (no dot) as a string: that one is a number
    return value


def Real(lo: float, hi: float, *, lo_open: bool = False, hi_open: bool = False) -> Any:  # noqa: N802
    """A finite number in the interval (``lo_open``/``hi_open`` exclude the end)."""
    bounds = {"gt" if lo_open else "ge": lo, "lt" if hi_open else "le": hi}
    return Annotated[float, BeforeValidator(_number), Field(**bounds), Rule(_interval(lo, hi, lo_open, hi_open))]


def Checked(base: Any, test, rule: str) -> Any:  # noqa: N802
    """``base`` values that pass ``test``; others are refused with ``rule``."""

    def check(value):
        if value is not None and not test(value):
            raise ValueError(rule)
        return value

    return Annotated[base, AfterValidator(check), Rule(rule)]


def setting(default: Any, help: str = "") -> Any:  # noqa: A002
    """A field's default and help (mutable and section defaults are built fresh for every instance)."""
    if dataclasses.is_dataclass(default) and isinstance(default, type):
        return Field(default_factory=default, description=help)
    if isinstance(default, (list, dict)):
        return Field(default_factory=functools.partial(type(default), default), description=help)
    return Field(default, description=help)


def _valid_input_size(size: int) -> bool:
    try:
        return check_input_size(size) == size and size <= MAX_INPUT
    except Exception:  # noqa: BLE001 (any refusal is a "no")
        return False


def is_safe_name(name: str) -> bool:
    """A run name is used as ``runs/<name>``: it must stay one component inside ``runs/`` whatever the platform."""
    return (
        0 < len(name) <= MAX_NAME_CHARS
        and name.isprintable()
        and name.strip() == name
        and not any(c in name for c in "/\\\0:")
        and name not in (".", "..")
    )


Bool, Str = StrictBool, StrictStr
Fraction = Real(0, 1, lo_open=True)  # a kept fraction
Probability = Real(0, 1)
Seed = Int(0, MAX_SEED)
Epochs = Int(0, MAX_EPOCHS)
Batch = Int(1, MAX_BATCH)
Batches = Int(0, MAX_BATCHES)
Samples = Int(1, MAX_SAMPLES)
Workers = Int(0, MAX_WORKERS)
Threads = Int(1, MAX_THREADS)
Jobs = Int(1, MAX_JOBS)
Repeats = Int(1, MAX_REPEATS)
Warmup = Int(0, MAX_REPEATS)
Width = Checked(Int(2, MAX_WIDTH), lambda v: v % 2 == 0, "must be an even integer >= 2")
InputSize = Checked(StrictInt, _valid_input_size, f"must be a positive multiple of 64, at most {MAX_INPUT}")
Device = Checked(StrictStr, lambda v: _DEVICE.fullmatch(v) is not None, "must be cpu, cuda or cuda:<index>")
RunName = Checked(StrictStr, is_safe_name, NAME_RULE)
Lr = Real(0, 10, lo_open=True)
Penalty = Real(0, 1000)  # loss weights: weight decay, BatchNorm L1, distillation
Multiplier = Real(0, 1000)
PCKH_DROP = Real(0, 100)  # PCKh points an INT8 graph may lose against FP32
InputSide = Int(1, MAX_INPUT)  # a flag's input side, checked against the model's depth once it is known

_CONFIG = ConfigDict(extra="forbid", allow_inf_nan=False, validate_default=False)
_SHOWN = reprlib.Repr()
_SHOWN.maxlevel, _SHOWN.maxlist, _SHOWN.maxdict, _SHOWN.maxstring, _SHOWN.maxlong, _SHOWN.maxother = 2, 4, 4, 60, 40, 60
MAX_SHOWN_CHARS = 80


def shown(value: Any) -> str:
    """``repr(value)`` cut to one short line: never formats a whole (possibly huge, alias-expanded) structure."""
    text = _SHOWN.repr(value)
    return text if len(text) <= MAX_SHOWN_CHARS else text[: MAX_SHOWN_CHARS - 3] + "..."


def printable(key: Any) -> str:
    """A key as it can appear inside a one-line message (odd keys — newlines, non-strings, long ones — are quoted)."""
    plain = isinstance(key, str) and key and key.isprintable() and key.strip() == key and len(key) <= MAX_SHOWN_CHARS
    return key if plain else shown(key)


def section(path: str) -> Any:
    """A frozen settings dataclass whose construction errors are :class:`HgpruneError` naming ``path.key``."""

    def wrap(cls: type) -> type:
        cls = _pydantic_dataclass(frozen=True, config=_CONFIG)(cls)
        init = cls.__init__

        def __init__(self, *args, **kwargs):  # noqa: N807
            try:
                init(self, *args, **kwargs)
            except _PydanticError as exc:
                raise HgpruneError(validation_message(exc, type(self), path)) from None

        cls.__init__ = functools.wraps(init)(__init__)
        cls.__settings_path__ = path
        return cls

    return wrap


# -- the recipe's sections (and the library options that are the same thing) ---------------------------------------


@section("model")
class ModelSection:
    arch: Literal[ARCHS] = setting("hg2", "the architecture registry (hgprune.models.ARCHITECTURES)")
    N: Width = setting(128, "stem width")
    M: Width = setting(256, "trunk width")
    num_joints: Int(1, MAX_JOINTS) = setting(16)
    input_size: InputSize = setting(256)
    # levels per hourglass (the seed: 4). Each halves the resolution: a 64-px input's 16x16 features reach 1x1 at
    # depth 4, where BatchNorm sees one value per image; depth 3 stops at 2x2. Depth d needs input_size % 2**(d+2) = 0.
    depth: Int(1, MAX_DEPTH) = setting(4)
    normalization: Literal["seed", "imagenet"] = setting("seed", "input normalisation of a baseline trained here")

    def hourglass_config(self):
        """The architecture this section describes: what a new baseline is built as and an imported one must be."""
        from hgprune.models.hourglass import HourglassConfig

        fields = {k: getattr(self, k) for k in ("N", "M", "num_joints", "depth", "input_size", "normalization")}
        return HourglassConfig(num_stacks=parse_arch(self.arch), **fields)


@section("train")
class TrainSection:
    """Optimisation settings shared by baseline training and fine-tuning (seed defaults: RMSprop 2.5e-4)."""

    epochs: Epochs = setting(0, "train epochs [start_epoch, epochs)")
    lr: Lr = setting(2.5e-4, "RMSprop learning rate")
    momentum: Real(0, 1, hi_open=True) = setting(0.0)
    weight_decay: Penalty = setting(0.0)
    schedule: list[Epochs] = setting([], "epochs at which lr is multiplied by gamma (MultiStepLR)")
    gamma: Real(0, 10, lo_open=True) = setting(0.1)
    batch_size: Batch = setting(6, "per process under DDP")
    precise_bn: Batches = setting(0, "training batches re-estimating BatchNorm before each validation (0: off)")


@section("train")
class TrainConfig(TrainSection):
    """Everything that decides a training run besides the model and the data, with the seed's defaults (the
    ``train`` command's flags read theirs here). ``seed`` and the epoch numbers fully determine the data order and
    augmentation of every epoch, so a resumed run repeats an uninterrupted one exactly on CPU."""

    schedule: tuple[Epochs, ...] = setting((60, 90), "the seed's train_mpii.py --schedule")
    test_batch_size: Batch = setting(6, "the seed's --test-batch")
    workers: Workers = setting(0, "DataLoader workers per process")
    device: Device = setting("cpu")
    amp: Bool = setting(False, "mixed precision; only takes effect on CUDA")
    seed: Seed = setting(0)
    bn_l1: Penalty = setting(0.0, "network-slimming L1 penalty on every BatchNorm gamma")
    distill_weight: Penalty = setting(0.0, "weight of the MSE to the teacher's heatmaps (needs a teacher)")
    flip_test: Bool = setting(False, "validation averages the heatmaps of the image and its mirror")

    def to_dict(self) -> dict:
        """JSON-able copy, stored beside every checkpoint."""
        return as_plain(self)


@section("baseline")
class BaselineSection:
    checkpoint: Str | None = setting(None, "hgprune or seed checkpoint; None = train from scratch")
    train: TrainSection = Field(default_factory=lambda: TrainSection(epochs=10))


@section("data.synth")
class SynthSection:
    """SynthPose generation (hgprune.data.synthpose.SynthConfig adds the settings recipes do not expose)."""

    num_train: Samples = setting(4000)
    num_val: Samples = setting(500)
    size: Int(32, 4096) = setting(128, "square image side in pixels")
    seed: Seed = setting(0)
    # difficulty, calibrated so the quickstart's reference model lands in 70–95 PCKh@0.5 (README, "Calibration")
    max_rotation: Real(0, 180) = setting(15.0, "degrees (clipped normal, σ = max/2)")
    occlusion_prob: Probability = setting(0.2)
    max_distractors: Int(0, 16) = setting(1)
    clutter: Int(0, 1000) = setting(4, "background shapes per image")
    noise: Real(0, 255) = setting(3.0, "max Gaussian pixel noise σ")


@section("data")
class DataSection:
    dataset: Literal["synthpose", "mpii"] = setting("synthpose")
    annotations: Str | None = setting(None, "MPII annotation JSON (seed or HRNet layout)")
    image_path: Str | None = setting(None, "MPII images directory (default: images/ beside the annotations)")
    gt_mat: Str | None = setting(None, "gt_valid.mat-layout file with head boxes for the validation split")
    cache_dir: Str | None = setting(None, "where SynthPose is generated once ($HGPRUNE_CACHE or ~/.cache/hgprune)")
    synth: SynthSection = setting(SynthSection)
    workers: Workers = setting(0)
    augment: Bool = setting(True, "the seed's augmentation on the training split (scale, rotation, flip, colour)")
    target_weight: Literal["visible", "annotated"] = setting("visible", "joint loss weights (data.TARGET_WEIGHTS)")
    calibration_batches: Batches = setting(4)
    val_limit: Samples | None = setting(None)


@section("prune.target")
class TargetSection:
    kind: Literal[(*PRUNE_KINDS, "latency")] = setting("macs")
    kept: Fraction = setting(0.5)
    # a latency target (kind: latency) keeps `kept` of the measured latency, or meets budget_ms, on this runtime
    budget_ms: Real(0, 1e6, lo_open=True) | None = setting(None, "latency budget in milliseconds (kind: latency)")
    runtime: Literal[RUNTIMES] = setting("ort", "where a latency target is measured")
    threads: Threads | None = setting(None, "CPU threads of the latency measurement (default: torch's)")
    batch: Batch = setting(1, "batch size of the latency measurement")

    def __post_init__(self) -> None:
        if self.budget_ms is not None and self.kind != "latency":
            raise HgpruneError(f"prune.target.budget_ms: applies to kind latency only, not {self.kind!r}")


@section("prune.search")
class SearchSection:
    """Bounds of ``prune.allocation: search``. Candidates are scored on the training split only, never on
    validation data."""

    candidates: Int(1, 1000) = setting(12, "allocations scored, uniform and global included")
    batches: Int(1, MAX_BATCHES) = setting(4, "training batches for BatchNorm re-estimation (search, recalibrate_bn)")
    holdout: Samples = setting(256, "training samples, never used for BN re-estimation, that score each candidate")
    batch_size: Batch = setting(16)
    sensitivity: Str | None = setting(None, "`hgprune sensitivity` CSV: less sensitive parts are sampled to lose more")


SearchSettings = SearchSection  # the engine's name for the same options


@section("prune")
class PruneSection:
    # a registered name or package.module:Class; taylor is the default recipe's (reports/benchmarks/accuracy.md)
    criterion: Str = setting("taylor")
    target: TargetSection = setting(TargetSection)
    steps: Int(0, MAX_STEPS) = setting(2, "0 = no pruning")
    schedule: Literal[SCHEDULES] = setting("linear")
    # uniform never collapsed a criterion in the probe (global cut single convs to the max_layer_ratio floor at 25 %)
    # and is the allocation of the default recipe measured in reports/benchmarks/accuracy.md
    allocation: Literal[ALLOCATIONS] = setting("uniform", "which group keeps how many channels")
    # re-estimate BatchNorm statistics on training batches after every prune: better right after pruning in 36 of 40
    # probe cells, identical after fine-tuning (reports/benchmarks/allocation_study.md)
    recalibrate_bn: Bool = setting(True)
    search: SearchSection = setting(SearchSection)
    prune_trunk: Bool = setting(False)
    round_to: Int(1, 1024) = setting(16)
    round_mode: Literal[ROUND_MODES] = setting("nearest")
    max_layer_ratio: Fraction = setting(0.9, "most any group may lose relative to the unpruned architecture")
    part_ratios: dict[Str, Multiplier] = setting({}, "part (stem, hg{s}, res{s}, fc{s}, trunk, *) → multiplier")
    tolerance: Real(0, 0.5, lo_open=True) = setting(0.02, "how far from the target a plan may land")
    depth: Literal[DEPTH_MODES] = setting("none", "which residual blocks / stacks may be removed")


@section("finetune.distill")
class DistillSection:
    weight: Penalty = setting(0.0)


@section("finetune")
class FinetuneSection:
    epochs_per_step: Epochs = setting(1)
    final_epochs: Epochs = setting(0)
    train: TrainSection = setting(TrainSection)
    bn_l1: Penalty = setting(0.0)
    distill: DistillSection = setting(DistillSection)


@section("eval")
class EvalSection:
    batch_size: Batch = setting(32)
    flip_test: Bool = setting(False)


@section("profile")
class ProfileSection:
    latency: Bool = setting(True)
    repeats: Repeats = setting(5)
    warmup: Warmup = setting(1)
    threads: Threads | None = setting(None)
    input_size: InputSize | None = setting(None, "default: model.input_size")
    thop: Bool = setting(True)


@section("export")
class ExportSection:
    # onnx_int8: INT8 ONNX Runtime graph, written only when its PCKh is within 1.0 of FP32's (hgprune.export.quantize)
    formats: list[Literal["hgprune", "torchscript", "onnx", "onnx_int8"]] = setting(["hgprune"])


@section("output")
class OutputSection:
    dir: Str | None = setting(None, "default runs/<name>")
    tensorboard: Bool = setting(False, "TensorBoard event files in <run>/tensorboard (hgprune[tracking])")


@section("sweep")
class SweepSection:
    """A grid of runs sharing everything else: every arch × criterion × kept fraction (+ from-scratch baselines)."""

    arch: list[Str] = setting([])
    criterion: list[Str] = setting([])
    kept: list[Fraction] = setting([])
    scratch: Bool = setting(False, "also train narrower N/M models from scratch at each budget (the seed's approach)")


@section("")
class Recipe:
    name: RunName = setting("run", "the run directory's name (runs/<name> without --out)")
    # what the run is, for reports: prune (the default), baseline (a sweep's shared baseline-only entry) or scratch
    # (the seed's approach: a narrower model trained from scratch); sweeps set it, recipes rarely need to
    role: Literal[ROLES] = setting(PRUNE)
    seed: Seed = setting(0)
    device: Device = setting("cpu")
    model: ModelSection = setting(ModelSection)
    baseline: BaselineSection = setting(BaselineSection)
    data: DataSection = setting(DataSection)
    prune: PruneSection = setting(PruneSection)
    finetune: FinetuneSection = setting(FinetuneSection)
    eval: EvalSection = setting(EvalSection)
    profile: ProfileSection = setting(ProfileSection)
    export: ExportSection = setting(ExportSection)
    output: OutputSection = setting(OutputSection)
    sweep: SweepSection | None = setting(None)

    def to_dict(self) -> dict:
        return as_plain(self)


def as_plain(obj: Any) -> dict:
    """``dataclasses.asdict`` with tuples as lists: what YAML and JSON hold."""

    def plain(value: Any) -> Any:
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    return plain(dataclasses.asdict(obj))


# -- building from plain mappings, with the key path in every error ------------------------------------------------


def field_types(cls: type) -> dict[str, Any]:
    """A settings dataclass's fields → their annotated types."""
    return {
        name: Annotated[(info.annotation, *info.metadata)] if info.metadata else info.annotation
        for name, info in cls.__pydantic_fields__.items()
    }


def _unwrap(tp: Any) -> tuple[Any, list]:
    """(bare type, metadata) of an annotated type; ``X | None`` → ``X``."""
    import typing

    metadata: list = []
    while True:
        if typing.get_origin(tp) is Annotated:
            metadata.extend(tp.__metadata__)
            tp = tp.__origin__
        elif typing.get_origin(tp) in (typing.Union, __import__("types").UnionType):
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            if len(args) != 1:
                return tp, metadata
            tp = args[0]
        else:
            return tp, metadata


def type_at(cls: type, keys: list) -> Any:
    """The annotated type at ``keys`` below settings class ``cls`` (None when there is no such key)."""
    import typing

    tp: Any = cls
    for key in keys:
        bare, _ = _unwrap(tp)
        if dataclasses.is_dataclass(bare):
            tp = field_types(bare).get(key)
        elif typing.get_origin(bare) in (list, tuple):
            tp = typing.get_args(bare)[0]
        elif typing.get_origin(bare) is dict:
            tp = typing.get_args(bare)[1] if key != "[key]" else typing.get_args(bare)[0]
        else:
            return None
        if tp is None:
            return None
    return tp


_TYPE_NAMES = {
    "int": "an integer",
    "bool": "true or false",
    "string": "a string",
    "float": "a number",
    "dataclass": "a mapping",
    "dict": "a mapping",
    "list": "a list",
    "tuple": "a list",
}


def validation_message(exc: _PydanticError, cls: type, prefix: str = "") -> str:
    """pydantic's first error as ``key.path: must be …, got …`` (one line)."""
    import difflib
    import typing

    err = exc.errors(include_url=False)[0]
    loc = [k for k in err["loc"] if not (isinstance(k, str) and "[" in k and k != "[key]")]
    if loc and loc[-1] == "[key]":
        loc = loc[:-2]
    path = ".".join([prefix] * bool(prefix) + [printable(k) if isinstance(k, str) else f"[{k}]" for k in loc])
    path = path.replace(".[", "[")
    kind, value = err["type"], err.get("input")
    if kind in ("unexpected_keyword_argument", "extra_forbidden"):
        parent = _unwrap(type_at(cls, loc[:-1]))[0]
        names = list(field_types(parent)) if dataclasses.is_dataclass(parent) else []
        close = difflib.get_close_matches(str(loc[-1])[:MAX_SHOWN_CHARS], names, n=1)
        return f"{path}: unknown key" + (
            f"; did you mean {close[0]!r}?" if close else f"; valid keys: {', '.join(names)}"
        )
    bare, metadata = _unwrap(type_at(cls, loc))
    rules = [m.text for m in metadata if isinstance(m, Rule)]
    if kind == "literal_error" or typing.get_origin(bare) is Literal:
        rule = "must be one of " + ", ".join(repr(a) for a in typing.get_args(bare))
    elif kind == "finite_number":
        rule = rules[0] if rules else "must be a finite number"
    elif kind.split("_")[0] in _TYPE_NAMES:
        rule = f"must be {_TYPE_NAMES[kind.split('_')[0]]}"
    elif kind.startswith(("greater", "less")) and rules:
        rule = rules[0]
    else:
        rule = err["msg"].removeprefix("Value error, ")
    return f"{path}: {rule}, got {shown(value)}"


def build(cls: type, raw: Any, path: str | None = None) -> Any:
    """Settings dataclass ``cls`` from a plain mapping; every problem is reported with its dotted key path."""
    path = cls.__settings_path__ if path is None else path
    if not isinstance(raw, dict):
        raise HgpruneError(f"{path or cls.__name__}: must be a mapping, got {shown(raw)}")
    try:
        return _adapter(cls).validate_python(_nulls_as_defaults(cls, raw))
    except _PydanticError as exc:
        raise HgpruneError(validation_message(exc, cls, path)) from None


@functools.cache
def _adapter(cls: type) -> Any:
    from pydantic import TypeAdapter

    return TypeAdapter(cls)


def _nulls_as_defaults(cls: type, raw: dict) -> dict:
    """``section:`` with nothing under it (YAML null) means the section's defaults, at any depth."""
    out = {}
    for key, value in raw.items():
        tp = field_types(cls).get(key) if isinstance(key, str) else None
        bare = _unwrap(tp)[0] if tp is not None else None
        if bare is not None and dataclasses.is_dataclass(bare) and not _optional(tp):
            value = {} if value is None else value
            if isinstance(value, dict):
                value = _nulls_as_defaults(bare, value)
        out[key] = value
    return out


def _optional(tp: Any) -> bool:
    import types
    import typing

    return typing.get_origin(tp) in (typing.Union, types.UnionType) and type(None) in typing.get_args(tp)


# -- CLI flags ---------------------------------------------------------------------------------------------------


def flag(tp: Any, default: Any = None) -> dict:
    """``add_argument`` keywords for a flag of type ``tp`` (e.g. ``Threads`` or ``field_types(TrainConfig)["lr"]``):
    parsed and bounded by the same definition as the setting, refused as one line before any work starts."""
    bare, metadata = _unwrap(tp)
    adapter = _flag_adapter(tp)
    rule = next((m.text for m in metadata if isinstance(m, Rule)), None)

    def parse(text: str) -> Any:
        try:
            value = float(text) if bare is float else int(text, 10)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"must be {'a number' if bare is float else 'an integer'}, got {shown(text)}"
            ) from None
        try:
            return adapter.validate_python(value)
        except _PydanticError:
            raise argparse.ArgumentTypeError(f"{rule or 'out of range'}, got {shown(value)}") from None

    parse.__name__ = "number" if bare is float else "integer"
    kwargs: dict = {"type": parse}
    if default is not None:
        kwargs["default"] = default
    return kwargs


@functools.cache
def _flag_adapter(tp: Any) -> Any:
    from pydantic import TypeAdapter

    return TypeAdapter(tp, config=_CONFIG) if not dataclasses.is_dataclass(tp) else TypeAdapter(tp)


def check(name: str, value: Any, tp: Any) -> Any:
    """``value`` if it is a valid ``tp`` (e.g. ``Threads``), else :class:`HgpruneError` ``name: rule, got value``:
    how library functions taking a setting as a plain argument bound it by its one definition."""
    try:
        return _flag_adapter(tp).validate_python(value)
    except _PydanticError as exc:
        rules = [m.text for m in _unwrap(tp)[1] if isinstance(m, Rule)]
        kind = exc.errors(include_url=False)[0]["type"]
        rule = rules[0] if rules and not kind.endswith("_type") else exc.errors(include_url=False)[0]["msg"]
        raise HgpruneError(f"{name}: {rule}, got {shown(value)}") from None


def default_of(cls: type, name: str) -> Any:
    """A field's default (its one home is the field)."""
    info = cls.__pydantic_fields__[name]
    return info.default_factory() if info.default_factory is not None else info.default
