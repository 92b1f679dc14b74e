"""The demo (verl's compute_advantage on DataProto, table, PNG) and tea-verl diagnose."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
import verl  # noqa: F401 - the plugin registers the estimators

from benchmarks.common import LAWS
from tea_verl.estimators import fit_tail_shape
from tea_verl.integrations.verl.advantage import registered_credit as call_registered
from tea_verl.metrics.diagnose import DiagnoseError, diagnose, format_diagnosis, rule_of_thumb
from tea_verl.metrics.quality import measure
from tea_verl.metrics.samples import Samples


# ------------------------------------------------------------------------------------------------
# demo
# ------------------------------------------------------------------------------------------------
def test_demo_advantages_go_through_verls_compute_advantage():
    from omegaconf import OmegaConf

    from tea_verl.experiments.bandit import advantages_via_verl

    rng = np.random.default_rng(0)
    rewards = torch.from_numpy(rng.normal(size=64))
    uids = np.array([f"p{i // 8}" for i in range(64)], dtype=object)
    algo = OmegaConf.create({"adv_estimator": "tea", "norm_adv_by_std_in_grpo": True, "tea": {"N": 64}})
    via_dataproto = advantages_via_verl(rewards, uids, "tea", algo)
    direct = call_registered("tea", rewards, uids, 64, True)
    assert torch.allclose(via_dataproto, direct.double(), atol=1e-12)
    # verl's own GRPO branch of compute_advantage
    grpo = advantages_via_verl(rewards, uids, "grpo", algo)
    assert torch.allclose(grpo, call_registered("grpo", rewards, uids, 64, True).double(), atol=1e-6)


@pytest.mark.slow  # a subprocess or Ray
def test_demo_quick_prints_the_table_and_writes_a_plot_that_reads_back(tmp_path):
    import matplotlib.image as mpimg

    out = subprocess.run(
        [sys.executable, "-m", "tea_verl.cli", "demo", "--quick", "--estimators", "grpo,tea,oracle", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "fraction A->B" in out.stdout and "TEA" in out.stdout
    assert "%" in out.stderr  # the progress bar
    summary = json.load(open(tmp_path / "demo.json"))
    res = summary["results"]
    assert set(res) == {"grpo", "tea", "oracle"}
    assert len(res["tea"]["fraction"]) == len(summary["checkpoints"])
    assert res["oracle"]["fraction"][-1] > res["grpo"]["fraction"][-1] + 0.3
    img = mpimg.imread(tmp_path / "demo.png")[..., :3]
    assert img.shape[:2] == (500, 800)
    colored = (img.max(-1) - img.min(-1)) > 0.2
    assert colored.mean() > 0.005  # the curves are drawn


@pytest.mark.slow  # a subprocess or Ray
def test_demo_rejects_bad_options():
    for args in (["--estimators", "ppo"], ["--m", "1"], ["--steps", "0"]):
        out = subprocess.run([sys.executable, "-m", "tea_verl.cli", "demo", *args], capture_output=True, text=True, timeout=120)
        assert out.returncode == 2 and "error" in out.stderr


# ------------------------------------------------------------------------------------------------
# diagnose
# ------------------------------------------------------------------------------------------------
def _samples(values: np.ndarray, origin="test") -> Samples:
    P, n = values.shape
    return Samples(["d"] * (P * n), [f"p{i // n}" for i in range(P * n)], values.reshape(-1).astype(float), [None] * (P * n), origin=origin)


def _effective_shape(law, kmax=64) -> float:
    """The shape the estimators' fit targets: their GEV-basis fit to the law's exact J_k, k <= kmax."""
    J = np.array([law.best_of(k) for k in range(1, kmax + 1)])
    return fit_tail_shape(torch.from_numpy(J - J[0]), (-1.0, 0.5), kmin=2)[0]


def _sign(xi, zero_band=0.05):
    return "zero" if abs(xi) < zero_band else ("negative" if xi < 0 else "positive")


@pytest.mark.parametrize("name", ["normal", "beta25", "gumbel"])
def test_diagnose_recovers_the_shape_sign_and_recommends_settings_in_the_svr_range(name):
    law = LAWS[name]
    rng = np.random.default_rng(11)
    P, n = 200, 64
    # every prompt its own location and scale: the tails share a shape only
    x = law.sample(rng, (P, n)) * np.exp(rng.normal(0, 0.3, (P, 1))) + rng.normal(0, 1, (P, 1))
    d = diagnose(_samples(x, name), m=8, N=64, seed=0)
    xi_eff = _effective_shape(law)
    # normal: domain shape 0, but at k <= 64 its best-of-k curve bends like a bounded law (-0.185);
    # beta(2,5): bounded (-0.215); gumbel: exactly 0
    assert d.shape_sign == _sign(xi_eff), (d.xi, d.xi_ci, xi_eff)
    lo, hi = d.xi_ci
    assert lo - 0.01 <= xi_eff <= hi + 0.01
    rec = d.recommendation
    assert rec.estimator in ("tea", "prefix_tea", "tea_gev", "prefix_tea_gev") and rec.eligible
    # the recommended settings, measured on the TRUE law (not the samples): SVR within [0.85, 1.2]
    r = measure(law, 8, 64, rec.estimator, groups=256, batches=80, seed=5, tea_keys=rec.keys)
    assert 0.85 <= r["svr"] <= 1.2, (rec.label, r)
    assert "recommendation: algorithm.adv_estimator=" in format_diagnosis(d)
    assert "rule of thumb from the reference-law benchmarks" in format_diagnosis(d)


def test_diagnose_needs_enough_samples_per_prompt_and_says_the_minimum():
    x = np.random.default_rng(0).normal(size=(50, 4))
    with pytest.raises(DiagnoseError, match=r"at least 2 prompts with >= 8 samples each.*val_kwargs.n >= 8"):
        diagnose(_samples(x), m=8, N=64)


def test_diagnose_leaves_out_short_and_constant_prompts_and_counts_them():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(30, 16))
    x[0] = 1.0  # a constant prompt
    s = _samples(x)
    short = Samples(["d"] * 3, ["short"] * 3, np.array([0.0, 1.0, 2.0]), [None] * 3)
    merged = Samples(s.data_source + short.data_source, s.uid + short.uid, np.concatenate([s.selection, short.selection]), s.gold + short.gold)
    d = diagnose(merged, m=4, N=32, draws=20_000)
    assert (d.prompts, d.left_out_constant, d.left_out_short) == (29, 1, 1)
    assert "left out: 1 prompts with < 8 samples, 1 constant prompts" in format_diagnosis(d)


def test_discrete_rewards_get_bon_at_m():
    x = np.random.default_rng(2).integers(0, 3, size=(40, 16)).astype(float)
    d = diagnose(_samples(x), m=8, N=64, batch_prompts=16)
    assert d.top_tie_rate > 0.1 and d.group_tie_rate > 0.5 and d.discrete_batch_rate > 0.9
    assert d.recommendation.overrides == ["algorithm.adv_estimator=bon", "algorithm.tea.N=8"]
    assert not d.candidates  # nothing is measured under a tail law that does not apply


def test_lexicon_like_rewards_report_ties_at_the_group_size_and_keep_the_tail_estimators():
    from benchmarks.common import LexiconLike

    x = LexiconLike().sample(np.random.default_rng(4), (200, 64))
    d = diagnose(_samples(x), m=8, N=64, batch_prompts=16, draws=20_000)
    # about 1 % of groups of 8 tie at the top: a per-group fallback, never a discrete batch
    assert 0.002 < d.group_tie_rate < 0.05
    assert 0 < d.fallback_groups_per_batch < 1 and d.discrete_batch_rate < 0.01
    assert d.recommendation.estimator in ("tea", "prefix_tea", "tea_gev", "prefix_tea_gev")
    text = format_diagnosis(d)
    assert "at the training group size m = 8: top two tie in" in text and "tea/fallback_groups" in text


def test_a_shape_estimate_at_its_bound_is_flagged():
    u = np.random.default_rng(6).random((100, 64))
    d = diagnose(_samples(1.0 - (1.0 - u) ** 2), m=8, N=64, draws=20_000)  # xi = -2, below the range
    assert d.shape_at_bound == "lower" and d.xi == pytest.approx(-1.0)
    assert "AT THE LOWER BOUND" in format_diagnosis(d)


def test_n_at_most_m_needs_no_tail():
    x = np.random.default_rng(3).normal(size=(40, 16))
    d = diagnose(_samples(x), m=8, N=8)
    assert d.recommendation.overrides == ["algorithm.adv_estimator=bon", "algorithm.tea.N=8"]


@pytest.mark.slow  # a subprocess or Ray
def test_cli_diagnose_writes_json(tmp_path):
    rng = np.random.default_rng(4)
    with open(tmp_path / "s.jsonl", "w") as f:
        for p in range(60):
            for v in rng.gumbel(size=16):
                f.write(json.dumps({"uid": f"p{p}", "score": float(v)}) + "\n")
    out = subprocess.run(
        [sys.executable, "-m", "tea_verl.cli", "diagnose", str(tmp_path / "s.jsonl"), "--m", "4", "--N", "32",
         "--draws", "20000", "--json", str(tmp_path / "d.json")],
        capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    js = json.load(open(tmp_path / "d.json"))
    assert js["recommendation"]["overrides"][0].startswith("algorithm.adv_estimator=")
    assert js["shape_sign"] in ("negative", "zero", "positive")
    bad = subprocess.run([sys.executable, "-m", "tea_verl.cli", "diagnose", str(tmp_path / "s.jsonl"), "--m", "4"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "--N" in bad.stderr


def test_rule_of_thumb_follows_the_tail_size():
    assert "cannot run" in rule_of_thumb(4)  # ceil(0.25 * 4) = 1
    assert "exactly best-of-m" in rule_of_thumb(8)  # a 2-reward tail
    assert "3-reward tail" in rule_of_thumb(12)
    assert "prefix_tea (the paper's" in rule_of_thumb(16) and "prefix_tea_gev on skewed" in rule_of_thumb(16)
