"""Estimator quality on a reward law: spread valuation ratio (SVR) and isotropic alignment (rho).

For a location-scale family around (mean, 1), the true best-of-N gradient has
``grad_{log sigma} J_N / grad_mu J_N = J_N - J_1``. An estimator's implied ratio is
``E[c_1 s_logsigma(R_1)] / E[c_1 s_mu(R_1)]``; by the score-function identity this equals
``E[dc_1/dr_1 (R_1 - mean)] / E[dc_1/dr_1]`` (pathwise form: sample 1 is perturbed, the other
m-1 are held), which we measure by central finite differences through the registered verl
functions. The score form has infinite variance on Beta(2,5) (its location Fisher information
diverges at the lower edge of the support); the pathwise form does not.
``SVR = implied / (J_N - J_1)``; 1 is right, GRPO is 0.

``rho = Corr_F(c_hat(R), A_N(R))`` with ``c_hat(r) = E[c_1 | r_1 = r]`` estimated by binning
all samples on a grid uniform in the Gumbel coordinate of their PIT (resolves the upper tail),
and the binned Monte Carlo variance subtracted from Var(c_hat) ("noise removed").

Every batch holds ``groups`` prompts (a realistic verl batch), so the pooled tail-shape fit of
tea_gev/prefix_tea_gev sees what it would see in training. Advantages are not std-normalised here
(``norm_adv_by_std_in_grpo=False``): SVR and rho are properties of the credit itself.
Standard errors come from independent batches.

A law is any object with ``sample(rng, shape)``, ``mean``, ``best_of(n)``, ``advantage_fn(n)``
and ``cdf(x)``: the reference laws of ``benchmarks.common`` (scipy) or :class:`EmpiricalLaw`
(a user's own standardised reward samples, used by ``tea-verl diagnose``).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from tea_verl.config import TEA_DEFAULTS
from tea_verl.estimators.table import COMPARISON, ESTIMATORS, GAUSSIAN, comparison_method, method

__all__ = ["ESTIMATOR_NAMES", "own_credit", "resolve", "measure", "EmpiricalLaw", "infeasible"]

# The methods compared on a law: the comparison methods of the estimator table but the oracle, which
# needs N rollouts per group ("bon_m" is the exact estimator at N = m: optimise what you can measure).
ESTIMATOR_NAMES = tuple(name for name in COMPARISON if method(name).rollouts == "m")


def own_credit(name: str, scores: torch.Tensor, uids: np.ndarray, n: int, norm: bool, **tea_keys) -> torch.Tensor:
    """Per-sample credit of one of tea-verl's estimators, computed as the function verl's registry
    holds for it computes it (the same settings object, grouping and front door), without verl."""
    from tea_verl.config import TeaConfig
    from tea_verl.estimators import best_of_n_credit
    from tea_verl.estimators.layout import uid_to_group_ids

    if name not in ESTIMATORS:
        raise ValueError(f"{name!r} is not one of tea-verl's estimators ({', '.join(ESTIMATORS)}): measure it with "
                         "credit=tea_verl.integrations.verl.advantage.registered_credit (through verl's registry)")
    groups = uid_to_group_ids(uids, scores.shape[0], scores.device)
    credit, _ = best_of_n_credit(scores, groups, name, TeaConfig.from_keys(n, tea_keys), norm_by_std=norm)
    return credit.to(scores.dtype)


def infeasible(display: str, m: int, tea_keys=None) -> str | None:
    """Why an estimator cannot run at group size m (None when it can): the Gaussian family needs
    ``ceil(alpha m) >= 2``."""
    from tea_verl.estimators.gaussian import min_group_size, tail_size

    alpha = float((tea_keys or {}).get("alpha", TEA_DEFAULTS.alpha))
    if display.split("@")[0] in GAUSSIAN and tail_size(alpha, m) < 2:
        return f"needs m >= {min_group_size(alpha)}"
    return None


def resolve(display: str, m: int, n: int) -> tuple[str, int]:
    """Display name -> (registry name, the N passed in algorithm.tea.N), from the estimator table."""
    row = comparison_method(display)
    return row.registry, row.n_arg(m, n)


def measure(law, m: int, n: int, estimator: str, *, groups: int, batches: int, seed: int, tea_keys=None,
            norm: str = "none", credit=None):
    """Return dict(svr, svr_se, rho, rho_se) for one estimator on one law and budget.

    ``norm``: "none" (raw credit), "batch" or "group" (norm_adv_by_std_in_grpo=True with that
    algorithm.tea.std_scale; verl's GRPO estimators always normalise per group). ``credit``: the
    per-sample credit function, :func:`own_credit` by default (tea-verl's estimators); verl's own
    (``grpo``) need ``tea_verl.integrations.verl.advantage.registered_credit``.
    """
    call = credit or own_credit
    tea_keys = dict(tea_keys or {})
    if norm != "none":
        tea_keys["std_scale"] = norm
    norm_flag = norm != "none"
    reg, n_arg = resolve(estimator, m, n)
    rng = np.random.default_rng(seed)
    # A law with a failure atom (EmpiricalLaw(atom=...)): the location-scale family moves the valid
    # part only, so failures are never perturbed and the target is that of the valid part:
    # E[(M - mean_valid) 1{M valid}] / P(M valid), M the best of n (the atom lies below every value)
    atom, p_atom = getattr(law, "atom", None), float(getattr(law, "atom_share", 0.0))
    mean = law.mean if atom is None else (law.mean - p_atom * atom) / (1.0 - p_atom)
    top_valid = 1.0 - p_atom**n
    target = (law.best_of(n) - (atom or 0.0) * p_atom**n - mean * top_valid) / top_valid
    adv_n = law.advantage_fn(n)
    uids = np.repeat(np.arange(groups), m).astype(object)
    first = torch.from_numpy(np.arange(groups) * m)
    num, den = [], []
    # binning for rho: Gumbel coordinate of the PIT u = F(r)
    edges = np.linspace(-3.0, math.log(n) + 5.0, 161)
    sums = np.zeros(edges.size + 1)
    sq = np.zeros(edges.size + 1)
    cnt = np.zeros(edges.size + 1)
    asum = np.zeros(edges.size + 1)
    for _ in range(batches):
        x = law.sample(rng, (groups, m)).reshape(-1)
        scale = float(np.std(x))
        h = 1e-5 * scale
        xs = torch.from_numpy(x)
        c = call(reg, xs, uids, n_arg, norm_flag, **tea_keys).double().numpy()
        valid = x[first.numpy()] != atom  # all True without an atom
        moved = first[torch.from_numpy(valid)]
        xp, xm = xs.clone(), xs.clone()
        xp[moved] += h
        xm[moved] -= h
        cp = call(reg, xp, uids, n_arg, norm_flag, **tea_keys).double().numpy()[first.numpy()]
        cm = call(reg, xm, uids, n_arg, norm_flag, **tea_keys).double().numpy()[first.numpy()]
        d = np.where(valid, (cp - cm) / (2 * h), 0.0)
        r1 = x[first.numpy()]
        num.append(np.sum(d * (r1 - mean)))
        den.append(np.sum(d))
        u = np.clip(law.cdf(x), 1e-300, 1 - 1e-16)
        b = np.digitize(-np.log(-np.log(u)), edges)
        np.add.at(sums, b, c)
        np.add.at(sq, b, c * c)
        np.add.at(cnt, b, 1.0)
        np.add.at(asum, b, adv_n(x))
    num, den = np.array(num), np.array(den)
    ratio = num.sum() / den.sum()
    svr = ratio / target
    resid = num - ratio * den
    svr_se = np.std(resid, ddof=1) * math.sqrt(len(num)) / abs(den.sum()) / target if len(num) > 1 else float("nan")
    ok = cnt > 1
    p = cnt[ok] / cnt.sum()
    chat = sums[ok] / cnt[ok]
    abin = asum[ok] / cnt[ok]
    var_within = (sq[ok] / cnt[ok] - chat**2) * cnt[ok] / (cnt[ok] - 1)
    noise = np.sum(p * var_within / cnt[ok])
    cov = np.sum(p * (chat - np.sum(p * chat)) * (abin - np.sum(p * abin)))
    var_c = np.sum(p * (chat - np.sum(p * chat)) ** 2) - noise
    var_a = np.sum(p * (abin - np.sum(p * abin)) ** 2)
    rho = cov / math.sqrt(max(var_c, 1e-300) * var_a) if var_c > 0 else float("nan")
    rho_se = math.sqrt(noise / max(var_c, 1e-300)) * abs(rho) / 2 if var_c > 0 else float("nan")
    return {"svr": svr, "svr_se": svr_se, "rho": rho, "rho_se": rho_se}


class EmpiricalLaw:
    """A continuous law from observed (standardised) rewards: the linearly interpolated quantile,
    with an optional failure atom at its bottom.

    ``Q(u)`` interpolates the distinct observed values ``v_1 < ... < v_K`` at the middle of each
    one's run of plotting positions: ``u_j = (samples below v_j + count_j / 2) / M``, clamped to
    ``[v_1, v_K]`` outside. A value that repeats (a scorer's 0.0, a lexicon word's compound)
    becomes a steep ramp between its neighbours, not a flat stretch of ``Q``: samples drawn from the
    law never tie, so ties that the interpolation itself would make cannot trip the estimators'
    discreteness and failure tests, and a finite difference never moves a sample off a point mass.
    Without repeats, ``u_j = (j - 0.5) / M``. The law is bounded by the data, which is faithful up
    to quantile ``1 - 1/(2M)``: keep ``M`` well above the deployment ``N``.

    ``atom``, ``atom_share``: a failure atom, a point mass of ``atom_share`` at ``atom`` (below
    every value), sampled exactly (``tea-verl diagnose`` measures the estimators with failure
    handling on and off on it). ``best_of(n) = int Q(u) n u^(n-1) du`` and ``A_n(r) = int_-inf^r
    F(t)^(n-1) dt`` are computed by quadrature on the knots (F is piecewise linear there).
    """

    def __init__(self, values: np.ndarray, name: str = "empirical", atom: float | None = None, atom_share: float = 0.0):
        x = np.asarray(values, dtype=np.float64).reshape(-1)
        if x.size < 2 or not np.all(np.isfinite(x)):
            raise ValueError("an empirical law needs at least 2 finite values")
        v, counts = np.unique(x, return_counts=True)
        if v.size < 2:
            raise ValueError("an empirical law needs at least 2 distinct values")
        p = float(atom_share) if atom is not None else 0.0
        if atom is not None and not (0.0 < p < 1.0 and atom < v[0]):
            raise ValueError(f"the failure atom must lie below every value ({atom} >= {v[0]}) with a share in (0, 1), got {p}")
        self.name = name
        self.atom, self.atom_share = atom, p
        u = p + (1.0 - p) * (np.cumsum(counts) - 0.5 * counts) / x.size
        if atom is None:
            self.atoms, self.u = v, u
            self._uu = np.concatenate([[0.0], u, [1.0]])
            self._xx = np.concatenate([[v[0]], v, [v[-1]]])
        else:
            self.atoms, self.u = np.concatenate([[atom], v]), np.concatenate([[p], u])
            # Q = atom on [0, p], a jump to v_1, then the continuous part
            self._uu = np.concatenate([[0.0, p, np.nextafter(p, 1.0)], u, [1.0]])
            self._xx = np.concatenate([[atom, atom, v[0]], v, [v[-1]]])

    def sample(self, rng: np.random.Generator, shape) -> np.ndarray:
        u = rng.random(shape)
        x = np.interp(u, self._uu, self._xx)
        return np.where(u < self.atom_share, self.atom, x) if self.atom is not None else x

    def cdf(self, x: np.ndarray) -> np.ndarray:
        return np.interp(x, self.atoms, self.u, left=0.0, right=1.0)

    @property
    def mean(self) -> float:
        return self.best_of(1)

    def best_of(self, n: int) -> float:
        # E[max of n] = int_0^1 Q(u) d(u^n); Q is piecewise linear in u: exact on each piece
        # up to the midpoint rule, refined by evaluating on a dense grid of u
        u = np.concatenate([self._uu, np.linspace(0.0, 1.0, 200001)])
        u.sort()
        q = np.interp(u, self._uu, self._xx)
        w = np.diff(u**n)
        return float(np.sum(w * 0.5 * (q[1:] + q[:-1])))

    def advantage_fn(self, n: int):
        t = self.atoms
        h = self.u ** (n - 1)
        cum = np.concatenate([[0.0], np.cumsum(0.5 * (h[1:] + h[:-1]) * np.diff(t))])
        return lambda r: np.interp(r, t, cum, left=0.0, right=cum[-1]) + np.maximum(r - t[-1], 0.0)
