"""Design benchmark: the measurements behind each choice documented in docs/estimators.md.

    python -m benchmarks.design [--sections basis,plugin,weights,mixture,discrete,monotone]

Sections (exact quadrature unless stated; the laws are normal, Beta(2,5), Gumbel):

* ``basis``: which scaling-law basis and which part of the best-of-k curve to fit the tail shape
  on. For each basis (GPD-exact ``Phi_xi`` of docs/method.md section 5, and the GEV law
  ``(n^xi - 1)/xi``) and fit range (k = 1..m or 2..m), xi is fitted on the law's exact curve and
  the order-1 prefix weights' SVR, ``sum_k w_k (J_k - J_1) / (J_N - J_1)``, is reported.
* ``plugin``: the rejected direct plug-in: per group, fit (a, b) of the GEV scaling law on the
  other m-1 samples (leave-one-out) and credit ``(r_i - T(max of others))_+`` where T carries
  the max of m-1 to the max of N-1 under the fitted tail. SVR by Monte Carlo (pathwise form).
* ``weights``: among weights meeting the moment constraints, SVR, rho and |w| for bon (N = m),
  prefix_tea as shipped (flat in the bulk), its earlier criterion (least |w|^2 on
  k = 2..m), least |w|^2 and least |k w|^2 on all k, and tea at several smoothing values.
* ``discrete``: binary rewards, where no GEV law fits: the credit of a success over a failure,
  estimator vs truth, and how often the top two rewards of a varied group tie.
* ``mixture``: the policy gradient direction between two response modes when one group's law
  is a mixture (the mismatch bandit's state during training): estimator vs truth for
  d/d(p_B - p_A) of J_N, with xi fitted on k >= 1 or k >= 2.
* ``bulk`` (opt-in, about 12 minutes): prefix_tea's flat quantile (rules in m) and smoothing,
  end to end at three budgets.
* ``monotone``: the largest SVR that credit which never decreases with the reward can have
  (a linear program over the weights, on the exact GEV law): below 0.85 at m = 8, N = 64; and
  the same program read as a budget, the largest N whose moment constraints such credit can meet
  from m samples.
* ``prefix_variants`` (opt-in, about 2 minutes): prefix_tea weight choices aimed at its no-regret
  shortfall, each substituted for ``prefix_tea_weights`` and run end to end at m = 8, N = 64:
  as shipped; extra constraints cancelling geometric terms ``q^(k-1)`` (the saturating
  derivative curve of a dominated mode); least ``|w|^2`` with monotone rank credit (prefix
  sums of the rank weights >= 0), with ``w_1`` (the RLOO weight) free and with ``w_1 >= 0``
  (a linear program shows it infeasible: monotone credit needs a negative RLOO weight); the
  least true credit variance in place of ``|w|^2``; order 2. Prints |w|, SVR and rho on the
  normal law, and the no-regret and mismatch bandit scores after 1000 steps.
* ``isotonic`` (opt-in, about 2 minutes): the non-linear way to monotone credit. Each group's
  GEV credit is projected onto the credits that never fall as the reward rises (isotonic
  regression on the rewards' order, ``scipy.optimize.isotonic_regression``; it keeps the group's
  credit sum), substituted for the shipped credit and measured at m = 8, N = 64 side by side with
  it: SVR and rho on the normal law, the no-regret and mismatch bandits after 1000 steps, and on
  the tiny LM's three answer kinds (``python -m benchmarks.lm --alignment``) the cosine with the
  exact best-of-64 gradient and the mean credit of invalid answers against that of valid answers
  that are not their group's best. A third row per estimator makes only the smallest such change:
  each group's lowest reward is lowered to the group's least credit where it had more.
* ``attractor`` (opt-in, about 15 seconds): on the no-regret bandit, which estimators push
  probability towards a prompt's worst mode at the uniform start (exact expected credit per
  mode), where their credit slope is negative, and how much probability the worst modes keep
  after training.
"""

from __future__ import annotations

import argparse
import functools
import math

import numpy as np
import torch
from scipy import stats

from benchmarks.common import LAWS
from tea_verl import estimators as E
from tea_verl.estimators.table import GEV
from tea_verl.metrics.curves import phi_gpd  # docs/method.md section 5: the exact GPD best-of-n basis

BUDGETS = [(4, 32), (8, 64), (16, 256)]


def phi_gev(xi: float, n) -> np.ndarray:
    return E.phi(xi, torch.as_tensor(np.asarray(n, float))).numpy()


def fit_xi(curve: np.ndarray, basis, kmin: int) -> float:
    k = np.arange(1, curve.size + 1)[kmin - 1 :]
    y = curve[kmin - 1 :]
    grid = np.arange(-1.5, 0.9001, 0.005)
    best, best_sse = 0.0, math.inf
    for xi in grid:
        X = np.vstack([np.ones(k.size), basis(xi, k)]).T
        res = y - X @ np.linalg.lstsq(X, y, rcond=None)[0]
        sse = float(res @ res)
        if sse < best_sse:
            best, best_sse = float(xi), sse
    return best


