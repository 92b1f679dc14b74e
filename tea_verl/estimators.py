"""Best-of-N advantage estimators: pure torch math (never imports verl).

Symbols follow ``docs/estimators.md``. For one prompt, ``r_1..r_m`` are the outcome rewards of
its ``m`` rollouts (a *group*); ``N`` is the deployment best-of-N budget. Every estimator here
returns one scalar credit per sample whose conditional mean, times ``grad log pi(y_i)``,
estimates ``grad J_N`` with ``J_N = E[max of N rewards]``:

* ``bon`` (N <= m, exact and unbiased):
  ``N * c_i^(N)``, ``c_i^(N) = E_S[(r_i - max_{j in S} r_j)_+]`` over uniformly random
  (N-1)-subsets ``S`` of the *other* m-1 samples. On ascending ranks,
  ``c^(N)`` at rank ``k`` is ``sum_{j<k} w_j (s_(k) - s_(j))`` with
  ``w_j = C(j-1, N-2) / C(m-1, N-1)``. ``N = 1`` is RLOO: ``r_i - mean of the others``.
* ``prefix_tea`` and ``tea`` (any N): ``sum_k w_k * k * c_i^(k)`` over the exact prefix
  estimators ``k = 1..m``, with moment-cancellation constraints
  ``sum_k w_k = 1`` and ``sum_k w_k phi_xi(k) = phi_xi(N)`` on the GEV test-time scaling law
  ``J_n = a + b * phi_xi(n)``, ``phi_xi(n) = (n^xi - 1) / xi`` (``xi -> 0``: ``log n``), with one
  shape xi per batch fitted on the summed exact best-of-k curves (k >= 2). ``prefix_tea`` takes
  the solution whose credit varies least below the quantile of a group's second-best sample
  (the bulk, which the upper-tail model does not describe); ``tea`` the one that best
  approximates the best-of-N advantage ``N * A_N(r)`` of the fitted GEV(xi) law in L2. Both add
  ``smoothing * |w|^2``.
  When ``N <= m`` both reduce to ``bon`` exactly (``w`` is the unit vector at ``k = N``). A
  group whose top two rewards tie gets the exact ``bon`` credit at N = m, and so does a whole
  batch that a binomial test judges discrete (:func:`top_tie_groups`): no GEV law fits there.

Optional normalisation divides by a reward std: the batch mean of the group stds (default) or
each group's own std (GRPO's convention, which damps the spread-seeking credit).

Everything is vectorised over groups: a flat batch is laid out as padded ``(G, m_max)`` groups
with a mask, so groups may have different sizes. Work is float64 on the group tensors (tiny next
to the token tensors), on whatever device the input lives on.

Degenerate cases: a singleton group has no "others", so its credit is 0 (documented; the verl
glue logs how many). Constant or all-tied groups give exactly 0 (every ``(s - s')_+`` is 0).
Ties are harmless in any order: a tied pair contributes 0 whichever sorts first.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch

__all__ = [
    "GroupLayout",
    "group_layout",
    "best_of_k_curves",
    "fit_tail_shape",
    "phi",
    "bon_weights",
    "prefix_tea_weights",
    "tea_weights",
    "prefix_to_rank_weights",
    "rank_credit",
    "best_of_n_credit",
    "check_finite",
    "top_tie_rate",
]

_F64 = torch.float64
# Grid on which the pooled tail shape xi is fitted (step 0.005): fits land on grid points, so
# the per-(m, N, xi) weight caches below are reused across batches.
SHAPE_GRID_STEP = 0.005


# ----------------------------------------------------------------------------------------------
# Layout: flat batch -> padded groups
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class GroupLayout:
    """Where each sample of a flat batch sits in the padded ``(G, M)`` group matrix.

    ``flat_pos[b] = g * M + position of b inside its group``; ``sizes[g]`` = group size ``m_g``;
    ``mask[g, j] = j < m_g``.
    """

    num_groups: int
    max_size: int
    sizes: torch.Tensor  # (G,) long
    mask: torch.Tensor  # (G, M) bool
    flat_pos: torch.Tensor  # (B,) long

    def pad(self, values: torch.Tensor, fill: float = 0.0) -> torch.Tensor:
        """(B,) -> (G, M), padding with ``fill``."""
        out = torch.full((self.num_groups * self.max_size,), fill, dtype=values.dtype, device=values.device)
        out[self.flat_pos] = values
        return out.view(self.num_groups, self.max_size)

    def unpad(self, padded: torch.Tensor) -> torch.Tensor:
        """(G, M) -> (B,) in the original batch order."""
        return padded.reshape(-1)[self.flat_pos]


def group_layout(group_ids: torch.Tensor) -> GroupLayout:
    """Build the padded layout for contiguous integer group ids in ``0..G-1`` (shape (B,))."""
    if group_ids.dim() != 1:
        raise ValueError(f"group ids must be 1-D (one per sample), got shape {tuple(group_ids.shape)}")
    group_ids = group_ids.long()
    num = int(group_ids.max().item()) + 1 if group_ids.numel() else 0
    sizes = torch.bincount(group_ids, minlength=num)
    order = torch.argsort(group_ids, stable=True)
    starts = torch.cumsum(sizes, 0) - sizes
    pos_sorted = torch.arange(group_ids.numel(), device=group_ids.device) - starts[group_ids[order]]
    pos = torch.empty_like(pos_sorted)
    pos[order] = pos_sorted
    max_size = int(sizes.max().item()) if num else 0
    mask = torch.arange(max_size, device=group_ids.device)[None, :] < sizes[:, None]
    return GroupLayout(num, max_size, sizes, mask, group_ids * max_size + pos)


def check_finite(scores: torch.Tensor, what: str = "reward") -> None:
    """Raise a ValueError naming how many scores are NaN/inf and where (first 10 batch rows)."""
    bad = ~torch.isfinite(scores)
    if bool(bad.any()):
        rows = torch.nonzero(bad).flatten().tolist()
        raise ValueError(
            f"{len(rows)} of {scores.numel()} {what}s are NaN or inf (batch rows {rows[:10]}"
            f"{' ...' if len(rows) > 10 else ''}). Fix the reward function or reward model output for "
            "those samples; best-of-N credit cannot be computed from non-finite rewards."
        )


# ----------------------------------------------------------------------------------------------
# Binomial weight tables (log space; m up to thousands)
# ----------------------------------------------------------------------------------------------
def _log_comb(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """log C(a, b) for 0 <= b <= a (float64); -inf elsewhere."""
    ok = (b >= 0) & (b <= a)
    a_, b_ = torch.where(ok, a, torch.ones_like(a)), torch.where(ok, b, torch.zeros_like(b))
    val = torch.lgamma(a_ + 1) - torch.lgamma(b_ + 1) - torch.lgamma(a_ - b_ + 1)
    return torch.where(ok, val, torch.full_like(val, -math.inf))


@functools.lru_cache(maxsize=256)
def _prefix_rank_table(m: int) -> torch.Tensor:
    """T[k-1, j-1] = C(j-1, k-2) / C(m-1, k-1) for k = 1..m, j = 1..m-1 (row k=1 is zero).

    Row k holds the rank weights of the exact estimator c^(k) (before the factor k): the
    probability that the max of a random (k-1)-subset of the m-1 others is the j-th smallest.
    """
    k = torch.arange(1, m + 1, dtype=_F64)[:, None]
    j = torch.arange(1, m, dtype=_F64)[None, :]
    logw = _log_comb(j - 1, k - 2) - _log_comb(torch.full_like(k, m - 1), k - 1)
    table = torch.exp(logw)
    table[0] = 0.0
    return table


@functools.lru_cache(maxsize=256)
def _best_of_k_table(m: int) -> torch.Tensor:
    """E[k-1, i-1] = C(i-1, k-1) / C(m, k): exact E[max of a random k-subset] on ascending order
    statistics s_(1..m), for k = 1..m."""
    k = torch.arange(1, m + 1, dtype=_F64)[:, None]
    i = torch.arange(1, m + 1, dtype=_F64)[None, :]
    return torch.exp(_log_comb(i - 1, k - 1) - _log_comb(torch.full_like(k, m), k))


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
    omega = (k * w.to(_F64)) @ _prefix_rank_table(m)
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


# ----------------------------------------------------------------------------------------------
# Tail shape: exact best-of-k curves and the pooled GEV scaling-law fit
# ----------------------------------------------------------------------------------------------
def phi(xi: float, n: torch.Tensor) -> torch.Tensor:
    """GEV test-time scaling basis ``phi_xi(n) = (n^xi - 1)/xi``; ``xi = 0`` gives ``log n``.

    For a GEV(xi) reward law, ``E[max of n] = a + b * phi_xi(n)`` exactly (max-stability); for a
    generalised-Pareto upper tail it holds asymptotically. The two branches meet continuously
    (``(n^xi - 1)/xi -> log n``); near 0 ``expm1`` keeps full precision.
    """
    n = n.to(_F64)
    if abs(xi) < 1e-12:
        return torch.log(n)
    return torch.expm1(xi * torch.log(n)) / xi


def best_of_k_curves(sorted_vals: torch.Tensor, m: int) -> torch.Tensor:
    """Exact unbiased best-of-k estimates for k = 1..m from ascending rows (G, m) -> (G, m)."""
    return sorted_vals.to(_F64) @ _best_of_k_table(m).to(sorted_vals.device).T


def fit_tail_shape(
    pooled_curve: torch.Tensor, bounds: tuple[float, float] = (-1.0, 0.5), kmin: int = 1
) -> tuple[float, float]:
    """Least-squares fit of ``P_k = A + B * phi_xi(k)`` on k = kmin..K, profiled over a xi grid.

    ``pooled_curve`` holds ``P_1..P_K``: the sum over groups of their exact best-of-k curves. If
    every group's law follows the GEV scaling law with one shape xi (location and scale free),
    the sum follows it too, and each term is unbiased. ``kmin = 2`` leaves out the mean (k = 1),
    the point most shaped by the bulk of the law rather than its tail. Returns ``(xi, r2)``: the
    grid point of least residual and the fit's R^2 (a goodness-of-fit diagnostic). Needs at least
    3 points (K - kmin >= 2).
    """
    p = pooled_curve.to(_F64).cpu()
    K = p.numel()
    if K - kmin < 2:
        raise ValueError(f"fitting the tail shape needs 3 points of the best-of-k curve, got k = {kmin}..{K}")
    p = p[kmin - 1 :]
    lo, hi = bounds
    n_grid = int(round((hi - lo) / SHAPE_GRID_STEP)) + 1
    grid = lo + SHAPE_GRID_STEP * torch.arange(n_grid, dtype=_F64)
    logk = torch.log(torch.arange(kmin, K + 1, dtype=_F64))
    xi = grid[:, None]
    safe = torch.where(xi.abs() < 1e-12, torch.ones_like(xi), xi)
    basis = torch.where(xi.abs() < 1e-12, logk[None, :], torch.expm1(xi * logk[None, :]) / safe)
    bc = basis - basis.mean(1, keepdim=True)
    pc = p - p.mean()
    sst = float((pc * pc).sum())
    if sst <= 0.0:
        return float("nan"), float("nan")
    sse = sst - (bc @ pc) ** 2 / (bc * bc).sum(1)
    best = int(torch.argmin(sse))
    return round(float(grid[best]) / SHAPE_GRID_STEP) * SHAPE_GRID_STEP, 1.0 - float(sse[best]) / sst


def _constraints(m: int, n: int, xi: float, order: int, rho: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Moment-cancellation constraints ``C w = d`` (rows: 1, phi_xi, [phi_{xi+rho}])."""
    k = torch.arange(1, m + 1, dtype=_F64)
    big_n = torch.tensor([float(n)], dtype=_F64)
    rows, rhs = [torch.ones(m, dtype=_F64)], [1.0]
    shapes = [xi] if order == 1 else [xi, xi + rho]
    for sh in shapes:
        rows.append(phi(sh, k))
        rhs.append(float(phi(sh, big_n)[0]))
    return torch.stack(rows), torch.tensor(rhs, dtype=_F64)


