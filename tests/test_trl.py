"""The TRL adapter (tea_verl.integrations.trl): TRL 1.16's real GRPOTrainer trains a config-built
tiny Llama on this CPU with best-of-N credit, for a few steps of every estimator. Nothing is
mocked: generation, the reward function, the loss and the optimiser are TRL's and torch's.

Checked at every step: the advantages TRL trains on are the credit of verl's registered estimator
(verl 0.9.1's ADV_ESTIMATOR_REGISTRY) on the same rewards; unscorable completions (the reward
function returns None) get zero credit and are counted; the logged advantages are the credit used;
the tea/* statistics reach TRL's metrics."""

from __future__ import annotations

import math

import pytest
import torch
import verl  # noqa: F401 - the plugin registers the estimators in verl's registry

from tea_verl.estimators import ESTIMATORS, GEV
from tea_verl.launch.tiny import PROMPTS, build_causal_lm, build_tokenizer, lexicon_reward

pytestmark = pytest.mark.slow  # starts Ray, trains or runs subprocesses: pytest -m 'not slow' leaves it out

trl = pytest.importorskip("trl", reason="trl is a test dependency (pyproject.toml [test])")
from tea_verl.integrations.trl import TeaGRPOConfig, TeaGRPOTrainer  # noqa: E402

M, N, PROMPTS_PER_STEP, STEPS = 8, 64, 4, 3


def scored(completions, **kwargs):
    """The smoke run's lexicon reward."""
    return [lexicon_reward(solution_str=c) for c in completions]


def reward(completions, **kwargs):
    """The lexicon reward, but None (unscorable) for the first completion of every call and for any
    completion that says "zero"."""
    out = scored(completions)
    return [None if i == 0 or "zero" in c.split() else r for i, (c, r) in enumerate(zip(completions, out))]


class Recording(TeaGRPOTrainer):
    """Keeps what every scoring step produced (a test's window on the trainer, not a change to it)."""

    def _generate_and_score_completions(self, inputs):
        out = super()._generate_and_score_completions(inputs)
        logged = list(self._logs["advantages"])[-self.last_credit.shape[0]:]
        self.record.append({"rewards": self._tea_rewards[:, 0].clone(), "credit": self.last_credit.clone(),
                            "advantages": out["advantages"].detach().cpu().clone(), "logged": torch.tensor(logged)})
        return out


def config(tmp_path, estimator, **extra):
    return TeaGRPOConfig(
        output_dir=str(tmp_path / "out"), estimator=estimator, N=M if estimator == "bon" else N,
        num_generations=M, per_device_train_batch_size=M * PROMPTS_PER_STEP, max_completion_length=12,
        max_steps=STEPS, learning_rate=5e-3, beta=0.0, temperature=1.0, logging_steps=1, save_strategy="no",
        report_to=[], use_cpu=True, bf16=False, seed=0, disable_tqdm=True, **extra)


