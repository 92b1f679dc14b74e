"""The tiny-LM experiment (tea_verl.experiments.lm, ``python -m benchmarks.lm``, ``tea-verl demo --lm``): the
task's reward and its exact best-of-n values, the warm start, input errors, and one short real
run of two estimators through verl's trainer on the CPU in one Ray session."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from tea_verl.experiments import lm

pytestmark = pytest.mark.slow  # starts Ray, trains or runs subprocesses: pytest -m 'not slow' leaves it out

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _answer(mode_word: str, digits) -> str:
    return " ".join([mode_word] + [lm.DIGIT_WORDS[int(d)] for d in digits])


def test_reward_reads_the_generated_words():
    """A valid answer scores its mode's law with fresh luck (not a function of the text: the same
    words score differently); anything else scores the failure value exactly."""
    a = _answer("safe", [3, 1, 4, 1, 5, 9])
    b = _answer("maybe", [3, 1, 4, 1, 5, 9])
    n = 4000
    for text, (mu, sd) in ((a, lm.MODES["A"]), (b, lm.MODES["B"]), (" " + b + " ", lm.MODES["B"])):
        x = np.array([lm.spread_reward(solution_str=text) for _ in range(n)])
        assert abs(x.mean() - mu) < 4 * sd / math.sqrt(n), (text, x.mean())
        assert abs(x.std() - sd) < 4 * sd * math.sqrt(0.5 / n), (text, x.std())
        assert len(np.unique(x)) == n  # the same words, fresh luck every time
    assert lm.mode_of(a) == "A" and lm.mode_of(b) == "B"
    for bad in ("", "safe", "safe one two", "maybe one two three four five six seven", "yes one two three four five six",
                "safe one two three four five code"):
        assert lm.spread_reward(solution_str=bad) == lm.INVALID_REWARD
        assert lm.mode_of(bad) is None


def test_luck_is_standard_normal():
    from scipy import stats

    z = np.array([lm.luck() for _ in range(20000)])
    assert abs(z.mean()) < 4 / math.sqrt(z.size)
    assert abs(z.std() - 1) < 4 * math.sqrt(0.5 / z.size)
    assert stats.kstest(z, "norm").pvalue > 1e-3


def test_pure_best_of_matches_monte_carlo_on_the_reward_itself():
    rng = np.random.default_rng(11)
    reps = 600
    for mode, word in (("A", "safe"), ("B", "maybe")):
        for n in (1, 16, 128):
            best = np.array([max(lm.spread_reward(solution_str=_answer(word, rng.integers(10, size=6))) for _ in range(n)) for _ in range(reps)])
            se = best.std(ddof=1) / math.sqrt(reps)
            assert abs(best.mean() - lm.pure_best_of(mode, n)) < 4 * se, (mode, n, best.mean(), lm.pure_best_of(mode, n), se)


def test_best_of_modes_matches_monte_carlo_on_the_reward_itself():
    """The exact best-of-n of a mode mix (invalid answers included) against the maximum of n
    rewards of answers drawn with those shares; a pure mode gives pure_best_of."""
    rng = np.random.default_rng(12)
    answers = (_answer("safe", [1] * 6), _answer("maybe", [2] * 6), "safe one")
    shares = np.array([[0.3, 0.6, 0.1], [0.0, 0.05, 0.95], [0.7, 0.0, 0.3]])
    reps = 800
    for n in (1, 16, 128):
        exact = lm.best_of_modes(shares, n)
        for p, value in zip(shares, exact):
            best = np.array([max(lm.spread_reward(solution_str=answers[k]) for k in rng.choice(3, size=n, p=p)) for _ in range(reps)])
            se = best.std(ddof=1) / math.sqrt(reps)
            assert abs(best.mean() - value) < 4 * se + 0.005, (p, n, best.mean(), value, se)
    pure = lm.best_of_modes(np.eye(3)[:2], 128)
    assert pure == pytest.approx([lm.pure_best_of("A", 128), lm.pure_best_of("B", 128)], abs=2e-3)


def test_the_trade_off_is_real():
    """At the paper's budget, the mean and best-of-m (m = 16) prefer the safe mode and best-of-128
    the spread one: only an estimator that extrapolates past m finds it."""
    a = {n: lm.pure_best_of("A", n) for n in (1, 8, 16, 64, 128)}
    b = {n: lm.pure_best_of("B", n) for n in (1, 8, 16, 64, 128)}
    assert a[1] > b[1] and a[8] > b[8] and a[16] > b[16]
    assert b[64] > a[64] and b[128] > a[128] + 0.25
    assert b[128] == pytest.approx(1.595, abs=2e-3) and a[128] == pytest.approx(1.297, abs=2e-3)


def test_warm_start_samples_both_modes_in_the_task_form(tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    info = lm.build_assets(str(tmp_path), seed=0)
    p = info["first_word_prob"]
    assert 0.3 < p["safe"] < 0.7 and 0.3 < p["maybe"] < 0.7 and p["safe"] + p["maybe"] > 0.9
    tok = AutoTokenizer.from_pretrained(tmp_path / "model")
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "model")
    ids = tok.apply_chat_template([{"role": "user", "content": lm.prompts()[1][0]}], add_generation_prompt=True, return_tensors="pt")
    ids = ids["input_ids"] if hasattr(ids, "keys") else ids
    torch.manual_seed(0)
    out = model.generate(ids.repeat(64, 1), do_sample=True, max_new_tokens=lm.FREE_LEN + 4, pad_token_id=tok.pad_token_id)
    texts = [tok.decode(r[ids.shape[1]:], skip_special_tokens=True) for r in out]
    modes = [lm.mode_of(t) for t in texts]
    assert sum(m is not None for m in modes) >= 56, texts
    assert modes.count("A") >= 10 and modes.count("B") >= 10
    assert len(set(texts)) == len(texts)  # the warm start samples varied digit strings
    assert os.path.exists(tmp_path / "train.parquet") and os.path.exists(tmp_path / "val.parquet")


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--N", "8"], "--N 8 is not above --m 16"),
        (["--estimators", "grpo,ppo"], "unknown ['ppo']"),
        (["--estimators", "grpo,grpo"], "lists one twice"),
        (["--val-n", "32"], "--val-n 32 is below --N 128"),
        (["--max-response-length", "6"], "below the answer's 7 words"),
        (["--estimators", "tea", "--m", "4", "--N", "32"], "rollout.n >= 5"),
        (["--seeds", "0"], "--seeds must be >= 1"),
        (["--reward-fn", "no_such_file.py:score"], "does not exist"),
        (["--reward-fn", "no_colon"], "path.py:function"),
        (["--override", "alpha"], "expected KEY=VALUE"),
        (["--override", "actor_rollout_ref.rollout.n=4"], "sets actor_rollout_ref.rollout.n itself"),
        (["--override", "algorithm.tea.alhpa=0.4"], "no such key"),
        (["--estimators", "grpo,prefix_tea", "--override", "algorithm.tea.alpha=0.6"], "alpha must be a number in (0, 0.5)"),
        (["--estimators", "tea", "--m", "8", "--N", "64", "--override", "algorithm.tea.alpha=0.1"], "use rollout.n >= 11, or alpha >= 0.25"),
    ],
)
def test_bad_input_is_one_clear_error_before_any_work(argv, message, tmp_path, capsys):
    assert lm.main(argv + ["--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err, err
    assert not os.path.exists(tmp_path / "o" / "assets")  # nothing built


def test_the_oracle_run_is_bon_on_n_rollouts_and_passes_preflight(tmp_path):
    """``oracle`` trains verl's ``bon`` at N = rollout.n = 64 (the exact best-of-64 gradient, 8x the
    rollouts); every other run, ``bon`` included (taken for ``bon_m``: bon at N = m), keeps m = 8
    rollouts."""
    from tea_verl.integrations.verl.preflight import check

    s = lm.settings(lm.parser("lm").parse_args(["--estimators", "grpo,bon,oracle", "--seeds", "1", "--m", "8", "--N", "64"]))
    runs = lm.compose_runs(s, str(tmp_path), ("pkg://tea_verl.experiments.lm", "spread_reward"), str(tmp_path / "ray"))
    cfg = {r["estimator"]: r["cfg"] for r in runs}
    assert s["estimators"] == ["grpo", "bon_m", "oracle"]
    oracle, bon, grpo = cfg["oracle"], cfg["bon_m"], cfg["grpo"]
    assert (oracle.algorithm.adv_estimator, oracle.algorithm.tea.N, oracle.actor_rollout_ref.rollout.n) == ("bon", 64, 64)
    assert (bon.algorithm.adv_estimator, bon.algorithm.tea.N, bon.actor_rollout_ref.rollout.n) == ("bon", 8, 8)
    assert grpo.actor_rollout_ref.rollout.n == 8
    # one micro batch per PPO mini-batch: half of the step's samples, as for the others
    assert oracle.actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu == 16 * 64 // 2
    assert oracle.data.train_batch_size == grpo.data.train_batch_size == 16
    for c in (oracle, bon, grpo):
        # the warm-start data is built only when the experiment runs; nothing else may be wrong
        assert {p.key for p in check(c)} <= {"data.train_files", "data.val_files"}


def test_overrides_reach_every_run_and_the_tail_check(tmp_path):
    """``--override`` is applied to every run after the experiment's own keys, and a tail fraction
    set there is the one the feasibility check uses (m = 4 is too small for alpha = 0.25, not 0.45)."""
    from tea_verl.integrations.verl.preflight import check

    argv = ["--estimators", "grpo,prefix_tea", "--m", "4", "--N", "32", "--seeds", "2", "--override", "algorithm.tea.alpha=0.45"]
    s = lm.settings(lm.parser("lm").parse_args(argv))
    assert s["overrides"] == ["algorithm.tea.alpha=0.45"]
    runs = lm.compose_runs(s, str(tmp_path), ("pkg://tea_verl.experiments.lm", "spread_reward"), str(tmp_path / "ray"))
    assert len(runs) == 4
    for r in runs:
        assert r["cfg"].algorithm.tea.alpha == 0.45 and r["cfg"].actor_rollout_ref.rollout.n == 4
        assert {p.key for p in check(r["cfg"])} <= {"data.train_files", "data.val_files"}
    with pytest.raises(lm.LMError, match="rollout.n >= 5"):
        lm.settings(lm.parser("lm").parse_args(argv[:-2]))


def test_demo_lm_help_lists_the_experiment_options():
    r = subprocess.run([sys.executable, "-m", "tea_verl.cli", "demo", "--lm", "--help"], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0 and "--reward-fn" in r.stdout and "tea-verl demo --lm" in r.stdout


REWARD = """
from tea_verl.experiments.lm import mode_of

