"""Failure-aware credit: answers in a failure atom never get more credit than the mean of the valid
answers of their group that are not best, and no credit depends on how low the penalty is.

A *failure* is a reward at or below ``algorithm.tea.failure_reward`` when that key is set; when it
is not, a reward at or below the batch's failure atom (:func:`bottom_atom`): a value far more
samples hold exactly than any value next to it, with at most 15 % of the batch below it. In a batch
whose credit is extrapolated (some group has m < N, and the batch is not judged discrete), the tail
estimators then

1. see every failure *censored* (:func:`censor`) one valid-reward scale below its group's lowest
   valid reward: failures still rank below every valid answer, but no credit depends on how low the
   penalty is (the exact best-of-N credit barely does either: a failure's gap to the lowest valid
   answer enters it with weight ``N p^(N-1)``, p the failure probability);
2. *cap* (:func:`cap`) every failure's credit at the mean credit of its group's valid answers that
   are not best (at the least valid credit when every valid answer ties for best), since the
   extrapolated credit need not rise with the reward (docs/estimators.md, section 10) and the exact
   one always does: a failure is never worth more than a valid answer.

Groups of failures only are constant (zero credit). Groups and batches without failures are
untouched, and so is everything in a discrete batch (exact ``bon`` at N = m, monotone already).
"""

from __future__ import annotations

import math

import torch

from tea_verl.estimators.layout import GroupLayout, group_std

__all__ = ["ATOM_MIN_COUNT", "ATOM_MIN_SHARE", "bottom_atom", "failure_mask", "valid_scale", "censor", "cap"]

ATOM_MIN_COUNT = 5
"""The least number of samples that hold an atom's value exactly."""
ATOM_MIN_SHARE = 0.01
"""... and the least share of the batch."""
ATOM_NEIGHBOUR_RATIO = 3
"""... and at least this many times the samples of either neighbouring value (a reward rounded to
bfloat16 fills neighbouring values alike; an atom stands out)."""
ATOM_MAX_BELOW = 0.15
"""The largest share of the batch below an atom: failures are at the bottom (valid rewards may still
reach below the penalty, as a spread mode's low draws do)."""


def bottom_atom(scores: torch.Tensor) -> float | None:
    """The failure atom of a batch, or None: the lowest value that at least :data:`ATOM_MIN_COUNT`
    samples and :data:`ATOM_MIN_SHARE` of the batch hold exactly, :data:`ATOM_NEIGHBOUR_RATIO` times
    as many as either neighbouring value, with at most :data:`ATOM_MAX_BELOW` of the batch below it
    and some of it above. ``python -m benchmarks.failures --sections fp`` measures how often it
    fires on continuous laws (float32, and rounded to bfloat16)."""
    total = scores.numel()
    if total < 2:
        return None
    # only values with at most ATOM_MAX_BELOW of the batch below them qualify: look at the bottom of the
    # batch alone (a selection and a short sort, where sorting the whole batch cost a tenth of a call)
    edge = torch.kthvalue(scores, min(total, int(ATOM_MAX_BELOW * total) + 1)).values
    values, counts = torch.unique(scores[scores <= edge], sorted=True, return_counts=True)
    above = scores[scores > edge]
    if above.numel() == 0:  # the bottom is the top: a constant batch, or one of two values
        counts = counts[:-1]
        values = values[:-1]
        if values.numel() == 0:
            return None
        beyond = counts.new_zeros(1) + int((scores == scores.max()).sum())
    else:
        beyond = counts.new_zeros(1) + int((above == above.min()).sum())
    zero = counts.new_zeros(1)
    neighbours = torch.maximum(torch.cat([zero, counts[:-1]]), torch.cat([counts[1:], beyond]))
    below = torch.cumsum(counts, 0) - counts
    ok = (
        (counts >= max(ATOM_MIN_COUNT, math.ceil(ATOM_MIN_SHARE * total)))
        & (counts >= ATOM_NEIGHBOUR_RATIO * neighbours)
        & (below <= ATOM_MAX_BELOW * total)
    )
    hit = torch.nonzero(ok)
    return float(values[hit[0, 0]]) if hit.numel() else None


def failure_mask(scores: torch.Tensor, failure_reward: float | None) -> tuple[torch.Tensor, float | None]:
    """(B,) bool: the failures of a flat batch, and the threshold used (None: no failures)."""
    threshold = failure_reward if failure_reward is not None else bottom_atom(scores)
    if threshold is None:
        return torch.zeros_like(scores, dtype=torch.bool), None
    return scores <= threshold, float(threshold)


def valid_scale(padded: torch.Tensor, fail: torch.Tensor, layout: GroupLayout) -> float:
    """The valid rewards' scale: the mean over groups of >= 2 valid answers of their std; the std of
    all valid rewards where no group has two; 1.0 where the batch has fewer than two. Never depends
    on the failures' values."""
    valid = layout.mask & ~fail
    several = valid.sum(1) >= 2
    if bool(several.any()):
        scale = float(group_std(padded, layout, valid)[several].mean())
        if scale > 0:
            return scale
    values = padded[valid]
    if values.numel() >= 2 and float(values.std()) > 0:
        return float(values.std())
    return 1.0


def censor(padded: torch.Tensor, fail: torch.Tensor, layout: GroupLayout) -> torch.Tensor:
    """Failures moved to one valid scale (:func:`valid_scale`) below their group's lowest valid
    reward; in a group of failures only, all to one value (the group is then constant)."""
    valid = layout.mask & ~fail
    inf = torch.full_like(padded, math.inf)
    vmin = torch.where(valid, padded, inf).amin(1, keepdim=True)
    fmax = torch.where(fail, padded, -inf).amax(1, keepdim=True)
    target = torch.where(torch.isfinite(vmin), vmin - valid_scale(padded, fail, layout), fmax)
    return torch.where(fail, target.expand_as(padded), padded)


def cap(credit: torch.Tensor, padded: torch.Tensor, fail: torch.Tensor, layout: GroupLayout) -> torch.Tensor:
    """Every failure's credit capped at the mean credit of its group's valid answers that are not
    best, or at the least valid credit where every valid answer ties for best (``padded``: the
    rewards). The mean, not the least: the extrapolated credit of a group's runner-up is often far
    below the rest (-3.06 on average under tea_gev on the tiny LM's answers), and a cap there makes
    the push away from failures swamp the extrapolation between valid modes (docs/estimators.md,
    section 11)."""
    valid = layout.mask & ~fail
    inf = torch.full_like(padded, math.inf)
    vmax = torch.where(valid, padded, -inf).amax(1, keepdim=True)
    nonbest = valid & (padded < vmax)
    count = nonbest.sum(1, keepdim=True)
    mean_nonbest = torch.where(nonbest, credit, torch.zeros_like(credit)).sum(1, keepdim=True) / count.clamp_min(1)
    least_valid = torch.where(valid, credit, torch.full_like(credit, math.inf)).amin(1, keepdim=True)
    limit = torch.where(count > 0, mean_nonbest, least_valid)
    return torch.where(fail & torch.isfinite(limit), torch.minimum(credit, limit), credit)
