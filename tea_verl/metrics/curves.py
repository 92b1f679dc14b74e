"""Exact best-of-k validation metrics and the test-time scaling-law fit (numpy, no verl import).

Given ``n`` scored samples of one prompt, sorted ascending by the selection score
``s_(1) <= ... <= s_(n)``:

* **best-of-k** (without replacement, exact and unbiased for every ``k = 1..n``)::

      J_k = E[max of a uniformly random k-subset] = sum_i C(i-1, k-1) / C(n, k) * s_(i)

  ``C(i-1, k-1)/C(n, k)`` is the probability that ``s_(i)`` is the largest of the subset.

* **selected gold**: ``G_k = E[gold score of the selection-argmax of a random k-subset]``. With
  ties in the selection score the argmax is split evenly among the tied members of the subset.
  For a block of tied selection scores at sorted positions ``l..r`` (``t = r - l + 1``), the subset
  maximum falls in the block with probability ``(C(r, k) - C(l-1, k)) / C(n, k)``; by
  exchangeability inside the block, the expected gold of the even split is then the block's mean
  gold. So every member of the block gets weight ``(C(r, k) - C(l-1, k)) / (t C(n, k))``; without
  ties this is ``C(i-1, k-1)/C(n, k)`` again (``C(i, k) - C(i-1, k) = C(i-1, k-1)``), and with
  ``gold = selection`` it gives ``J_k``.

Per data source, curves are averaged over prompts with a standard error over prompts
(``std(ddof=1)/sqrt(P)``; undefined, reported as ``None``, for one prompt). Prompts may carry
different ``n``: the average at ``k`` is over the prompts with ``n_p >= k``, and the count is kept.

**Scaling law** (docs/method.md section 5): for a generalised-Pareto upper tail with shape ``xi``,
exactly ``J_k = a + b * Phi_xi(k)`` with
``Phi_xi(k) = (Gamma(k+1) Gamma(1-xi) / Gamma(k+1-xi) - 1) / xi`` and ``Phi_0(k) = H_k`` (the
harmonic number). :func:`fit_scaling_law` fits ``(a, b)`` by weighted least squares for each
``xi`` on a grid (weights ``1/k``: every doubling of ``k`` counts the same) and keeps the ``xi`` of
least residual, or uses a fixed ``xi``. Values at ``N' > n`` are extrapolations and are always
labelled so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from tea_verl.estimators.exact import subset_max_cdf

__all__ = [
    "subset_max_weights",
    "prompt_curves",
    "CurveSummary",
    "summarize_curves",
    "phi_gpd",
    "ScalingLawFit",
    "fit_scaling_law",
    "log2_ks",
]

XI_GRID_STEP = 0.005
EULER_GAMMA = 0.5772156649015329


def _lgamma(x: np.ndarray) -> np.ndarray:
    return torch.lgamma(torch.as_tensor(x, dtype=torch.float64)).numpy()


def _cdf_table(n: int) -> np.ndarray:
    """``F[k-1, a] = C(a, k) / C(n, k)``: P(max of a k-subset is among the ``a`` smallest)
    (:func:`tea_verl.estimators.exact.subset_max_cdf`, the estimators' binomial tables)."""
    return subset_max_cdf(n).numpy()


def log2_ks(n: int) -> list[int]:
    """The logged orders ``1, 2, 4, ..., n`` (``n`` itself always last)."""
    ks = [1]
    while ks[-1] * 2 < n:
        ks.append(ks[-1] * 2)
    if n > 1:
        ks.append(n)
    return ks


def subset_max_weights(selection: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weights ``W (n, n)`` with ``G_k = sum_j W[k-1, j] * gold[j]`` for the sample order given.

    ``selection`` (n,) finite. Ties are split evenly (module docstring). Returns ``(W, order)``
    where ``order`` is the ascending argsort used; ``W`` is indexed in the original sample order.
    """
    s = np.asarray(selection, dtype=np.float64)
    n = s.size
    order = np.argsort(s, kind="stable")
    ss = s[order]
    pos = np.arange(n)
    new_block = np.ones(n, dtype=bool)
    new_block[1:] = ss[1:] != ss[:-1]
    start = np.maximum.accumulate(np.where(new_block, pos, 0))  # l - 1 (0-based block start)
    end_block = np.ones(n, dtype=bool)
    end_block[:-1] = ss[1:] != ss[:-1]
    end = np.minimum.accumulate(np.where(end_block, pos, n - 1)[::-1])[::-1]  # r - 1 (0-based)
    t = (end - start + 1).astype(np.float64)
    F = _cdf_table(n)
    w_sorted = (F[:, end + 1] - F[:, start]) / t[None, :]
    W = np.empty_like(w_sorted)
    W[:, order] = w_sorted
    return W, order


def prompt_curves(selection: np.ndarray, gold: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Exact ``J_k`` (best-of-k of ``selection``) and ``G_k`` (selected gold), k = 1..n, one prompt."""
    W, _ = subset_max_weights(selection)
    best = W @ np.asarray(selection, dtype=np.float64)
    sel_gold = None if gold is None else W @ np.asarray(gold, dtype=np.float64)
    return best, sel_gold


@dataclass
class CurveSummary:
    """Prompt-averaged curves of one data source, ``k = 1..k_max``."""

    data_source: str
    ks: np.ndarray
    best_mean: np.ndarray
    best_sem: np.ndarray  # NaN where fewer than 2 prompts reach k (reported as None)
    prompts_at_k: np.ndarray
    gold_mean: np.ndarray | None = None
    gold_sem: np.ndarray | None = None
    gold_prompts_at_k: np.ndarray | None = None
    n_counts: dict[int, int] = field(default_factory=dict)  # samples per prompt -> prompts

    @property
    def num_prompts(self) -> int:
        return int(sum(self.n_counts.values()))

    @property
    def uneven(self) -> bool:
        return len(self.n_counts) > 1


def _mean_sem(rows: list[np.ndarray], k_max: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    total = np.zeros(k_max)
    total_sq = np.zeros(k_max)
    count = np.zeros(k_max)
    for r in rows:
        L = r.size
        total[:L] += r
        total_sq[:L] += r * r
        count[:L] += 1
    mean = total / np.maximum(count, 1)
    var = (total_sq - count * mean * mean) / np.maximum(count - 1, 1)
    sem = np.where(count >= 2, np.sqrt(np.maximum(var, 0.0) / np.maximum(count, 1)), np.nan)
    return mean, sem, count


def summarize_curves(
    data_source: str,
    groups: list[tuple[np.ndarray, np.ndarray | None]],
    keep_rows: bool = False,
) -> CurveSummary | tuple[CurveSummary, list[np.ndarray]]:
    """Average the exact curves of many prompts of one data source.

    ``groups``: per prompt ``(selection (n_p,), gold (n_p,) or None)``. Gold is averaged over the
    prompts that carry it (all of a prompt's samples, or it is left out; see the report reader).
    With ``keep_rows`` the per-prompt best-of-k curves are returned too (the law fit's bootstrap).
    """
    if not groups:
        raise ValueError(f"data source {data_source!r} has no prompts")
    best_rows, gold_rows, n_counts = [], [], {}
    for sel, gold in groups:
        b, g = prompt_curves(sel, gold)
        best_rows.append(b)
        if g is not None:
            gold_rows.append(g)
        n_counts[sel.size] = n_counts.get(sel.size, 0) + 1
    k_max = max(r.size for r in best_rows)
    bm, bs, bc = _mean_sem(best_rows, k_max)
    summary = CurveSummary(
        data_source=data_source,
        ks=np.arange(1, k_max + 1),
        best_mean=bm,
        best_sem=bs,
        prompts_at_k=bc.astype(int),
        n_counts=dict(sorted(n_counts.items())),
    )
    if gold_rows:
        g_max = max(r.size for r in gold_rows)
        gm, gs, gc = _mean_sem(gold_rows, g_max)
        summary.gold_mean, summary.gold_sem, summary.gold_prompts_at_k = gm, gs, gc.astype(int)
    return (summary, best_rows) if keep_rows else summary


# ----------------------------------------------------------------------------------------------
# Scaling law
# ----------------------------------------------------------------------------------------------
def phi_gpd(xi: float, k: np.ndarray) -> np.ndarray:
    """``Phi_xi(k) = (Gamma(k+1) Gamma(1-xi) / Gamma(k+1-xi) - 1) / xi``; ``Phi_0(k) = H_k``.

    Exact ``E[max of k] = a + b Phi_xi(k)`` for the generalised-Pareto quantile
    ``Q(u) = a + b ((1-u)^-xi - 1)/xi`` (docs/method.md section 5). Needs ``xi < 1`` (finite mean).
    The log of the gamma ratio goes through ``expm1`` so the two branches meet continuously;
    below ``|xi| < 1e-7`` the harmonic-number branch is used.
    """
    if xi >= 1.0:
        raise ValueError(f"the scaling law needs a tail shape xi < 1 (finite mean), got {xi}")
    k = np.asarray(k, dtype=np.float64)
    if abs(xi) < 1e-7:
        return torch.digamma(torch.as_tensor(k + 1.0, dtype=torch.float64)).numpy() + EULER_GAMMA
    log_ratio = _lgamma(k + 1.0) + math.lgamma(1.0 - xi) - _lgamma(k + 1.0 - xi)
    return np.expm1(log_ratio) / xi


@dataclass
class ScalingLawFit:
    """``J_k = a + b Phi_xi(k)`` fitted on ``k = 1..k_max``."""

    a: float
    b: float
    xi: float
    xi_fitted: bool
    k_max: int
    rmse: float  # weighted (1/k) root-mean-square residual, reward units
    r2: float  # weighted coefficient of determination
    max_abs_z: float | None  # max_k |residual_k| / sem_k (None without sems): > 3 questions the law
    extrapolated: dict[int, float] = field(default_factory=dict)  # N' > k_max: predicted best-of-N'
    extrapolated_se: dict[int, float] = field(default_factory=dict)  # bootstrap over prompts
    a_se: float | None = None  # bootstrap over prompts (with prompt_rows)
    b_se: float | None = None
    xi_se: float | None = None
    xi_at_bound: str | None = None  # "lower" / "upper": the fitted xi is the edge of its search range (no se then)
    xi_bounds: tuple[float, float] | None = None  # the search range of a fitted xi

    def predict(self, k) -> np.ndarray:
        return self.a + self.b * phi_gpd(self.xi, np.asarray(k, dtype=np.float64))

    def as_dict(self) -> dict:
        return {
            "a": self.a,
            "a_se": self.a_se,
            "b": self.b,
            "b_se": self.b_se,
            "xi": self.xi,
            "xi_se": self.xi_se,
            "xi_fitted": self.xi_fitted,
            "xi_at_bound": self.xi_at_bound,
            "xi_bounds": list(self.xi_bounds) if self.xi_bounds else None,
            "fitted_on_k": [1, self.k_max],
            "rmse": self.rmse,
            "r2": self.r2,
            "max_abs_z": self.max_abs_z,
            "extrapolated": {
                str(n): {
                    "best_of_n": v,
                    "se": self.extrapolated_se.get(n),
                    "is_extrapolation": True,
                }
                for n, v in self.extrapolated.items()
            },
        }


def _xi_grid(bounds: tuple[float, float]) -> np.ndarray:
    lo, hi = bounds
    return lo + XI_GRID_STEP * np.arange(int(round((hi - lo) / XI_GRID_STEP)) + 1)


def _basis_table(xis: np.ndarray, ks: np.ndarray) -> np.ndarray:
    return np.stack([phi_gpd(float(x), ks) for x in xis])


def _profile_fit(curves: np.ndarray, ks: np.ndarray, basis: np.ndarray) -> tuple[np.ndarray, ...]:
    """Weighted LS of each row of ``curves (R, K)`` on ``1, basis[x]`` for every grid xi.

    Returns per row: best grid index, a, b, weighted SSE at the best xi, weighted SST.
    """
    w = 1.0 / ks
    w = w / w.sum()
    bm = basis @ w  # (X,)
    cm = curves @ w  # (R,)
    bc = basis - bm[:, None]  # (X, K)
    cc = curves - cm[:, None]  # (R, K)
    sxx = (bc * bc) @ w  # (X,)
    sxy = (cc * w) @ bc.T  # (R, X)
    syy = (cc * cc) @ w  # (R,)
    sse = syy[:, None] - sxy**2 / np.maximum(sxx[None, :], 1e-300)
    best = np.argmin(sse, axis=1)
    rows = np.arange(curves.shape[0])
    b = sxy[rows, best] / sxx[best]
    a = cm - b * bm[best]
    return best, a, b, sse[rows, best], syy


def fit_scaling_law(
    mean_curve: np.ndarray,
    sem: np.ndarray | None = None,
    xi: float | None = None,
    bounds: tuple[float, float] = (-2.0, 0.5),
    extrapolate_to: tuple[int, ...] = (),
    prompt_rows: list[np.ndarray] | None = None,
    n_boot: int = 200,
    seed: int = 0,
) -> ScalingLawFit:
    """Fit ``J_k = a + b Phi_xi(k)`` to a prompt-averaged exact best-of-k curve ``k = 1..K``.

    ``xi=None`` profiles xi over a grid on ``bounds`` (step 0.005); a number fixes it. The default
    range reaches xi = -2: scorers with a hard ceiling that their best samples approach (a
    sentiment lexicon, a saturating reward model) fit below -1. A fit at either end of the range is
    flagged (``xi_at_bound``) and gets no standard error. ``K >= 3``
    is needed to fit xi, ``K >= 2`` with xi fixed. ``extrapolate_to``: budgets ``N'``; those above
    ``K`` are returned as extrapolations (values at or below ``K`` are measured, not predicted, and
    are skipped). With ``prompt_rows`` (per-prompt curves; those reaching ``K`` are used) the
    standard errors of ``a``, ``b``, ``xi`` and each extrapolation are a bootstrap over prompts
    (``n_boot`` refits, local RNG ``seed``).
    """
    y = np.asarray(mean_curve, dtype=np.float64)
    K = y.size
    if not np.all(np.isfinite(y)):
        raise ValueError("the best-of-k curve has non-finite values; check the scores")
    if K < (3 if xi is None else 2):
        raise ValueError(
            f"fitting the scaling law needs the best-of-k curve at k = 1..{3 if xi is None else 2} at "
            f"least (got k = 1..{K}); sample more responses per prompt (val_kwargs.n) or fix the shape"
        )
    ks = np.arange(1, K + 1, dtype=np.float64)
    xis = _xi_grid(bounds) if xi is None else np.array([float(xi)])
    basis = _basis_table(xis, ks)
    best, a, b, sse, syy = _profile_fit(y[None, :], ks, basis)
    xi_hat = float(xis[best[0]])
    fit = ScalingLawFit(
        a=float(a[0]),
        b=float(b[0]),
        xi=xi_hat,
        xi_fitted=xi is None,
        k_max=K,
        rmse=float(math.sqrt(max(sse[0], 0.0))),
        r2=float(1.0 - sse[0] / syy[0]) if syy[0] > 0 else float("nan"),
        max_abs_z=None,
    )
    if xi is None:
        fit.xi_bounds = (float(bounds[0]), float(bounds[1]))
        if best[0] == 0:
            fit.xi_at_bound = "lower"
        elif best[0] == xis.size - 1:
            fit.xi_at_bound = "upper"
    if sem is not None:
        sem = np.asarray(sem, dtype=np.float64)
        ok = np.isfinite(sem) & (sem > 0)
        if ok.any():
            fit.max_abs_z = float(np.max(np.abs(y - fit.predict(ks))[ok] / sem[ok]))
    targets = sorted({int(n) for n in extrapolate_to if int(n) > K})
    for n in targets:
        fit.extrapolated[n] = float(fit.predict([n])[0])
    if prompt_rows is not None:
        full = [r[:K] for r in prompt_rows if r.size >= K]
        if len(full) >= 2:
            full = np.stack(full)
            rng = np.random.default_rng(seed)
            idx = rng.integers(0, full.shape[0], size=(n_boot, full.shape[0]))
            boot_curves = full[idx].mean(axis=1)  # (B, K)
            bi, ba, bb, _, _ = _profile_fit(boot_curves, ks, basis)
            fit.a_se, fit.b_se = float(ba.std(ddof=1)), float(bb.std(ddof=1))
            # a fit at the edge of its range has no meaningful standard error (the bootstrap piles up at the edge)
            fit.xi_se = float(xis[bi].std(ddof=1)) if xi is None and fit.xi_at_bound is None else None
            for n in targets:
                phi_n = np.array([phi_gpd(float(x), np.array([n]))[0] for x in xis])
                fit.extrapolated_se[n] = float((ba + bb * phi_n[bi]).std(ddof=1))
    return fit