def bulk_quantile(m: int) -> float:
    """The quantile below which ``prefix_tea`` keeps a group of m samples' credit flat:
    ``(m - 1) / (m + 1)``, the expected quantile ``E[F(r_(m-1))]`` of the group's second-largest
    reward (1/2 at m = 3, 7/9 at m = 8). The upper-tail model speaks through the group's top
    samples; below them the law is bulk, which the model does not describe. The sensitivity to
    this choice is measured in docs/estimators.md, section 5."""
    return (m - 1) / (m + 1)


def _bulk_slope_gram(m: int, bulk: float) -> torch.Tensor:
    """``H[k-1, l-1] = int_0^bulk (k u^(k-1)) (l u^(l-1)) du = k l bulk^(k+l-1) / (k+l-1)``: the
    Gram matrix of the credit slope ``P(u) = sum_k k w_k u^(k-1)`` over the quantiles below
    ``bulk``, so ``w' H w = int_0^bulk P(u)^2 du``."""
    k = torch.arange(1, m + 1, dtype=_F64)
    s = k[:, None] + k[None, :] - 1
    return k[:, None] * k[None, :] * torch.exp(s * math.log(bulk)) / s


def _constrained_least_squares(
    H: torch.Tensor, f: torch.Tensor, C: torch.Tensor, d: torch.Tensor
) -> torch.Tensor:
    """``argmin_w w' H w - 2 f' w`` subject to ``C w = d`` (H positive definite), by its KKT system."""
    m, q = H.shape[0], C.shape[0]
    kkt = torch.zeros(m + q, m + q, dtype=_F64)
    kkt[:m, :m] = H
    kkt[:m, m:] = C.T
    kkt[m:, :m] = C
    return torch.linalg.solve(kkt, torch.cat([f, d]))[:m]


