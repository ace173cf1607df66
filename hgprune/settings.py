"""Every setting, defined once: type, default, bounds and help.

The recipe's sections (``hgprune.recipe`` reads YAML into :class:`Recipe`), the library's option objects
(:class:`TrainConfig`, :class:`SearchSettings`, ``hgprune.data.synthpose.SynthConfig``, the engine's defaults) and the
CLI flags that mirror recipe keys (:func:`~hgprune.schema.flag`) all take theirs from here. Adding a key = one line in
its section.

Every number has a lower and an upper bound and must be finite: the bounds sit far above any sensible value and far
below what would exhaust memory or time before an error could be raised, and they are checked before any work starts.
Sections are frozen pydantic dataclasses (:mod:`hgprune.schema`): ``dataclasses.replace``/``asdict`` work on them,
and building one with a bad value raises :class:`~hgprune.errors.HgpruneError` naming the key
(``train.lr: must be in (0, 10], got inf``).
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, StrictBool, StrictInt, StrictStr

from hgprune.errors import HgpruneError
from hgprune.models.hourglass import ARCHS, CONFIG_LIMITS, HourglassConfig, check_input_size, parse_arch
from hgprune.schema import (  # noqa: F401 (re-exported: the one import for settings and their machinery)
    MAX_SHOWN_CHARS,
    Checked,
    Int,
    Real,
    Rule,
    _unwrap,
    as_plain,
    build,
    check,
    default_of,
    field_types,
    flag,
    mirror,
    printable,
    section,
    setting,
    shown,
    type_at,
)

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
EpochNumber = Int(0, 10_000_000)  # an epoch's number: far above (MAX_STEPS + 2) * 1000 + MAX_EPOCHS
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
Lr = Real(0, 1e30, lo_open=True)  # only finite: tests/test_faults.py explodes a run with 1e30 on purpose
Penalty = Real(0, 1000)  # loss weights: weight decay, BatchNorm L1, distillation
Multiplier = Real(0, 1000)
PCKH_DROP = Real(0, 100)  # PCKh points an INT8 graph may lose against FP32
InputSide = Int(1, MAX_INPUT)  # a flag's input side, checked against the model's depth once it is known


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

    def hourglass_config(self) -> HourglassConfig:
        """The architecture this section describes: what a new baseline is built as and an imported one must be."""
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

    # a run numbers step k's fine-tuning epochs from k * stages.EPOCHS_PER_STEP_SLOT, hence the wider range
    epochs: EpochNumber = setting(0, "train epochs [start_epoch, epochs)")
    schedule: tuple[EpochNumber, ...] = setting((60, 90), "the seed's train_mpii.py --schedule")
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
    depth_importance: Str = setting("loss", "how a removable unit is ranked (hgprune.prune.depth.IMPORTANCES)")

    def __post_init__(self) -> None:
        if self.depth != "none" and self.target.kind == "channels":
            raise HgpruneError(
                "prune.depth: depth pruning needs a macs or params target (or a latency one), not channels"
            )


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
