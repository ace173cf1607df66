"""Allocation: how many channels each group keeps, given a criterion's ranking and a target.

Three ways (``ALLOCATIONS``):

- ``uniform``: every group loses the same fraction (times its part's multiplier), ranked within the group;
- ``global``: scores divided by their group's mean and pooled, so a group whose channels look unimportant relative
  to the rest can be cut to ``max_layer_ratio`` — the likely reason criteria lost to random (issue 12);
- ``search``: sample per-unit width allocations that meet the target, score each quickly on a pruned *copy* —
  BatchNorm re-estimated on a few training batches, PCKh on a held-out slice of the *training* split — and keep the
  best (EagleEye's adaptive-BN evaluation; the idea behind FastNAS). The uniform and global plans are always
  candidates, so the search never picks something that scores worse than both on its own proxy.

Rounding (``round_to``) makes every plan a step function of the searched ratio: with 32-channel interiors and
``round_to: 4`` a uniform plan moves in 12.5 % steps, all groups at once. :func:`plan_to_target` therefore lets a
subset of groups take the next rounding step (least important step first) until the kept fraction is closest to
the target.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from hgprune.errors import HgpruneError
from hgprune.prune.targets import SearchResult, search_ratio
from hgprune.settings import ALLOCATIONS, SearchSettings  # noqa: F401 (re-exported: the engine's options)
from hgprune.train.evaluation import heldout_pckh
from hgprune.train.losses import joints_mse

SAMPLING_SPREAD = 0.5  # σ of the log-normal per-unit multiplier: e^±0.5 ≈ ×0.6 … ×1.65 around the bias
MIN_SENSITIVITY_DROP = 0.1  # PCKh points: parts that lose less are treated as this sensitive, not infinitely robust


@dataclass
class Candidate:
    name: str
    ranking: str  # "uniform" (within each group) or "global" (pooled normalised scores)
    factors: dict[str, float] = field(default_factory=dict)  # per search unit, on top of the part multipliers


@dataclass
class SearchOutcome:
    """The chosen plan and every candidate's record (what ``allocation_step_XXX.json`` holds)."""

    keep: np.ndarray
    found: SearchResult
    chosen: dict
    candidates: list[dict]


# -- hitting the target ------------------------------------------------------------------------------------------


def plan_to_target(
    plan: Callable[[float], np.ndarray],
    fraction_of: Callable[[np.ndarray], float],
    kept: float,
    tolerance: float,
    step_priority: Callable[[int, int, int], float],
    step_down: Callable[[int, int], int | None],
) -> tuple[np.ndarray, SearchResult]:
    """The plan closest to ``kept``: bisection over the ratio, then partial rounding steps if that misses.

    ``plan(ratio)`` must be monotone. When the two plans either side of the target are both outside ``tolerance``,
    groups first move from the larger plan to the smaller one one at a time, the step whose removed channels matter
    least (``step_priority(group, keep_from, keep_to)``, lower first) going first, and the closest prefix wins. If
    that still misses (one group's step is too big, e.g. a full-resolution stem conv), a greedy fill takes single
    rounding steps (``step_down(group, keep)`` → the next smaller width or None) from the larger plan, least
    important first, never going below ``kept - tolerance``.
    """
    found = search_ratio(lambda r: fraction_of(plan(r)), kept, tolerance)
    keep = plan(found.ratio)
    if found.met:
        return keep, found
    low, high = 0.0, 1.0
    if fraction_of(plan(high)) >= kept:  # even the strongest allowed prune keeps too much: nothing to fill
        return keep, found
    for _ in range(40):
        mid = 0.5 * (low + high)
        if fraction_of(plan(mid)) > kept:
            low = mid
        else:
            high = mid
    larger, smaller = plan(low), plan(high)
    moving = [i for i in range(len(larger)) if larger[i] != smaller[i]]
    moving.sort(key=lambda i: (step_priority(i, int(larger[i]), int(smaller[i])), i))
    best, best_fraction = keep, found.fraction
    current = larger.copy()
    for i in moving:
        current[i] = smaller[i]
        fraction = fraction_of(current)
        if abs(fraction - kept) < abs(best_fraction - kept):
            best, best_fraction = current.copy(), fraction
    evaluations = found.evaluations + 41 + len(moving)
    if abs(best_fraction - kept) > tolerance:
        current, fraction = larger.copy(), fraction_of(larger)
        while fraction > kept + tolerance:
            moves = []
            for i, k in enumerate(current):
                to = step_down(i, int(k))
                if to is not None:
                    after = current.copy()
                    after[i] = to
                    moves.append((step_priority(i, int(k), to), i, after, fraction_of(after)))
            evaluations += len(moves)
            allowed = [m for m in moves if m[3] >= kept - tolerance]
            if not allowed:
                break
            _, _, current, fraction = min(allowed, key=lambda m: (m[0], m[1]))
        if abs(fraction - kept) < abs(best_fraction - kept):
            best, best_fraction = current, fraction
    return best, SearchResult(high, best_fraction, evaluations, abs(best_fraction - kept) <= tolerance)