def verl_credit(rewards: torch.Tensor, estimator: str, n: int) -> torch.Tensor:
    """verl's registered estimator on the scored completions (one token each; groups by prompt)."""
    from omegaconf import OmegaConf
    from verl.trainer.ppo.core_algos import get_adv_estimator_fn

    scored = ~torch.isnan(rewards)
    uid = (torch.arange(rewards.shape[0]) // M)[scored].numpy().astype(str).astype(object)
    adv, _ = get_adv_estimator_fn(estimator)(
        token_level_rewards=rewards[scored].unsqueeze(-1).float(), response_mask=torch.ones(int(scored.sum()), 1),
        index=uid, config=OmegaConf.create({"tea": {"N": n}, "norm_adv_by_std_in_grpo": True}))
    out = torch.zeros_like(rewards)
    out[scored] = adv[:, 0].to(out.dtype)
    return out


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_trl_trains_with_every_estimator_on_verls_credit(tmp_path, estimator):
    from datasets import Dataset

    tok = build_tokenizer()
    model = build_causal_lm(tok, seed=0)
    before = [p.detach().clone() for p in model.parameters()]
    args = config(tmp_path, estimator)
    # bon: every completion scored, so that verl's bon (which needs N <= every group) is the reference;
    # unscorable completions under bon: test_unscorable_completions_under_bon_get_the_exact_best_of_m_credit
    trainer = Recording(model=model, reward_funcs=scored if estimator == "bon" else reward, args=args, processing_class=tok,
                        train_dataset=Dataset.from_dict({"prompt": PROMPTS[:PROMPTS_PER_STEP] * 8}))
    trainer.record = []
    trainer.train()
    assert len(trainer.record) == STEPS
    for step in trainer.record:
        rewards, credit = step["rewards"], step["credit"]
        unscorable = torch.isnan(rewards)
        assert bool(unscorable.any()) == (estimator != "bon") and (credit[unscorable] == 0).all()
        expected = verl_credit(rewards, estimator, args.N)
        assert torch.allclose(credit, expected, atol=1e-6), (credit - expected).abs().max()
        assert torch.equal(step["advantages"], credit.to(step["advantages"].dtype))  # one process: its slice is all
        assert torch.allclose(step["logged"], credit)
        assert credit[~unscorable].abs().max() > 0
    logs = [h for h in trainer.state.log_history if "tea/unscorable" in h]
    least = 0 if estimator == "bon" else 1  # the reward function is called once per batch
    assert len(logs) == STEPS and all(h["tea/unscorable"] >= least for h in logs)
    assert all(math.isfinite(h["tea/credit_mean"]) for h in logs)
    assert ("tea/xi" in logs[0]) == (estimator in GEV)
    assert any(not torch.equal(a, b.to(a.device)) for a, b in zip(before, trainer.model.parameters()))


def test_bad_settings_fail_before_training(tmp_path):
    with pytest.raises(ValueError, match="not a best-of-N estimator"):
        config(tmp_path, "grpo")
    with pytest.raises(ValueError, match="exact only for N <= num_generations"):
        TeaGRPOConfig(output_dir=str(tmp_path), estimator="bon", N=64, num_generations=8, per_device_train_batch_size=8,
                      use_cpu=True, bf16=False, report_to=[])
    with pytest.raises(ValueError, match="unknown key"):
        config(tmp_path, "tea", tea={"alhpa": 0.3})
    with pytest.raises(ValueError, match="N is required"):  # required, as verl's algorithm.tea.N and OpenRLHF's --tea.N
        TeaGRPOConfig(output_dir=str(tmp_path), estimator="tea", num_generations=8, per_device_train_batch_size=8,
                      use_cpu=True, bf16=False, report_to=[])
    with pytest.raises(ValueError, match="normalize_then_sum"):
        config(tmp_path, "tea", multi_objective_aggregation="normalize_then_sum")
    with pytest.raises(TypeError, match="TeaGRPOConfig"):
        TeaGRPOTrainer(model=build_causal_lm(build_tokenizer()), reward_funcs=reward,
                       args=trl.GRPOConfig(output_dir=str(tmp_path), use_cpu=True, bf16=False, report_to=[]))


def test_unscorable_completions_under_bon_get_the_exact_best_of_m_credit():
    from tea_verl.config import TeaConfig
    from tea_verl.estimators import best_of_n_credit
    from tea_verl.integrations.common import contiguous_groups, grouped_credit

    g = torch.Generator().manual_seed(0)
    rewards = torch.randn(3 * M, generator=g, dtype=torch.float64)
    rewards[[0, 1, M]] = torch.nan  # group 0 keeps 6 scored samples, group 1 keeps 7, group 2 all 8
    cfg = TeaConfig(N=M)
    credit, _, metrics = grouped_credit(rewards, contiguous_groups(3 * M, M), "bon", cfg, norm_by_std=False)
    assert metrics["tea/unscorable"] == 3 and metrics["tea/short_groups"] == 2
    assert (credit[[0, 1, M]] == 0).all()
    for grp, keep in ((0, slice(2, M)), (1, slice(M + 1, 2 * M)), (2, slice(2 * M, 3 * M))):
        r = rewards[keep]
        alone, _ = best_of_n_credit(r, torch.zeros_like(r, dtype=torch.long), "bon", TeaConfig(N=r.numel()), norm_by_std=False)
        assert torch.allclose(credit[keep], alone), grp
    with pytest.raises(ValueError, match="infinite"):
        grouped_credit(torch.tensor([0.0, float("inf")]), torch.tensor([0, 0]), "tea", TeaConfig(N=4))
    with pytest.raises(ValueError, match="not a whole number of groups"):
        contiguous_groups(10, 4)


def test_preflight_names_a_trl_that_stops_verls_workers(tmp_path):
    import os
    import subprocess
    import sys

    import trl

    from tea_verl.integrations.verl.preflight import trl_conflict

    # TRL 1.12 (this environment's) keeps the class verl imports; 1.13 and later (the suite's second run) do not
    keeps = tuple(int(x) for x in trl.__version__.split(".")[:2]) < (1, 13)
    assert (trl_conflict() is None) == keeps, trl_conflict()
    # a TRL without trl.experimental.ppo, as 1.13 and later ship: a package and its metadata, first on the path
    (tmp_path / "trl").mkdir()
    (tmp_path / "trl" / "__init__.py").write_text("__version__ = '1.16.0'\n")
    (tmp_path / "trl-1.16.0.dist-info").mkdir()
    (tmp_path / "trl-1.16.0.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: trl\nVersion: 1.16.0\n")
    code = "from tea_verl.integrations.verl.preflight import trl_conflict; print(trl_conflict())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(tmp_path)})
    assert out.returncode == 0, out.stderr
    assert "trl 1.16.0 is installed" in out.stdout and "trl<1.13" in out.stdout
