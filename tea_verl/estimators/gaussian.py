"""The Gaussian family: the paper's TEA and Prefix-TEA (``tea``, ``prefix_tea``; any N).

A reconstruction from the paper's published notation and statements (its body and code are not
public); docs/estimators.md, "The Gaussian family", states every choice made here and the
measurements behind it. Never imports verl.

Model. The upper ``2 alpha`` tail of each prompt's reward law is Gaussian with latent
``(mu, sigma)``. With ``z = Phi^-1(1 - alpha)``, ``lambda = phi(z) / alpha`` and
``kappa = sqrt(1 + z lambda - lambda^2)``, the tail statistics are ``mu_alpha = mu + sigma lambda``
and ``sigma_alpha = sigma kappa``, and best-of-N is ``V_N ~= mu + c_N sigma =
mu_alpha + e_N sigma_alpha`` with ``c_N = E[max of N standard normals]`` and
``e_N = (c_N - lambda) / kappa``. The policy gradient of that surrogate is ``E[A_eta(R) S]`` with
the tail-shaped credit (zero below the threshold ``r_alpha``)::

    A_eta(r) = (1/alpha) 1{r >= r_alpha} [(r - r_alpha) + e_N / (2 sigma_alpha) ((r - mu_alpha)^2 - (r_alpha - mu_alpha)^2)]

TEA (:func:`tea_credit`) plugs in, per group of m, the statistics of its top
``k = ceil(alpha m)`` rewards: the threshold is the k-th largest, ``mu`` their mean, ``sigma``
their Bessel-corrected std. Its bias is O(1/k): the implied spread valuation is about
``1 - 1.15 / k`` on a normal law (docs/estimators.md).

Prefix-TEA (:func:`prefix_tea_credit`) is a generalized jackknife of that plug-in over
sub-samples ("prefixes") of the group: for tail sizes ``k_1 > k_2 > ...`` (``k_1 = ceil(alpha m)``,
k >= 3 preferred) it evaluates the plug-in on sub-samples of ``n_j`` rewards (the largest n with
``ceil(alpha n) = k_j``, tail fraction ``k_j / n_j``), every sample credited by the sub-samples
it falls in (cyclic windows of a few fixed random orderings, so each sample is in the same
number of them), and combines the sizes with the least-norm weights that cancel the bias terms
``k^-1 .. k^-(order-1)``. When ``alpha m`` is an integer the largest size is TEA itself.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import torch

from tea_verl.config import TEA_DEFAULTS
from tea_verl.estimators.layout import F64

__all__ = [
    "DEFAULT_ALPHA",
    "normal_max_mean",
    "tail_constants",
    "tail_size",
    "min_group_size",
    "tail_error",
    "plugin_credit",
    "population_credit",
    "tea_credit",
    "jackknife_plan",
    "windows",
    "prefix_tea_credit",
]

DEFAULT_ALPHA = TEA_DEFAULTS.alpha  # 0.25: the paper's worked example and experiments
_EPS = 1e-9  # tolerance on alpha * m before the ceiling (0.1 * 30 is 3.0000000000000004 in floats)
_ORDERING_SEED = 20260  # fixed: Prefix-TEA is a deterministic function of the group


@functools.lru_cache(maxsize=4096)
def normal_max_mean(n: int) -> float:
    """``c_n = E[max of n independent standard normals] = int x n phi(x) Phi(x)^(n-1) dx``.

    Trapezoidal quadrature on 200001 nodes over ``[-12, 12 + sqrt(2 log n)]`` in float64 with
    ``log Phi`` from ``torch.special.log_ndtr``: the error is below 1e-9 for n up to 10^6 (tests
    compare with scipy's adaptive quadrature). ``c_1 = 0``.
    """
    if isinstance(n, bool) or int(n) != n or n < 1:
        raise ValueError(f"n must be an integer >= 1, got {n!r}")
    if n == 1:
        return 0.0
    x = torch.linspace(-12.0, 12.0 + math.sqrt(2.0 * math.log(n)), 200001, dtype=F64)
    log_f = math.log(n) - 0.5 * x * x - 0.5 * math.log(2 * math.pi) + (n - 1) * torch.special.log_ndtr(x)
    return float(torch.trapezoid(x * torch.exp(log_f), x))


class TailConstants(NamedTuple):
    z: float  # Phi^-1(1 - alpha)
    lam: float  # phi(z) / alpha: mu_alpha = mu + sigma lam
    kappa: float  # sqrt(1 + z lam - lam^2): sigma_alpha = sigma kappa
    e_n: float  # (c_N - lam) / kappa: V_N ~= mu_alpha + e_N sigma_alpha


@functools.lru_cache(maxsize=4096)
def tail_constants(alpha: float, n: int) -> TailConstants:
    """The Gaussian-tail constants of tail fraction ``alpha`` and budget ``n``.

    The constants are those of a standard normal truncated below at its ``1 - alpha`` quantile,
    which exist for every fraction in (0, 1). The user's alpha stays below 1/2 (the model is
    Gaussian on the upper ``2 alpha``), but Prefix-TEA's sub-samples use the fraction ``k / n``
    of their own tail, which reaches 1/2 or more when alpha is near 1/2 (alpha = 0.45 at m = 8:
    the top 4 of 8)."""
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"the tail fraction must lie in (0, 1), got {alpha}")
    z = float(torch.special.ndtri(torch.tensor(1.0 - alpha, dtype=F64)))
    lam = math.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi) / alpha
    kappa = math.sqrt(1.0 + z * lam - lam * lam)
    return TailConstants(z, lam, kappa, (normal_max_mean(n) - lam) / kappa)


def tail_size(alpha: float, m: int) -> int:
    """``ceil(alpha m)``: how many of a group's m rewards form its upper alpha tail."""
    return max(1, math.ceil(alpha * m - _EPS))


