"""The GEV family: ``tea_gev`` and ``prefix_tea_gev`` (this project's estimators; any N).

Both are ``sum_k w_k * k * c_i^(k)`` over the exact prefix estimators ``k = 1..m`` of
:mod:`.exact`, with moment-cancellation constraints ``sum_k w_k = 1`` and
``sum_k w_k phi_xi(k) = phi_xi(N)`` on the GEV test-time scaling law ``J_n = a + b * phi_xi(n)``,
``phi_xi(n) = (n^xi - 1) / xi`` (``xi -> 0``: ``log n``), with one shape xi per batch fitted on
the summed exact best-of-k curves (k >= 2). ``prefix_tea_gev`` takes the solution whose credit
varies least below the quantile of a group's second-best sample (the bulk, which the upper-tail
model does not describe); ``tea_gev`` the one that best approximates the best-of-N advantage
``N * A_N(r)`` of the fitted GEV(xi) law in L2. Both add ``smoothing * |w|^2``. When ``N <= m``
both reduce to ``bon`` exactly (``w`` is the unit vector at ``k = N``). Never imports verl.
"""

from __future__ import annotations

import functools
import math

import torch

from tea_verl.config import TEA_DEFAULTS as _D
from tea_verl.estimators.exact import best_of_k_curves
from tea_verl.estimators.layout import F64 as _F64

__all__ = [
    "SHAPE_GRID_STEP",
    "phi",
    "fit_tail_shape",
    "constraints",
    "prefix_tea_weights",
    "tea_weights",
    "bulk_quantile",
    "pooled_shape",
]

# Grid on which the pooled tail shape xi is fitted (step 0.005): fits land on grid points, so
# the per-(m, N, xi) weight caches below are reused across batches.
SHAPE_GRID_STEP = 0.005


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


def fit_tail_shape(
    pooled_curve: torch.Tensor, bounds: tuple[float, float] = _D.shape_bounds, kmin: int = 1
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


def constraints(m: int, n: int, xi: float, order: int, rho: float) -> tuple[torch.Tensor, torch.Tensor]:
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
    m: int, n: int, xi: float, order: int = _D.order, rho: float = _D.rho, smoothing: float = _D.smoothing
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
        raise ValueError(f"prefix_tea_gev of order {order} needs groups of at least {order + 1} samples, got {m}")
    C, d = constraints(m, n, xi, order, rho)
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
    m: int, n: int, xi: float, smoothing: float = _D.smoothing, order: int = _D.order, rho: float = _D.rho
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
        raise ValueError(f"tea_gev of order {order} needs groups of at least {order + 1} samples, got {m}")
    G, gn, p = _gev_prefix_gains(m, n, xi)
    k = torch.arange(1, m + 1, dtype=_F64)
    Gc = (G - (G * p).sum(1, keepdim=True)) * k[:, None]
    tc = (gn - (gn * p).sum()) * n
    var = float((tc * tc * p).sum())
    H = (Gc * p) @ Gc.T / var
    f = (Gc * p) @ tc / var
    C, d = constraints(m, n, xi, order, rho)
    return _constrained_least_squares(H + smoothing * torch.eye(m, dtype=_F64), f, C, d)


def pooled_shape(padded, layout, multi, bounds, fallback) -> tuple[float, float]:
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
