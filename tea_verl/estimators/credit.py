"""The front door: :func:`best_of_n_credit`, one credit per sample for a flat batch of any
estimator of :mod:`tea_verl.estimators.table`, with :class:`CreditInfo`, its diagnostics.

Validation, tie and discreteness handling (:func:`top_tie_groups`, a binomial test), failures
(:mod:`.failures`), dispatch to the family's math (:mod:`.exact`, :mod:`.gaussian`, :mod:`.gev`) and
std scaling. Pure torch; never imports verl.
"""

from __future__ import annotations

import functools
import importlib
import math
from dataclasses import dataclass

import torch

from tea_verl.config import TeaConfig
from tea_verl.estimators import failures, gaussian
from tea_verl.estimators.exact import (
    bon_weights,
    prefix_to_rank_weights,
    rank_credit,
)
from tea_verl.estimators.gev import (
    pooled_shape,
)
from tea_verl.estimators.layout import F64 as _F64, GroupLayout, check_finite, group_layout, group_std
from tea_verl.estimators.table import ESTIMATORS, GAUSSIAN, GEV, method

__all__ = ["EPSILON", "DISCRETE_TEST_LEVEL", "CreditInfo", "best_of_n_credit", "binomial_sf", "credit_stats", "top_tie_groups", "top_tie_rate"]


EPSILON = 1e-6  # added to the reward std before dividing by it, as verl's GRPO estimators do


@dataclass(frozen=True)
class CreditInfo:
    """Diagnostics of one call (the verl glue logs them as ``tea/*`` step metrics)."""

    xi: float  # tail shape used (nan when no group needed extrapolation)
    shape_r2: float  # R^2 of the pooled scaling-law fit (nan when not fitted)
    num_singletons: int
    top_tie_rate: float = float("nan")  # share of extrapolated, non-constant groups whose top two tie
    tie_groups: int = 0  # those groups (they get the exact bon credit at N = m)
    eligible_groups: int = 0  # non-constant groups of 2 <= m < N samples (the tie rate's denominator)
    discrete_pvalue: float = float("nan")  # one-sided binomial test of "tie probability <= max_top_tie_rate"
    discrete_batch: bool = False  # the test rejected: the whole batch fell back to bon at N = m
    credit_mean: float = float("nan")
    credit_std: float = float("nan")
    best_nonpositive_share: float = float("nan")  # non-constant groups whose best sample gets credit <= 0
    best_lowest_share: float = float("nan")  # non-constant groups whose best sample gets the group's lowest credit
    failure_share: float = 0.0  # share of the batch's samples taken as failures (tail estimators; :mod:`.failures`)

    @property
    def fallback_groups(self) -> int:
        """Groups that got the exact bon credit at N = m instead of the extrapolated one."""
        return self.eligible_groups if self.discrete_batch else self.tie_groups

    def metrics(self, estimator: str) -> dict[str, float]:
        """The ``tea/*`` step metrics every framework's glue logs (docs/configuration.md lists
        them); ``tea/xi`` and ``tea/shape_r2`` only for the GEV family, which fits a shape."""
        out = {
            "tea/xi": self.xi,
            "tea/shape_r2": self.shape_r2,
            "tea/top_tie_rate": self.top_tie_rate,
            "tea/fallback_groups": self.fallback_groups,
            "tea/fallback_batch": self.discrete_batch,
            "tea/discrete_pvalue": self.discrete_pvalue,
            "tea/singletons": self.num_singletons,
            "tea/credit_mean": self.credit_mean,
            "tea/credit_std": self.credit_std,
            "tea/best_nonpositive_share": self.best_nonpositive_share,
            "tea/best_lowest_share": self.best_lowest_share,
            "tea/failure_share": self.failure_share,
        }
        if estimator not in GEV:  # no GEV shape is fitted: no metric rather than a nan every step
            del out["tea/xi"], out["tea/shape_r2"]
        return {k: float(v) for k, v in out.items()}


DISCRETE_TEST_LEVEL = 0.05  # level of the one-sided binomial test that declares a batch discrete (benchmarks/ties.py)


def binomial_sf(k: int, n: int, p: float) -> float:
    """``P(X >= k)`` for ``X ~ Binomial(n, p)``, summed in log space (n up to a few thousand)."""
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    if p <= 0.0:
        return 0.0
    if p >= 1.0:
        return 1.0
    lp, lq = math.log(p), math.log1p(-p)
    terms = [math.lgamma(n + 1) - math.lgamma(j + 1) - math.lgamma(n - j + 1) + j * lp + (n - j) * lq for j in range(k, n + 1)]
    top = max(terms)
    return min(1.0, math.exp(top) * sum(math.exp(t - top) for t in terms))