def min_group_size(alpha: float) -> int:
    """The smallest group size whose tail holds 2 rewards (a standard deviation needs 2)."""
    m = 2
    while tail_size(alpha, m) < 2:
        m += 1
    return m


def tail_error(estimator: str, alpha: float, m: int) -> str | None:
    """Why ``estimator`` cannot credit groups of m at tail fraction alpha (None when it can): a tail
    std needs ``ceil(alpha m) >= 2``. The message names the smallest group size that works."""
    k = tail_size(alpha, m)
    if k >= 2:
        return None
    fix = f"use rollout.n >= {min_group_size(alpha)}"
    if 2.0 / m < 0.5:
        fix += f", or alpha >= {2.0 / m:.3g}"
    return (f"{estimator} with alpha = {alpha} takes the top ceil(alpha m) = {k} reward(s) of each group of m = {m}, "
            f"and a tail std needs 2: {fix}.")


def population_credit(r: torch.Tensor, r_alpha: float, mu_alpha: float, sigma_alpha: float, alpha: float, e_n: float) -> torch.Tensor:
    """``A_eta(r)`` with given tail statistics (Lemma 2's credit)."""
    a = (r - r_alpha) + e_n / (2.0 * sigma_alpha) * ((r - mu_alpha) ** 2 - (r_alpha - mu_alpha) ** 2)
    return torch.where(r >= r_alpha, a / alpha, torch.zeros_like(a))


def plugin_credit(x: torch.Tensor, k: int, alpha: float, e_n: float) -> torch.Tensor:
    """TEA's plug-in credit for rows ``x`` (R, n) of equal size: statistics of each row's top ``k``.

    The threshold is the k-th largest reward, ``mu`` and ``sigma`` the mean and Bessel-corrected
    std of the top k. Rows are shifted by their maximum first (no cancellation for large offsets;
    the credit is translation invariant). A row whose top k are all equal has no Gaussian fit:
    its credit is 0. Rewards tied with the threshold get 0 (both terms vanish there), so ties at
    the threshold are harmless.
    """
    top = torch.topk(x, k, dim=1).values
    shift = top[:, :1]
    t = top - shift
    xs = x - shift
    thr = t[:, -1:]
    mu = t.mean(1, keepdim=True)
    sd = t.std(1, keepdim=True)  # Bessel-corrected (k - 1)
    spread = sd > 0
    safe = torch.where(spread, sd, torch.ones_like(sd))
    a = (xs - thr) + e_n / (2.0 * safe) * ((xs - mu) ** 2 - (thr - mu) ** 2)
    return torch.where((xs >= thr) & spread, a / alpha, torch.zeros_like(a))


def tea_credit(rows: torch.Tensor, n: int, alpha: float = DEFAULT_ALPHA) -> torch.Tensor:
    """TEA (the paper's direct plug-in) for groups of equal size: (G, m) rewards -> (G, m) credit."""
    m = rows.shape[1]
    error = tail_error("tea", alpha, m)
    if error:
        raise ValueError(error)
    return plugin_credit(rows.to(F64), tail_size(alpha, m), alpha, tail_constants(alpha, n).e_n)


class PlanStep(NamedTuple):
    size: int  # n_j: sub-sample size
    tail: int  # k_j: its tail size
    weight: float  # jackknife weight

    @property
    def alpha(self) -> float:
        """``k_j / n_j``: the sub-sample's tail fraction."""
        return self.tail / self.size