@functools.lru_cache(maxsize=1024)
def prefix_tea_weights(
    m: int, n: int, xi: float, order: int = 1, rho: float = -1.0, smoothing: float = 1e-3
) -> torch.Tensor:
    """Prefix-TEA weights ``w`` (m,): moment cancellation, robust to the bulk of the law.

    Minimises ``int_0^q P(u)^2 du + smoothing * |w|^2`` subject to the moment constraints, with
    ``P(u) = sum_k k w_k u^(k-1)`` the slope of the expected credit
    (``E[credit | r] = int^r P(F(t)) dt``) and ``q = bulk_quantile(m)``. The tail law is an
    assumption about the upper tail only; if the law's quantile-function gradient differs from
    the model's by ``delta`` below q, the gradient is off by ``int_0^q delta P du``, at most
    ``|P|_{L2(0, q)} |delta|`` (Cauchy-Schwarz): the first term is that worst-case bias, the
    second a variance proxy. The best-of-N slope ``N u^(N-1)`` is nearly 0 there.
    ``smoothing -> inf`` gives the least-norm moment-cancelling weights (docs/estimators.md,
    section 5). For ``n <= m`` this is the unit vector at ``k = n`` (exact ``bon``). Needs
    ``m > order``.
    """
    if n <= m:
        w = torch.zeros(m, dtype=_F64)
        w[n - 1] = 1.0
        return w
    if m <= order:
        raise ValueError(f"prefix_tea of order {order} needs groups of at least {order + 1} samples, got {m}")
    C, d = _constraints(m, n, xi, order, rho)
    H = _bulk_slope_gram(m, bulk_quantile(m)) + smoothing * torch.eye(m, dtype=_F64)
    return _constrained_least_squares(H, torch.zeros(m, dtype=_F64), C, d)


