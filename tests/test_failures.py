"""Never reward failure: answers in a failure atom far below the rest, through verl's compute_advantage.

The laws here are not the benchmark's (benchmarks/failures.py): a lognormal valid law with a second,
wider mode, failure probabilities 0.1 and 0.4, penalties -5 and -50.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from tea_verl.config import ConfigError, TeaConfig
from tea_verl.estimators import best_of_n_credit
from tea_verl.estimators.failures import ATOM_MIN_COUNT, bottom_atom
from tea_verl.estimators.table import TAIL


def _valid(rng, size):
    narrow = rng.lognormal(0.0, 0.25, size)
    wide = 0.5 + rng.lognormal(-0.5, 0.8, size)
    return np.where(rng.random(size) < 0.6, narrow, wide)


def _batch(seed, groups, m, p, penalty):
    rng = np.random.default_rng(seed)
    valid = _valid(rng, groups * m)
    fail = rng.random(groups * m) < p
    return np.where(fail, penalty, valid), fail


def _advantages(scores, m, estimator, n, **tea):
    from tea_verl.experiments.bandit import advantages_via_verl

    uids = np.repeat([f"prompt-{g}" for g in range(scores.size // m)], m).astype(object)
    algo = OmegaConf.create({"adv_estimator": estimator, "norm_adv_by_std_in_grpo": True, "tea": {"N": n, **tea}})
    return advantages_via_verl(torch.from_numpy(scores), uids, estimator, algo).numpy()


@pytest.mark.parametrize("estimator", TAIL)
@pytest.mark.parametrize("m,n", [(8, 64), (16, 128)])
@pytest.mark.parametrize("p", [0.1, 0.4])
def test_a_failure_never_gets_more_than_a_valid_answer_that_is_not_best(estimator, m, n, p):
    """Per group: every failure's credit is at most the mean credit of the group's valid answers
    that are not best (at most the least valid credit where there is no other); over the batch, the
    failures' mean is at most the valid non-best mean + 0.02 credit sd."""
    scores, fail = _batch(1, 64, m, p, -5.0)
    c = _advantages(scores, m, estimator, n).reshape(-1, m)
    x, f = scores.reshape(-1, m), fail.reshape(-1, m)
    vmax = np.where(f, -np.inf, x).max(1, keepdims=True)
    nonbest = ~f & (x < vmax)
    for g in range(x.shape[0]):
        if f[g].any() and (~f[g]).any():
            limit = c[g][nonbest[g]].mean() if nonbest[g].any() else c[g][~f[g]].min()
            assert c[g][f[g]].max() <= limit + 1e-12, (g, x[g], c[g])
    assert c[f].mean() <= c[nonbest].mean() + 0.02 * c.std()


@pytest.mark.parametrize("estimator", TAIL)
def test_no_credit_depends_on_how_low_the_penalty_is(estimator):
    """The same valid draws with penalties -5 and -50: every credit is the same, failures' included,
    detected or named by failure_reward."""
    low, fail = _batch(2, 64, 16, 0.25, -50.0)
    high = np.where(fail, -5.0, low)
    assert np.allclose(_advantages(low, 16, estimator, 128), _advantages(high, 16, estimator, 128), rtol=0, atol=1e-10)
    named = _advantages(np.where(fail, -7.0 - np.arange(low.size) % 3, low), 16, estimator, 128, failure_reward=-6.0)
    assert np.allclose(named, _advantages(high, 16, estimator, 128), rtol=0, atol=1e-10)


@pytest.mark.parametrize("estimator", TAIL)
def test_without_a_failure_atom_nothing_moves(estimator):
    """Continuous batches, float64 and rounded to bfloat16: the credit is bit for bit the one with
    failure handling off (failure_reward=-inf)."""
    rng = np.random.default_rng(3)
    for dtype in (torch.float64, torch.bfloat16):
        x = torch.from_numpy(_valid(rng, 64 * 16)).to(dtype).double().numpy()
        assert np.array_equal(_advantages(x, 16, estimator, 128), _advantages(x, 16, estimator, 128, failure_reward=float("-inf")))


