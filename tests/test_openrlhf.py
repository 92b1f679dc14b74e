"""The OpenRLHF adapter (tea_verl.integrations.openrlhf): OpenRLHF 0.11.2's real
``RemoteExperienceMaker.compute_advantages_and_returns``, patched, on CPU tensors in OpenRLHF's own
layout (its ``Experience`` objects, micro-batches in shuffled order with ``experience.index``),
against the estimators' front door for every estimator; the launcher; and the patch reaching a
real local Ray actor.

Stubbed, because they cannot exist here: ``flash_attn`` and ``vllm`` (GPU-only; OpenRLHF imports a
few of their names at import time). The stubs (tests/fixtures/gpu_stubs) are on the path only while
this module's tests run. OpenRLHF's full training loop needs GPUs and is not run here."""

from __future__ import annotations

import os
import subprocess
import sys
from types import SimpleNamespace as NS

import pytest
import torch

from tea_verl.config import TeaConfig
from tea_verl.estimators import ESTIMATORS, best_of_n_credit

pytestmark = pytest.mark.slow  # starts Ray, trains or runs subprocesses: pytest -m 'not slow' leaves it out

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STUBS = os.path.join(ROOT, "tests", "fixtures", "gpu_stubs")
M_PER_PROMPT, PROMPTS, LENGTH = 8, 6, 5


@pytest.fixture(scope="module")
def openrlhf():
    pytest.importorskip("openrlhf", reason="OpenRLHF is installed by scripts/setup.sh (without its GPU-only pins)")
    sys.path.insert(0, STUBS)
    try:
        from openrlhf.trainer.ppo_utils import experience_maker
        from openrlhf.trainer.ppo_utils.experience import Experience
        from openrlhf.trainer.ppo_utils.kl_controller import FixedKLController

        yield NS(maker=experience_maker, Experience=Experience, KL=FixedKLController)
    finally:  # leave no stub behind for the other tests (verl asks whether vLLM is installed)
        sys.path.remove(STUBS)
        for name in [n for n in sys.modules if n.split(".")[0] in ("vllm", "flash_attn")]:
            del sys.modules[name]


def _args(n=M_PER_PROMPT, estimator="group_norm"):
    return NS(rollout=NS(n_samples_per_prompt=n, max_new_tokens=LENGTH), data=NS(max_len=64),
              algo=NS(advantage=NS(estimator=estimator, gamma=1.0, lambd=1.0, no_std_norm=False)),
              reward=NS(clip_range=(-100.0, 100.0), overlong_buffer_len=None))


def _experiences(orl, rewards: torch.Tensor, seed: int):
    """OpenRLHF's layout: samples in shuffled order, in micro-batches of uneven size, each sample's
    prompt-order position in ``index``; responses of uneven length (action_mask), zero KL."""
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(rewards.numel(), generator=g).tolist()
    cuts = [0, 7, 19, 20, 33, rewards.numel()]
    out = []
    for a, b in zip(cuts, cuts[1:]):
        idx = order[a:b]
        lengths = torch.randint(1, LENGTH + 1, (len(idx),), generator=g)
        mask = torch.arange(LENGTH)[None, :] < lengths[:, None]
        out.append(orl.Experience(action_mask=mask, kl=torch.zeros(len(idx), LENGTH), rewards=rewards[idx].clone(),
                                  index=idx, info={}))
    return out


def _maker(orl, args):
    return orl.maker.RemoteExperienceMaker(None, None, None, None, orl.KL(0.0), NS(args=args), None)


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_patched_openrlhf_credit_is_the_front_doors(openrlhf, estimator, monkeypatch):
    from tea_verl.integrations.openrlhf import patch

    n = M_PER_PROMPT if estimator == "bon" else 64
    g = torch.Generator().manual_seed(1)
    rewards = torch.randn(PROMPTS * M_PER_PROMPT, generator=g)
    rewards[5] = torch.nan  # an unscorable sample (tail estimators; bon needs full groups: see test_trl)
    if estimator == "bon":
        rewards[5] = 0.3
    monkeypatch.setenv(patch.ENV, patch.encode_settings(estimator, n, {"alpha": 0.25}))
    patch.install()
    assert patch.installed()
    experiences = _experiences(openrlhf, rewards, seed=2)
    _maker(openrlhf, _args()).compute_advantages_and_returns(experiences)
    scored = ~torch.isnan(rewards)
    groups = torch.arange(rewards.numel()) // M_PER_PROMPT
    expected = torch.zeros_like(rewards)
    expected[scored], _ = best_of_n_credit(rewards[scored], torch.unique(groups[scored], return_inverse=True)[1], estimator,
                                           TeaConfig.from_algorithm({"tea": {"N": n, "alpha": 0.25}}))
    for e in experiences:
        want = expected[e.index][:, None].expand(-1, LENGTH)
        assert torch.allclose(e.advantages[e.action_mask], want[e.action_mask], atol=1e-6)
        assert (e.advantages[~e.action_mask] == 0).all()
        assert torch.equal(e.returns, e.advantages)
        assert float(e.info["tea/unscorable"][0]) == (0 if estimator == "bon" else 1)
        assert "tea/credit_mean" in e.info and e.kl is None


def test_without_the_settings_openrlhf_runs_its_own_estimator(openrlhf, monkeypatch):
    from tea_verl.integrations.openrlhf import patch

    monkeypatch.delenv(patch.ENV, raising=False)
    patch.install()
    rewards = torch.randn(PROMPTS * M_PER_PROMPT, generator=torch.Generator().manual_seed(3))
    experiences = _experiences(openrlhf, rewards, seed=4)
    _maker(openrlhf, _args()).compute_advantages_and_returns(experiences)
    grouped = rewards.reshape(-1, M_PER_PROMPT)
    norm = ((grouped - grouped.mean(-1, keepdim=True)) / (grouped.std(-1, keepdim=True) + 1e-9)).reshape(-1)
    for e in experiences:  # group_norm, OpenRLHF's own code
        assert torch.allclose(e.advantages[e.action_mask], norm[e.index][:, None].expand(-1, LENGTH)[e.action_mask], atol=1e-5)
        assert "tea/credit_mean" not in e.info