def _gev_prefix_gains(m: int, n: int, xi: float, num_nodes: int = 4000):
    """Quadrature of ``g_k(r) = E[max(r, M_{k-1})]`` (k = 1..m and k = n) under standard GEV(xi).

    Nodes are uniform in the Gumbel coordinate y (``u = exp(-e^{-y})``, ``r = (e^{xi y}-1)/xi``),
    which resolves both the bulk and the far tail that best-of-n weighs. Returns (G (m, K),
    g_n (K,), p (K,)) with p the normalised quadrature weights of the law.
    """
    y = torch.linspace(-4.0, math.log(n) + 12.0, num_nodes, dtype=_F64)
    dy = y[1] - y[0]
    log_u = -torch.exp(-y)
    p = torch.exp(-y + log_u) * dy  # density of y (standard Gumbel) * dy
    p = p / p.sum()
    r = y if abs(xi) < 1e-12 else torch.expm1(xi * y) / xi
    dr = torch.exp(xi * y)  # dr/dy
    ks = torch.cat([torch.arange(1, m + 1, dtype=_F64), torch.tensor([float(n)], dtype=_F64)])
    # integrand of int_r^inf (1 - F^{k-1}) dt in y: -expm1((k-1) log u) * dr/dy
    integ = -torch.expm1((ks[:, None] - 1) * log_u[None, :]) * dr[None, :]
    seg = 0.5 * (integ[:, 1:] + integ[:, :-1]) * dy
    upper = torch.flip(torch.cumsum(torch.flip(seg, [1]), 1), [1])
    tail = torch.cat([upper, torch.zeros(ks.numel(), 1, dtype=_F64)], 1)
    g = r[None, :] + tail
    return g[:m], g[m], p