def test_failure_share_is_logged_and_discrete_batches_are_left_to_exact_bon():
    from tea_verl.integrations.verl.advantage import step_metrics

    scores, fail = _batch(4, 64, 16, 0.2, -3.0)
    _advantages(scores, 16, "tea_gev", 128)
    assert step_metrics("tea_gev")["tea/failure_share"] == pytest.approx(fail.mean())
    passfail = (np.random.default_rng(5).random(64 * 16) < 0.3).astype(float)  # zeros: an atom, but discrete
    got = _advantages(passfail, 16, "tea_gev", 128)
    assert step_metrics("tea_gev")["tea/fallback_batch"] == 1.0 and step_metrics("tea_gev")["tea/failure_share"] == 0.0
    assert np.allclose(got, _advantages(passfail, 16, "bon", 16))


def test_the_atom_test():
    x = torch.tensor([-2.0] * ATOM_MIN_COUNT + [0.1 * i for i in range(100)], dtype=torch.float64)
    assert bottom_atom(x) == -2.0
    assert bottom_atom(x[1:]) is None  # two at the bottom: a tie, not an atom
    assert bottom_atom(torch.full((50,), -2.0, dtype=torch.float64)) is None  # constant: nothing valid
    big = torch.cat([torch.full((ATOM_MIN_COUNT,), -2.0), torch.randn(10_000).double()])
    assert bottom_atom(big) is None  # 3 of 10,003 is under 1 % of the batch
    # valid rewards below the penalty (a spread mode's low draws) do not hide it, up to 15 % of the batch
    gen = torch.Generator().manual_seed(0)
    spread = torch.cat([torch.full((300,), -2.0), torch.randn(1000, generator=gen).double() * 0.5 - 1.0])
    assert 0 < float((spread < -2.0).double().mean()) <= 0.15 and bottom_atom(spread) == -2.0
    assert bottom_atom(torch.cat([spread, torch.full((400,), -3.0)])) == -3.0  # the lowest atom
    mid = torch.cat([torch.full((300,), 0.0), torch.randn(1000, generator=gen).double()])  # an atom in the middle
    assert bottom_atom(mid) is None
    narrow = (torch.randn(4096, generator=gen) * 0.1 + 3.0).to(torch.bfloat16).double()  # neighbours hold alike
    assert bottom_atom(narrow) is None


def test_a_group_of_one_valid_answer_still_ranks_it_above_its_failures():
    x = torch.tensor([1.0] + [-9.0] * 7 + [0.3, 0.5, 0.9, 1.4, 0.2, 0.7, 1.1, -9.0], dtype=torch.float64)
    g = torch.arange(2).repeat_interleave(8)
    for est in TAIL:
        if est in ("tea", "prefix_tea"):
            continue  # a tail of ceil(0.25 * 8) = 2 at m = 8: bon at N = m
        # named: a batch of 16 is too small for the atom test (under 29 samples even none below is not significant)
        assert bottom_atom(x) is None
        c, info = best_of_n_credit(x, g, est, TeaConfig(N=64, failure_reward=-9.0))
        assert info.failure_share == pytest.approx(8 / 16)
        assert c[0] > c[1:8].max() and torch.allclose(c[1:8], c[1:8].min().expand(7))
        assert c[15] <= c[8:15][x[8:15] < x[8:15].max()].mean() + 1e-12


