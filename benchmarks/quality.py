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
import time

from benchmarks.common import ALL_LAWS
from tea_verl.quality import ESTIMATOR_NAMES, measure  # noqa: F401  (measure: the math lives in the package)


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