def min_norm(m: int, n: int, xi: float, basis, metric=None) -> np.ndarray:
    k = np.arange(1, m + 1)
    C = np.vstack([np.ones(m), basis(xi, k)])
    d = np.array([1.0, basis(xi, np.array([n]))[0]])
    D = np.eye(m) if metric is None else metric
    return D @ C.T @ np.linalg.solve(C @ D @ C.T, d)


def curve(law, kmax):
    return np.array([law.best_of(k) for k in range(1, kmax + 1)])


def svr_of(w, J, JN):
    return float(w @ (J - J[0]) / w.sum() / (JN - J[0]))


def section_basis():
    print("## basis: order-1 prefix SVR with xi fitted on the exact best-of-k curve (1 is right)")
    print(f"{'law':8s} {'m':>3s} {'N':>4s} {'bon_m':>6s} | {'GPD k>=1':>14s} {'GPD k>=2':>14s} | {'GEV k>=1':>14s} {'GEV k>=2':>14s}")
    for name, law in LAWS.items():
        for m, n in BUDGETS:
            J, JN = curve(law, m), law.best_of(n)
            cells = []
            for basis in (phi_gpd, phi_gev):
                for kmin in (1, 2):
                    xi = fit_xi(J, basis, kmin)
                    cells.append(f"{svr_of(min_norm(m, n, xi, basis), J, JN):5.2f} (xi {xi:+.2f})")
            bon = (J[-1] - J[0]) / (JN - J[0])
            print(f"{name:8s} {m:3d} {n:4d} {bon:6.2f} | {cells[0]:>14s} {cells[1]:>14s} | {cells[2]:>14s} {cells[3]:>14s}")


def section_plugin(samples: int = 400_000, seed: int = 0):
    print("## plugin: leave-one-out per-group plug-in TEA, SVR by Monte Carlo (+- 1 s.e.)")
    print(f"{'law':8s} {'m':>3s} {'N':>4s} {'plug-in':>14s} {'bon_m':>6s}")
    rng = np.random.default_rng(seed)
    for name, law in LAWS.items():
        for m, n in BUDGETS:
            J, JN = curve(law, m), law.best_of(n)
            xi = fit_xi(J, phi_gev, 2)
            groups = samples // m
            x = law.sample(rng, (groups, m))
            r1, others = x[:, 0], np.sort(x[:, 1:], axis=1)
            k = np.arange(1, m)
            curves = others @ E.exact.best_of_k_table(m - 1).numpy().T  # (G, m-1) exact best-of-k of the others
            X = np.vstack([np.ones(m - 1), phi_gev(xi, k)]).T
            a, b = np.linalg.lstsq(X, curves.T, rcond=None)[0]
            lam = ((n - 1) / (m - 1)) ** xi
            mx = others[:, -1]
            shift = (lam - 1) * (mx - a) + b * (math.log((n - 1) / (m - 1)) if abs(xi) < 1e-12 else (lam - 1) / xi)
            d = (r1 > mx + shift).astype(float)  # pathwise derivative of (r1 - T)_+
            num, den = d * (r1 - law.mean), d
            ratio = num.sum() / den.sum()
            chunks = np.array_split(np.arange(groups), 20)
            resid = np.array([np.sum(num[c] - ratio * den[c]) for c in chunks])
            se = resid.std(ddof=1) * math.sqrt(len(chunks)) / den.sum() / (JN - J[0])
            print(f"{name:8s} {m:3d} {n:4d} {ratio / (JN - J[0]):7.2f} +- {se:4.2f} {(J[-1] - J[0]) / (JN - J[0]):6.2f}")


def _g_matrix(law, ks, nodes=200_000):
    """g_k(r) (up to constants) on quantile nodes of the law, for correlation under F."""
    u = (np.arange(nodes) + 0.5) / nodes
    r = law.dist.ppf(u)
    return r, np.array([law.advantage_fn(k)(r) for k in ks])


def section_weights(smoothings=(1e-4, 1e-3, 1e-2)):
    print("## weights: SVR / rho / |w| at the xi fitted as the estimator does (k >= 2)")
    labels = ["bon_m", "prefix_tea_gev", "k>=2, |w|", "all k, |w|", "all k, |kw|"] + [f"tea_gev s={s:g}" for s in smoothings]
    print(f"{'law':8s} {'m':>3s} {'N':>4s} " + " ".join(f"{lab:>17s}" for lab in labels))
    for name, law in LAWS.items():
        for m, n in BUDGETS:
            J, JN = curve(law, m), law.best_of(n)
            xi = round(fit_xi(J, phi_gev, 2) / E.SHAPE_GRID_STEP) * E.SHAPE_GRID_STEP
            k = np.arange(1, m + 1)
            ws = [np.eye(m)[-1], E.prefix_tea_weights(m, n, xi).numpy(), least_norm_k2(m, n, xi).numpy(),
                  min_norm(m, n, xi, phi_gev),
                  min_norm(m, n, xi, phi_gev, np.diag(1.0 / k**2))]
            ws += [E.tea_weights(m, n, xi, s).numpy() for s in smoothings]
            r, G = _g_matrix(law, list(k) + [n])
            cells = []
            for w in ws:
                chat = (k * w) @ G[:m]
                rho = np.corrcoef(chat, G[m])[0, 1]
                cells.append(f"{svr_of(w, J, JN):4.2f}/{rho:4.2f}/{np.linalg.norm(w):5.1f}")
            print(f"{name:8s} {m:3d} {n:4d} " + " ".join(f"{c:>17s}" for c in cells))


