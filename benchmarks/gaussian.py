"""The paper's Gaussian TEA and Prefix-TEA: bias per tail size, Prefix-TEA constructions, variance.

    python -m benchmarks.gaussian [--sections tail,constructions,variance,convergence]

* ``tail``: TEA's plug-in on groups of n standard normal rewards, n = 8..32 with ``alpha n`` whole
  (k = alpha n tail samples): the location and spread components of the expected gradient (sample
  1's pathwise derivative, central differences) and their ratio over the truth (SVR; 1 is right).
* ``constructions``: Prefix-TEA candidates at m = 16, N = 128, as combinations of those per-size
  gradients with their jackknife weights (expectations are linear in the credit).
* ``convergence``: TEA's and Prefix-TEA's credit at N = 128 on a normal law as m grows (16 .. 256):
  SVR by natural sampling (sample 1's pathwise derivative per group, batches of 512 prompts),
  +- 1 s.e. over batches. The credit functions are called directly: from m = 128 on, the
  registered estimators would hand N <= m to the exact ``bon``.
* ``variance``: per-group gradient ``(1/m) sum_i c_i S_i`` of each estimator in the location and
  scale directions of a normal law (scores r and r^2 - 1), through tea_verl's math: the mean, the
  SVR of the means, and the standard deviation over groups relative to the mean.
"""

from __future__ import annotations

import argparse
import math

import numpy as np
import torch

from tea_verl.config import TeaConfig
from tea_verl.estimators import best_of_n_credit, gaussian as G
from tea_verl.estimators.table import GAUSSIAN, TAIL

ALPHA, N = 0.25, 128