@functools.lru_cache(maxsize=1024)
def tea_weights(
    m: int, n: int, xi: float, smoothing: float = 1e-3, order: int = 1, rho: float = -1.0
) -> torch.Tensor:
    """TEA weights ``w`` (m,): the direct tail-extrapolated advantage.

    Minimises ``|sum_k w_k k g_k - n g_n|^2 / Var(n g_n) + smoothing * |w|^2`` in L2 of the
    standard GEV(xi) law (centered: constants are baselines), subject to the same moment
    constraints as prefix_tea, so ``E[credit | r]`` approximates the model's best-of-n
    advantage ``n * A_n(r)`` pointwise, not only in its location and spread gradients.
    ``smoothing -> inf`` gives the least-norm weights over all orders k = 1..m (the same limit as
    prefix_tea). For ``n <= m``: exact ``bon``.
    """
    if n <= m:
        return prefix_tea_weights(m, n, xi, order, rho)
    if m <= order:
        raise ValueError(f"tea of order {order} needs groups of at least {order + 1} samples, got {m}")
    G, gn, p = _gev_prefix_gains(m, n, xi)
    k = torch.arange(1, m + 1, dtype=_F64)
    Gc = (G - (G * p).sum(1, keepdim=True)) * k[:, None]
    tc = (gn - (gn * p).sum()) * n
    var = float((tc * tc * p).sum())
    H = (Gc * p) @ Gc.T / var
    f = (Gc * p) @ tc / var
    C, d = _constraints(m, n, xi, order, rho)
    return _constrained_least_squares(H + smoothing * torch.eye(m, dtype=_F64), f, C, d)


