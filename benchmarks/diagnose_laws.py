"""``tea-verl diagnose`` on samples from known laws: shape recovery and the recommended settings'
SVR on the true law.

    python -m benchmarks.diagnose_laws

For each law: 200 prompts x 64 samples, every prompt with its own location and scale. Printed:
the effective tail shape the estimators' fit targets (their GEV-basis fit to the law's exact
best-of-k curve, k <= 64), diagnose's estimate with its 95% interval and sign, the recommended
setting, its SVR and rho on the empirical law (what diagnose saw) and its SVR on the true law.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from benchmarks.common import ALL_LAWS
from tea_verl.estimators import fit_tail_shape
from tea_verl.metrics.diagnose import diagnose
from tea_verl.metrics.quality import measure
from tea_verl.metrics.samples import Samples


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--laws", default="normal,beta25,gumbel,student5,lognormal,uniform")
    ap.add_argument("--m", type=int, default=8)
    ap.add_argument("--N", type=int, default=64)
    ap.add_argument("--prompts", type=int, default=200)
    ap.add_argument("--n", type=int, default=64)
    a = ap.parse_args(argv)
    import verl  # noqa: F401

    print(f"# diagnose on {a.prompts} prompts x {a.n} samples per law, m = {a.m}, N = {a.N}")
    print(f"{'law':10s} {'xi (target)':>11s} {'xi [95% CI]':>24s} {'sign':>9s}  {'recommended':28s} "
          f"{'SVR (emp.)':>10s} {'rho (emp.)':>10s} {'SVR (true)':>14s}")
    for name in a.laws.split(","):
        law = ALL_LAWS[name]
        rng = np.random.default_rng(11)
        x = law.sample(rng, (a.prompts, a.n)) * np.exp(rng.normal(0, 0.3, (a.prompts, 1))) + rng.normal(0, 1, (a.prompts, 1))
        P, n = x.shape
        s = Samples(["d"] * (P * n), [f"p{i // n}" for i in range(P * n)], x.reshape(-1), [None] * (P * n), origin=name)
        d = diagnose(s, a.m, a.N, seed=0)
        J = np.array([law.best_of(k) for k in range(1, a.n + 1)])
        xi_eff = fit_tail_shape(torch.from_numpy(J - J[0]), (-1.0, 0.5), kmin=2)[0]
        rec = d.recommendation
        true = measure(law, a.m, a.N, rec.estimator, groups=256, batches=80, seed=5, tea_keys=rec.keys)
        lo, hi = d.xi_ci
        print(f"{name:10s} {xi_eff:>+11.3f} {f'{d.xi:+.3f} [{lo:+.3f}, {hi:+.3f}]':>24s} {d.shape_sign:>9s}  {rec.label:28s} "
              f"{rec.svr:>10.2f} {rec.rho:>10.2f} {true['svr']:>8.2f}+-{true['svr_se']:.2f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
