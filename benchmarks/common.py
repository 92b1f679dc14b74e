"""Shared pieces of the benchmarks: reference reward laws and calls through verl's registry."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np

__all__ = ["Law", "LexiconLike", "LAWS", "EXTRA_LAWS", "ALL_LAWS", "call_registered", "resolve", "ESTIMATOR_NAMES"]

from tea_verl.integrations.verl.advantage import registered_credit as call_registered  # noqa: E402,F401
from tea_verl.metrics.quality import ESTIMATOR_NAMES, resolve  # noqa: E402,F401


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

    def cdf(self, x: np.ndarray) -> np.ndarray:
        return self.dist.cdf(x)

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


class LexiconLike:
    """A "lexicon-like" reward law: continuous with point masses, like an off-the-shelf lexicon
    sentiment scorer's output (exact zeros when no lexicon word occurs, a few values that recur
    because short texts share their scoring words).

    Mixture on [-1, 1]: ``zero`` mass at 0, ``repeat`` mass spread evenly over :attr:`REPEATS`,
    the rest ``2 Beta(4, 3) - 1``. With ``jitter > 0`` each point mass becomes a uniform law of
    half-width ``jitter`` around it: "the same law without point masses". Exposes the law
    interface of :func:`tea_verl.metrics.quality.measure` (sample, mean, cdf, best_of, advantage_fn); the
    quantities are computed by quadrature on a fine grid of the (right-continuous) CDF.
    """

    REPEATS = (0.128, 0.2732, 0.4939, 0.6249)

    def __init__(self, zero: float = 0.18, repeat: float = 0.08, jitter: float = 0.0):
        self.zero, self.repeat, self.jitter = zero, repeat, jitter
        self.name = "lexicon" + (f"_jitter{jitter:g}" if jitter else "")
        self.grid = np.linspace(-1.0 - jitter, 1.0 + jitter, 400001)

    def _atoms(self):
        return [(0.0, self.zero)] + [(v, self.repeat / len(self.REPEATS)) for v in self.REPEATS]

    def sample(self, rng: np.random.Generator, shape) -> np.ndarray:
        u = rng.random(shape)
        cont = 2.0 * rng.beta(4.0, 3.0, shape) - 1.0
        atoms = np.array(self.REPEATS)[rng.integers(0, len(self.REPEATS), shape)]
        x = np.where(u < self.zero, 0.0, np.where(u < self.zero + self.repeat, atoms, cont))
        if self.jitter:
            pm = u < self.zero + self.repeat
            x = np.where(pm, x + rng.uniform(-self.jitter, self.jitter, shape), x)
        return x

    def cdf(self, x: np.ndarray) -> np.ndarray:
        from scipy import stats

        x = np.asarray(x, dtype=np.float64)
        out = (1.0 - self.zero - self.repeat) * stats.beta(4.0, 3.0).cdf((x + 1.0) / 2.0)
        for v, w in self._atoms():
            out = out + w * (np.clip((x - v + self.jitter) / (2 * self.jitter), 0.0, 1.0) if self.jitter else (x >= v))
        return out

    @property
    def mean(self) -> float:
        return self.best_of(1)

    def best_of(self, n: int) -> float:
        # E[max of n] = int x d(F(x)^n) = x_max - int F(x)^n dx over the support
        F = self.cdf(self.grid)
        return float(self.grid[-1] - np.trapezoid(F**n, self.grid))

    def advantage_fn(self, n: int):
        F = self.cdf(self.grid) ** (n - 1)
        cum = np.concatenate([[0.0], np.cumsum(0.5 * (F[1:] + F[:-1]) * np.diff(self.grid))])
        grid = self.grid
        return lambda r: np.interp(r, grid, cum, left=0.0, right=cum[-1]) + np.maximum(r - grid[-1], 0.0)


def compose_tea_trainer(overrides=()):
    """tea_trainer (verl's ppo_trainer + tea-verl keys) composed with Hydra, as a launch would."""
    from hydra import compose, initialize_config_dir

    from tea_verl import CONFIG_DIR

    with initialize_config_dir(config_dir=CONFIG_DIR, version_base=None):
        return compose("tea_trainer", overrides=["algorithm.tea.N=64", *overrides])


def rm_best_of_n_overrides(model_dir: str) -> list[str]:
    """Hydra overrides for the best_of_n manager scoring with a reward model behind verl's router
    (``model_dir``: a local directory holding the reward model's tokenizer)."""
    return [
        "reward.reward_manager.name=best_of_n",
        "reward.reward_model.enable=True",
        f"reward.reward_model.model_path={model_dir}",
        "reward.reward_model.rollout.name=vllm",
        "reward.custom_reward_function.path=pkg://tea_verl.rewards",
        "reward.custom_reward_function.name=reward_model_via_best_of_n",
    ]
