"""Targets: iterative schedules, hardware-friendly rounding of kept widths, and the channel-ratio search.

Kept fractions are always relative to the unpruned reference model, so step ``i`` of a schedule aims at
``schedule[i]`` of the original MACs/params/channels whatever the previous steps actually reached.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from hgprune.errors import HgpruneError
from hgprune.settings import ROUND_MODES, SCHEDULES


def schedule_targets(final_kept: float, steps: int, kind: str = "linear") -> list[float]:
    """Kept fraction after each of ``steps`` prune steps, ending exactly at ``final_kept``.

    ``linear`` removes the same fraction of the original each step. ``cubic`` is automated gradual pruning
    (Zhu & Gupta 2017): sparsity ``s_i = s_f · (1 − (1 − i/n)³)``, so early steps remove most while the network is
    still redundant and late steps remove little. ``geometric`` removes the same fraction of what is left each step
    (kept ``k_f^(i/n)``), so no single step cuts much deeper than the others: with ``linear`` the last of two steps
    to 25 % removes 60 % of its input, with ``geometric`` each removes 50 %.
    """
    if not 0 < final_kept <= 1:
        raise HgpruneError(f"prune.target: kept fraction must be in (0, 1], got {final_kept}")
    if int(steps) != steps or steps < 1:
        raise HgpruneError(f"prune.steps: must be an integer >= 1, got {steps}")
    if kind not in SCHEDULES:
        raise HgpruneError(f"prune.schedule: unknown schedule {kind!r}; valid: {', '.join(SCHEDULES)}")
    final_sparsity = 1.0 - final_kept
    targets = []
    for i in range(1, int(steps) + 1):
        progress = i / steps
        if kind == "geometric":
            targets.append(final_kept**progress)
            continue
        sparsity = final_sparsity * (progress if kind == "linear" else 1.0 - (1.0 - progress) ** 3)
        targets.append(1.0 - sparsity)
    targets[-1] = float(final_kept)
    return targets


def round_keep(raw_keep: float, width: int, round_to: int | None, mode: str, min_keep: int = 1) -> int:
    """Channels a group keeps: ``raw_keep`` rounded to a multiple of ``round_to`` in direction ``mode``.

    Never more than ``width`` nor fewer than ``min_keep``; a group that has nothing to remove keeps ``width`` (even if
    that is not a multiple), and one with no multiple of ``round_to`` that fits keeps ``width`` (it is skipped, as
    torch-pruning does, but on purpose and documented).
    """
    step = max(int(round_to or 1), 1)
    min_keep = max(1, min(int(min_keep), width))
    if raw_keep >= width:
        return width
    units = raw_keep / step
    if mode == "down":
        units = math.floor(units + 1e-9)
    elif mode == "up":
        units = math.ceil(units - 1e-9)
    elif mode == "nearest":
        units = math.floor(units + 0.5)
    else:
        raise HgpruneError(f"prune.round_mode: unknown {mode!r}; valid: {', '.join(ROUND_MODES)}")
    keep = units * step
    if keep < min_keep:
        keep = math.ceil(min_keep / step) * step
    if keep > width or keep < 1:
        return width
    return int(keep)


@dataclass
class SearchResult:
    ratio: float
    fraction: float
    evaluations: int
    met: bool


def search_ratio(
    fraction_at: Callable[[float], float],
    kept: float,
    tolerance: float,
    max_ratio: float = 1.0,
    resolution: float = 1e-5,
) -> SearchResult:
    """Bisection for the channel ratio whose kept fraction is closest to ``kept``.

    ``fraction_at(ratio)`` must be non-increasing in ``ratio`` (it is: every group's kept width is). Rounding makes
    it a step function, so the search returns the best ratio evaluated, not an exact root, and says whether it is
    within ``tolerance`` (absolute, in kept-fraction units).
    """
    evaluations = 0

    def f(ratio: float) -> float:
        nonlocal evaluations
        evaluations += 1
        return fraction_at(ratio)

    at_zero = f(0.0)
    if at_zero <= kept + tolerance:  # already small enough: prune nothing
        return SearchResult(0.0, at_zero, evaluations, at_zero <= kept + tolerance)
    at_max = f(max_ratio)
    if at_max >= kept:  # even the strongest allowed prune keeps too much
        return SearchResult(max_ratio, at_max, evaluations, abs(at_max - kept) <= tolerance)
    best = min(((0.0, at_zero), (max_ratio, at_max)), key=lambda rf: abs(rf[1] - kept))
    low, high = 0.0, max_ratio
    while high - low > resolution:
        mid = 0.5 * (low + high)
        value = f(mid)
        if abs(value - kept) < abs(best[1] - kept):
            best = (mid, value)
        if value == kept:
            break
        if value > kept:
            low = mid
        else:
            high = mid
    return SearchResult(best[0], best[1], evaluations, abs(best[1] - kept) <= tolerance)
