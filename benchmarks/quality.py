"""Quality benchmark: spread valuation ratio (SVR) and isotropic alignment (rho).

    python -m benchmarks.quality [--laws normal,beta25,gumbel] [--budgets 4x32,8x64,16x256]

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

Every batch holds ``--groups`` prompts (a realistic verl batch), so the pooled tail-shape fit of
tea/prefix_tea sees what it would see in training. Advantages are not std-normalised here
(``norm_adv_by_std_in_grpo=False``): SVR and rho are properties of the credit itself.
Standard errors come from independent batches.
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch

from benchmarks.common import ALL_LAWS, ESTIMATOR_NAMES, call_registered, resolve


def measure(law, m: int, n: int, estimator: str, *, groups: int, batches: int, seed: int, tea_keys=None,
            norm: str = "none"):
    """Return dict(svr, svr_se, rho, rho_se) for one estimator on one law and budget.

    ``norm``: "none" (raw credit), "batch" or "group" (norm_adv_by_std_in_grpo=True with that
    algorithm.tea.std_scale; verl's GRPO estimators always normalise per group).
    """
    import verl  # noqa: F401  (loads the tea-verl plugin through the entry point)

    tea_keys = dict(tea_keys or {})
    if norm != "none":
        tea_keys["std_scale"] = norm
    norm_flag = norm != "none"
    reg, n_arg = resolve(estimator, m, n)
    rng = np.random.default_rng(seed)
    target = law.best_of(n) - law.best_of(1)
    adv_n = law.advantage_fn(n)
    mean = law.mean
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
        c = call_registered(reg, xs, uids, n_arg, norm_flag, **tea_keys).double().numpy()
        xp, xm = xs.clone(), xs.clone()
        xp[first] += h
        xm[first] -= h
        cp = call_registered(reg, xp, uids, n_arg, norm_flag, **tea_keys).double().numpy()[first.numpy()]
        cm = call_registered(reg, xm, uids, n_arg, norm_flag, **tea_keys).double().numpy()[first.numpy()]
        d = (cp - cm) / (2 * h)
        r1 = x[first.numpy()]
        num.append(np.sum(d * (r1 - mean)))
        den.append(np.sum(d))
        u = np.clip(law.dist.cdf(x), 1e-300, 1 - 1e-16)
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


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--laws", default="normal,beta25,gumbel",
                    help="comma list from normal, beta25, gumbel (listed) and student5, lognormal, uniform")
    ap.add_argument("--budgets", default="4x32,8x64,16x256", help="comma list of m x N")
    ap.add_argument("--estimators", default=",".join(ESTIMATOR_NAMES))
    ap.add_argument("--groups", type=int, default=512, help="prompts per batch (pooled-fit size)")
    ap.add_argument("--samples", type=int, default=400_000, help="rewards drawn per (law, budget, estimator)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--smoothing", type=float, default=None, help="override algorithm.tea.smoothing for tea")
    ap.add_argument("--norm", choices=("none", "batch", "group"), default="none",
                    help="raw credit (default), or std-normalised (norm_adv_by_std_in_grpo=True) with "
                         "algorithm.tea.std_scale=batch (the training default) or group (GRPO's convention)")
    args = ap.parse_args(argv)
    budgets = [tuple(int(v) for v in b.split("x")) for b in args.budgets.split(",")]
    ests = args.estimators.split(",")
    tea_keys = {} if args.smoothing is None else {"smoothing": args.smoothing}
    print(f"# SVR (1 is right) and rho, {args.samples} rewards each, batches of {args.groups} prompts; +- 1 s.e.; "
          f"advantages {'not normalised' if args.norm == 'none' else 'normalised by the ' + args.norm + ' std'}")
    print(f"{'law':8s} {'m':>3s} {'N':>4s} " + " ".join(f"{e:>22s}" for e in ests))
    for lname in args.laws.split(","):
        law = ALL_LAWS[lname]
        for m, n in budgets:
            batches = max(2, args.samples // (args.groups * m))
            t0 = time.perf_counter()
            cells_svr, cells_rho = [], []
            for e in ests:
                keys = tea_keys if e == "tea" else {}
                r = measure(law, m, n, e, groups=args.groups, batches=batches, seed=args.seed, tea_keys=keys,
                            norm=args.norm)
                cells_svr.append(f"{r['svr']:6.2f}+-{r['svr_se']:.2f}")
                cells_rho.append(f"{r['rho']:6.2f}+-{r['rho_se']:.2f}")
            print(f"{lname:8s} {m:3d} {n:4d} SVR " + " ".join(f"{c:>18s}" for c in cells_svr))
            print(f"{'':8s} {'':3s} {'':4s} rho " + " ".join(f"{c:>18s}" for c in cells_rho)
                  + f"   ({time.perf_counter() - t0:.0f}s)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
