"""Model zoo: the seed's stacked hourglass and its checkpoints."""

from hgprune.models.checkpoints import load_model, save_model
from hgprune.models.hourglass import ARCHS, HourglassConfig, HourglassNet, build_model, model_parts

__all__ = ["ARCHS", "HourglassConfig", "HourglassNet", "build_model", "load_model", "model_parts", "save_model"]