# -- search --------------------------------------------------------------------------------------------------


def read_sensitivity(path: str | Path):
    """An ``hgprune sensitivity`` CSV as a table; a run checks it before any work starts."""
    import pandas as pd

    try:
        table = pd.read_csv(path)
    except (OSError, ValueError) as exc:
        raise HgpruneError(f"prune.search.sensitivity: cannot read {path} ({type(exc).__name__})") from None
    missing = {"part", "pckh_drop"} - set(table.columns)
    if missing:
        raise HgpruneError(
            f"prune.search.sensitivity: {path} has no column(s) {', '.join(sorted(missing))}; "
            "expected the CSV that `hgprune sensitivity` writes"
        )
    return table


def sensitivity_bias(path: str | Path, units: Sequence[str]) -> dict[str, float]:
    """Per-unit multiplier from an ``hgprune sensitivity`` CSV: ``(mean drop / part's drop)^½``, geometric mean 1.

    A part that lost little PCKh when pruned alone is sampled to lose more channels; one that lost a lot, fewer.
    """
    table = read_sensitivity(path)
    table = table[table["part"] != "none"]
    drops = table.groupby("part")["pckh_drop"].mean().clip(lower=MIN_SENSITIVITY_DROP).to_dict()
    parts = {unit: unit.split(".")[0] for unit in units}
    known = [drops[p] for p in parts.values() if p in drops]
    if not known:
        valid = ", ".join(sorted(set(parts.values())))
        raise HgpruneError(f"prune.search.sensitivity: {path} names none of the prunable parts {valid}")
    mean = float(np.mean(known))
    raw = {unit: math.sqrt(mean / drops[part]) if part in drops else 1.0 for unit, part in parts.items()}
    geo = math.exp(float(np.mean([math.log(v) for v in raw.values()])))
    return {unit: value / geo for unit, value in raw.items()}


def sample_candidates(units: Sequence[str], settings: SearchSettings, seed: int, bias: dict[str, float]) -> list:
    """The uniform and global plans, then log-normal per-unit multipliers around ``bias`` (same seed → same list)."""
    rng = np.random.default_rng(seed)
    candidates = [Candidate("uniform", "uniform", {u: 1.0 for u in units}), Candidate("global", "global", {})]
    if bias and any(v != 1.0 for v in bias.values()):
        candidates.append(Candidate("sensitivity", "uniform", {u: bias.get(u, 1.0) for u in units}))
    while len(candidates) < settings.candidates:
        factors = {u: round(bias.get(u, 1.0) * math.exp(rng.normal(0.0, SAMPLING_SPREAD)), 4) for u in units}
        candidates.append(Candidate(f"sample{len(candidates)}", "uniform", factors))
    return candidates[: max(settings.candidates, 1)]