def section_mixture():
    print("## mixture: d/d(p_B - p_A) of J_N, truth vs estimators (xi fitted on the mixture's exact curve)")
    mu = np.array([0.0, -0.8, -1.5, -1.2])
    sd = np.array([0.5, 1.0, 0.5, 0.3])
    t = np.linspace(-6, 6, 60001)
    dt = t[1] - t[0]
    dens = [stats.norm.pdf(t, mu[j], sd[j]) * dt for j in range(4)]
    print(f"{'m':>3s} {'N':>4s} {'p_A':>5s} {'p_B':>5s} {'truth':>7s} {'bon_m':>7s} | {'k>=1: prefix':>12s} {'tea':>7s} | {'k>=2: prefix':>12s} {'tea':>7s}")
    for m, n in [(4, 32), (8, 64)]:
        for pa in (0.25, 0.5, 0.7, 0.95):
            p = np.array([pa, 0.95 - pa, 0.025, 0.025])
            F = sum(p[j] * stats.norm.cdf(t, mu[j], sd[j]) for j in range(4))

            def g(kk):
                h = 1 - F ** (kk - 1)
                tail = np.concatenate([np.cumsum((0.5 * (h[1:] + h[:-1]) * dt)[::-1])[::-1], [0.0]])
                return t + tail

            k = np.arange(1, m + 1)
            G = np.array([g(kk) for kk in k])
            J = np.array([np.sum(t * np.gradient(F**kk, t)) * dt for kk in k])

            def diff(h):
                return float(np.sum(h * dens[1]) - np.sum(h * dens[0]))

            cells = [n * diff(g(n)), diff(m * G[-1])]
            for kmin in (1, 2):
                xi = round(fit_xi(J, phi_gev, kmin) / E.SHAPE_GRID_STEP) * E.SHAPE_GRID_STEP
                for w in (E.prefix_tea_weights(m, n, xi), E.tea_weights(m, n, xi)):
                    cells.append(diff((k * w.numpy()) @ G))
            print(f"{m:3d} {n:4d} {pa:5.2f} {0.95 - pa:5.2f} {cells[0]:+7.3f} {cells[1]:+7.3f} | "
                  f"{cells[2]:+12.3f} {cells[3]:+7.3f} | {cells[4]:+12.3f} {cells[5]:+7.3f}")


def section_discrete():
    print("## discrete: binary (pass/fail) rewards, success-minus-failure credit, truth N (1-p)^(N-1)")
    print("   (xi fitted on the exact Bernoulli best-of-k curve as the estimator would; tie = P(top two tie | varied group))")
    print(f"{'m':>3s} {'N':>4s} {'p':>5s} {'xi':>6s} {'tie':>5s} {'truth':>9s} {'bon_m':>7s} {'prefix':>8s} {'tea':>8s}")
    for m, n in BUDGETS:
        k = np.arange(1, m + 1)
        for p in (0.01, 0.05, 0.1, 0.2, 0.3, 0.5, 0.8):
            J = 1 - (1 - p) ** k
            xi, _ = E.fit_tail_shape(torch.tensor(J), kmin=2)
            varied = 1 - p**m - (1 - p) ** m
            one = m * p * (1 - p) ** (m - 1)  # exactly one success: the only varied case without a top tie
            tie = (varied - one) / varied
            cells = [float((k * w.numpy() * (1 - p) ** (k - 1)).sum())
                     for w in (E.prefix_tea_weights(m, n, xi), E.tea_weights(m, n, xi))]
            print(f"{m:3d} {n:4d} {p:5.2f} {xi:+6.2f} {tie:5.2f} {n * (1 - p) ** (n - 1):9.2e} "
                  f"{m * (1 - p) ** (m - 1):7.3f} {cells[0]:+8.3f} {cells[1]:+8.3f}")


def _geometric_weights(qs):
    def weights(m, n, xi, order=1, rho=-1.0, smoothing=None):  # smoothing: unused
        if n <= m:
            return ORIGINAL_PREFIX_WEIGHTS(m, n, xi, order, rho)
        C, d = E.gev.constraints(m, n, xi, order, rho)
        k = torch.arange(1, m + 1, dtype=torch.float64)
        C = torch.cat([C] + [(q ** (k - 1))[None, :] for q in qs])
        d = torch.cat([d] + [torch.tensor([q ** (n - 1)], dtype=torch.float64) for q in qs])
        w = torch.zeros(m, dtype=torch.float64)
        sub = C[:, 1:]
        w[1:] = sub.T @ torch.linalg.solve(sub @ sub.T, d)
        return w

    return weights