def best_of_n_credit(
    scores: torch.Tensor,
    group_ids: torch.Tensor,
    estimator: str,
    config: TeaConfig,
    *,
    norm_by_std: bool = True,
    epsilon: float = EPSILON,
    short_bon_groups: bool = False,
) -> tuple[torch.Tensor, CreditInfo]:
    """Per-sample best-of-N credit for a flat batch.

    Args:
        scores: (B,) outcome rewards.
        group_ids: (B,) contiguous prompt-group ids in 0..G-1.
        estimator: "bon" (needs N <= every group size), "tea", "prefix_tea" (the paper's Gaussian
            family), "tea_gev" or "prefix_tea_gev" (the GEV family).
        config: the ``algorithm.tea`` settings (:class:`tea_verl.config.TeaConfig`; its
            docstrings say what each does): the budget ``N``; the GEV family's ``shape``,
            ``shape_bounds``, ``shape_fallback``, ``smoothing``, ``order`` and ``rho``; the
            Gaussian family's ``alpha`` (groups with m < N need ``ceil(alpha m) >= 2``) and
            ``prefix_tea``'s ``jackknife_order``, ``jackknife_sizes`` and ``jackknife_orderings``
            (:func:`gaussian.jackknife_plan`); ``std_scale``; and ``max_top_tie_rate``: groups whose
            top two rewards tie get the exact ``bon`` credit at N = m, and when a one-sided binomial
            test rejects "tie probability <= max_top_tie_rate" at level
            :data:`DISCRETE_TEST_LEVEL`, the rewards are discrete and the whole batch gets ``bon``
            at N = m (``info.discrete_batch``). Never raises on data; 1.0 turns the batch test off.
        norm_by_std: divide the credit by a reward std (+ ``epsilon``), so that it is invariant to
            the reward's units. ``config.std_scale="batch"`` (default) divides every group by the
            batch mean of the group stds; ``"group"`` divides each group by its own std, as GRPO
            does, which lowers the spread valuation (the std grows with the sample's own reward;
            see docs/estimators.md, "Output scale").
        short_bon_groups: for ``bon``, a group with fewer than N samples (2 <= m < N) gets the exact
            best-of-m credit instead of an error. The adapters whose completions can be unscorable
            (TRL, OpenRLHF) pass True: such a group has lost samples, not been sized wrongly.
    Returns:
        credit (B,) in the dtype of ``scores``, and diagnostics.
    """
    _check_call(scores, group_ids, estimator, config)
    if scores.numel() == 0:
        return scores.clone(), CreditInfo(float("nan"), float("nan"), 0)
    check_finite(scores)
    layout = group_layout(group_ids.to(scores.device))
    multi = sorted(set(layout.sizes.tolist()) - {0, 1})
    _check_group_sizes(estimator, config, layout, multi, short_bon_groups)
    batch = _tail_state(scores.to(_F64), layout, multi, estimator, config)
    credit = _dispatch(batch, layout, multi, estimator, config)
    if batch.fail is not None:
        credit = failures.cap(credit, batch.raw, batch.fail, layout)
        credit = failures.push(credit, batch.raw, batch.fail, layout, config.failure_push)
    if norm_by_std:
        credit = _scale(credit, batch.padded, layout, config.std_scale, epsilon)
    failure_share = float(batch.fail.sum()) / scores.numel() if batch.fail is not None else 0.0
    info = CreditInfo(batch.xi, batch.r2, int((layout.sizes == 1).sum()), batch.tie_rate, int(batch.tied.sum()), batch.eligible,
                      batch.pvalue, batch.discrete, failure_share=failure_share, **credit_stats(credit, batch.raw, layout))
    return layout.unpad(credit).to(scores.dtype), info


def _check_call(scores: torch.Tensor, group_ids: torch.Tensor, estimator: str, config: TeaConfig) -> None:
    if estimator not in ESTIMATORS:
        raise ValueError(f"unknown estimator {estimator!r}; choose one of {ESTIMATORS}")
    if not isinstance(config, TeaConfig):
        raise TypeError(
            f"config must be a TeaConfig (the algorithm.tea settings), got {type(config).__name__}; "
            "e.g. TeaConfig(N=64) or TeaConfig.from_algorithm(algorithm)"
        )
    if scores.dim() != 1 or group_ids.shape != scores.shape:
        raise ValueError(
            f"scores and group_ids must be 1-D of the same length, got {tuple(scores.shape)} and "
            f"{tuple(group_ids.shape)}"
        )