@pytest.mark.parametrize("estimator", TAIL)
@pytest.mark.parametrize("push", [0.5, 1.0, 3.0])
def test_the_failure_push_moves_failures_below_the_valid_answers_and_nothing_else(estimator, push):
    """Through verl's compute_advantage (std scaling off, so the credit is in reward units): with the
    push, every failure's credit falls, relative to its group's valid answers, by exactly push times
    the valid rewards' scale (the mean over groups of their valid std); each group's mean credit and
    the gaps between its valid answers are those without the push; groups without failures and batches
    without an atom are untouched."""
    from tea_verl.experiments.bandit import advantages_via_verl

    scores, fail = _batch(6, 64, 16, 0.2, -5.0)
    fail[: 8 * 16] = False  # eight groups without failures
    scores[: 8 * 16] = _valid(np.random.default_rng(8), 8 * 16)
    uids = np.repeat([f"prompt-{g}" for g in range(64)], 16).astype(object)

    def credit(x, **tea):
        algo = OmegaConf.create({"adv_estimator": estimator, "norm_adv_by_std_in_grpo": False, "tea": {"N": 128, **tea}})
        return advantages_via_verl(torch.from_numpy(x), uids, estimator, algo).numpy().reshape(-1, 16)

    off, on = credit(scores, failure_push=0.0), credit(scores, failure_push=push)
    x, f = scores.reshape(-1, 16), fail.reshape(-1, 16)
    several = (~f).sum(1) >= 2
    scale = np.mean([x[g][~f[g]].std(ddof=1) for g in range(64) if several[g]])
    assert np.allclose(on.mean(1), off.mean(1), rtol=0, atol=1e-12)
    mixed = f.any(1) & (~f).any(1)
    assert mixed.sum() > 40 and (~f.any(1)).sum() > 0
    for g in range(64):
        d = on[g] - off[g]
        if not mixed[g]:
            assert np.allclose(d, 0.0, atol=1e-12)
            continue
        assert np.allclose(d[~f[g]], d[~f[g]][0], atol=1e-12)  # valid answers: one shift, their order kept
        assert np.allclose(d[f[g]], d[~f[g]][0] - push * scale, atol=1e-9)
    # no failure atom: the default (push 1) gives the same credit as push 0, bit for bit
    rng = np.random.default_rng(7)
    clean = _valid(rng, 64 * 16)
    assert np.array_equal(credit(clean), credit(clean, failure_push=0.0))


@pytest.mark.parametrize("value", [-0.1, float("nan"), float("inf"), "strong", True])
def test_failure_push_setting(value):
    with pytest.raises(ConfigError, match="algorithm.tea.failure_push must be a finite number >= 0"):
        TeaConfig(N=64, failure_push=value)
    assert TeaConfig(N=64).failure_push == 4.0 and TeaConfig(N=64, failure_push=0).failure_push == 0.0


@pytest.mark.parametrize("value,ok", [(None, True), (-1.5, True), ("-2", True), (float("-inf"), True),
                                      (float("inf"), False), (float("nan"), False), ("low", False), (True, False)])
def test_failure_reward_setting(value, ok):
    if ok:
        TeaConfig(N=64, failure_reward=value)
    else:
        with pytest.raises(ConfigError, match="algorithm.tea.failure_reward must be null"):
            TeaConfig(N=64, failure_reward=value)


def test_diagnose_reports_the_failure_atom_and_names_the_key():
    import verl  # noqa: F401  (the plugin registers the estimators diagnose measures)

    from tea_verl.metrics.diagnose import diagnose, format_diagnosis
    from tea_verl.metrics.samples import Samples

    rng = np.random.default_rng(6)
    uid, sel = [], []
    for p in range(30):
        for s in _valid(rng, 32):
            uid.append(f"p{p}")
            sel.append(-4.0 if rng.random() < 0.2 else float(s))
    d = diagnose(Samples(["ds"] * len(uid), uid, np.array(sel), [None] * len(uid)), 8, 64, draws=4000, n_boot=20)
    assert d.failure_value == -4.0 and d.failure_share == pytest.approx(np.mean(np.array(sel) == -4.0))
    assert d.failure_below_share == pytest.approx(np.mean(np.array(sel) <= -4.0))
    text = format_diagnosis(d)
    assert "algorithm.tea.failure_reward=-4" in text and d.as_dict()["failure_value"] == -4.0
    assert f"{d.failure_share:.1%} of the samples score exactly -4, {d.failure_below_share:.1%} at or below it" in text
    assert "SVR off" in text and all(c.svr_off == c.svr_off and c.rho_off == c.rho_off for c in d.candidates)
    redrawn = np.where(np.array(sel) == -4.0, _valid(rng, len(sel)), sel)  # the failures' answers valid instead
    clean = diagnose(Samples(["ds"] * len(uid), uid, redrawn, [None] * len(uid)), 8, 64, draws=4000, n_boot=20)
    assert clean.failure_value is None and "failure atom" not in format_diagnosis(clean)