def _monotone_weights(w1_free: bool):
    from scipy.optimize import linprog, minimize

    def weights(m, n, xi, order=1, rho=-1.0, smoothing=None):  # smoothing: unused
        if n <= m:
            return ORIGINAL_PREFIX_WEIGHTS(m, n, xi, order, rho)
        C, d = (t.numpy() for t in E.gev.constraints(m, n, xi, order, rho))
        cols = [E.prefix_to_rank_weights(torch.eye(m, dtype=torch.float64)[k])[0] for k in range(m)]
        P = np.tril(np.ones((m - 1, m - 1))) @ torch.stack(cols, 1).numpy()  # prefix sums of omega
        bounds = [(None, None) if w1_free else (0.0, None)] + [(None, None)] * (m - 1)
        lp = linprog(np.zeros(m), A_ub=-P, b_ub=np.zeros(m - 1), A_eq=C, b_eq=d, bounds=bounds)
        if lp.status == 2:
            raise ValueError("infeasible (linear program): no moment-cancelling weights with w_1 >= 0 give monotone credit")
        r = minimize(lambda w: w @ w, ORIGINAL_PREFIX_WEIGHTS(m, n, xi, order, rho).numpy(), jac=lambda w: 2 * w,
                     constraints=[{"type": "eq", "fun": lambda w: C @ w - d, "jac": lambda w: C},
                                  {"type": "ineq", "fun": lambda w: P @ w, "jac": lambda w: P}],
                     bounds=bounds, method="SLSQP", options={"maxiter": 500, "ftol": 1e-14})
        if not r.success:
            raise ValueError(f"infeasible: {r.message}")
        return torch.tensor(r.x, dtype=torch.float64)

    return weights


@functools.cache
def _credit_covariance(m: int, xi: float, groups: int = 20_000) -> torch.Tensor:
    """Covariance (m, m) of the per-sample credits ``k c^(k)``, k = 1..m, under standard GEV(xi):
    Monte Carlo over ``groups`` groups of m with a fixed seed (the true variance of any weighted
    combination ``sum_k w_k k c^(k)`` is ``w' S w``)."""
    gen = torch.Generator().manual_seed(0)
    y = -torch.log(-torch.log(torch.rand(groups, m, dtype=torch.float64, generator=gen)))
    x = y if abs(xi) < 1e-12 else torch.expm1(xi * y) / xi
    layout = E.group_layout(torch.arange(groups).repeat_interleave(m))
    padded = layout.pad(x.reshape(-1))
    cols = []
    for k in range(m):
        omega, gamma = E.prefix_to_rank_weights(torch.eye(m, dtype=torch.float64)[k])
        credit = E.rank_credit(padded, layout, omega.expand(groups, -1), torch.full((groups,), gamma, dtype=torch.float64))
        cols.append(credit.reshape(-1))
    X = torch.stack(cols, 1)
    X = X - X.mean(0)
    return X.T @ X / X.shape[0]


def _variance_weights(all_k: bool):
    """Least true credit variance ``w' S w`` (S from :func:`_credit_covariance`) subject to the
    moment constraints, on k = 2..m or on all k."""
    def weights(m, n, xi, order=1, rho=-1.0, smoothing=None):  # smoothing: unused
        if n <= m:
            return ORIGINAL_PREFIX_WEIGHTS(m, n, xi, order, rho)
        C, d = E.gev.constraints(m, n, xi, order, rho)
        first = 0 if all_k else 1
        S = _credit_covariance(m, round(float(xi), 3))[first:, first:]
        C = C[:, first:]
        q = C.shape[0]
        kkt = torch.zeros(m - first + q, m - first + q, dtype=torch.float64)
        kkt[: m - first, : m - first] = S
        kkt[: m - first, m - first :] = C.T
        kkt[m - first :, : m - first] = C
        rhs = torch.cat([torch.zeros(m - first, dtype=torch.float64), d])
        w = torch.zeros(m, dtype=torch.float64)
        w[first:] = torch.linalg.solve(kkt, rhs)[: m - first]
        return w

    return weights


def _order2_weights(rho: float, base=None):
    def weights(m, n, xi, order=1, rho_=-1.0, smoothing=1e-3):
        return ORIGINAL_PREFIX_WEIGHTS(m, n, xi, 2, rho, smoothing) if base is None else base(m, n, xi, 2, rho)

    return weights