def _check_group_sizes(estimator: str, config: TeaConfig, layout: GroupLayout, multi: list[int], short_bon_groups: bool) -> None:
    """``bon`` needs N <= every group size (unless short groups are allowed); the Gaussian family
    needs a tail of two at every group size it extrapolates from."""
    n = config.N
    if estimator == "bon" and multi and n > min(multi) and not short_bon_groups:
        small = int(((layout.sizes < n) & (layout.sizes > 1)).sum())
        raise ValueError(
            f"bon is exact only for N <= group size, but N={n} and {small} group(s) have fewer samples "
            f"(smallest m={min(multi)}). Use adv_estimator=tea or prefix_tea to extrapolate to N > m, "
            f"or raise rollout.n to at least {n}."
        )
    if estimator in GAUSSIAN:
        errors = [gaussian.tail_error(estimator, config.alpha, m) for m in multi if m < n]
        if any(errors):
            raise ValueError(next(e for e in errors if e))


@dataclass
class _TailState:
    """What a batch says before its credit: the rewards (``raw``) and the ones the credit reads
    (``padded``: failures censored), the groups whose top ties, the discreteness test, the failures
    and the GEV family's tail shape."""

    raw: torch.Tensor
    padded: torch.Tensor
    tied: torch.Tensor
    eligible: int = 0
    tie_rate: float = float("nan")
    pvalue: float = float("nan")
    discrete: bool = False
    fail: torch.Tensor | None = None  # failures of an extrapolating, continuous batch: censored before the credit, capped after it
    xi: float = float("nan")
    r2: float = float("nan")


def _tail_state(flat: torch.Tensor, layout: GroupLayout, multi: list[int], estimator: str, config: TeaConfig) -> _TailState:
    raw = layout.pad(flat)
    state = _TailState(raw=raw, padded=raw, tied=torch.zeros(layout.num_groups, dtype=torch.bool, device=flat.device))
    n = config.N
    if estimator == "bon" or not any(m < n for m in multi):
        return state
    state.tied, varied = top_tie_groups(raw, layout, n)
    state.eligible = int(varied.sum())
    ties = int(state.tied.sum())
    state.tie_rate = ties / state.eligible if state.eligible else 0.0
    # Discrete rewards (pass/fail, a few levels) tie at the top in most groups; a continuous law
    # with a few point masses ties rarely. Declare the batch discrete when a one-sided binomial
    # test rejects "tie probability <= max_top_tie_rate" at level 5 %: a decision whose error
    # rate does not depend on the batch size, where a fixed cliff on the observed rate fires on
    # 2 ties in 16 groups. max_top_tie_rate = 1 never rejects.
    rate = config.max_top_tie_rate
    state.pvalue = binomial_sf(ties, state.eligible, rate) if state.eligible and rate < 1.0 else 1.0
    state.discrete = state.pvalue < DISCRETE_TEST_LEVEL
    if state.discrete:
        return state
    # failures (an atom far below the rest): their size no longer counts (.failures)
    flat_fail, threshold = failures.failure_mask(flat, config.failure_reward)
    if threshold is not None and bool(flat_fail.any()):
        state.fail = layout.pad(flat_fail) & layout.mask
        state.padded = failures.censor(raw, state.fail, layout)
    if estimator not in GAUSSIAN:  # the GEV family's tail shape
        if config.shape == "pooled":
            state.xi, state.r2 = pooled_shape(state.padded, layout, multi, config.shape_bounds, config.shape_fallback)
        else:
            state.xi = float(config.shape)
    return state


def _dispatch(batch: _TailState, layout: GroupLayout, multi: list[int], estimator: str, config: TeaConfig) -> torch.Tensor:
    """The credit of every group size: exact ``bon`` where N <= m or the batch is discrete, else the
    estimator's own math from the table (:attr:`tea_verl.estimators.table.Method.function`): the
    Gaussian family's credit, or the GEV family's prefix weights; a group whose top ties gets ``bon``
    at N = m."""
    n, padded, device = config.N, batch.padded, batch.padded.device
    row = method(estimator)
    math_fn, keywords = (_function(row.function), row.keywords(config)) if row.function else (None, {})
    omega = torch.zeros(layout.num_groups, max(layout.max_size - 1, 0), dtype=_F64, device=device)
    gamma = torch.zeros(layout.num_groups, dtype=_F64, device=device)
    direct = torch.zeros_like(padded)  # the Gaussian family's credit, for the groups it handles
    for m in multi:
        sel = layout.sizes == m
        if estimator == "bon" or m >= n or batch.discrete:
            om, ga = bon_weights(m, min(n, m))
        elif row.family == "gaussian":  # the credit itself
            om, ga = torch.zeros(m - 1, dtype=_F64), 0.0
            direct[sel, :m] = math_fn(padded[sel, :m], n=n, **keywords)
        else:  # the GEV family: prefix weights, turned into rank weights
            om, ga = prefix_to_rank_weights(math_fn(m=m, n=n, xi=batch.xi, **keywords))
        omega[sel, : m - 1] = om.to(device)
        gamma[sel] = ga
        fallback = sel & batch.tied
        if m < n and not batch.discrete and bool(fallback.any()):
            # a tied top: the tail model has no continuous tail to extrapolate; exact bon at N = m
            om, ga = bon_weights(m, m)
            omega[fallback] = 0.0
            omega[fallback, : m - 1] = om.to(device)
            gamma[fallback] = ga
            direct[fallback] = 0.0
    return rank_credit(padded, layout, omega, gamma) + direct


