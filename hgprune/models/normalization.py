"""The input normalisation a model was trained with — part of the model, stored in its checkpoint config.

Images enter every hourglass as RGB in [0, 1], then ``(x - mean) / std``. Two conventions exist:

- ``SEED``: the seed's ``color_normalize`` subtracts its own dataset mean and never divides (it takes a std argument
  and ignores it). Seed checkpoints and plain state dicts were trained this way, and it is hgprune's default for new
  models, so that a model trained here runs unchanged in the seed's code.
- ``IMAGENET``: ImageNet mean and std. hgprune checkpoints written before the field existed were trained this way
  and keep it when loaded.

Feeding a model the other convention's inputs costs 20–30 PCKh (about 4.4× too large an input range), which is why
the convention travels with the weights instead of living in the data pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hgprune.errors import HgpruneError


@dataclass(frozen=True)
class Normalization:
    """``(rgb - mean) / std`` per channel, RGB order; ``std=None`` means no division (the seed's convention)."""

    mean: tuple[float, float, float]
    std: tuple[float, float, float] | None = None

    def __post_init__(self) -> None:
        mean = _triple(self.mean, "mean")
        std = None if self.std is None else _triple(self.std, "std")
        if std is not None and not all(s > 0 for s in std):
            raise HgpruneError(f"normalization.std: every value must be > 0, got {list(std)}")
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "std", std)

    @property
    def divisor(self) -> np.ndarray:
        """(3,) float32 per-channel divisor (ones when the convention does not divide)."""
        return np.ones(3, np.float32) if self.std is None else np.asarray(self.std, np.float32)

    def to_dict(self) -> dict:
        return {"mean": list(self.mean), "std": None if self.std is None else list(self.std)}

    def describe(self) -> str:
        name = next((k for k, v in NORMALIZATIONS.items() if v == self), None)
        body = f"mean {list(self.mean)}" + ("" if self.std is None else f", std {list(self.std)}")
        return f"{name} ({body})" if name else body


def _triple(value, key: str) -> tuple[float, float, float]:
    try:
        values = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        raise HgpruneError(f"normalization.{key}: expected 3 numbers, got {value!r:.80}") from None
    if len(values) != 3 or not all(np.isfinite(values)):
        raise HgpruneError(f"normalization.{key}: expected 3 finite numbers, got {list(values)[:5]}")
    return values  # type: ignore[return-value]


SEED = Normalization(mean=(0.4404, 0.4440, 0.4327), std=None)
IMAGENET = Normalization(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
NORMALIZATIONS: dict[str, Normalization] = {"seed": SEED, "imagenet": IMAGENET}
DEFAULT = SEED  # new models: portable back to the seed's code
LEGACY_HGPRUNE = IMAGENET  # hgprune checkpoints written before the config carried a normalisation


def get_normalization(value) -> Normalization:
    """A :class:`Normalization` from a name (``seed``, ``imagenet``), a ``{mean, std}`` mapping or itself."""
    if isinstance(value, Normalization):
        return value
    if isinstance(value, str):
        if value not in NORMALIZATIONS:
            raise HgpruneError(f"normalization: unknown {value!r}; choose one of {', '.join(NORMALIZATIONS)}")
        return NORMALIZATIONS[value]
    if isinstance(value, dict):
        unknown = sorted(set(value) - {"mean", "std"})
        if unknown or "mean" not in value:
            raise HgpruneError(f"normalization: expected keys mean (and std), got {sorted(value)}")
        return Normalization(mean=value["mean"], std=value.get("std"))
    raise HgpruneError(f"normalization: expected a name or {{mean, std}}, got {type(value).__name__}")
