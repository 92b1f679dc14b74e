"""Property and exactness tests of the pure-math module (no verl)."""

from __future__ import annotations

import itertools
import math
import random
import sys

import numpy as np
import pytest
import torch

from tea_verl import estimators as E
from tea_verl.config import TeaConfig
from tea_verl.estimators import best_of_n_credit
from tea_verl.estimators.gev import constraints

ALL = ("bon", "tea", "prefix_tea", "tea_gev", "prefix_tea_gev")


def brute_bon(r: list[float], n: int) -> list[float]:
    """n * E_S[(r_i - max S)_+] over every (n-1)-subset S of the others (n = 1: RLOO)."""
    out = []
    for i in range(len(r)):
        others = r[:i] + r[i + 1 :]
        if n == 1:
            out.append(r[i] - sum(others) / len(others))
            continue
        subs = list(itertools.combinations(others, n - 1))
        out.append(n * sum(max(r[i] - max(s), 0.0) for s in subs) / len(subs))
    return out


def random_batch(rng: random.Random, sizes: list[int], ties: bool = True):
    vals, gids = [], []
    for g, m in enumerate(sizes):
        for _ in range(m):
            v = float(rng.choice([0, 1, 2, 2.5])) if ties and rng.random() < 0.6 else rng.gauss(0, 1)
            vals.append(v)
            gids.append(g)
    perm = list(range(len(vals)))
    rng.shuffle(perm)
    return (
        torch.tensor([vals[p] for p in perm], dtype=torch.float64),
        torch.tensor([gids[p] for p in perm]),
    )