def tail_gradients(n: int, groups: int = 400_000, seed: int = 2) -> tuple[float, float]:
    """(E[dc_1/dr_1], E[dc_1/dr_1 r_1]) of TEA's plug-in on groups of n standard normals."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(groups, n, generator=gen, dtype=torch.float64)
    h = 1e-6
    xp, xm = x.clone(), x.clone()
    xp[:, 0] += h
    xm[:, 0] -= h
    d = (G.tea_credit(xp, N, ALPHA)[:, 0] - G.tea_credit(xm, N, ALPHA)[:, 0]) / (2 * h)
    return float(d.mean()), float((d * x[:, 0]).mean())


def least_norm(ks, order):
    k = np.array(ks, float)
    A = np.array([k ** -p for p in range(order)])
    b = np.zeros(order)
    b[0] = 1.0
    return A.T @ np.linalg.solve(A @ A.T, b)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sections", default="tail,constructions,variance,convergence")
    args = ap.parse_args(argv)
    sections = args.sections.split(",")
    cn = G.normal_max_mean(N)
    per_k = {}
    if "tail" in sections or "constructions" in sections:
        print(f"# tail: TEA's plug-in on n standard normals, alpha = {ALPHA}, N = {N}; 400000 groups per n")
        print(f"{'n':>3s} {'k':>3s} {'location':>9s} {'spread':>9s} {'SVR':>6s} {'1-SVR':>6s} {'k(1-SVR)':>9s}")
        for n in (8, 12, 16, 20, 24, 32):
            k = G.tail_size(ALPHA, n)
            loc, spread = tail_gradients(n)
            per_k[k] = (loc, spread)
            svr = spread / loc / cn
            print(f"{n:3d} {k:3d} {loc:9.4f} {spread:9.4f} {svr:6.3f} {1 - svr:6.3f} {k * (1 - svr):9.3f}", flush=True)
    if "constructions" in sections:
        print(f"\n# constructions: Prefix-TEA at m = 16, N = {N} from the per-size gradients above (truth: location 1, SVR 1)")
        print(f"{'construction':40s} {'weights':>24s} {'location':>9s} {'SVR':>6s} {'sum w^2':>8s}")
        for label, ks, order in (("TEA", (4,), 1), ("order 2 in 1/k, k = 4, 3, 2", (4, 3, 2), 2),
                                 ("order 2 in 1/k, k = 4, 3 (shipped)", (4, 3), 2), ("order 3 in 1/k, k = 4, 3, 2", (4, 3, 2), 3)):
            w = least_norm(ks, order)
            loc = sum(wi * per_k[k][0] for wi, k in zip(w, ks))
            spread = sum(wi * per_k[k][1] for wi, k in zip(w, ks))
            ws = ", ".join(f"{v:.2f}" for v in w)
            print(f"{label:40s} {ws:>24s} {loc:9.3f} {spread / loc / cn:6.3f} {float(np.sum(w ** 2)):8.2f}")
    if "variance" in sections:
        print("\n# variance: per-group gradient (1/m) sum_i c_i S_i on a normal law, location and scale directions; "
              "SVR of the means; sd over groups / mean")
        print(f"{'m':>3s} {'N':>4s} {'estimator':16s} {'location':>9s} {'scale':>7s} {'SVR':>6s} {'sd loc':>7s} {'sd scale':>9s}")
        rng = np.random.default_rng(0)
        for m, n in ((16, 128), (32, 256), (64, 512)):
            groups = max(2000, 200_000 // m)
            x = torch.from_numpy(rng.standard_normal(groups * m))
            ids = torch.arange(groups).repeat_interleave(m)
            for est in TAIL:
                c, _ = best_of_n_credit(x, ids, est, TeaConfig(N=n), norm_by_std=False)
                c, xx = c.view(groups, m), x.view(groups, m)
                gl, gs = (c * xx).sum(1) / m, (c * (xx * xx - 1)).sum(1) / m
                print(f"{m:3d} {n:4d} {est:16s} {float(gl.mean()):9.3f} {float(gs.mean()):7.3f} "
                      f"{float(gs.mean() / gl.mean()) / G.normal_max_mean(n):6.3f} {float(gl.std() / gl.mean()):7.2f} "
                      f"{float(gs.std() / gs.mean()):9.2f}", flush=True)
    if "convergence" in sections:
        print(f"\n# convergence: SVR at N = {N} on a normal law, natural batches of 512 prompts, 2^21 rewards or 24 batches per cell; +- 1 s.e.")
        print(f"{'m':>4s} {'tea':>14s} {'prefix_tea':>14s}")
        for m in (16, 32, 64, 128, 256):
            cells = [convergence_svr(est, m) for est in GAUSSIAN]
            print(f"{m:4d} " + " ".join(f"{v:7.3f} +- {se:.3f}" for v, se in cells), flush=True)
    return 0


def convergence_svr(estimator: str, m: int, groups: int = 512, rewards: int = 2**21, seed: int = 0) -> tuple[float, float]:
    """Pathwise SVR of the Gaussian credit ``estimator`` at (m, N) on a standard normal law, and its
    s.e. over batches (credit functions called directly, so m >= N is the plug-in, not ``bon``)."""
    credit = G.tea_credit if estimator == "tea" else G.prefix_tea_credit
    rng = np.random.default_rng(seed)
    cn = G.normal_max_mean(N)
    nums, dens = [], []
    for _ in range(max(24, rewards // (groups * m))):
        x = torch.from_numpy(rng.standard_normal((groups, m)))
        xp, xm = x.clone(), x.clone()
        xp[:, 0] += 1e-5
        xm[:, 0] -= 1e-5
        d = (credit(xp, N)[:, 0] - credit(xm, N)[:, 0]) / 2e-5
        nums.append(float((d * x[:, 0]).sum()))
        dens.append(float(d.sum()))
    nums, dens = np.array(nums), np.array(dens)
    ratio = nums.sum() / dens.sum() / cn
    # delta-method s.e. of a ratio of sums over independent batches
    resid = (nums - ratio * cn * dens) / (dens.mean() * cn)
    return float(ratio), float(resid.std(ddof=1) / math.sqrt(len(nums)))


if __name__ == "__main__":
    raise SystemExit(main())