# ----------------------------------------------------------------------------------------------
# Front door
# ----------------------------------------------------------------------------------------------
ESTIMATORS = ("bon", "tea", "prefix_tea")


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

    @property
    def fallback_groups(self) -> int:
        """Groups that got the exact bon credit at N = m instead of the extrapolated one."""
        return self.eligible_groups if self.discrete_batch else self.tie_groups


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
    n: int,
    estimator: str = "tea",
    *,
    shape: float | str = "pooled",
    shape_bounds: tuple[float, float] = (-1.0, 0.5),
    shape_fallback: float = 0.0,
    smoothing: float = 1e-3,
    order: int = 1,
    rho: float = -1.0,
    norm_by_std: bool = True,
    std_scale: str = "batch",
    epsilon: float = 1e-6,
    max_top_tie_rate: float = 0.1,
) -> tuple[torch.Tensor, CreditInfo]:
    """Per-sample best-of-N credit for a flat batch.

    Args:
        scores: (B,) outcome rewards.
        group_ids: (B,) contiguous prompt-group ids in 0..G-1.
        n: deployment budget N >= 1.
        estimator: "bon" (needs N <= every group size), "tea" or "prefix_tea".
        shape: tail shape xi, or "pooled" to fit it on this batch's exact best-of-k curves.
        norm_by_std: divide the credit by a reward std (+ epsilon), so that it is invariant to the
            reward's units. ``std_scale="batch"`` (default) divides every group by the batch mean of
            the group stds; ``"group"`` divides each group by its own std, as GRPO does, which
            lowers the spread valuation (the std grows with the sample's own reward; see
            docs/estimators.md, "Output scale").
        max_top_tie_rate: the largest top-tie probability of a continuous law with point masses.
            Groups whose top two rewards tie get the exact ``bon`` credit at N = m; when a
            one-sided binomial test rejects "tie probability <= max_top_tie_rate" at level
            :data:`DISCRETE_TEST_LEVEL`, the rewards are discrete and the whole batch gets ``bon``
            at N = m (``info.discrete_batch``). Never raises on data; 1.0 turns the batch test off.
    Returns:
        credit (B,) in the dtype of ``scores``, and diagnostics.
    """
    if estimator not in ESTIMATORS:
        raise ValueError(f"unknown estimator {estimator!r}; choose one of {ESTIMATORS}")
    if isinstance(n, bool) or int(n) != n or n < 1:
        raise ValueError(f"N must be an integer >= 1, got {n!r}")
    n = int(n)
    if std_scale not in ("batch", "group"):
        raise ValueError(f"std_scale must be 'batch' or 'group', got {std_scale!r}")
    if scores.dim() != 1 or group_ids.shape != scores.shape:
        raise ValueError(
            f"scores and group_ids must be 1-D of the same length, got {tuple(scores.shape)} and "
            f"{tuple(group_ids.shape)}"
        )
    if scores.numel() == 0:
        return scores.clone(), CreditInfo(float("nan"), float("nan"), 0)
    check_finite(scores)
    layout = group_layout(group_ids.to(scores.device))
    padded = layout.pad(scores.to(_F64))
    sizes = layout.sizes
    singletons = int((sizes == 1).sum())
    distinct = sorted(set(sizes.tolist()) - {0})
    multi = [m for m in distinct if m > 1]
    if estimator == "bon" and multi and n > min(multi):
        small = int(((sizes < n) & (sizes > 1)).sum())
        raise ValueError(
            f"bon is exact only for N <= group size, but N={n} and {small} group(s) have fewer samples "
            f"(smallest m={min(multi)}). Use adv_estimator=tea or prefix_tea to extrapolate to N > m, "
            f"or raise rollout.n to at least {n}."
        )
    xi, r2, tie_rate, pvalue = float("nan"), float("nan"), float("nan"), float("nan")
    tied = torch.zeros(layout.num_groups, dtype=torch.bool, device=scores.device)
    eligible = 0
    discrete = False
    needs_tail = estimator != "bon" and any(m < n for m in multi)
    if needs_tail:
        tied, varied = top_tie_groups(padded, layout, n)
        eligible = int(varied.sum())
        ties = int(tied.sum())
        tie_rate = ties / eligible if eligible else 0.0
        # Discrete rewards (pass/fail, a few levels) tie at the top in most groups; a continuous law
        # with a few point masses ties rarely. Declare the batch discrete when a one-sided binomial
        # test rejects "tie probability <= max_top_tie_rate" at level 5 %: a decision whose error
        # rate does not depend on the batch size, where a fixed cliff on the observed rate fires on
        # 2 ties in 16 groups. max_top_tie_rate = 1 never rejects.
        pvalue = binomial_sf(ties, eligible, max_top_tie_rate) if eligible and max_top_tie_rate < 1.0 else 1.0
        discrete = pvalue < DISCRETE_TEST_LEVEL
        if not discrete and shape == "pooled":
            xi, r2 = _pooled_shape(padded, layout, multi, shape_bounds, shape_fallback)
        elif not discrete:
            xi = float(shape)
    M = layout.max_size
    omega = torch.zeros(layout.num_groups, max(M - 1, 0), dtype=_F64, device=scores.device)
    gamma = torch.zeros(layout.num_groups, dtype=_F64, device=scores.device)
    for m in multi:
        sel = sizes == m
        if estimator == "bon" or m >= n or discrete:
            om, ga = bon_weights(m, min(n, m))
        elif estimator == "prefix_tea":
            om, ga = prefix_to_rank_weights(prefix_tea_weights(m, n, xi, order, rho, smoothing))
        else:
            om, ga = prefix_to_rank_weights(tea_weights(m, n, xi, smoothing, order, rho))
        omega[sel, : m - 1] = om.to(scores.device)
        gamma[sel] = ga
        fallback = sel & tied
        if m < n and not discrete and bool(fallback.any()):
            # a tied top: the tail model has no continuous tail to extrapolate; exact bon at N = m
            om, ga = bon_weights(m, m)
            omega[fallback] = 0.0
            omega[fallback, : m - 1] = om.to(scores.device)
            gamma[fallback] = ga
    credit = rank_credit(padded, layout, omega, gamma)
    if norm_by_std:
        std = _group_std(padded, layout)
        if std_scale == "batch":
            multi_groups = layout.sizes > 1
            scale = std[multi_groups].mean() if bool(multi_groups.any()) else std.new_zeros(())
            credit = credit / (scale + epsilon)
        else:
            credit = credit / (std + epsilon)[:, None]
    info = CreditInfo(xi, r2, singletons, tie_rate, int(tied.sum()), eligible, pvalue, discrete, **credit_stats(credit, padded, layout))
    return layout.unpad(credit).to(scores.dtype), info


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