def normal_groups(seed: int, groups: int, m: int, dtype=torch.float64):
    """Seeded standard-normal rewards for ``groups`` prompts of ``m`` responses, their group ids,
    and the generator (for further draws)."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(groups * m, generator=gen, dtype=dtype), torch.arange(groups).repeat_interleave(m), gen


def budget(estimator: str, m: int, n_tail: int) -> int:
    """N = m for the exact ``bon``; ``n_tail`` > m for the tail estimators."""
    return m if estimator == "bon" else n_tail


@pytest.mark.parametrize("seed", range(40))
def test_bon_matches_brute_force_enumeration(seed):
    rng = random.Random(seed)
    sizes = [rng.randint(2, 8) for _ in range(rng.randint(1, 5))]
    if rng.random() < 0.3:
        sizes.append(1)  # a singleton: documented zero credit
    multi = [m for m in sizes if m > 1]
    x, g = random_batch(rng, sizes)
    n = rng.randint(1, min(multi))
    got, _ = best_of_n_credit(x, g, "bon", TeaConfig(N=n), norm_by_std=False)
    for gid in range(len(sizes)):
        idx = torch.nonzero(g == gid).flatten().tolist()
        want = brute_bon([float(x[i]) for i in idx], n) if len(idx) > 1 else [0.0]
        assert torch.allclose(got[idx], torch.tensor(want, dtype=torch.float64), atol=1e-10, rtol=0)


@pytest.mark.parametrize("estimator", ["tea_gev", "prefix_tea_gev"])
@pytest.mark.parametrize("seed", range(10))
def test_tail_estimators_equal_bon_when_n_le_m(estimator, seed):
    rng = random.Random(100 + seed)
    sizes = [rng.randint(3, 9) for _ in range(4)]
    x, g = random_batch(rng, sizes)
    n = rng.randint(1, min(sizes))
    a, _ = best_of_n_credit(x, g, "bon", TeaConfig(N=n))
    b, _ = best_of_n_credit(x, g, estimator, TeaConfig(N=n))
    assert torch.equal(a, b)


def test_n1_is_rloo():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(5, 7, generator=gen, dtype=torch.float64)
    g = torch.arange(5).repeat_interleave(7)
    got, _ = best_of_n_credit(x.reshape(-1), g, "bon", TeaConfig(N=1), norm_by_std=False)
    rloo = x - (x.sum(1, keepdim=True) - x) / 6
    assert torch.allclose(got, rloo.reshape(-1), atol=1e-12)


def test_n_equals_m_is_max_gap_for_top_sample_only():
    x = torch.tensor([0.3, 2.0, 1.1, -4.0, 5.0, 5.0, 1.0], dtype=torch.float64)
    g = torch.tensor([0, 0, 0, 0, 1, 1, 1])
    # group 1 ties at its top (deliberately): opt out of the discrete-rewards check
    got, _ = best_of_n_credit(x, g, "tea_gev", TeaConfig(N=4, max_top_tie_rate=1.0), norm_by_std=False)
    # group 0: only the top (2.0) gets credit m * (2.0 - 1.1); group 1 is smaller than N=4 -> tail
    assert torch.allclose(got[:4], torch.tensor([0.0, 4 * 0.9, 0.0, 0.0], dtype=torch.float64))


@pytest.mark.parametrize("estimator", ALL)
def test_permutation_equivariance(estimator):
    x, g, gen = normal_groups(1, 64, 6)
    n = budget(estimator, 6, 40)
    base, _ = best_of_n_credit(x, g, estimator, TeaConfig(N=n))
    perm = torch.randperm(x.numel(), generator=gen)
    permuted, _ = best_of_n_credit(x[perm], g[perm], estimator, TeaConfig(N=n))
    assert torch.allclose(permuted, base[perm], atol=1e-12)
    # relabelling groups changes nothing either
    relabel = torch.randperm(64, generator=gen)
    relabelled, _ = best_of_n_credit(x, relabel[g], estimator, TeaConfig(N=n))
    assert torch.allclose(relabelled, base, atol=1e-12)


@pytest.mark.parametrize("estimator", ALL)
@pytest.mark.parametrize("a,b", [(3.0, -7.0), (1e-4, 1e6), (250.0, 0.0)])
def test_affine_equivariance(estimator, a, b):
    x, g, _ = normal_groups(2, 128, 8)
    n = budget(estimator, 8, 64)
    raw, info = best_of_n_credit(x, g, estimator, TeaConfig(N=n), norm_by_std=False)
    raw2, info2 = best_of_n_credit(a * x + b, g, estimator, TeaConfig(N=n), norm_by_std=False)
    # the pooled shape fit is affine invariant (only the GEV family fits one; the others: nan)
    assert info.xi == info2.xi or (estimator not in E.GEV and math.isnan(info.xi) and math.isnan(info2.xi))
    # a * x + b is itself rounded: each input is off by up to ulp(b) ~ 2.2e-16 |b|, and a credit
    # sums at most ~450 such terms with unit weights (sum |omega| < 450 here), so the absolute
    # error allowed is 1e-13 |b| on top of float64 arithmetic on the spread.
    input_err = 1e-13 * abs(b)
    assert torch.allclose(raw2, a * raw, rtol=1e-7, atol=1e-9 * a + input_err)
    for scale in ("batch", "group"):
        norm, _ = best_of_n_credit(x, g, estimator, TeaConfig(N=n, std_scale=scale), epsilon=0.0)
        norm2, _ = best_of_n_credit(a * x + b, g, estimator, TeaConfig(N=n, std_scale=scale), epsilon=0.0)
        assert torch.allclose(norm2, norm, rtol=1e-6, atol=1e-8 + 2 * input_err / a)


@pytest.mark.parametrize("estimator", ALL)
def test_std_scales(estimator):
    x, g, _ = normal_groups(8, 64, 8)
    x = x * torch.linspace(0.5, 3.0, 64).repeat_interleave(8)  # prompts of different spread
    n = budget(estimator, 8, 64)
    raw, _ = best_of_n_credit(x, g, estimator, TeaConfig(N=n), norm_by_std=False)
    group_std = x.view(64, 8).std(1)
    by_group, _ = best_of_n_credit(x, g, estimator, TeaConfig(N=n, std_scale="group"), epsilon=0.0)
    by_batch, _ = best_of_n_credit(x, g, estimator, TeaConfig(N=n, std_scale="batch"), epsilon=0.0)
    assert torch.allclose(by_group, raw / group_std.repeat_interleave(8), rtol=1e-12)
    assert torch.allclose(by_batch, raw / group_std.mean(), rtol=1e-12)
    with pytest.raises(ValueError, match="std_scale must be"):
        best_of_n_credit(x, g, estimator, TeaConfig(N=n, std_scale="prompt"))


@pytest.mark.parametrize("estimator", ALL)
def test_constant_and_tied_groups_give_zero(estimator):
    x = torch.tensor([2.0] * 5 + [7.0] * 5 + [1.0, 1.0, 3.0, 3.0, 3.0], dtype=torch.float64)
    g = torch.arange(3).repeat_interleave(5)
    n = 5 if estimator == "bon" else 50
    # this test is about the arithmetic of ties, so it opts out of the discrete-rewards check
    got, _ = best_of_n_credit(x, g, estimator, TeaConfig(N=n, shape=0.0, max_top_tie_rate=1.0))
    assert torch.equal(got[:10], torch.zeros(10, dtype=torch.float64))
    assert torch.isfinite(got).all()
    # all-tied top: no sample beats another tied one
    y = torch.tensor([3.0, 3.0, 3.0, 3.0, 3.0, 3.0], dtype=torch.float64)
    zero, _ = best_of_n_credit(y, torch.zeros(6, dtype=torch.long), estimator, TeaConfig(N=n if estimator != "bon" else 6))
    assert torch.equal(zero, torch.zeros(6, dtype=torch.float64))


@pytest.mark.parametrize("estimator", ALL)
def test_singleton_groups_get_zero_and_are_counted(estimator):
    x = torch.tensor([5.0, 1.0, 2.0, 3.0, -1.0], dtype=torch.float64)
    g = torch.tensor([0, 1, 1, 1, 2])
    got, info = best_of_n_credit(x, g, estimator, TeaConfig(N=2))
    assert got[0] == 0 and got[4] == 0
    assert info.num_singletons == 2
    assert got[1:4].abs().sum() > 0


@pytest.mark.parametrize("estimator", ALL)
@pytest.mark.parametrize("scale", [1e-30, 1e-8, 1.0, 1e8, 1e30])
def test_finite_on_extreme_inputs(estimator, scale):
    x, g, _ = normal_groups(3, 256, 16)
    x = scale * x
    x[::97] = 0.0
    n = budget(estimator, 16, 256)
    for dtype in (torch.float32, torch.float64):
        xs = x.to(dtype)
        if not torch.isfinite(xs).all():
            continue
        got, _ = best_of_n_credit(xs, g, estimator, TeaConfig(N=n))
        assert got.dtype == dtype
        assert torch.isfinite(got).all()
        assert got.abs().max() < 1e4  # std-normalised credit stays O(weights), never explodes


def test_large_offset_does_not_cancel():
    x, g, _ = normal_groups(4, 32, 8)
    a, _ = best_of_n_credit(x, g, "tea_gev", TeaConfig(N=64, shape=-0.2))
    b, _ = best_of_n_credit(x + 1e9, g, "tea_gev", TeaConfig(N=64, shape=-0.2))
    assert torch.allclose(a, b, atol=1e-6)


def test_nonfinite_rewards_are_reported_with_count_and_rows():
    x = torch.tensor([0.0, float("nan"), 1.0, float("inf"), 2.0, 3.0])
    g = torch.tensor([0, 0, 0, 1, 1, 1])
    with pytest.raises(ValueError, match=r"2 of 6 rewards are NaN or inf \(batch rows \[1, 3\]\)"):
        best_of_n_credit(x, g, "tea_gev", TeaConfig(N=2))


def test_bon_refuses_n_above_group_size_and_points_to_tea():
    x = torch.randn(12, dtype=torch.float64)
    g = torch.arange(3).repeat_interleave(4)
    with pytest.raises(ValueError, match=r"N=8.*3 group\(s\).*adv_estimator=tea or prefix_tea"):
        best_of_n_credit(x, g, "bon", TeaConfig(N=8))


@pytest.mark.parametrize("n", [0, -3, 2.5, True])
def test_invalid_n(n):
    with pytest.raises(ValueError, match="N must be an integer >= 1"):
        best_of_n_credit(torch.zeros(4), torch.zeros(4, dtype=torch.long), "tea_gev", TeaConfig(N=n))


# --- weights, basis and shape fit ---------------------------------------------------------------
@pytest.mark.parametrize("m,n", [(4, 32), (8, 64), (16, 256), (3, 1000)])
@pytest.mark.parametrize("xi", [-0.5, -0.1, 0.0, 0.2])
def test_weights_satisfy_moment_constraints(m, n, xi):
    k = torch.arange(1, m + 1, dtype=torch.float64)
    target = float(E.phi(xi, torch.tensor([float(n)]))[0])
    for w in (E.prefix_tea_weights(m, n, xi), E.tea_weights(m, n, xi, 1e-3)):
        assert float(w.sum()) == pytest.approx(1.0, abs=1e-9)
        assert float(w @ E.phi(xi, k)) == pytest.approx(target, rel=1e-9, abs=1e-9)


def test_tea_tends_to_the_least_norm_solution_as_smoothing_grows():
    C, d = constraints(8, 64, -0.2, 1, -1.0)
    p = C.T @ torch.linalg.solve(C @ C.T, d)  # least |w|^2 over all orders k = 1..m
    far = E.tea_weights(8, 64, -0.2, 1e6)
    near = E.tea_weights(8, 64, -0.2, 1e-4)
    assert torch.allclose(far, p, atol=1e-5)
    assert (near - p).norm() > 10 * (far - p).norm()


def test_phi_is_continuous_across_xi_zero():
    n = torch.tensor([1.0, 2.0, 8.0, 64.0, 1024.0], dtype=torch.float64)
    at0 = E.phi(0.0, n)
    for eps in (1e-6, -1e-6, 1e-9):
        assert torch.allclose(E.phi(eps, n), at0, rtol=1e-5, atol=1e-7)
    assert torch.allclose(at0, torch.log(n))


@pytest.mark.parametrize("xi", [-0.4, -0.15, 0.0, 0.25])
def test_shape_fit_recovers_gev_shape_from_exact_curve(xi):
    # E[max of k] for GEV(xi) is exactly A + B * phi_xi(k): the fit must land on xi.
    k = torch.arange(1, 17, dtype=torch.float64)
    curve = 3.0 + 2.5 * E.phi(xi, k)
    got, r2 = E.fit_tail_shape(curve)
    assert got == pytest.approx(xi, abs=E.SHAPE_GRID_STEP)
    assert r2 == pytest.approx(1.0, abs=1e-9)


def test_best_of_k_curves_match_subset_enumeration():
    rng = random.Random(5)
    vals = sorted(rng.gauss(0, 1) for _ in range(7))
    curves = E.best_of_k_curves(torch.tensor([vals], dtype=torch.float64), 7)[0]
    for k in range(1, 8):
        subs = list(itertools.combinations(vals, k))
        assert float(curves[k - 1]) == pytest.approx(sum(max(s) for s in subs) / len(subs), abs=1e-12)


def test_large_groups_are_stable():
    # binomial ratios in log space: m = 1024 must not overflow
    x, g, _ = normal_groups(6, 4, 1024)
    for est, n in (("bon", 512), ("tea_gev", 8192), ("prefix_tea_gev", 8192)):
        got, _ = best_of_n_credit(x, g, est, TeaConfig(N=n))
        assert torch.isfinite(got).all()
    got, _ = best_of_n_credit(x, g, "bon", TeaConfig(N=1024), norm_by_std=False)
    top = x.view(4, 1024).sort(1).values
    gaps = 1024 * (top[:, -1] - top[:, -2])
    assert torch.allclose(got.view(4, 1024).max(1).values, gaps, atol=1e-9)


def test_math_module_does_not_import_verl():
    import subprocess

    code = "import sys, tea_verl.estimators; assert 'verl' not in sys.modules, 'verl imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("estimator", ALL)
def test_cuda_matches_cpu(estimator):
    x, g, _ = normal_groups(7, 512, 8, torch.float32)
    n = budget(estimator, 8, 64)
    cpu, info = best_of_n_credit(x, g, estimator, TeaConfig(N=n))
    gpu, info_gpu = best_of_n_credit(x.cuda(), g.cuda(), estimator, TeaConfig(N=n))
    assert gpu.device.type == "cuda"
    assert info.xi == info_gpu.xi or math.isnan(info.xi)
    assert torch.allclose(gpu.cpu(), cpu, atol=1e-5)


@pytest.mark.parametrize("xi", [-0.3, 0.1])
def test_shape_fit_from_k2_ignores_the_mean(xi):
    k = torch.arange(1, 9, dtype=torch.float64)
    curve = 1.0 + 2.0 * E.phi(xi, k)
    curve[0] += 5.0  # a bulk effect on the mean only
    got, r2 = E.fit_tail_shape(curve, kmin=2)
    assert got == pytest.approx(xi, abs=E.SHAPE_GRID_STEP) and r2 == pytest.approx(1.0, abs=1e-9)
    with pytest.raises(ValueError, match="needs 3 points"):
        E.fit_tail_shape(curve[:3], kmin=2)


def test_empty_batch_and_shape_mismatch():
    empty, info = best_of_n_credit(torch.zeros(0), torch.zeros(0, dtype=torch.long), "tea_gev", TeaConfig(N=8))
    assert empty.numel() == 0 and info.num_singletons == 0
    with pytest.raises(ValueError, match="same length"):
        best_of_n_credit(torch.zeros(4), torch.zeros(3, dtype=torch.long), "tea_gev", TeaConfig(N=8))


# --- discrete rewards --------------------------------------------------------------------------
def bernoulli_groups(p: float, groups: int, m: int, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    x = (torch.rand(groups * m, generator=gen) < p).double()
    return x, torch.arange(groups).repeat_interleave(m)


def levels_groups(levels: int, groups: int, m: int, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randint(0, levels, (groups * m,), generator=gen).double() / (levels - 1)
    return x, torch.arange(groups).repeat_interleave(m)


@pytest.mark.parametrize("estimator", ["tea_gev", "prefix_tea_gev"])
@pytest.mark.parametrize("kind", ["pass/fail 0.2", "pass/fail 0.5", "pass/fail 0.8", "5 levels"])
@pytest.mark.parametrize("groups", [16, 256])
def test_discrete_rewards_fall_back_to_exact_bon_at_m(estimator, kind, groups):
    m = 8
    if kind == "5 levels":
        x, g = levels_groups(5, groups, m)
    else:
        x, g = bernoulli_groups(float(kind.split()[1]), groups, m)
    got, info = best_of_n_credit(x, g, estimator, TeaConfig(N=64))  # never raises on data
    assert info.discrete_batch and info.discrete_pvalue < E.DISCRETE_TEST_LEVEL
    assert info.fallback_groups == info.eligible_groups > 0
    exact, _ = best_of_n_credit(x, g, "bon", TeaConfig(N=m))
    assert torch.equal(got, exact)
    # the opt-out keeps extrapolating the non-tied groups and still never raises
    got, info = best_of_n_credit(x, g, estimator, TeaConfig(N=64, max_top_tie_rate=1.0))
    assert torch.isfinite(got).all() and not info.discrete_batch and info.top_tie_rate > 0.1


@pytest.mark.parametrize("estimator", ["tea_gev", "prefix_tea_gev"])
def test_lexicon_like_rewards_never_raise_and_tied_groups_get_exact_bon(estimator):
    from benchmarks.common import LexiconLike

    law, rng = LexiconLike(), np.random.default_rng(3)
    g = torch.arange(16).repeat_interleave(8)
    discrete, fallbacks = 0, 0
    for _ in range(200):
        x = torch.from_numpy(law.sample(rng, (128,)))
        got, info = best_of_n_credit(x, g, estimator, TeaConfig(N=64))
        assert torch.isfinite(got).all()
        discrete += info.discrete_batch
        fallbacks += info.fallback_groups
        if info.tie_groups and not info.discrete_batch:
            # a tied group's credit is bon's at N = m (before the batch-wide std scaling)
            raw, raw_info = best_of_n_credit(x, g, estimator, TeaConfig(N=64), norm_by_std=False)
            exact, _ = best_of_n_credit(x, g, "bon", TeaConfig(N=8), norm_by_std=False)
            layout = E.group_layout(g)
            tied, _ = E.top_tie_groups(layout.pad(x), layout, 64)
            rows = tied[g]
            assert torch.allclose(raw[rows], exact[rows])
    assert discrete == 0  # a few ties are not discreteness
    assert fallbacks > 0


def test_binomial_tail_matches_direct_sum():
    from math import comb

    for n, p in ((16, 0.1), (40, 0.3)):
        for k in range(n + 2):
            direct = sum(comb(n, j) * p**j * (1 - p) ** (n - j) for j in range(k, n + 1))
            assert E.binomial_sf(k, n, p) == pytest.approx(direct, rel=1e-9, abs=1e-300)


def test_credit_statistics_describe_the_credit():
    x, g, _ = normal_groups(5, 64, 8)
    got, info = best_of_n_credit(x, g, "tea_gev", TeaConfig(N=64))
    assert info.credit_mean == pytest.approx(float(got.mean()), abs=1e-9)
    assert info.credit_std == pytest.approx(float(got.std()), rel=1e-9)
    best = torch.stack([got[g == i][x[g == i].argmax()] for i in range(64)])
    assert info.best_nonpositive_share == pytest.approx(float((best <= 0).double().mean()))


@pytest.mark.parametrize("decimals", [None, 2])
def test_continuous_rewards_pass_the_tie_check(decimals):
    x, g, _ = normal_groups(9, 512, 8)
    if decimals is not None:
        x = torch.round(x, decimals=decimals)  # an RM score printed with 2 decimals
    _, info = best_of_n_credit(x, g, "tea_gev", TeaConfig(N=64))
    assert info.top_tie_rate < 0.05


def test_top_tie_rate_counts_only_varied_groups_that_need_extrapolation():
    x = torch.tensor([1.0, 1.0, 0.0, 2.0, 1.0, 0.0, 5.0, 5.0, 5.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0], dtype=torch.float64)
    g = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3])
    layout = E.group_layout(g)
    rate, count = E.top_tie_rate(layout.pad(x), layout, n=4)
    # group 0 ties at the top, group 1 does not, group 2 is constant, group 3 (m=7 >= n) is exact
    assert (rate, count) == (0.5, 2)


def _bulk_slope_energy(w: torch.Tensor, bulk: float) -> float:
    """int_0^bulk P(u)^2 du for P(u) = sum_k k w_k u^(k-1), by Gauss-Legendre quadrature."""
    x, q = np.polynomial.legendre.leggauss(64)
    u = torch.tensor(bulk * (x + 1) / 2, dtype=torch.float64)[:, None]
    k = torch.arange(1, w.numel() + 1, dtype=torch.float64)
    P = (k * w * u ** (k - 1)).sum(1)
    return float((torch.tensor(q * bulk / 2) * P * P).sum())


@pytest.mark.parametrize("m,n", [(4, 32), (8, 64), (16, 256)])
def test_prefix_tea_minimises_bulk_slope_plus_smoothing(m, n):
    # prefix_tea = argmin int_0^q P^2 du + smoothing |w|^2 subject to the moment constraints,
    # q = (m-1)/(m+1): every feasible move away from it raises that objective (computed here by
    # quadrature, not with the estimator's Gram matrix)
    xi, s = -0.25, 1e-3
    w = E.prefix_tea_weights(m, n, xi)
    C, d = constraints(m, n, xi, 1, -1.0)
    assert torch.allclose(C @ w, d)

    def objective(v):
        return _bulk_slope_energy(v, (m - 1) / (m + 1)) + s * float(v @ v)

    null = torch.linalg.svd(C).Vh[C.shape[0]:]  # directions that keep the constraints
    gen = torch.Generator().manual_seed(0)
    for _ in range(5):
        step = null.T @ torch.randn(null.shape[0], dtype=torch.float64, generator=gen)
        for eps in (1e-3, -1e-3, 0.1):
            assert objective(w + eps * step) > objective(w)


@pytest.mark.parametrize("m,n", [(4, 32), (8, 64), (16, 256)])
def test_prefix_tea_credit_is_flatter_in_the_bulk_than_least_norm(m, n):
    C, d = constraints(m, n, -0.25, 1, -1.0)
    least_norm = C.T @ torch.linalg.solve(C @ C.T, d)
    w = E.prefix_tea_weights(m, n, -0.25)
    q = (m - 1) / (m + 1)
    assert _bulk_slope_energy(w, q) < _bulk_slope_energy(least_norm, q)
    # and it tends to the least-norm weights as smoothing grows
    assert torch.allclose(E.prefix_tea_weights(m, n, -0.25, smoothing=1e7), least_norm, atol=1e-5)