@functools.cache
def _function(path: str):
    """The function a table row names (``module:function``)."""
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def _scale(credit: torch.Tensor, padded: torch.Tensor, layout: GroupLayout, std_scale: str, epsilon: float) -> torch.Tensor:
    """Credit divided by the batch mean of the group stds (``batch``) or each group's own (``group``)."""
    std = group_std(padded, layout)
    if std_scale == "batch":
        multi_groups = layout.sizes > 1
        scale = std[multi_groups].mean() if bool(multi_groups.any()) else std.new_zeros(())
        return credit / (scale + epsilon)
    return credit / (std + epsilon)[:, None]


def credit_stats(credit: torch.Tensor, padded: torch.Tensor, layout: GroupLayout) -> dict[str, float]:
    """Mean and std of the credit over samples of groups of >= 2, and, over non-constant groups,
    the share whose best sample gets credit <= 0 and the share whose best sample gets the group's
    lowest credit. Both are expected for some groups when N >> m: the best-of-N credit is nearly
    flat below the law's (1 - 1/N) quantile, which a group's best often does not reach."""
    multi = layout.mask & (layout.sizes > 1)[:, None]
    vals = credit[multi]
    if vals.numel() == 0:
        return {}
    out = {"credit_mean": float(vals.mean()), "credit_std": float(vals.std()) if vals.numel() > 1 else 0.0}
    hi = torch.where(layout.mask, padded, torch.full_like(padded, -math.inf))
    lo = torch.where(layout.mask, padded, torch.full_like(padded, math.inf))
    varied = (layout.sizes > 1) & (hi.amax(1) > lo.amin(1))
    if bool(varied.any()):
        best = hi.argmax(1, keepdim=True)
        best_credit = credit.gather(1, best).squeeze(1)[varied]
        min_credit = torch.where(layout.mask, credit, torch.full_like(credit, math.inf)).amin(1)[varied]
        out["best_nonpositive_share"] = float((best_credit <= 0).double().mean())
        out["best_lowest_share"] = float((best_credit <= min_credit).double().mean())
    return out


def top_tie_groups(padded: torch.Tensor, layout: GroupLayout, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per group: (its two largest rewards are equal, it is eligible), eligible meaning non-constant
    with 2 <= m < n samples (the groups that need extrapolation).

    Under a continuous reward law ties have probability 0. A law with an atom at its top (a
    pass/fail verifier, integer scores) ties often, and its best-of-n curve saturates
    geometrically, outside every GEV scaling law: extrapolating it can flip the sign of the credit
    of the best responses (docs/estimators.md, "Discrete rewards").
    """
    eligible = (layout.sizes >= 2) & (layout.sizes < n)
    tied = torch.zeros_like(eligible)
    if not bool(eligible.any()):
        return tied, eligible
    x = torch.where(layout.mask, padded, torch.full_like(padded, -math.inf))
    top2 = torch.topk(x, 2, dim=1).values  # an eligible group exists, so groups hold >= 2 slots
    low = torch.where(layout.mask, padded, torch.full_like(padded, math.inf)).amin(1)
    varied = eligible & (top2[:, 0] > low)
    tied = varied & (top2[:, 0] == top2[:, 1])
    return tied, varied


def top_tie_rate(padded: torch.Tensor, layout: GroupLayout, n: int) -> tuple[float, int]:
    """Share of eligible groups (see :func:`top_tie_groups`) whose two largest rewards tie, and
    how many groups are eligible."""
    tied, varied = top_tie_groups(padded, layout, n)
    count = int(varied.sum())
    return (float(tied.sum()) / count if count else 0.0), count
