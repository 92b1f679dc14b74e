"""The patch: OpenRLHF's ``RemoteExperienceMaker.compute_advantages_and_returns`` with best-of-N credit.

Settings travel in the environment variable :data:`ENV` (JSON: ``{"estimator": "tea", "N": 64,
"tea": {...tail keys...}}``), which :mod:`.launch` sets in the driver and in the runtime env of
every Ray worker, whose start-up hook (:func:`setup_worker`) installs the patch there too:
OpenRLHF's ``PPOTrainer`` is a Ray actor, so a patch made in the driver alone would not reach it.

For a best-of-N estimator the patched method does what OpenRLHF's does for ``reinforce``-style
estimators, with the credit in place of the baseline-subtracted reward:

1. rewards in at least fp32 and OpenRLHF's length penalties (``apply_length_penalties``);
2. the rewards of every micro-batch put back in prompt order by ``experience.index``, in groups
   of ``rollout.n_samples_per_prompt``; ``group_reward_std`` logged as OpenRLHF does;
3. the credit of each sample (NaN rewards: zero credit, counted as ``tea/unscorable``);
4. per token: OpenRLHF's ``compute_reward`` (reward clipping and the KL penalty, the credit at the
   last response token) and ``get_cumulative_returns`` with gamma = 1, advantages = returns, and
   no whitening afterwards (the credit's scale is the estimator's std scaling);
5. the ``tea/*`` statistics in every experience's ``info``, next to OpenRLHF's metrics.

A moved OpenRLHF internal fails :func:`install` with one message naming it; OpenRLHF outside
:data:`OPENRLHF_VERSIONS` gets a warning.
"""

from __future__ import annotations

import itertools
import json
import os
import warnings

import torch

from tea_verl.config import TeaConfig
from tea_verl.estimators import ESTIMATORS
from tea_verl.integrations.common import grouped_credit

__all__ = ["ENV", "STAND_IN", "OPENRLHF_VERSIONS", "BEST_OF_N", "settings", "encode_settings", "install",
           "installed", "setup_worker", "best_of_n_advantages", "required_settings"]

ENV = "TEA_OPENRLHF"
STAND_IN = "group_norm"
"""The estimator name OpenRLHF's own argument parser sees for a best-of-N run: one of its choices
that needs n_samples_per_prompt > 1 and no critic, as best-of-N does. The patch computes the
credit; OpenRLHF's group_norm code never runs for it."""
OPENRLHF_VERSIONS = (0, 11)
"""The OpenRLHF minor version the patch is tested against (``openrlhf==0.11.*``)."""
BEST_OF_N = ESTIMATORS
MODULE = "openrlhf.trainer.ppo_utils.experience_maker"
_NEEDED = {MODULE: ("RemoteExperienceMaker", "compute_reward", "apply_length_penalties"),
           f"{MODULE}.RemoteExperienceMaker": ("compute_advantages_and_returns", "get_cumulative_returns")}


def encode_settings(estimator: str, N: int, tea: dict | None = None) -> str:
    """The JSON of :data:`ENV`, validated first (a bad key fails here, naming it)."""
    if estimator not in BEST_OF_N:
        raise ValueError(f"{estimator!r} is not a best-of-N estimator; choose one of {', '.join(BEST_OF_N)}")
    TeaConfig.from_keys(N, tea)
    return json.dumps({"estimator": estimator, "N": int(N), "tea": dict(tea or {})})