def test_diagnose_names_a_penalty_too_rare_for_the_atom_test():
    """A fixed penalty on 0.4 % of the samples: too few for the atom test (1 % of the pooled samples),
    so a training batch of 128 prompts x 8 would hold about 4 of them; diagnose names the value and the key. The same
    scores without the penalty, or with the lowest value held once, give no such line."""
    import verl  # noqa: F401

    from tea_verl.metrics.diagnose import diagnose, format_diagnosis, rare_penalty
    from tea_verl.metrics.samples import Samples

    rng = np.random.default_rng(8)
    uid = [f"p{p}" for p in range(40) for _ in range(32)]
    sel = _valid(rng, len(uid))
    sel[rng.choice(len(sel), size=5, replace=False)] = -4.0
    d = diagnose(Samples(["ds"] * len(uid), uid, sel, [None] * len(uid)), 8, 64, draws=4000, n_boot=20)
    assert d.failure_value is None and d.rare_penalty == -4.0
    text = format_diagnosis(d)
    assert "too rare to be detected" in text and "algorithm.tea.failure_reward=-4" in text and "holds about 4.0 of them, under the 11" in text, text
    assert rare_penalty(_valid(rng, 1000)) is None
    once = _valid(rng, 1000)
    once[0] = -4.0
    assert rare_penalty(once) is None  # one sample at the bottom is not a penalty value
    near = _valid(rng, 1000)
    near[:3] = np.sort(near)[0]  # the lowest value repeated, but not far below the rest
    assert rare_penalty(np.round(near, 1)) is None


def _lexicon_like(rng, n):
    """A lexicon scorer's law, built here (not the benchmark's): 16 % exact zeros and a few dozen
    word compounds repeating at both signs, a fifth of the law below zero, the rest continuous."""
    words = np.round(np.linspace(-0.8, 0.9, 60), 4)
    weights = np.exp(-0.5 * ((words - 0.3) / 0.45) ** 2)
    kind = rng.random(n)
    return np.where(kind < 0.16, 0.0, np.where(kind < 0.75, rng.choice(words, n, p=weights / weights.sum()),
                                               np.round(rng.uniform(-0.95, 0.95, n), 4)))


def test_a_scorers_repeated_values_are_not_failures_and_a_penalty_apart_is():
    """Repeated values inside a real scorer's law (a lexicon's words, a judge's heavy bottom step,
    rule-based partial credit) are not a failure atom at any batch size; a penalty below the valid
    bulk, on 4 % of the batch, is found in batches of 512 and more."""
    rng = np.random.default_rng(11)
    judge = lambda n: rng.choice(np.arange(1, 8), n, p=[0.2, 0.05, 0.05, 0.1, 0.2, 0.25, 0.15]).astype(float)  # noqa: E731
    partial = lambda n: rng.choice([0.0, 0.25, 0.5, 0.75, 1.0], n, p=[0.45, 0.1, 0.1, 0.15, 0.2])  # noqa: E731
    laws = {"lexicon": lambda n: _lexicon_like(rng, n), "judge": judge, "partial": partial}
    penalties = {"lexicon": -1.5, "judge": -3.0, "partial": -1.0}
    for name, draw in laws.items():
        fired = sum(bottom_atom(torch.from_numpy(draw(b))) is not None for b in (64, 256, 1024, 4096) for _ in range(50))
        assert fired <= 2, (name, fired)  # at most 1 % of 200 batches
        found = 0
        for _ in range(50):
            x = draw(1024)
            x[rng.random(x.size) < 0.04] = penalties[name]
            found += bottom_atom(torch.from_numpy(x)) == penalties[name]
        assert found >= 48, (name, found)


