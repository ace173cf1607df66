"""Model zoo: the seed's stacked hourglass and its checkpoints."""

from hgprune.models.checkpoints import load_model, save_model
from hgprune.models.hourglass import (
    ARCHITECTURES,
    ARCHS,
    HEAD_PREFIX,
    PRESETS,
    TRUNK_ROOT,
    HourglassConfig,
    HourglassNet,
    base_width,
    build_model,
    build_preset,
    check_input_size,
    model_parts,
    parse_arch,
    probe_size,
)
from hgprune.models.normalization import Normalization

__all__ = [
    "ARCHITECTURES", "ARCHS", "HEAD_PREFIX", "PRESETS", "TRUNK_ROOT", "HourglassConfig", "HourglassNet",
    "Normalization", "base_width", "build_model", "build_preset", "check_input_size", "load_model", "model_parts",
    "parse_arch", "probe_size", "save_model",
]  # fmt: skip
