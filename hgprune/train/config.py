"""Training hyper-parameters, with the seed's defaults (docs/DESIGN.md §2): defined in :mod:`hgprune.settings`."""

from hgprune.settings import TrainConfig

__all__ = ["TrainConfig"]