def _group_std(padded: torch.Tensor, layout: GroupLayout) -> torch.Tensor:
    """Unbiased per-group std (torch.std convention, as verl's GRPO); 0 for singletons."""
    m = layout.sizes.to(_F64)
    x = torch.where(layout.mask, padded, torch.zeros_like(padded))
    mean = x.sum(1) / m.clamp_min(1.0)
    dev = torch.where(layout.mask, padded - mean[:, None], torch.zeros_like(padded))
    return torch.sqrt((dev * dev).sum(1) / (m - 1).clamp_min(1.0))


def _pooled_shape(padded, layout, multi, bounds, fallback) -> tuple[float, float]:
    """Fit xi on the sum of the exact best-of-k curves of all groups (``multi``: the distinct
    group sizes >= 2).

    Uses k = 2..K with K the smallest group size (k = 1..3 when K = 3): see docs/estimators.md,
    "Tail shape", for the measurements behind leaving the mean out.
    """
    K = min(multi)
    if K < 3:
        return float(fallback), float("nan")
    x = torch.where(layout.mask, padded, torch.full_like(padded, math.inf))
    s, _ = torch.sort(x, dim=1)
    pooled = torch.zeros(K, dtype=_F64, device=padded.device)
    for m in multi:
        rows = s[layout.sizes == m, :m]
        # exact E[max of k of the group's m] for k = 1..K, centred per group (location-free)
        curve = best_of_k_curves(rows, m)[:, :K]
        pooled += (curve - curve[:, :1]).sum(0)
    xi, r2 = fit_tail_shape(pooled, bounds, kmin=2 if K >= 4 else 1)
    if math.isnan(xi):  # every group constant: no shape information, credits are 0 anyway
        return float(fallback), float("nan")
    return xi, r2