def test_the_launcher_lists_the_estimators_and_checks_its_arguments():
    from tea_verl.integrations.openrlhf.launch import split_args

    out = subprocess.run([sys.executable, "-m", "tea_verl.cli", "openrlhf", "--help"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0
    for name in ESTIMATORS:
        assert name in out.stdout
    assert "--tea.N" in out.stdout
    est, n, tea, rest = split_args(["--algo.advantage.estimator", "prefix_tea", "--tea.N=128", "--tea.alpha", "0.3",
                                    "--rollout.n_samples_per_prompt", "16"])
    assert (est, n, tea) == ("prefix_tea", 128, {"alpha": 0.3})
    assert rest == ["--algo.advantage.estimator", "group_norm", "--rollout.n_samples_per_prompt", "16"]
    assert split_args(["--algo.advantage.estimator", "rloo", "--x", "1"])[0] is None  # OpenRLHF's own: untouched
    bad = subprocess.run([sys.executable, "-m", "tea_verl.cli", "openrlhf", "--algo.advantage.estimator", "tea"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "needs --tea.N" in bad.stderr


def test_a_ray_actor_gets_the_patch(openrlhf, monkeypatch):
    import ray

    from tea_verl.integrations.openrlhf import launch, patch

    monkeypatch.setenv(patch.ENV, patch.encode_settings("tea", 64))
    monkeypatch.setenv("RAY_AUTH_MODE", os.environ.get("RAY_AUTH_MODE", "disabled"))
    init = launch.ray_init_with_patch(ray.init)
    pythonpath = os.pathsep.join([STUBS, ROOT, os.environ.get("PYTHONPATH", "")])
    init(num_cpus=1, include_dashboard=False, log_to_driver=False, configure_logging=False,
         runtime_env={"env_vars": {"PYTHONPATH": pythonpath}})
    try:
        @ray.remote
        class Trainer:  # where OpenRLHF computes advantages: in an actor, not in the driver
            def report(self):
                import os as os_

                from openrlhf.trainer.ppo_utils.experience_maker import RemoteExperienceMaker

                method = RemoteExperienceMaker.compute_advantages_and_returns
                return bool(getattr(method, "tea_verl_patch", False)), os_.environ.get("TEA_OPENRLHF")

        patched, settings = ray.get(Trainer.remote().report.remote(), timeout=300)
    finally:
        ray.shutdown()
    assert patched and '"estimator": "tea"' in settings


def test_the_patch_file_applies_to_openrlhf_and_gives_the_same_credit(openrlhf, tmp_path):
    """patches/openrlhf-0.11.2.patch, for users who apply it instead of the launcher: it applies to
    the installed OpenRLHF (``patch -p1``, as the README says), and the patched experience maker, in a fresh process
    without tea-verl's runtime patch, gives the front door's credit."""
    import shutil

    import openrlhf as package

    copy = tmp_path / "site"
    shutil.copytree(os.path.dirname(package.__file__), copy / "openrlhf", ignore=shutil.ignore_patterns("__pycache__"))
    patch_file = os.path.join(ROOT, "patches", "openrlhf-0.11.2.patch")
    with open(patch_file) as f:  # the README's command, on a copy of the installed package
        applied = subprocess.run(["patch", "-p1", "-d", str(copy)], stdin=f, capture_output=True, text=True)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    script = f"""
import json, torch
from types import SimpleNamespace as NS
from openrlhf.trainer.ppo_utils import experience_maker as em
from openrlhf.trainer.ppo_utils.experience import Experience
from openrlhf.trainer.ppo_utils.kl_controller import FixedKLController
from tea_verl.config import TeaConfig
from tea_verl.estimators import best_of_n_credit
from tea_verl.integrations.openrlhf import patch
assert em.__file__.startswith({str(copy)!r}) and not patch.installed()
rewards = torch.randn(48, generator=torch.Generator().manual_seed(5))
order = torch.randperm(48, generator=torch.Generator().manual_seed(6)).tolist()
exps = [Experience(action_mask=torch.ones(len(order[a:b]), 3, dtype=torch.bool), kl=torch.zeros(len(order[a:b]), 3),
                   rewards=rewards[order[a:b]].clone(), index=order[a:b], info={{}}) for a, b in ((0, 20), (20, 48))]
args = NS(rollout=NS(n_samples_per_prompt=8), data=NS(max_len=64), reward=NS(clip_range=(-100.0, 100.0), overlong_buffer_len=None),
          algo=NS(advantage=NS(estimator="tea", gamma=1.0, lambd=1.0, no_std_norm=False)))
em.RemoteExperienceMaker(None, None, None, None, FixedKLController(0.0), NS(args=args), None).compute_advantages_and_returns(exps)
want, _ = best_of_n_credit(rewards, torch.arange(48) // 8, "tea", TeaConfig(N=64))
got = torch.zeros(48)
for e in exps:
    got[e.index] = e.advantages[:, 0]
print(json.dumps({{"max_diff": float((got - want).abs().max())}}))
"""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(copy), STUBS, ROOT]), "TEA_OPENRLHF": '{"estimator": "tea", "N": 64}'}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    import json

    assert json.loads(out.stdout.strip().splitlines()[-1])["max_diff"] < 1e-6, out.stdout
