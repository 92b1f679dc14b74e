"""Failure-aware credit: answers in a failure atom never get more credit than the mean of the valid
answers of their group that are not best, and no credit depends on how low the penalty is.

A *failure* is a reward at or below ``algorithm.tea.failure_reward`` when that key is set; when it
is not, a reward at or below the batch's failure atom (:func:`bottom_atom`): a value that many
samples hold exactly, below the valid rewards and apart from them (a real scorer's ordinary repeated
values, a lexicon's 0.0 or an integer judge's bottom step, are not one). In a batch
whose credit is extrapolated (some group has m < N, and the batch is not judged discrete), the tail
estimators then

1. see every failure *censored* (:func:`censor`) one valid-reward scale below its group's lowest
   valid reward: failures still rank below every valid answer, but no credit depends on how low the
   penalty is (the exact best-of-N credit barely does either: a failure's gap to the lowest valid
   answer enters it with weight ``N p^(N-1)``, p the failure probability);
2. *cap* (:func:`cap`) every failure's credit at the mean credit of its group's valid answers that
   are not best (at the least valid credit when every valid answer ties for best), since the
   extrapolated credit need not rise with the reward (docs/estimators.md, section 10) and the exact
   one always does: a failure is never worth more than a valid answer;
3. *push* (:func:`push`) failures below the valid answers of their group by
   ``algorithm.tea.failure_push`` valid-reward scales (default 4), the credit of a mean-validity
   term added to the best-of-N objective. The exact best-of-N credit is nearly indifferent between a
   failure and a valid answer that is not best (both weigh about ``N F(r)^(N-1)``, next to nothing
   below the top), so without it nothing in a tail run pushes the failure share down: on a real
   model, the share of answers cut at the length limit stayed above 10 % (docs/results.md).

Groups of failures only are constant (zero credit). Groups and batches without failures are
untouched, and so is everything in a discrete batch (exact ``bon`` at N = m, monotone already).
"""

from __future__ import annotations

import functools
import math

import torch

from tea_verl.estimators.layout import GroupLayout, group_std

__all__ = ["ATOM_MIN_COUNT", "ATOM_MIN_SHARE", "max_below", "bottom_atom", "failure_mask", "valid_scale", "censor", "cap", "push"]

ATOM_MIN_COUNT = 5
"""The least number of samples that hold an atom's value exactly."""
ATOM_MIN_SHARE = 0.01
"""... and the least share of the batch."""
ATOM_MAX_BELOW = 0.15
"""A penalty sits below the valid rewards: the share of the batch below an atom must be significantly
under this (a one-sided binomial test at level :data:`ATOM_BELOW_LEVEL`). Valid rewards may still
reach below a penalty, as a spread mode's low draws do (about 6 % of the batch on the tiny LM); a
scorer's ordinary repeated value inside the law (a lexicon's 0.0, with a fifth of the batch below)
is not one, in a batch of 64 as in one of 4096."""
ATOM_BELOW_LEVEL = 0.01
"""Level of that test."""
ATOM_NEAR_SCALE = 0.2
"""*Near* an atom means within this many interquartile ranges of the batch ..."""
ATOM_LATTICE_STEPS = 2.5
"""... or within this many steps of the batch's value lattice where that reaches further (the step:
the median gap between consecutive distinct values of the batch's lower half; one point of an
integer judge's scale, a partial-credit rule's increment, next to nothing on a continuous reward).
A batch is a *lattice* when the steps reach further than the interquartile share."""
ATOM_NEIGHBOUR_RATIO = 5
"""On a continuous reward, every other value near an atom holds at most ``1 + count /
ATOM_NEIGHBOUR_RATIO`` samples (``count``: the atom's). A value held once is the continuous law
itself; a lexicon's neighbouring word compounds, or a reward rounded to bfloat16, fill nearby values
alike, and a penalty stands out of them. On a lattice, where every value repeats, no other value may
be near an atom at all: a gap in the scale marks a penalty, a heavy bottom step is an ordinary
score."""


