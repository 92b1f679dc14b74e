"""Statistical tests: tea and prefix_tea value spread as best-of-N does (SVR in [0.85, 1.2]).

Two layers, fixed seeds throughout:

1. The black-box measurement (benchmarks/quality.py: pathwise finite differences through the
   verl-registered functions) is checked against exact values: for bon with N = m the SVR is
   (J_m - J_1)/(J_N - J_1); for tea/prefix_tea at a fixed shape xi it is
   sum_k w_k (J_k - J_1) / (J_N - J_1), because both are linear in the exact prefix estimators
   (E[k c^(k) | r] = k (g_k(r) - J_{k-1}), whose r-derivative k F^{k-1} integrates to 1 against F
   and to J_k - J_1 against F (R - mean)). Tolerance: 4 Monte Carlo standard errors.
2. With that identity established, the band is tested on every listed law and budget for each
   of several independent realistic batches (512 prompts): the estimator fits xi on the batch
   exactly as in training, and the SVR implied by that batch's weights must lie in the band.
   The spread across batches is the estimator's real xi noise; nothing is averaged away.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

from benchmarks.common import LAWS, call_registered as registered_credit
from benchmarks.quality import measure
from tea_verl import estimators as E
from tea_verl.config import TeaConfig

BUDGETS = [(4, 32), (8, 64), (16, 256)]
GROUPS = 512


@functools.cache
def exact_curve(law: str, kmax: int) -> tuple[np.ndarray, float]:
    d = LAWS[law]
    return np.array([d.best_of(k) for k in range(1, kmax + 1)]), d.best_of(1)


def implied_svr(law: str, w: torch.Tensor, n: int) -> float:
    m = w.numel()
    J, J1 = exact_curve(law, m)
    JN = LAWS[law].best_of(n)
    return float(np.dot(w.numpy(), J - J1) / w.sum().item() / (JN - J1))


def weights_for(estimator: str, m: int, n: int, xi: float) -> torch.Tensor:
    return E.tea_weights(m, n, xi) if estimator == "tea_gev" else E.prefix_tea_weights(m, n, xi)


@pytest.mark.parametrize("law", sorted(LAWS))
def test_measurement_is_calibrated_on_bon(law):
    d = LAWS[law]
    m, n = 8, 64
    r = measure(d, m, n, "bon_m", groups=GROUPS, batches=24, seed=11)
    exact = (d.best_of(m) - d.best_of(1)) / (d.best_of(n) - d.best_of(1))
    assert abs(r["svr"] - exact) <= 4 * r["svr_se"] + 1e-3, (r, exact)


@pytest.mark.parametrize("estimator", ["tea_gev", "prefix_tea_gev"])
@pytest.mark.parametrize("law,m,n", [("normal", 4, 32), ("gumbel", 4, 32), ("beta25", 8, 64)])
def test_black_box_svr_matches_the_linear_identity(law, m, n, estimator):
    xi = -0.2  # fixed, so the identity is exact; the registered function is still a black box here
    r = measure(LAWS[law], m, n, estimator, groups=GROUPS, batches=40, seed=5, tea_keys={"shape": xi})
    exact = implied_svr(law, weights_for(estimator, m, n, xi), n)
    assert r["svr_se"] < 0.05
    assert abs(r["svr"] - exact) <= 4 * r["svr_se"], (r, exact)


@pytest.mark.parametrize("estimator", ["tea_gev", "prefix_tea_gev"])
@pytest.mark.parametrize("m,n", BUDGETS)
@pytest.mark.parametrize("law", sorted(LAWS))
def test_svr_in_target_band_on_every_batch(law, m, n, estimator):
    rng = np.random.default_rng(2024)
    group_ids = torch.arange(GROUPS).repeat_interleave(m)
    svrs, shapes = [], []
    for _ in range(5):
        x = torch.from_numpy(LAWS[law].sample(rng, GROUPS * m))
        _, info = E.best_of_n_credit(x, group_ids, estimator, TeaConfig(N=n))  # fits xi on this batch
        shapes.append(info.xi)
        svrs.append(implied_svr(law, weights_for(estimator, m, n, info.xi), n))
    assert all(0.85 <= s <= 1.2 for s in svrs), f"{law} m={m} N={n} {estimator}: SVR {svrs} at xi {shapes}"


def test_bon_at_n_equals_m_undervalues_spread():
    # the gap the tail estimators close: optimising best-of-m values spread at 0.4-0.64
    for law in LAWS:
        for m, n in BUDGETS:
            w = torch.zeros(m, dtype=torch.float64)
            w[-1] = 1.0
            assert 0.35 <= implied_svr(law, w, n) <= 0.7


@pytest.mark.parametrize("law", sorted(LAWS))
def test_grpo_does_not_value_spread(law):
    r = measure(LAWS[law], 8, 64, "grpo", groups=GROUPS, batches=8, seed=3, credit=registered_credit)
    assert abs(r["svr"]) <= 3 * r["svr_se"] + 0.02


@pytest.mark.parametrize("estimator", ["tea_gev", "prefix_tea_gev"])
@pytest.mark.parametrize("m,n", [(4, 32), (8, 64)])
def test_default_normalisation_keeps_spread_valuation(estimator, m, n):
    # The training default divides by the batch mean of the group stds, a constant per batch, so
    # the normalised advantages keep the raw credit's SVR (docs/estimators.md, section 7, has the
    # per-group comparison).
    r = measure(LAWS["normal"], m, n, estimator, groups=GROUPS, batches=60, seed=13, norm="batch")
    assert r["svr_se"] <= 0.03
    assert 0.85 - 3 * r["svr_se"] <= r["svr"] <= 1.2 + 3 * r["svr_se"], r


@pytest.mark.parametrize("xi", [0.0, -0.2])
def test_spread_valuation_needs_credit_that_falls_somewhere(xi):
    # docs/estimators.md section 10: at m = 8, N = 64 no m-sample credit that never decreases with
    # the reward reaches the SVR band, so tea and prefix_tea (both in the band) must each have a
    # negative credit slope P(u) = sum_k k w_k u^(k-1) somewhere. The linear program is checked on
    # a feasible point it must dominate: bon with N = m (P = m u^(m-1) >= 0, SVR phi(m)/phi(N)).
    from benchmarks.design import monotone_svr_ceiling, phi_gev

    m, n = 8, 64
    ceiling = monotone_svr_ceiling(m, n, xi)
    bon = float(phi_gev(xi, [m])[0] / phi_gev(xi, [n])[0])
    assert bon - 1e-9 <= ceiling < 0.85
    u = torch.linspace(0.0, 1.0, 2001, dtype=torch.float64)[:, None]
    k = torch.arange(1, m + 1, dtype=torch.float64)
    for w in (E.tea_weights(m, n, xi), E.prefix_tea_weights(m, n, xi)):
        assert 0.85 <= float((w * phi_gev(xi, k.numpy())).sum() / phi_gev(xi, [n])[0]) <= 1.2
        assert float((k * w * u ** (k - 1)).sum(1).min()) < 0


@pytest.mark.parametrize("xi", [0.5, 0.0, -0.4])
def test_monotone_reach_is_the_ceiling_read_as_a_budget(xi):
    # docs/estimators.md section 10: the largest N that credit which never decreases with the
    # reward can extrapolate to. It is the SVR ceiling's program solved for N, so phi(reach) must
    # equal the ceiling at any N times phi(N); bon at N = m is such credit, so reach >= m; more
    # samples reach further; and at m = 8 it falls short of the LM's N = 64.
    from benchmarks.design import monotone_reach, monotone_svr_ceiling, phi_gev

    reach = {m: monotone_reach(m, xi) for m in (4, 8, 16)}
    for m, n in ((8, 64), (16, 256)):
        assert float(phi_gev(xi, [reach[m]])[0]) == pytest.approx(monotone_svr_ceiling(m, n, xi) * float(phi_gev(xi, [n])[0]), rel=1e-6)
    assert 4 <= reach[4] < reach[8] < reach[16]
    assert 8 < reach[8] < 64


def _rank_weights_case(scores, m, groups):
    """The two design-benchmark repair tests' set-up: ``groups`` groups of ``m`` consecutive
    scores, padded, with ``tea_weights(m, 64, -0.3)`` as rank weights and ``bon`` at N = m (already
    monotone credit), each expanded to every group."""
    ids = torch.arange(groups).repeat_interleave(m)
    layout = E.group_layout(ids)

    def expand(weights):
        omega, gamma = weights
        return omega.expand(groups, -1).contiguous(), torch.full((groups,), gamma, dtype=torch.float64)

    tea = expand(E.prefix_to_rank_weights(E.tea_weights(m, 64, -0.3)))
    return layout, layout.pad(scores), tea, expand(E.bon_weights(m, m))


def test_isotonic_projection_of_the_design_benchmark():
    # benchmarks/design.py, section isotonic (docs/estimators.md section 10): each group's credit is
    # projected onto the credits that never fall as the reward rises. The projection must keep each
    # group's credit sum, give equal rewards equal credit, never let a lower reward get more credit,
    # and leave credit that is already monotone (bon with N = m) as it was.
    from benchmarks.design import isotonic_rank_credit

    gen = torch.Generator().manual_seed(7)
    m, groups = 8, 64
    scores = torch.randn(groups * m, generator=gen, dtype=torch.float64)
    scores[::m] = scores[1::m]  # a tie in every group
    scores[2::m] = -10.0  # a catastrophic answer in every group
    layout, padded, (omega, gamma), (om, ga) = _rank_weights_case(scores, m, groups)
    raw = E.rank_credit(padded, layout, omega, gamma)
    fit = isotonic_rank_credit(padded, layout, omega, gamma)
    assert torch.allclose(fit.sum(1), raw.sum(1), atol=1e-9)
    order = torch.argsort(padded, dim=1, stable=True)
    assert bool((torch.diff(torch.gather(fit, 1, order), dim=1) >= -1e-9).all())
    assert torch.allclose(fit[:, 0], fit[:, 1], atol=1e-9)
    # the raw credit is not monotone there: in every group the catastrophic answer gets more than
    # some better answer; projected, it gets the group's least credit
    others = torch.cat([raw[:, :2], raw[:, 3:]], 1)
    assert bool((raw[:, 2] > others.min(1).values).all())
    assert bool((fit[:, 2] <= fit.min(1).values + 1e-9).all())
    assert torch.allclose(isotonic_rank_credit(padded, layout, om, ga), E.rank_credit(padded, layout, om, ga), atol=1e-12)


def test_bottom_least_credit_of_the_design_benchmark():
    # benchmarks/design.py, section isotonic, third variant: only each group's lowest reward (every
    # sample tied at it) is lowered to the least credit of the group's other samples where it had
    # more; every other credit stays as it was, and a group whose bottom already had the least is
    # untouched.
    from benchmarks.design import bottom_least_rank_credit

    gen = torch.Generator().manual_seed(11)
    m, groups = 8, 64
    scores = torch.randn(groups * m, generator=gen, dtype=torch.float64)
    scores[2::m] = -10.0  # a catastrophic answer in every group
    scores[5 * m + 6] = -10.0  # and a second one, tied with it, in group 5
    scores[9 * m : 10 * m] = 0.5  # a constant group
    layout, padded, (omega, gamma), (om, ga) = _rank_weights_case(scores, m, groups)
    raw = E.rank_credit(padded, layout, omega, gamma)
    out = bottom_least_rank_credit(padded, layout, omega, gamma)
    bottom = padded == padded.amin(1, keepdim=True)
    assert torch.equal(out[~bottom], raw[~bottom])
    varied = torch.ones(groups, dtype=torch.bool)
    varied[9] = False
    least_other = torch.where(bottom, torch.full_like(raw, float("inf")), raw).amin(1)
    assert bool((out[varied][bottom[varied]].view(-1) <= least_other[varied].repeat_interleave(bottom[varied].sum(1)) + 1e-12).all())
    # the shipped credit gives a lone catastrophic answer more than some better answer in every
    # group, so the repair moved each of those, to exactly the least of the others
    lone = varied.clone()
    lone[5] = False
    assert bool((raw[lone, 2] > least_other[lone]).all())
    assert torch.equal(out[lone, 2], least_other[lone])
    assert torch.allclose(out[5, 2], out[5, 6], atol=1e-12)  # two tied at the bottom are treated alike
    assert torch.equal(out[9], raw[9])
    # bon's bottom already gets the group's least (0): nothing moves
    assert torch.allclose(bottom_least_rank_credit(padded, layout, om, ga), E.rank_credit(padded, layout, om, ga), atol=1e-12)
