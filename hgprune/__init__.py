"""hgprune: structured pruning of Stacked Hourglass pose-estimation networks."""

__version__ = "0.1.0"

from hgprune.models import HourglassConfig, HourglassNet, build_model, load_model, save_model  # noqa: E402

__all__ = ["HourglassConfig", "HourglassNet", "__version__", "build_model", "load_model", "save_model"]
