"""The exact best-of-k machinery: binomial rank-weight tables, the exact ``bon`` credit and the
one vectorised kernel (:func:`rank_credit`) that turns rank weights into per-sample credit.

For one group ``r_1..r_m`` and ``1 <= N <= m``, ``bon`` is ``N * c_i^(N)``,
``c_i^(N) = E_S[(r_i - max_{j in S} r_j)_+]`` over uniformly random (N-1)-subsets ``S`` of the
*other* m-1 samples: exact and unbiased for ``grad E[max of N]``. On ascending ranks ``c^(N)``
at rank ``k`` is ``sum_{j<k} w_j (s_(k) - s_(j))`` with ``w_j = C(j-1, N-2) / C(m-1, N-1)``;
``N = 1`` is RLOO (``r_i - mean of the others``). The GEV estimators (:mod:`.gev`) are linear
combinations of these prefix estimators for k = 1..m. Never imports verl.
"""

from __future__ import annotations

import functools
import math

import torch

from tea_verl.estimators.layout import F64 as _F64, GroupLayout

__all__ = [
    "log_comb",
    "prefix_rank_table",
    "best_of_k_table",
    "subset_max_cdf",
    "bon_weights",
    "prefix_to_rank_weights",
    "rank_credit",
    "best_of_k_curves",
]


# ----------------------------------------------------------------------------------------------
# Binomial weight tables (log space; m up to thousands)
# ----------------------------------------------------------------------------------------------
def log_comb(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """log C(a, b) for 0 <= b <= a (float64); -inf elsewhere."""
    ok = (b >= 0) & (b <= a)
    a_, b_ = torch.where(ok, a, torch.ones_like(a)), torch.where(ok, b, torch.zeros_like(b))
    val = torch.lgamma(a_ + 1) - torch.lgamma(b_ + 1) - torch.lgamma(a_ - b_ + 1)
    return torch.where(ok, val, torch.full_like(val, -math.inf))


@functools.lru_cache(maxsize=256)
def prefix_rank_table(m: int) -> torch.Tensor:
    """T[k-1, j-1] = C(j-1, k-2) / C(m-1, k-1) for k = 1..m, j = 1..m-1 (row k=1 is zero).

    Row k holds the rank weights of the exact estimator c^(k) (before the factor k): the
    probability that the max of a random (k-1)-subset of the m-1 others is the j-th smallest.
    """
    k = torch.arange(1, m + 1, dtype=_F64)[:, None]
    j = torch.arange(1, m, dtype=_F64)[None, :]
    logw = log_comb(j - 1, k - 2) - log_comb(torch.full_like(k, m - 1), k - 1)
    table = torch.exp(logw)
    table[0] = 0.0
    return table


@functools.lru_cache(maxsize=256)
def best_of_k_table(m: int) -> torch.Tensor:
    """E[k-1, i-1] = C(i-1, k-1) / C(m, k): exact E[max of a random k-subset] on ascending order
    statistics s_(1..m), for k = 1..m."""
    k = torch.arange(1, m + 1, dtype=_F64)[:, None]
    i = torch.arange(1, m + 1, dtype=_F64)[None, :]
    return torch.exp(log_comb(i - 1, k - 1) - log_comb(torch.full_like(k, m), k))


@functools.lru_cache(maxsize=64)
def subset_max_cdf(n: int) -> torch.Tensor:
    """F[k-1, a] = C(a, k) / C(n, k) for k = 1..n, a = 0..n: the probability that the max of a random
    k-subset of n ranked samples is among the ``a`` smallest (the validation metrics' tie-aware
    selected-gold weights are differences of it)."""
    k = torch.arange(1, n + 1, dtype=_F64)[:, None]
    a = torch.arange(0, n + 1, dtype=_F64)[None, :]
    return torch.exp(log_comb(a, k) - log_comb(torch.full_like(k, n), k))


def bon_weights(m: int, n: int) -> tuple[torch.Tensor, float]:
    """Rank weights ``omega`` (m-1,) and RLOO weight ``gamma`` of ``n * c^(n)`` (1 <= n <= m)."""
    w = torch.zeros(m, dtype=_F64)
    w[n - 1] = 1.0
    return prefix_to_rank_weights(w)


def prefix_to_rank_weights(w: torch.Tensor) -> tuple[torch.Tensor, float]:
    """Collapse prefix weights ``w_k`` (k = 1..m) of ``sum_k w_k k c^(k)`` into rank weights.

    Returns ``omega`` (m-1,) with ``omega_j = sum_{k>=2} k w_k C(j-1,k-2)/C(m-1,k-1)`` and
    ``gamma = w_1`` (the k = 1 term is RLOO, which also looks at the samples above).
    """
    m = w.numel()
    k = torch.arange(1, m + 1, dtype=_F64)
    omega = (k * w.to(_F64)) @ prefix_rank_table(m)
    return omega, float(w[0])


# ----------------------------------------------------------------------------------------------
# Credit from rank weights (the one vectorised kernel all estimators share)
# ----------------------------------------------------------------------------------------------
def rank_credit(
    padded: torch.Tensor, layout: GroupLayout, omega: torch.Tensor, gamma: torch.Tensor
) -> torch.Tensor:
    """Per-sample credit ``sum_{j<rank} omega_j (s_(rank) - s_(j)) + gamma * (r_i - mean_{-i})``.

    Args:
        padded: (G, M) rewards, any values in padded slots.
        layout: the group layout (sizes and mask).
        omega: (G, M-1) per-group rank weights (0 beyond m_g - 1).
        gamma: (G,) per-group RLOO weights.
    Returns:
        (G, M) float64 credit; padded slots are 0.
    """
    mask = layout.mask
    x = padded.to(_F64)
    neg_inf = torch.tensor(-math.inf, dtype=_F64, device=x.device)
    row_max = torch.where(mask, x, neg_inf).amax(dim=1, keepdim=True)
    row_max = torch.where(torch.isfinite(row_max), row_max, torch.zeros_like(row_max))
    # Translation invariance: work on rewards relative to the group max (no cancellation for
    # large offsets). Padded slots take the max and, with a stable sort, land after every real
    # sample of equal value, so they never enter a real sample's prefix sums.
    x = torch.where(mask, x - row_max, torch.zeros_like(x))
    s, perm = torch.sort(x, dim=1, stable=True)
    om = torch.nn.functional.pad(omega.to(_F64), (0, 1))  # weight of position j, j = 0..M-1
    w_cum = torch.cumsum(om, 1) - om  # exclusive prefix sums
    ws_cum = torch.cumsum(om * s, 1) - om * s
    c_sorted = s * w_cum - ws_cum
    credit = torch.zeros_like(c_sorted).scatter_(1, perm, c_sorted)
    m = layout.sizes.to(_F64)
    total = x.sum(1)
    rloo = (x - (total[:, None] - x) / (m[:, None] - 1).clamp_min(1.0)) * (m[:, None] > 1)
    credit = credit + gamma.to(_F64)[:, None] * rloo
    return torch.where(mask & (layout.sizes[:, None] > 1), credit, torch.zeros_like(credit))


def best_of_k_curves(sorted_vals: torch.Tensor, m: int) -> torch.Tensor:
    """Exact unbiased best-of-k estimates for k = 1..m from ascending rows (G, m) -> (G, m)."""
    return sorted_vals.to(_F64) @ best_of_k_table(m).to(sorted_vals.device).T