@functools.lru_cache(maxsize=256)
def max_below(total: int) -> int:
    """The largest number of samples below an atom that the below test accepts in a batch of
    ``total``: the largest k with ``P(Binomial(total, ATOM_MAX_BELOW) <= k) < ATOM_BELOW_LEVEL``
    (-1 when even k = 0 is not that unlikely)."""
    p = ATOM_MAX_BELOW
    log_pmf = total * math.log1p(-p)  # log P(X = 0)
    cdf = math.exp(log_pmf)
    k = 0
    while cdf < ATOM_BELOW_LEVEL and k < total:
        k += 1
        log_pmf += math.log((total - k + 1) / k) + math.log(p / (1.0 - p))
        cdf += math.exp(log_pmf)
    return k - 1


def bottom_atom(scores: torch.Tensor) -> float | None:
    """The failure atom of a batch, or None: the lowest value that

    1. at least :data:`ATOM_MIN_COUNT` samples and :data:`ATOM_MIN_SHARE` of the batch hold exactly;
    2. sits below the valid rewards: significantly less than :data:`ATOM_MAX_BELOW` of the batch is
       below it (:func:`max_below`), and some of it is above;
    3. stands apart from the valid rewards: near it (:data:`ATOM_NEAR_SCALE`,
       :data:`ATOM_LATTICE_STEPS`), on a continuous reward no other value holds more than one sample
       plus a fifth of its count (:data:`ATOM_NEIGHBOUR_RATIO`), and on a lattice no other value is.

    ``python -m benchmarks.failures --sections fp`` measures how often it fires on continuous laws
    (float32 and bfloat16) and on real scorers' laws (a lexicon on a real model's answers, integer
    judge scores, reward-model scores rounded to two decimals, rule-based partial credit), and how
    often it finds a penalty added to them."""
    total = scores.numel()
    if total < 2:
        return None
    limit = max_below(total)
    if limit < 0:
        return None
    # only values with at most `limit` samples below them qualify: look at the bottom of the batch
    # first (a selection and a short sort; most batches stop here, with no repeated value there)
    edge = torch.kthvalue(scores, limit + 1).values
    values, counts = torch.unique(scores[scores <= edge], sorted=True, return_counts=True)
    below = torch.cumsum(counts, 0) - counts
    need = max(ATOM_MIN_COUNT, math.ceil(ATOM_MIN_SHARE * total))
    hits = torch.nonzero((counts >= need) & (below <= limit) & (values < scores.max())).flatten().tolist()
    if not hits:
        return None

    def kth(share: float) -> float:
        return float(torch.kthvalue(scores, max(1, min(total, math.ceil(share * total)))).values)

    spread = ATOM_NEAR_SCALE * (kth(0.75) - kth(0.25))
    # the value lattice near the bottom: the distinct values of the lower half of the batch
    lower = torch.unique(scores[scores <= max(kth(0.5), float(edge))], sorted=True)
    for i in hits:
        a = values[i]
        others = lower[lower != a]
        if others.numel() < 2:  # no lattice to stand apart from (two values at the bottom)
            continue
        step = ATOM_LATTICE_STEPS * float(torch.diff(others).median())
        reach = max(spread, step)
        near = scores[((scores - a).abs() <= reach) & (scores != a)]
        most = int(torch.unique(near, return_counts=True)[1].max()) if near.numel() else 0
        lattice = step >= spread
        if most == 0 or (not lattice and int(counts[i]) >= ATOM_NEIGHBOUR_RATIO * (most - 1)):
            return float(a)
    return None


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


def push(credit: torch.Tensor, padded: torch.Tensor, fail: torch.Tensor, layout: GroupLayout, size: float) -> torch.Tensor:
    """Failures' credit lowered by ``size`` times the valid rewards' scale (:func:`valid_scale`)
    relative to their group's valid answers, centred in each group: ``credit - s (fail - f)`` with
    ``f`` the group's failure share, the group-centred credit of the term ``s P(valid)``. The group's
    mean credit and the order of its valid answers are unchanged; a group of failures only, or of
    valid answers only, is untouched."""
    if size <= 0:
        return credit
    scale = size * valid_scale(padded, fail, layout)
    mask = layout.mask
    f = fail.to(credit.dtype)
    share = (f * mask).sum(1, keepdim=True) / mask.sum(1, keepdim=True).clamp_min(1)
    return torch.where(mask, credit - scale * (f - share), credit)