def search_allocation(
    candidates: Sequence[Candidate],
    plan_for: Callable[[Candidate], tuple[np.ndarray, SearchResult]],
    evaluate: Callable[[np.ndarray], float],
    describe: Callable[[np.ndarray], dict],
    progress: bool = True,
) -> SearchOutcome:
    """Score every candidate that meets the target; keep the best (ties: the earlier, so uniform before samples).

    ``plan_for`` turns a candidate into kept widths (analytically), ``evaluate`` scores kept widths on a pruned
    copy, ``describe`` summarises kept widths per part for the record. Identical plans are scored once.
    """
    records: list[dict] = []
    scored: dict[bytes, float] = {}
    best: tuple[float, np.ndarray, SearchResult, dict] | None = None
    fallback: tuple[np.ndarray, SearchResult] | None = None
    for candidate in tqdm(candidates, desc="allocation search", unit="cand", disable=not progress, leave=False):
        keep, found = plan_for(candidate)
        record = {"name": candidate.name, "ranking": candidate.ranking, "factors": candidate.factors}
        record.update(fraction=round(found.fraction, 6), target_met=found.met)
        if fallback is None:
            fallback = (keep, found)
        if not found.met:
            records.append({**record, "score": None})
            continue
        key = keep.tobytes()
        if key not in scored:
            scored[key] = float(evaluate(keep))
        score = scored[key]
        records.append({**record, "score": round(score, 4), "parts": describe(keep)})
        if best is None or score > best[0]:
            best = (score, keep, found, records[-1])
    if best is None:  # no candidate met the target: fall back to the uniform plan (the engine warns)
        keep, found = fallback
        return SearchOutcome(keep, found, {**records[0], "note": "no candidate met the target"}, records)
    return SearchOutcome(best[1], best[2], best[3], records)


# -- data for the search -------------------------------------------------------------------------------------


class TrainingSlice:
    """Disjoint pieces of the training split: BatchNorm batches and a held-out slice that scores candidates.

    The held-out slice is the last ``holdout`` samples; BN batches are drawn (seeded) from the rest. Validation data
    never enters: the engine only ever receives the training split.
    """

    def __init__(self, train_set, settings: SearchSettings, seed: int) -> None:
        if train_set is None:
            raise HgpruneError("allocation search and recalibrate_bn need the training split (train_set)")
        size = len(train_set)
        holdout = min(settings.holdout, size // 2)
        self.train_set = train_set
        self.settings = settings
        self.seed = int(seed)  # also seeds the depth importance ``random`` (hgprune.prune.depth)
        self.holdout_indices = list(range(size - holdout, size))
        generator = torch.Generator().manual_seed(int(seed))
        pool = torch.randperm(size - holdout, generator=generator).tolist()
        self.bn_indices = pool[: settings.batches * settings.batch_size]
        self._bn_batches: list | None = None
        self._holdout_batches: list | None = None

    def bn_batches(self) -> list:
        """The BatchNorm batches, read once and reused by every candidate and the final re-estimation."""
        if self._bn_batches is None:
            subset = torch.utils.data.Subset(self.train_set, self.bn_indices)
            self._bn_batches = list(torch.utils.data.DataLoader(subset, batch_size=self.settings.batch_size))
        return self._bn_batches

    def holdout_batches(self) -> list:
        """The held-out slice as ``(images, target, weight, meta)`` batches without augmentation, read once; the
        caller's dataset is not modified (a shallow copy has its augmentation turned off)."""
        if self._holdout_batches is None:
            plain = copy.copy(self.train_set)
            if getattr(plain, "augment", None) is not None:
                plain.augment = None
            subset = torch.utils.data.Subset(plain, self.holdout_indices)
            self._holdout_batches = list(torch.utils.data.DataLoader(subset, batch_size=self.settings.batch_size))
        return self._holdout_batches

    @torch.no_grad()
    def holdout_loss(self, model: torch.nn.Module) -> float:
        """Mean visibility-weighted heatmap MSE of the model's *last* output on the held-out slice (every
        depth-pruned model has one), in eval mode: what depth-unit importance is measured with."""
        was_training = model.training
        model.eval()
        device = next(model.parameters()).device
        total, count = 0.0, 0
        try:
            for images, target, weight, *_ in self.holdout_batches():
                last = model(images.to(device))[-1]
                total += float(joints_mse(last, target.to(device), weight.to(device))) * len(images)
                count += len(images)
        finally:
            model.train(was_training)
        return total / max(count, 1)

    def holdout_pckh(self, model: torch.nn.Module) -> float:
        """PCKh (MPII protocol) on the held-out training slice, without augmentation."""
        return heldout_pckh(model, self.train_set, self.holdout_indices, batch_size=self.settings.batch_size * 4)
