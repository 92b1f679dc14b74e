"""Exact best-of-k and selected-gold curves against brute force; the scaling-law fit on known laws."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from tea_verl.metrics.curves import fit_scaling_law, log2_ks, phi_gpd, prompt_curves, summarize_curves


def brute_force(sel, gold, k):
    """Mean over every k-subset of the gold of the selection-argmax, ties split evenly."""
    total, count = 0.0, 0
    for sub in itertools.combinations(range(len(sel)), k):
        top = max(sel[i] for i in sub)
        winners = [i for i in sub if sel[i] == top]
        total += sum(gold[i] for i in winners) / len(winners)
        count += 1
    return total / count


@pytest.mark.parametrize("n", [1, 2, 5, 9, 12])
@pytest.mark.parametrize("ties", [False, True])
def test_curves_match_brute_force_enumeration(n, ties):
    rng = np.random.default_rng(100 * n + ties)
    for _ in range(3):
        sel = rng.integers(0, 3, n).astype(float) if ties else rng.normal(size=n)
        gold = rng.normal(size=n)
        best, sel_gold = prompt_curves(sel, gold)
        for k in range(1, n + 1):
            assert abs(best[k - 1] - brute_force(sel, sel, k)) < 1e-9
            assert abs(sel_gold[k - 1] - brute_force(sel, gold, k)) < 1e-9


def test_curve_properties():
    rng = np.random.default_rng(1)
    sel = rng.normal(size=40)
    best, gold_eq = prompt_curves(sel, sel)
    assert best[0] == pytest.approx(sel.mean(), abs=1e-12)  # k = 1: the mean
    assert best[-1] == pytest.approx(sel.max(), abs=1e-12)  # k = n: the max
    assert np.all(np.diff(best) >= -1e-12)  # non-decreasing in k
    assert np.allclose(best, gold_eq, atol=1e-12)  # gold = selection gives best-of-k
    perm = rng.permutation(40)
    assert np.allclose(prompt_curves(sel[perm])[0], best, atol=1e-12)  # order of samples is irrelevant
    assert np.allclose(prompt_curves(3 * sel - 2)[0], 3 * best - 2, atol=1e-10)  # affine equivariance
    const, g = prompt_curves(np.ones(6), np.arange(6.0))
    assert np.allclose(const, 1.0) and np.allclose(g, 2.5)  # all tied: the even split is the mean gold


def test_large_n_is_finite_and_exact_at_the_ends():
    rng = np.random.default_rng(2)
    sel = rng.normal(size=1024)
    best, _ = prompt_curves(sel)
    assert np.all(np.isfinite(best))
    assert best[0] == pytest.approx(sel.mean(), abs=1e-9) and best[-1] == pytest.approx(sel.max(), abs=1e-9)


def test_uneven_prompts_average_over_those_that_reach_k():
    rng = np.random.default_rng(3)
    groups = [(rng.normal(size=n), None) for n in (4, 4, 8)]
    s = summarize_curves("d", groups)
    assert s.n_counts == {4: 2, 8: 1} and s.uneven
    assert list(s.prompts_at_k) == [3, 3, 3, 3, 1, 1, 1, 1]
    assert s.best_mean[5] == pytest.approx(prompt_curves(groups[2][0])[0][5])
    assert math.isnan(s.best_sem[5])  # one prompt: no standard error
    rows = np.stack([prompt_curves(g[0])[0][:4] for g in groups])
    assert np.allclose(s.best_sem[:4], rows.std(0, ddof=1) / math.sqrt(3))


def test_log2_ks():
    assert log2_ks(1) == [1]
    assert log2_ks(8) == [1, 2, 4, 8]
    assert log2_ks(12) == [1, 2, 4, 8, 12]


def test_phi_is_exact_for_the_generalised_pareto_law_and_continuous_at_zero():
    ks = np.arange(1, 65)
    # Phi_0 is the harmonic number
    assert np.allclose(phi_gpd(0.0, ks), np.cumsum(1.0 / ks), atol=1e-12)
    # continuity across xi = 0 (the branch switch)
    assert np.allclose(phi_gpd(1e-6, ks), phi_gpd(0.0, ks), rtol=1e-4)
    assert np.allclose(phi_gpd(-1e-6, ks), phi_gpd(0.0, ks), rtol=1e-4)
    # E[max of k] of GPD(xi) by quadrature of k u^(k-1) Q(u) matches Phi_xi(k)
    u = (np.arange(200000) + 0.5) / 200000
    for xi in (-0.5, 0.3):
        q = ((1 - u) ** (-xi) - 1) / xi
        for k in (1, 4, 32):
            assert np.mean(k * u ** (k - 1) * q) == pytest.approx(phi_gpd(xi, np.array([k]))[0], rel=2e-3)
    with pytest.raises(ValueError, match="xi < 1"):
        phi_gpd(1.0, ks)


def _gpd_samples(rng, xi, a, b, prompts, n):
    u = rng.random((prompts, n))
    tail = -np.log1p(-u) if xi == 0 else ((1 - u) ** (-xi) - 1) / xi
    return a + b * tail


@pytest.mark.parametrize("xi", [-0.3, 0.0, 0.2])
def test_fit_recovers_a_and_b_within_5_percent_at_n_64(xi):
    a, b = 1.0, 2.0
    rng = np.random.default_rng(7)
    x = _gpd_samples(rng, xi, a, b, prompts=250, n=64)
    s, rows = summarize_curves("d", [(r, None) for r in x], keep_rows=True)
    fit = fit_scaling_law(s.best_mean, s.best_sem, prompt_rows=rows, extrapolate_to=(256,))
    assert abs(fit.a - a) <= 0.05 * abs(a) and abs(fit.b - b) <= 0.05 * b, (fit.a, fit.b, fit.xi)
    # the errors are Monte Carlo sized: within 4 bootstrap standard errors
    assert abs(fit.a - a) <= 4 * fit.a_se and abs(fit.b - b) <= 4 * fit.b_se
    assert abs(fit.xi - xi) <= max(4 * fit.xi_se, 0.01)
    assert fit.r2 > 0.999 and fit.max_abs_z < 3
    truth = a + b * phi_gpd(xi, np.array([256]))[0]
    assert abs(fit.extrapolated[256] - truth) <= 4 * fit.extrapolated_se[256]


def test_fixed_shape_and_extrapolation_flags():
    rng = np.random.default_rng(8)
    x = _gpd_samples(rng, 0.0, 0.0, 1.0, prompts=100, n=16)
    s = summarize_curves("d", [(r, None) for r in x])
    fit = fit_scaling_law(s.best_mean, xi=0.0, extrapolate_to=(8, 16, 64))
    assert not fit.xi_fitted and fit.xi == 0.0
    assert list(fit.extrapolated) == [64]  # 8 and 16 are measured, not extrapolated
    assert fit.as_dict()["extrapolated"]["64"]["is_extrapolation"] is True
    with pytest.raises(ValueError, match="needs the best-of-k curve at k = 1..3"):
        fit_scaling_law(s.best_mean[:2])
    with pytest.raises(ValueError, match="non-finite"):
        fit_scaling_law(np.array([0.0, np.nan, 1.0]))