def test_the_below_test_is_a_binomial_test_at_one_percent():
    from scipy import stats

    from tea_verl.estimators.failures import ATOM_BELOW_LEVEL, ATOM_MAX_BELOW, max_below

    for total in (29, 30, 64, 100, 512, 4096, 20_000):
        k = max_below(total)
        assert stats.binom.cdf(k, total, ATOM_MAX_BELOW) < ATOM_BELOW_LEVEL <= stats.binom.cdf(k + 1, total, ATOM_MAX_BELOW)
    assert max_below(28) == -1  # 0.85^28 > 1 %: even an atom at the very bottom is not significant


def test_the_empirical_law_makes_no_ties_and_keeps_a_failure_atom():
    from tea_verl.metrics.quality import EmpiricalLaw

    rng = np.random.default_rng(2)
    values = np.concatenate([np.zeros(300), rng.standard_normal(700), np.full(50, -0.3)])
    draws = EmpiricalLaw(values).sample(rng, 100_000)
    inner = draws[(draws > values.min()) & (draws < values.max())]  # the law keeps 1/(2M) at each end of the data
    assert inner.size > 99_000 and np.unique(inner).size == inner.size  # repeated values became ramps, not flat stretches
    assert bottom_atom(torch.from_numpy(draws[:4096])) is None
    law = EmpiricalLaw(values, atom=-5.0, atom_share=0.1)
    draws = law.sample(rng, 100_000)
    share = np.mean(draws == -5.0)
    assert abs(share - 0.1) < 4 * np.sqrt(0.1 * 0.9 / draws.size)
    inner = draws[(draws > values.min()) & (draws < values.max())]
    assert np.unique(inner).size == inner.size
    assert law.cdf(np.array([-5.0]))[0] == pytest.approx(0.1) and law.cdf(np.array([-5.1]))[0] == 0.0
    with pytest.raises(ValueError, match="below every value"):
        EmpiricalLaw(values, atom=0.0, atom_share=0.1)


def test_diagnose_on_a_lexicon_law_finds_no_atom_and_measures_what_training_would():
    """A lexicon scorer's repeated values: no failure atom, no on/off table, and every GEV setting's
    SVR is the one measured with failure handling off (its empirical law makes no ties of its own)."""
    import verl  # noqa: F401

    from tea_verl.metrics.diagnose import diagnose, format_diagnosis
    from tea_verl.metrics.quality import EmpiricalLaw, measure
    from tea_verl.metrics.samples import Samples

    rng = np.random.default_rng(12)
    uid = [f"p{p}" for p in range(24) for _ in range(64)]
    sel = _lexicon_like(rng, len(uid))
    d = diagnose(Samples(["ds"] * len(uid), uid, sel, [None] * len(uid)), 8, 64, draws=4000, n_boot=20)
    assert d.failure_value is None and "failure atom" not in format_diagnosis(d) and "SVR off" not in format_diagnosis(d)
    z = np.concatenate([(sel[i:i + 64] - sel[i:i + 64].mean()) / sel[i:i + 64].std() for i in range(0, len(sel), 64)])
    for c in d.candidates:
        if c.estimator.endswith("_gev"):
            off = measure(EmpiricalLaw(z), 8, 64, c.estimator, groups=256, batches=2, seed=0,
                          tea_keys={**c.keys, "failure_reward": float("-inf")})
            assert off["svr"] == pytest.approx(c.svr, abs=1e-12), c.label