def settings() -> tuple[str, TeaConfig] | None:
    """(estimator, tail settings) from :data:`ENV`, or None when it is unset (OpenRLHF's own estimators)."""
    raw = os.environ.get(ENV)
    if not raw:
        return None
    try:
        s = json.loads(raw)
        estimator, n, tea = s["estimator"], s["N"], s.get("tea") or {}
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{ENV}={raw!r} is not the JSON tea-verl writes ({{\"estimator\": ..., \"N\": ..., \"tea\": {{...}}}}): {exc}") from exc
    if estimator not in BEST_OF_N:
        raise ValueError(f"{ENV}: {estimator!r} is not a best-of-N estimator; choose one of {', '.join(BEST_OF_N)}")
    return estimator, TeaConfig.from_keys(n, tea)


def required_settings() -> tuple[str, TeaConfig]:
    """:func:`settings`, which a best-of-N estimator needs: a clear error where :data:`ENV` did not arrive."""
    chosen = settings()
    if chosen is None:
        raise RuntimeError(f"a best-of-N estimator without its settings: {ENV} is not set in this process. The launcher "
                           "(tea-verl openrlhf) and the patched train_ppo_ray.py pass it to every Ray worker; a worker "
                           "started another way needs it in its environment")
    return chosen


def _openrlhf():
    import importlib
    from importlib.metadata import PackageNotFoundError, version

    try:
        module = importlib.import_module(MODULE)
    except ModuleNotFoundError as exc:
        raise RuntimeError(f"cannot import {MODULE} ({exc}); install OpenRLHF {OPENRLHF_VERSIONS[0]}.{OPENRLHF_VERSIONS[1]}.x") from exc
    for where, names in _NEEDED.items():
        owner = module if where == MODULE else module.RemoteExperienceMaker
        for name in names:
            if not hasattr(owner, name):
                raise RuntimeError(f"OpenRLHF moved an internal tea-verl's patch uses: {where}.{name} is gone "
                                   f"(tested with openrlhf=={OPENRLHF_VERSIONS[0]}.{OPENRLHF_VERSIONS[1]}.*)")
    try:
        found = version("openrlhf")
        if tuple(int(x) for x in found.split(".")[:2]) != OPENRLHF_VERSIONS:
            warnings.warn(f"tea-verl's OpenRLHF patch is tested with openrlhf=={OPENRLHF_VERSIONS[0]}.{OPENRLHF_VERSIONS[1]}.*, "
                          f"this is {found}", stacklevel=3)
    except PackageNotFoundError:
        pass
    return module


@torch.no_grad()
def best_of_n_advantages(maker, experiences: list, estimator: str, config: TeaConfig) -> list:
    """Steps 1-5 of the module docstring on OpenRLHF's ``experiences`` (``maker`` is the
    ``RemoteExperienceMaker``)."""
    module = _openrlhf()
    args = maker.strategy.args
    for e in experiences:
        e.rewards = e.rewards.to(torch.promote_types(e.rewards.dtype, torch.float32))
    module.apply_length_penalties(experiences, args)
    lengths = [len(e.index) for e in experiences]
    order = torch.tensor(list(itertools.chain.from_iterable(e.index for e in experiences)))
    flat = torch.cat([e.rewards for e in experiences], dim=0)
    rewards = torch.empty_like(flat)
    rewards[order] = flat  # prompt order: the samples of a prompt are consecutive
    n = args.rollout.n_samples_per_prompt
    if rewards.numel() % n:
        raise ValueError(f"{rewards.numel()} samples are not whole groups of rollout.n_samples_per_prompt = {n}")
    groups = torch.arange(rewards.numel(), device=rewards.device) // n
    credit, _, metrics = grouped_credit(rewards, groups, estimator, config)
    stds = rewards.reshape(-1, n).std(-1, keepdim=True).repeat(1, n).reshape(-1)[order].split(lengths)
    for e, c, std in zip(experiences, credit[order].split(lengths), stds):
        e.info["group_reward_std"] = std
        reward = module.compute_reward(c, maker.kl_ctl.value, e.kl, action_mask=e.action_mask,
                                       reward_clip_range=args.reward.clip_range)
        e.returns = maker.get_cumulative_returns(reward, e.action_mask, 1.0)
        e.advantages = e.returns.clone()
        e.info["return"] = reward.sum(dim=-1)
        e.kl = None
        for key, value in metrics.items():
            e.info[key] = torch.full((len(e.index),), value)
    return experiences


def _patched(original):
    def compute_advantages_and_returns(self, experiences):
        chosen = settings()
        if chosen is None:
            return original(self, experiences)
        return best_of_n_advantages(self, experiences, *chosen)

    compute_advantages_and_returns.__wrapped__ = original
    compute_advantages_and_returns.tea_verl_patch = True
    compute_advantages_and_returns.__doc__ = "tea-verl: best-of-N credit when TEA_OPENRLHF is set, else OpenRLHF's own."
    return compute_advantages_and_returns


def install() -> None:
    """Patch ``RemoteExperienceMaker.compute_advantages_and_returns`` in this process. Idempotent."""
    cls = _openrlhf().RemoteExperienceMaker
    if not installed():
        cls.compute_advantages_and_returns = _patched(cls.compute_advantages_and_returns)


def installed() -> bool:
    """Whether this process's OpenRLHF carries the patch."""
    import sys

    module = sys.modules.get(MODULE)
    return module is not None and getattr(module.RemoteExperienceMaker.compute_advantages_and_returns, "tea_verl_patch", False)


def setup_worker() -> None:
    """Ray's ``worker_process_setup_hook``: install the patch in every worker of a best-of-N run."""
    if os.environ.get(ENV):
        install()
