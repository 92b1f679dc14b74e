"""Shared pieces of the benchmarks: reference reward laws and calls through verl's registry."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch

__all__ = ["Law", "LAWS", "EXTRA_LAWS", "ALL_LAWS", "call_registered", "ESTIMATOR_NAMES"]

# Estimators compared by the benchmarks: display name -> (verl registry name, N rule).
# "bon_m" is the exact estimator at N = m ("optimise what you can measure").
ESTIMATOR_NAMES = ("grpo", "grpo_passk", "bon_m", "tea", "prefix_tea")


@dataclass(frozen=True)
class Law:
    """A reference reward law (scipy frozen distribution) with exact best-of-n quantities."""

    name: str
    spec: tuple  # (scipy.stats name, args)

    @cached_property
    def dist(self):
        from scipy import stats

        family, args = self.spec
        return getattr(stats, family)(*args)

    def sample(self, rng: np.random.Generator, shape) -> np.ndarray:
        return self.dist.rvs(size=shape, random_state=rng)

    @property
    def mean(self) -> float:
        return float(self.dist.mean())

    def best_of(self, n: int) -> float:
        """J_n = E[max of n] = int_0^1 Q(u) n u^(n-1) du (adaptive quadrature)."""
        from scipy import integrate

        f = lambda u: self.dist.ppf(u) * n * u ** (n - 1)  # noqa: E731
        pts = [1 - 1 / n] if n > 1 else None
        return float(integrate.quad(f, 0, 1, limit=500, points=pts)[0])

    def advantage_fn(self, n: int, grid_nodes: int = 20000):
        """Return r -> A_n(r) = int_{-inf}^r F(t)^(n-1) dt (up to a constant), by quadrature.

        The grid is uniform in the Gumbel coordinate y (u = exp(-e^{-y})), which resolves the
        upper tail that best-of-n weighs.
        """
        y = np.linspace(-4.0, math.log(n) + 14.0, grid_nodes)
        u = np.exp(-np.exp(-y))
        u = np.clip(u, 1e-300, 1 - 1e-16)
        r = self.dist.ppf(u)
        keep = np.isfinite(r)
        r, u = r[keep], u[keep]
        h = u ** (n - 1)
        cum = np.concatenate([[0.0], np.cumsum(0.5 * (h[1:] + h[:-1]) * np.diff(r))])
        return lambda x: np.interp(x, r, cum, left=0.0, right=cum[-1]) + np.maximum(x - r[-1], 0.0)


LAWS = {
    "normal": Law("normal", ("norm", ())),
    "beta25": Law("beta25", ("beta", (2, 5))),
    "gumbel": Law("gumbel", ("gumbel_r", ())),
}
# Laws beyond the listed three, for robustness checks (--laws ...): a heavy tail (xi = 0.2),
# a skewed one in the Gumbel domain, and a hard bound (xi = -1).
EXTRA_LAWS = {
    "student5": Law("student5", ("t", (5,))),
    "lognormal": Law("lognormal", ("lognorm", (0.5,))),
    "uniform": Law("uniform", ("uniform", ())),
}
ALL_LAWS = {**LAWS, **EXTRA_LAWS}


def call_registered(
    name: str, scores: torch.Tensor, uids: np.ndarray, n: int, norm: bool, **tea_keys
) -> torch.Tensor:
    """Per-sample advantage of a verl-registered estimator, called as verl's compute_advantage does.

    ``scores`` (B,) become token_level_rewards of one token; the result is the (B,) scalar.
    """
    from omegaconf import OmegaConf
    from verl.trainer.ppo.core_algos import get_adv_estimator_fn

    fn = get_adv_estimator_fn(name)
    rewards = scores.reshape(-1, 1)
    mask = torch.ones_like(rewards)
    tea = {"N": n, **tea_keys}
    cfg = OmegaConf.create({"norm_adv_by_std_in_grpo": norm, "tea": tea})
    kwargs = {"token_level_rewards": rewards, "response_mask": mask, "index": uids, "config": cfg}
    if name in ("grpo", "grpo_vectorized"):
        # verl's compute_advantage passes this flag explicitly to its GRPO branch
        kwargs["norm_adv_by_std_in_grpo"] = norm
    adv, _ = fn(**kwargs)
    return adv[:, 0]


def resolve(display: str, m: int, n: int) -> tuple[str, int]:
    """Display name -> (registry name, the N passed in algorithm.tea.N)."""
    if display == "bon_m":
        return "bon", m
    return display, n


def compose_tea_trainer(overrides=()):
    """tea_trainer (verl's ppo_trainer + tea-verl keys) composed with Hydra, as a launch would."""
    from hydra import compose, initialize_config_dir

    from tea_verl import CONFIG_DIR

    with initialize_config_dir(config_dir=CONFIG_DIR, version_base=None):
        return compose("tea_trainer", overrides=["algorithm.tea.N=64", *overrides])
