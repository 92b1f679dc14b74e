"""Quality benchmark: spread valuation ratio (SVR) and isotropic alignment (rho).

    python -m benchmarks.quality [--laws normal,beta25,gumbel,student5,lognormal]
                                 [--budgets 16x128,32x256,64x512,4x32,8x64,16x256]

Prints SVR (the estimator's implied spread/location gradient ratio over the truth; 1 is right,
GRPO is 0) and rho (alignment of the expected credit with the true best-of-N advantage, Monte
Carlo noise removed) per law and budget, with standard errors from independent batches of
``--groups`` prompts. The definitions and the measurement are ``tea_verl.metrics.quality``'s docstring.
One row per (law, budget), one column per estimator: grpo, grpo_passk, bon at N = m, the paper's
Gaussian tea and prefix_tea, and the GEV tea_gev and prefix_tea_gev. A Gaussian cell reads
``needs m >= 5`` where the group's upper quarter holds fewer than 2 rewards.
"""

from __future__ import annotations

import argparse
import time

from benchmarks.common import ALL_LAWS, call_registered
from tea_verl.metrics.quality import ESTIMATOR_NAMES, infeasible, measure  # noqa: F401  (measure: the math lives in the package)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--laws", default="normal,beta25,gumbel,student5,lognormal",
                    help="comma list from normal, beta25, gumbel (listed) and student5, lognormal, uniform")
    ap.add_argument("--budgets", default="16x128,32x256,64x512,4x32,8x64,16x256", help="comma list of m x N")
    ap.add_argument("--estimators", default=",".join(ESTIMATOR_NAMES))
    ap.add_argument("--groups", type=int, default=512, help="prompts per batch (pooled-fit size)")
    ap.add_argument("--samples", type=int, default=400_000, help="rewards drawn per (law, budget, estimator)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--smoothing", type=float, default=None, help="override algorithm.tea.smoothing for tea_gev")
    ap.add_argument("--norm", choices=("none", "batch", "group"), default="none",
                    help="raw credit (default), or std-normalised (norm_adv_by_std_in_grpo=True) with "
                         "algorithm.tea.std_scale=batch (the training default) or group (GRPO's convention)")
    args = ap.parse_args(argv)
    budgets = [tuple(int(v) for v in b.split("x")) for b in args.budgets.split(",")]
    ests = args.estimators.split(",")
    tea_keys = {} if args.smoothing is None else {"smoothing": args.smoothing}
    print(f"# SVR (1 is right) and rho, {args.samples} rewards each, batches of {args.groups} prompts; +- 1 s.e.; "
          f"advantages {'not normalised' if args.norm == 'none' else 'normalised by the ' + args.norm + ' std'}")
    print(f"{'law':8s} {'m':>3s} {'N':>4s}     " + " ".join(f"{e:>18s}" for e in ests))
    for lname in args.laws.split(","):
        law = ALL_LAWS[lname]
        for m, n in budgets:
            batches = max(2, args.samples // (args.groups * m))
            t0 = time.perf_counter()
            cells_svr, cells_rho = [], []
            for e in ests:
                why = infeasible(e, m)
                if why:
                    cells_svr.append(why)
                    cells_rho.append("")
                    continue
                keys = tea_keys if e == "tea_gev" else {}
                r = measure(law, m, n, e, groups=args.groups, batches=batches, seed=args.seed, tea_keys=keys,
                            norm=args.norm, credit=call_registered)  # through verl's registry, GRPO too
                cells_svr.append(f"{r['svr']:6.2f}+-{r['svr_se']:.2f}")
                cells_rho.append(f"{r['rho']:6.2f}+-{r['rho_se']:.2f}")
            print(f"{lname:8s} {m:3d} {n:4d} SVR " + " ".join(f"{c:>18s}" for c in cells_svr))
            print(f"{'':8s} {'':3s} {'':4s} rho " + " ".join(f"{c:>18s}" for c in cells_rho)
                  + f"   ({time.perf_counter() - t0:.0f}s)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