def shifted(data_source=None, solution_str="", ground_truth=None, extra_info=None, **kwargs):
    return {"A": 1.0, "B": 2.0}.get(mode_of(solution_str), -1.0) + 0.01 * len(solution_str)
"""


def _shifted(text: str) -> float:
    return {"A": 1.0, "B": 2.0}.get(lm.mode_of(text), -1.0) + 0.01 * len(text)


def test_two_estimators_train_through_verls_trainer_in_one_ray_session(tmp_path, capsys):
    """grpo and tea_gev, 1 seed, 2 steps each, with a user reward function: both runs train, are
    validated before and after with the user's reward (identically before training), and are
    summarised in lm.json and lm.png."""
    fn = tmp_path / "my_reward.py"
    fn.write_text(REWARD)
    out = tmp_path / "out"
    rc = lm.main(["--estimators", "grpo,tea_gev", "--seeds", "1", "--steps", "2", "--val-every", "2", "--m", "8", "--N", "64",
                  "--reward-fn", f"{fn}:shifted", "--out", str(out)])
    text = capsys.readouterr().out
    assert rc == 0, open(out / "lm.log").read()[-3000:]
    res = json.load(open(out / "lm.json"))
    assert set(res["runs"]) == {"grpo_s0", "tea_gev_s0"}
    assert res["pure_modes"] is None  # a user reward: the shipped task's exact values do not apply
    log = open(out / "lm.log").read()
    assert log.count("[lm] run 1/2 grpo_s0: done") == 1 and log.count("[lm] run 2/2 tea_gev_s0: done") == 1
    for name, run in res["runs"].items():
        assert sorted(run["val"], key=int) == ["0", "2"]
        for v in run["val"].values():
            assert v["p_A"] + v["p_B"] + v["p_other"] == pytest.approx(1.0)
            assert len(v["best"]) == 64 and np.all(np.diff(v["best"]) >= -1e-9)
            assert 0 < v["distinct"] <= 1
        assert [t["step"] for t in run["train"] if "critic/advantages/max" in t] == [1, 2]
        assert all(t["critic/advantages/max"] > 0 for t in run["train"] if "critic/advantages/max" in t)
        # the validation scores are the user's function of the generated words
        rows = [json.loads(x) for x in open(out / "val" / name / "2.jsonl")]
        for row in rows[:50]:
            assert row["score"] == pytest.approx(_shifted(row["output"]), abs=1e-5)
    # one seed, one warm start: the two runs sample the same answers before training (the hf_cpu
    # rollout's per-request streams), so their step-0 validations agree exactly
    step0 = [sorted((r["input"], r["output"]) for r in map(json.loads, open(out / "val" / name / "0.jsonl")))
             for name in ("grpo_s0", "tea_gev_s0")]
    assert step0[0] == step0[1]
    # (the rows come in another order, so the sums may differ in the last bit)
    assert res["runs"]["grpo_s0"]["val"]["0"]["best"] == pytest.approx(res["runs"]["tea_gev_s0"]["val"]["0"]["best"], abs=1e-12)
    assert os.path.getsize(out / "lm.png") > 10_000
    assert "TEA-GEV" in text and "GRPO (mean reward)" in text and "tea_gev - grpo, paired over 1 seed(s): best-of-64" in text
    # the probe: one row per weight sync per run, the training steps in order, probabilities in [0, 1]
    for name, run in res["runs"].items():
        steps = [row["step"] for row in run["probe"]]
        assert steps[-2:] == [1, 2] and steps == sorted(steps), steps
        for row in run["probe"]:
            assert 0 <= row["end_after6"] <= 1 and 0 <= row["end_after7"] <= 1 and 0 < row["start_safe"] + row["start_maybe"] <= 1
            assert 0 <= row["start_eos"] <= 1 - row["start_safe"] - row["start_maybe"] + 1e-9
    assert res["runs"]["grpo_s0"]["probe"][0] == res["runs"]["tea_gev_s0"]["probe"][0]  # one warm start: the same first row
    assert "probe on fixed contexts, P(first word a mode word) / P(end token first, masked)" in text  # fixed-length answers
    assert "(modes)" not in text  # a user reward: the task's mode laws do not apply
    assert "pure mode" not in text
    assert " distinct " in text  # the per-run table shows how many answers were distinct


def test_the_probe_table_shows_what_the_answer_length_makes_relevant():
    """Fixed-length answers: the first word and the masked end token; answers free to end: where
    they end. Means over the seeds' rows at each step."""
    rows = [{"step": 0, "end_after6": 0.1, "end_after7": 0.9, "start_eos": 0.0, "start_safe": 0.5, "start_maybe": 0.5},
            {"step": 1, "end_after6": 0.3, "end_after7": 0.5, "start_eos": 0.6, "start_safe": 0.1, "start_maybe": 0.2}]
    res = {"grpo_s0": {"estimator": "grpo", "seed": 0, "probe": rows},
           "grpo_s1": {"estimator": "grpo", "seed": 1, "probe": [dict(r, start_eos=0.2 * r["step"]) for r in rows]}}
    fixed = lm.format_probe(res, {"estimators": ["grpo"], "max_response_length": 7}).splitlines()
    assert "P(first word a mode word) / P(end token first, masked)" in fixed[0]
    assert fixed[-1].split()[-2:] == ["1.00/0.00/0.50", "0.30/0.40/0.20"]
    free = lm.format_probe(res, {"estimators": ["grpo"], "max_response_length": 10}).splitlines()
    assert "P(end after word 7) / P(end after word 6)" in free[0]
    assert free[-1].split()[-2:] == ["0.90/0.10/0.50", "0.50/0.30/0.20"]
    assert lm.format_probe({"x": {"estimator": "grpo", "seed": 0, "probe": []}}, {"estimators": ["grpo"]}) == ""