def least_norm_k2(m: int, n: int, xi: float, order: int = 1, rho: float = -1.0, smoothing=None) -> torch.Tensor:
    """prefix_tea's earlier criterion: least ``|w|^2`` subject to the moment constraints on the
    orders k = 2..m (``w_1 = 0``; all k when k = 2..m cannot meet them)."""
    if n <= m:
        return torch.eye(m, dtype=torch.float64)[n - 1]
    C, d = E.gev.constraints(m, n, xi, order, rho)
    first = 1 if m - 1 > order else 0
    w = torch.zeros(m, dtype=torch.float64)
    w[first:] = C[:, first:].T @ torch.linalg.solve(C[:, first:] @ C[:, first:].T, d)
    return w


ORIGINAL_PREFIX_WEIGHTS = E.prefix_tea_weights
ORIGINAL_RANK_CREDIT = E.rank_credit


def _normal_and_bandits(estimator: str, m: int, n: int) -> tuple[dict, dict]:
    """The end-to-end measurements of a weight or credit variant: SVR and rho on the normal law
    (40 batches of 512 prompts), and the no-regret ("random") and mismatch bandit scores after
    1000 steps (3 seeds, 96 prompts)."""
    from benchmarks.bandit import run
    from tea_verl.metrics.quality import measure

    r = measure(LAWS["normal"], m, n, estimator, groups=512, batches=40, seed=0)
    scores = {}
    for task in ("random", "mismatch"):
        res = run(task, m, n, [estimator], 3, 96, [1000], 0.05, progress=False)
        scores[task] = float(np.mean(res[estimator][0]))
    return r, scores


def section_prefix_variants(m: int = 8, n: int = 64):
    import verl  # noqa: F401

    variants = {
        "shipped (flat in the bulk)": ORIGINAL_PREFIX_WEIGHTS,
        "shipped, order 2, rho = -1": _order2_weights(-1.0),
        "shipped, order 2, rho = -2": _order2_weights(-2.0),
        "least |w|^2, k >= 2 (earlier)": least_norm_k2,
        "  order 2, rho = -1": _order2_weights(-1.0, least_norm_k2),
        "  order 2, rho = -2": _order2_weights(-2.0, least_norm_k2),
        "+ cancel q^(k-1), q = 0.5": _geometric_weights([0.5]),
        "+ cancel q^(k-1), q = 0.75": _geometric_weights([0.75]),
        "+ cancel q = 0.5 and 0.8": _geometric_weights([0.5, 0.8]),
        "monotone credit, w_1 free": _monotone_weights(True),
        "monotone credit, w_1 >= 0": _monotone_weights(False),
        "least true variance, k >= 2": _variance_weights(False),
        "least true variance, all k": _variance_weights(True),
    }
    print(f"## prefix_variants: m = {m}, N = {n}; SVR/rho on normal; bandits after 1000 steps (3 seeds)")
    print(f"{'variant':32s} {'|w|':>7s} {'w_1':>7s} {'SVR':>6s} {'rho':>6s} {'no regret':>10s} {'mismatch':>9s}")
    try:
        for name, fn in variants.items():
            try:
                w = fn(m, n, 0.0)
            except ValueError as exc:
                print(f"{name:32s} {str(exc)}")
                continue
            E.prefix_tea_weights = functools.lru_cache(maxsize=256)(fn)
            r, scores = _normal_and_bandits("prefix_tea_gev", m, n)
            print(f"{name:32s} {float(w.norm()):7.2f} {float(w[0]):7.2f} {r['svr']:6.2f} {r['rho']:6.2f} "
                  f"{scores['random']:10.3f} {scores['mismatch']:9.3f}", flush=True)
    finally:
        E.prefix_tea_weights = ORIGINAL_PREFIX_WEIGHTS


BULK_RULES = {
    "(m-1)/(m+1)": lambda m: (m - 1) / (m + 1),  # shipped: the second-largest sample's quantile
    "1/2": lambda m: 0.5,
    "(m-2)/(m+1)": lambda m: (m - 2) / (m + 1),
    "m/(m+1)": lambda m: m / (m + 1),
}


