"""The paper's Gaussian TEA and Prefix-TEA (tea_verl.estimators.gaussian): constants, Lemma 2,
plug-in consistency, jackknife weights, degenerate and bad input. Reference values come from
scipy's quadrature, never from the module under test."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tea_verl.config import TeaConfig
from tea_verl.estimators import best_of_n_credit, gaussian as G

stats = pytest.importorskip("scipy.stats")
integrate = pytest.importorskip("scipy.integrate")


def scipy_c(n: int) -> float:
    f = lambda x: x * n * stats.norm.pdf(x) * stats.norm.cdf(x) ** (n - 1)  # noqa: E731
    return integrate.quad(f, -12, 14, limit=400, points=[math.sqrt(2 * math.log(n))])[0]


@pytest.mark.parametrize("n", [2, 3, 16, 128, 512, 4096])
def test_c_n_matches_scipy_quadrature(n):
    assert G.normal_max_mean(n) == pytest.approx(scipy_c(n), abs=1e-7)
    assert G.normal_max_mean(1) == 0.0


@pytest.mark.parametrize("alpha,n", [(0.25, 128), (0.1, 64), (0.4, 512), (0.5, 64), (0.7, 32)])
def test_tail_constants_match_the_truncated_normal(alpha, n):
    # fractions of 1/2 and above: a Prefix-TEA sub-sample's k / n when alpha is near 1/2
    c = G.tail_constants(alpha, n)
    z = stats.norm.ppf(1 - alpha)
    tail = stats.truncnorm(z, np.inf)  # the standard normal above its (1 - alpha) quantile
    assert c.z == pytest.approx(z, abs=1e-10)
    assert c.lam == pytest.approx(tail.mean(), rel=1e-9)
    assert c.kappa == pytest.approx(tail.std(), rel=1e-9)
    assert c.e_n == pytest.approx((scipy_c(n) - tail.mean()) / tail.std(), rel=1e-7)


# --- Lemma 2 on a quadrature grid ---------------------------------------------------------------
X = np.linspace(-14.0, 14.0, 400001)


def tail_stats(p: np.ndarray, alpha: float):
    """(r_alpha, mu_alpha, sigma_alpha) of the density p on X (normalised here)."""
    p = p / np.trapezoid(p, X)
    F = np.concatenate([[0.0], np.cumsum(0.5 * (p[1:] + p[:-1]) * np.diff(X))])
    r_a = float(np.interp(1 - alpha, F, X))
    w = np.where(X >= r_a, p, 0.0)
    mass = np.trapezoid(w, X)
    mu = np.trapezoid(w * X, X) / mass
    sd = math.sqrt(np.trapezoid(w * (X - mu) ** 2, X) / mass)
    return r_a, mu, sd


def surrogate(p, alpha, e):
    _, mu, sd = tail_stats(p, alpha)
    return mu + e * sd


@pytest.mark.parametrize("direction", ["location", "scale", "tanh tilt"])
def test_lemma2_credit_gives_the_surrogate_gradient(direction):
    alpha, n, mu0, s0 = 0.25, 128, 0.3, 1.7
    e = G.tail_constants(alpha, n).e_n

    def density(t):
        if direction == "location":
            return stats.norm.pdf(X, mu0 + t, s0)
        if direction == "scale":
            return stats.norm.pdf(X, mu0, s0 * math.exp(t))
        return stats.norm.pdf(X, mu0, s0) * (1 + t * np.tanh((X - mu0) / s0))  # not location-scale

    p = density(0.0)
    if direction == "location":
        score = (X - mu0) / s0**2
    elif direction == "scale":
        score = (X - mu0) ** 2 / s0**2 - 1
    else:
        score = np.tanh((X - mu0) / s0)
    r_a, mu_a, sd_a = tail_stats(p, alpha)
    credit = G.population_credit(torch.from_numpy(X), r_a, mu_a, sd_a, alpha, e).numpy()
    lemma = np.trapezoid(p * credit * score, X)
    h = 1e-2  # central differences: O(h^2) error; a smaller h meets the grid's discrete tail cut
    fd = (surrogate(density(h), alpha, e) - surrogate(density(-h), alpha, e)) / (2 * h)
    assert lemma == pytest.approx(fd, rel=5e-4)
    if direction == "location":
        assert lemma == pytest.approx(1.0, rel=2e-4)  # a shift moves mu_alpha + e sigma_alpha by itself


def test_plugin_converges_to_the_population_credit():
    alpha, n = 0.25, 128
    e = G.tail_constants(alpha, n).e_n
    z = stats.norm.ppf(1 - alpha)
    r_a, mu_a, sd_a = z, stats.truncnorm(z, np.inf).mean(), stats.truncnorm(z, np.inf).std()
    gen = torch.Generator().manual_seed(0)
    errs = {}
    for m in (1000, 64000):
        x = torch.randn(1, m, generator=gen, dtype=torch.float64)
        got = G.tea_credit(x, n, alpha)[0]
        want = G.population_credit(x[0], r_a, mu_a, sd_a, alpha, e)
        inner = (x[0] > r_a + 0.2) & (x[0] < 3.0)  # away from the moving threshold's kink
        errs[m] = float((got - want)[inner].abs().max() / want[inner].abs().max())
    # O(1/sqrt(m)) errors: 64x the samples, about 8x smaller
    assert errs[64000] < errs[1000] / 3 and errs[64000] < 0.03, errs


@pytest.mark.parametrize("m", [16, 24, 32, 64, 100])
@pytest.mark.parametrize("order", [1, 2, 3])
def test_jackknife_weights_satisfy_their_cancellation_equations(m, order):
    plan = G.jackknife_plan(m, 0.25, order, 4)
    k = np.array([s.tail for s in plan], float)
    w = np.array([s.weight for s in plan])
    q = min(order, len(plan))
    assert w.sum() == pytest.approx(1.0, abs=1e-12)
    for p in range(1, q):
        assert (w * k ** (-p)).sum() == pytest.approx(0.0, abs=1e-12)
    assert plan[0].size == m and plan[0].tail == G.tail_size(0.25, m)
    for s in plan:
        assert G.tail_size(0.25, s.size) == s.tail and s.size <= m and s.tail >= 2
        assert s.alpha == pytest.approx(s.tail / s.size)
    if len(plan) > 1:
        assert min(s.tail for s in plan) >= 3  # a 2-point std is left out when >= 2 larger tails exist


@pytest.mark.parametrize("alpha", [0.05, 0.1, 0.2, 0.25, 0.3, 0.34, 0.4, 0.45, 0.49])
def test_every_accepted_alpha_credits_every_feasible_group_size(alpha):
    """The user's alpha is checked to lie in (0, 0.5), but Prefix-TEA's steps use their own tail
    fraction k / n, which reaches 1/2 near alpha = 1/2 (alpha = 0.45 at m = 8: the top 4 of 8).
    Every group size that passes the feasibility check must then be credited, finitely, by both."""
    gen = torch.Generator().manual_seed(11)
    checked = 0
    for m in range(2, 25):
        if G.tail_error("prefix_tea", alpha, m):
            continue
        x = torch.randn(4 * m, generator=gen, dtype=torch.float64)
        ids = torch.arange(4).repeat_interleave(m)
        for est in ("tea", "prefix_tea"):
            credit, _ = best_of_n_credit(x, ids, est, TeaConfig(N=4 * m, alpha=alpha))
            assert torch.isfinite(credit).all() and credit.abs().sum() > 0, (est, alpha, m)
        checked += 1
    assert checked >= 24 - G.min_group_size(alpha)  # every feasible size from the smallest one up


def test_windows_cover_every_position_equally():
    for m, n in ((16, 12), (32, 28), (30, 24), (13, 8)):
        idx = G.windows(m, n, 4)
        counts = torch.bincount(idx.reshape(-1), minlength=m)
        assert torch.all(counts == counts[0]) and int(counts[0]) == idx.shape[0] * n // m
        assert all(len(set(row.tolist())) == n for row in idx)  # each window: n distinct samples


def test_two_sample_tail_is_best_of_m():
    """With k = 2 the quadratic term vanishes (mu is the midpoint of the top two): TEA is
    bon at N = m up to the factor 1 / (alpha m)."""
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(64 * 8, generator=gen, dtype=torch.float64)
    ids = torch.arange(64).repeat_interleave(8)
    tea, _ = best_of_n_credit(x, ids, "tea", TeaConfig(N=64), norm_by_std=False)
    bon, _ = best_of_n_credit(x, ids, "bon", TeaConfig(N=8), norm_by_std=False)
    assert torch.allclose(tea, bon / (0.25 * 8), atol=1e-12)


def test_affine_invariance_and_zero_spread():
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(32, 16, generator=gen, dtype=torch.float64)
    for f in (G.tea_credit, G.prefix_tea_credit):
        a = f(x, 128)
        assert torch.allclose(f(3.0 * x - 7.0, 128), 3.0 * a, atol=1e-9)
    flat = torch.tensor([[1.0, 1.0, 1.0, 1.0, 0.5, 0.2, 0.1, 0.0]])
    c = G.plugin_credit(flat, 4, 0.5, 2.0)
    assert torch.equal(c, torch.zeros_like(c))  # top 4 equal: no Gaussian fit, zero credit, no NaN


def test_prefix_tea_removes_most_of_teas_spread_bias_on_a_normal_law():
    """SVR (spread/location ratio of the expected gradient over the truth) at m = 16, N = 128, by
    pathwise finite differences on natural batches; tolerances from the batch-to-batch spread."""
    m, n, groups, batches = 16, 128, 512, 24
    cn = G.normal_max_mean(n)
    ids = torch.arange(groups).repeat_interleave(m)
    first = torch.arange(groups) * m
    rng = np.random.default_rng(7)
    ratios = {"tea": [], "prefix_tea": []}
    for _ in range(batches):
        x = torch.from_numpy(rng.standard_normal(groups * m))
        for est in ratios:
            xp, xm = x.clone(), x.clone()
            xp[first] += 1e-5
            xm[first] -= 1e-5
            d = (best_of_n_credit(xp, ids, est, TeaConfig(N=n), norm_by_std=False)[0][first]
                 - best_of_n_credit(xm, ids, est, TeaConfig(N=n), norm_by_std=False)[0][first]) / 2e-5
            ratios[est].append(float((d * x[first]).sum() / d.sum()) / cn)
    bias = {e: abs(1 - np.mean(r)) for e, r in ratios.items()}
    se = {e: np.std(r, ddof=1) / math.sqrt(batches) for e, r in ratios.items()}
    assert bias["tea"] > 5 * se["tea"]  # the plug-in's O(1/k) bias is real
    assert bias["prefix_tea"] + 3 * math.hypot(se["tea"], se["prefix_tea"]) < bias["tea"]


def test_infeasible_alpha_and_m_name_the_smallest_m():
    x = torch.randn(4 * 4, dtype=torch.float64)
    ids = torch.arange(4).repeat_interleave(4)
    for est in ("tea", "prefix_tea"):
        with pytest.raises(ValueError, match=r"use rollout.n >= 5"):
            best_of_n_credit(x, ids, est, TeaConfig(N=32))
    assert G.min_group_size(0.25) == 5 and G.min_group_size(0.1) == 11 and G.min_group_size(0.3) == 4
    with pytest.raises(ValueError, match=r"alpha must be a number in \(0, 0.5\)"):
        best_of_n_credit(torch.randn(16, dtype=torch.float64), torch.arange(2).repeat_interleave(8), "tea", TeaConfig(N=32, alpha=0.6))


def test_discrete_rewards_fall_back_to_bon_like_the_gev_family():
    gen = torch.Generator().manual_seed(2)
    x = (torch.rand(64 * 16, generator=gen) < 0.4).double()  # pass/fail
    ids = torch.arange(64).repeat_interleave(16)
    for est in ("tea", "prefix_tea"):
        got, info = best_of_n_credit(x, ids, est, TeaConfig(N=128))
        bon, _ = best_of_n_credit(x, ids, "bon", TeaConfig(N=16))
        assert info.discrete_batch and torch.allclose(got, bon) and torch.isfinite(got).all()


def test_cuda_matches_cpu():
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(128 * 16, generator=gen, dtype=torch.float64)
    ids = torch.arange(128).repeat_interleave(16)
    for est in ("tea", "prefix_tea"):
        cpu, _ = best_of_n_credit(x, ids, est, TeaConfig(N=128))
        gpu, _ = best_of_n_credit(x.cuda(), ids.cuda(), est, TeaConfig(N=128))
        assert torch.allclose(gpu.cpu(), cpu, atol=1e-10)


def test_prefix_tea_at_alpha_04_extrapolates_at_m_8_through_verl():
    """At m = 8 the default alpha = 0.25 gives a 2-reward tail (best-of-m credit). At alpha = 0.4
    the tail holds 4 rewards, the jackknife combines tails of 4 of 8 (fraction 1/2) and 3 of 7, and
    the credit is Prefix-TEA's own: zero below each group's top 4, not best-of-m. Through verl's
    ``compute_advantage``, as the LM benchmark's ``prefix_tea@0.4`` runs it."""
    from tea_verl.experiments.bandit import advantages_via_verl, resolve_algorithm

    name, rollouts, alg = resolve_algorithm("prefix_tea@0.4", 8, 64)
    assert (name, rollouts, alg.tea.alpha, alg.tea.N) == ("prefix_tea", 8, 0.4, 64)
    gen = torch.Generator().manual_seed(5)
    r = torch.randn(32 * 8, generator=gen, dtype=torch.float64)
    uids = np.array([f"g{g}" for g in range(32) for _ in range(8)], dtype=object)
    adv = advantages_via_verl(r, uids, name, alg).view(32, 8)
    rank = torch.argsort(torch.argsort(-r.view(32, 8), 1), 1)
    assert torch.isfinite(adv).all()
    assert (adv[rank >= 4] == 0).all()  # below the top 4 of its group: no credit
    assert adv[rank == 0].mean() > 0  # on average; the jackknife's weights (4, -3) can make one negative
    assert (adv[(rank >= 1) & (rank <= 2)] != 0).any()  # best-of-m would give these zero
    default = advantages_via_verl(r, uids, *resolve_algorithm("prefix_tea", 8, 64)[::2]).view(32, 8)
    assert (default[rank >= 1] == 0).all()  # alpha = 0.25: best-of-m up to a scale