@functools.lru_cache(maxsize=1024)
def jackknife_plan(
    m: int, alpha: float, order: int = TEA_DEFAULTS.jackknife_order, sizes: int = TEA_DEFAULTS.jackknife_sizes
) -> tuple[PlanStep, ...]:
    """Prefix-TEA's sub-sample sizes and weights for groups of m.

    Tail sizes: ``k_1 = ceil(alpha m)`` and ``round(k_1 / (1 + j / (J - 1)))`` for
    ``j = 1..J-1`` (``J = sizes``), spread evenly in 1/k down to ``k_1 / 2``, at least 3 when
    ``k_1 >= 4`` (a 2-point std breaks the 1/k expansion of the bias), duplicates dropped. Spread
    sizes keep the weights small: adjacent ones (16, 15, 14, 13) need weights near 4.
    ``k_1`` is evaluated on the whole group (``n = m``), each smaller k on the largest ``n`` with
    ``ceil(alpha n) = k``, with tail fraction ``k / n``. Weights: least norm subject to
    ``sum_j w_j = 1`` and ``sum_j w_j k_j^-p = 0`` for ``p = 1..order-1`` (``order`` capped by the
    number of sizes). One size (``k_1 = 2``, or J = 1): plain TEA (weight 1).
    """
    error = tail_error("prefix_tea", alpha, m)
    if error:
        raise ValueError(error)
    k_max = tail_size(alpha, m)
    floor = 3 if k_max >= 4 else 2
    if sizes <= 1:
        ks = [k_max]
    else:
        ks = sorted({k_max} | {max(floor, round(k_max / (1.0 + j / (sizes - 1)))) for j in range(1, sizes)}, reverse=True)
    steps = []
    for k in ks:
        n_j = m if k == k_max else max(n for n in range(2, m) if tail_size(alpha, n) == k)
        steps.append((n_j, k))
    q = min(order, len(steps))
    kk = torch.tensor([float(k) for _, k in steps], dtype=F64)
    A = torch.stack([kk ** (-p) for p in range(q)])
    b = torch.zeros(q, dtype=F64)
    b[0] = 1.0
    w = A.T @ torch.linalg.solve(A @ A.T, b)
    return tuple(PlanStep(n_j, k, float(wj)) for (n_j, k), wj in zip(steps, w.tolist()))


@functools.lru_cache(maxsize=256)
def windows(m: int, n: int, orderings: int) -> torch.Tensor:
    """(orderings * m / s, n) positions, ``s = gcd(m, n)``: the cyclic windows of length n starting
    at every s-th position of each of ``orderings`` fixed random permutations of 0..m-1. Every
    position lies in exactly ``orderings * n / s`` windows, and under exchangeable rollouts each
    window is a uniformly random n-subset. (All m starts give the same coverage at s times the work.)"""
    gen = torch.Generator().manual_seed(_ORDERING_SEED + 7919 * m + n)
    s = math.gcd(m, n)
    rows = []
    idx = (torch.arange(0, m, s)[:, None] + torch.arange(n)[None, :]) % m
    for _ in range(orderings):
        perm = torch.randperm(m, generator=gen)
        rows.append(perm[idx])
    return torch.cat(rows)


def prefix_tea_credit(
    rows: torch.Tensor,
    n: int,
    alpha: float = DEFAULT_ALPHA,
    order: int = TEA_DEFAULTS.jackknife_order,
    sizes: int = TEA_DEFAULTS.jackknife_sizes,
    orderings: int = TEA_DEFAULTS.jackknife_orderings,
) -> torch.Tensor:
    """Prefix-TEA for groups of equal size: (G, m) rewards -> (G, m) credit (see module doc)."""
    x = rows.to(F64)
    G, m = x.shape
    out = torch.zeros_like(x)
    for step in jackknife_plan(m, alpha, order, sizes):
        e_n = tail_constants(step.alpha, n).e_n
        if step.size == m:
            c = plugin_credit(x, step.tail, step.alpha, e_n)
        else:
            idx = windows(m, step.size, orderings).to(x.device)  # (W, n_j)
            sub = x[:, idx]  # (G, W, n_j)
            cs = plugin_credit(sub.reshape(-1, step.size), step.tail, step.alpha, e_n).view(G, -1, step.size)
            cover = idx.shape[0] * step.size / m  # windows each position lies in
            c = torch.zeros_like(x).index_add_(1, idx.reshape(-1), cs.reshape(G, -1)) / cover
        out += step.weight * c
    return out