def section_bulk(budgets=((8, 64), (4, 32), (16, 256))):
    """prefix_tea's two settings: the quantile below which its credit is kept flat (rules in m)
    and the smoothing (weight of |w|^2). SVR/rho on the normal law, |w| at the xi fitted on it,
    and the no-regret (gain, and its multiple of bon_m's paired by seed) and mismatch bandits
    after 1000 steps (3 seeds), per budget."""
    import verl  # noqa: F401

    from benchmarks.bandit import run
    from tea_verl.metrics.quality import measure

    configs = [(rule, 1e-3) for rule in BULK_RULES] + [("(m-1)/(m+1)", 1e-4), ("(m-1)/(m+1)", 1e-2)]
    print("## bulk: prefix_tea's flat quantile q and smoothing; SVR/rho on normal; bandits after 1000 steps (3 seeds)")
    print(f"{'m':>3s} {'N':>4s} {'rule':>12s} {'q':>5s} {'smoothing':>9s} {'|w|':>6s} {'SVR':>5s} {'rho':>5s} "
          f"{'no regret':>9s} {'x bon_m':>15s} {'mismatch':>8s}")
    shipped = E.bulk_quantile
    try:
        for m, n in budgets:
            xi = round(fit_xi(curve(LAWS["normal"], m), phi_gev, 2) / E.SHAPE_GRID_STEP) * E.SHAPE_GRID_STEP
            res = {t: run(t, m, n, ["bon_m"], 3, 96, [1000], 0.05, progress=False)["bon_m"][0] for t in ("random", "mismatch")}
            ref = np.asarray(res["random"])[:, -1]
            print(f"{m:3d} {n:4d} {'bon_m':>12s} {'':>5s} {'':>9s} {1.0:6.2f} {'':>5s} {'':>5s} {ref.mean():9.3f} "
                  f"{'':>15s} {np.mean(res['mismatch']):8.3f}")
            for rule, s in configs:
                E.bulk_quantile = BULK_RULES[rule]
                E.prefix_tea_weights.cache_clear()
                w = E.prefix_tea_weights(m, n, xi, smoothing=s)
                r = measure(LAWS["normal"], m, n, "prefix_tea_gev", groups=512, batches=20, seed=0, tea_keys={"smoothing": s})
                est = f"prefix_tea_gev@{s}"
                gain = np.asarray(run("random", m, n, [est], 3, 96, [1000], 0.05, progress=False)[est][0])[:, -1]
                mis = float(np.mean(run("mismatch", m, n, [est], 3, 96, [1000], 0.05, progress=False)[est][0]))
                ratio = gain / ref
                print(f"{m:3d} {n:4d} {rule:>12s} {BULK_RULES[rule](m):5.2f} {s:9.0e} {float(w.norm()):6.2f} {r['svr']:5.2f} "
                      f"{r['rho']:5.2f} {gain.mean():9.3f} {ratio.mean():6.3f} +- {np.std(ratio, ddof=1) / math.sqrt(3):5.3f} "
                      f"{mis:8.3f}", flush=True)
    finally:
        E.bulk_quantile = shipped
        E.prefix_tea_weights.cache_clear()


def monotone_svr_ceiling(m: int, n: int, xi: float, grid: int = 2001) -> float:
    """The largest ``sum_k w_k phi(k) / phi(N)`` (the SVR of weights ``w`` on an exact GEV(xi) law,
    ``phi(1) = 0``) over weights with ``sum_k w_k = 1`` whose expected credit never decreases with
    the reward: ``P(u) = sum_k k w_k u^(k-1) >= 0`` on [0, 1] (a linear program on a grid)."""
    from scipy.optimize import linprog

    u = np.linspace(0.0, 1.0, grid)
    k = np.arange(1, m + 1)
    A = k[None, :] * u[:, None] ** (k[None, :] - 1)
    lp = linprog(-phi_gev(xi, k), A_ub=-A, b_ub=np.zeros(u.size), A_eq=np.ones((1, m)), b_eq=[1.0],
                 bounds=[(None, None)] * m)
    if lp.status != 0:
        raise RuntimeError(f"linear program failed: {lp.message}")
    return float(-lp.fun / phi_gev(xi, [n])[0])


def monotone_reach(m: int, xi: float, grid: int = 2001) -> float:
    """The largest budget N whose moment constraints, on an exact GEV(xi) law, can be met by
    weights whose m-sample credit never decreases with the reward: the N with ``phi_xi(N)`` equal
    to the linear program's largest ``sum_k w_k phi_xi(k)`` (:func:`monotone_svr_ceiling` times
    ``phi_xi(N)``, for any N it is given). At least m (``bon`` at N = m is such credit). The grid
    only relaxes ``P >= 0``, so the value is an upper bound, up to the solver's tolerance; inf
    when the program's value is beyond the law's bounded best-of-n curve (xi < 0)."""
    top = monotone_svr_ceiling(m, m, xi, grid) * float(phi_gev(xi, [m])[0])
    if abs(xi) < 1e-12:
        return math.exp(top)
    base = 1.0 + xi * top
    return math.inf if base <= 0 else base ** (1.0 / xi)


def section_monotone(shapes=(0.0, -0.2, -0.4), reach_shapes=(0.5, 0.0, -0.2, -0.4), reach_m=(4, 8, 16, 32)):
    print("## monotone: largest SVR of m-sample credit that never decreases with the reward (exact GEV law)")
    print(f"{'m':>3s} {'N':>4s} " + " ".join(f"{'xi=' + format(x, '+.1f'):>9s}" for x in shapes) + f" {'bon_m at xi=0':>14s}")
    for m, n in BUDGETS:
        cells = [monotone_svr_ceiling(m, n, xi) for xi in shapes]
        bon = float(phi_gev(0.0, [m])[0] / phi_gev(0.0, [n])[0])
        print(f"{m:3d} {n:4d} " + " ".join(f"{c:9.2f}" for c in cells) + f" {bon:14.2f}")
    print("# the same linear program as a budget: the largest N whose moment constraints such credit can meet")
    print(f"{'m':>3s} " + " ".join(f"{'xi=' + format(x, '+.1f'):>9s}" for x in reach_shapes) + f" {'m^2':>6s}")
    for m in reach_m:
        print(f"{m:3d} " + " ".join(f"{monotone_reach(m, xi):9.1f}" for xi in reach_shapes) + f" {m * m:6d}")


def _mode_credit(pi: np.ndarray, mu: np.ndarray, sd: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Expected credit of a sample of each normal mode minus the policy's mean credit (the sign of
    the expected softmax gradient of each mode), for prefix weights ``w``: the conditional mean of
    ``sum_k w_k k c^(k)`` is ``int_{-inf}^r P(F(t)) dt`` with ``P(u) = sum_k k w_k u^(k-1)`` and F
    the mixture CDF (up to a constant)."""
    t = np.linspace(mu.min() - 8 * sd.max(), mu.max() + 8 * sd.max(), 8001)
    z = (t[None, :] - mu[:, None]) / sd[:, None]
    Fj, fj = stats.norm.cdf(z), stats.norm.pdf(z) / sd[:, None]
    k = np.arange(1, w.size + 1)
    P = (k * w * (pi @ Fj)[:, None] ** (k - 1)).sum(1)
    credit = np.concatenate([[0.0], np.cumsum(0.5 * (P[1:] + P[:-1]) * np.diff(t))])
    per_mode = np.trapezoid(fj * credit[None, :], t, axis=1)
    return per_mode - pi @ per_mode


def section_attractor(m: int = 8, n: int = 64, seed: int = 0, steps: int = 1000):
    """Why prefix_tea misses the no-regret target: which estimators push probability towards the
    worst mode (lowest best-of-N value) at the uniform start, and where training ends."""
    import verl  # noqa: F401

    from tea_verl.experiments.bandit import best_of_mixture, make_task, score, train

    task = make_task("random", 96, np.random.default_rng(1000 + seed), m, n)
    P, K = task.mu.shape
    uniform = np.full((P, K), 1.0 / K)
    curves = np.stack([best_of_mixture(uniform, task.mu, task.sd, k) for k in range(1, m + 1)], 1)
    xi, _ = E.fit_tail_shape(torch.tensor((curves - curves[:, :1]).sum(0)), kmin=2)
    pure_n = np.stack([best_of_mixture(np.repeat(np.eye(K)[j : j + 1], P, 0), task.mu, task.sd, n) for j in range(K)], 1)
    worst = np.argmin(pure_n, 1)
    weights = {
        "truth (N rollouts)": np.eye(n)[n - 1],
        "bon_m": np.eye(m)[m - 1],
        **{name: weights_fn(m, n, xi).numpy() for name, weights_fn in zip(GEV, (E.tea_weights, E.prefix_tea_weights))},
        "least |w|^2, k >= 2": least_norm_k2(m, n, xi).numpy(),  # prefix_tea's earlier criterion
    }
    print(f"## attractor: random bandit (seed {seed}), m = {m}, N = {n}; xi = {xi:+.3f} fitted on the uniform mixtures' exact curves")
    print("   pushed: prompts (of 96) whose worst mode (lowest best-of-N value) gets positive expected credit at the uniform start;")
    print(f"   after {steps} Adam steps: mean probability on the worst mode, prompts with more than 10 % on it, best-of-N gain")
    print("   P < 0: the quantiles u where the credit slope P(u) = sum_k k w_k u^(k-1) is negative (credit falls as the reward rises)")
    q = E.bulk_quantile(m)
    print(f"   rms P: the root mean square of P(u) over u < {q:.2f}, prefix_tea's flat quantile at m = {m} (its mean over [0, 1] is 1)")
    print(f"{'estimator':20s} {'P < 0':>20s} {'rms P':>6s} {'pushed':>7s} {'p(worst)':>9s} {'>10 %':>6s} {'gain':>7s}")
    u = np.linspace(0.0, 1.0, 2001)
    for name, w in weights.items():
        k = np.arange(1, w.size + 1)
        slope = (k * w * u[:, None] ** (k - 1)).sum(1)
        neg = np.concatenate([[False], slope < 0, [False]])
        edges = np.flatnonzero(np.diff(neg.astype(int)))  # starts and ends of the negative runs
        lobe = ",".join(f"{u[a]:.2f}-{u[b - 1]:.2f}" for a, b in zip(edges[::2], edges[1::2])) or "none"
        rms = math.sqrt(float(np.mean(slope[u < q] ** 2)))
        pushed = sum(int(_mode_credit(uniform[p], task.mu[p], task.sd[p], w)[worst[p]] > 0) for p in range(P))
        if name.startswith("truth"):
            print(f"{name:20s} {lobe:>20s} {rms:6.3f} {pushed:7d}")
            continue
        if name.startswith("least"):
            E.prefix_tea_weights = functools.lru_cache(maxsize=256)(least_norm_k2)
            try:
                pi = train(task, "prefix_tea_gev", m, n, steps, 0.05, seed)
            finally:
                E.prefix_tea_weights = ORIGINAL_PREFIX_WEIGHTS
        else:
            pi = train(task, name, m, n, steps, 0.05, seed)
        on_worst = pi[np.arange(P), worst]
        print(f"{name:20s} {lobe:>20s} {rms:6.3f} {pushed:7d} {on_worst.mean():9.3f} {int((on_worst > 0.1).sum()):6d} "
              f"{score(task, pi, n):7.3f}", flush=True)


def isotonic_rank_credit(padded, layout, omega, gamma):
    """``E.rank_credit``, then each group's credit projected onto the non-decreasing functions of
    its rewards (least squares; equal rewards keep equal credit, the group's credit sum is kept)."""
    from scipy.optimize import isotonic_regression

    credit = ORIGINAL_RANK_CREDIT(padded, layout, omega, gamma)
    out = credit.clone()
    x, c = padded.cpu().numpy(), credit.cpu().numpy()
    for g, m in enumerate(layout.sizes.tolist()):
        if m < 2:
            continue
        order = np.argsort(x[g, :m], kind="stable")
        fit = np.empty(m)
        fit[order] = isotonic_regression(c[g, :m][order]).x
        out[g, :m] = torch.from_numpy(fit)
    return out


def bottom_least_rank_credit(padded, layout, omega, gamma):
    """``E.rank_credit``, then each group's lowest reward (all samples tied at it) lowered to the
    least credit of the group's other samples where it had more: the smallest change that ranks
    the bottom of a group last. Nothing else moves, so the group's credit sum falls by what was
    taken."""
    credit = ORIGINAL_RANK_CREDIT(padded, layout, omega, gamma)
    inf = torch.full_like(padded, math.inf)
    low = torch.where(layout.mask, padded, inf).amin(1, keepdim=True)
    bottom = layout.mask & (padded == low)
    others = torch.where(layout.mask & ~bottom, credit, inf).amin(1, keepdim=True)  # inf: a constant group
    return torch.where(bottom, torch.minimum(credit, others), credit)


def section_isotonic(m: int = 8, n: int = 64):
    import verl  # noqa: F401

    from benchmarks.lm import POINTS, credit_by_rank, exact_gradient, expected_gradient

    print(f"## isotonic: m = {m}, N = {n}; the GEV credit as shipped, projected onto monotone credit per group, and "
          "with only each group's bottom lowered to the group's least credit; "
          "SVR/rho on normal; bandits after 1000 steps (3 seeds); on the LM's answer kinds, the cosine with the "
          f"exact best-of-{n} gradient at P(A, B, invalid) = " + ", ".join(f"({a}, {b}, {c})" for a, b, c in POINTS)
          + f", and the mean credit of invalid answers / of valid answers not their group's best at {POINTS[1]}")
    print(f"{'estimator':15s} {'credit':9s} {'SVR':>5s} {'rho':>5s} {'no regret':>10s} {'mismatch':>9s} "
          f"{'LM cosines':>20s} {'invalid / valid':>16s}")
    truths = [exact_gradient(np.asarray(p), n) for p in POINTS]
    try:
        for est in GEV:
            for variant, fn in (("shipped", ORIGINAL_RANK_CREDIT), ("isotonic", isotonic_rank_credit),
                                ("bottom", bottom_least_rank_credit)):
                E.rank_credit = fn
                r, scores = _normal_and_bandits(est, m, n)
                cosines = []
                for p, truth in zip(POINTS, truths):
                    g = expected_gradient(np.asarray(p), est, m, n, 100, 64, 0)
                    cosines.append(float(g @ truth / np.linalg.norm(g) / np.linalg.norm(truth)))
                _, invalid, valid = credit_by_rank(np.asarray(POINTS[1]), est, m, n, 100, 0)
                print(f"{est:15s} {variant:9s} {r['svr']:5.2f} {r['rho']:5.2f} {scores['random']:10.3f} "
                      f"{scores['mismatch']:9.3f} {' '.join(f'{c:+.2f}' for c in cosines):>20s} "
                      f"{invalid:+7.2f} / {valid:+.2f}", flush=True)
    finally:
        E.rank_credit = ORIGINAL_RANK_CREDIT


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sections", default="basis,plugin,weights,mixture,discrete,monotone",
                    help="comma list; prefix_variants (about 2 minutes), bulk (about 12 minutes), isotonic (about 2 minutes) "
                         "and attractor (about 15 seconds) run only when named")
    args = ap.parse_args(argv)
    for s in args.sections.split(","):
        {"basis": section_basis, "plugin": section_plugin, "weights": section_weights,
         "mixture": section_mixture, "discrete": section_discrete, "prefix_variants": section_prefix_variants,
         "attractor": section_attractor, "isotonic": section_isotonic, "monotone": section_monotone, "bulk": section_bulk}[s]()
        print(flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
