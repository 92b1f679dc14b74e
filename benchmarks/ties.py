"""Ties and discrete rewards: when the tail estimators fall back to exact ``bon``, and what it costs.

    python -m benchmarks.ties [--sections decision,cost,jump,diagnose] [--m 8] [--N 64] [--batches 2000] [--samples 200000]

1. **The discrete-batch decision.** For continuous laws, a continuous law with point masses
   (:class:`benchmarks.common.LexiconLike`), rounded scores and genuinely discrete rewards
   (pass/fail, 3 and 5 levels): the top-two tie rate of groups of m, and the share of batches of
   4, 16, 64 and 256 prompts that the one-sided binomial test declares discrete (the whole batch
   then gets ``bon`` at N = m). Straight from :func:`tea_verl.estimators.best_of_n_credit`.
2. **Point masses and the per-group fallback** (tied groups get ``bon`` at N = m): SVR and rho of
   ``bon_m``, ``tea`` and ``prefix_tea`` on the lexicon-like law, on its two kinds of point mass
   alone (the zero atom sits in the bulk and almost never ties at the top; the recurring values
   do), and on the same law without point masses (each atom spread over +-0.01), in batches of
   ``--groups`` prompts, measured by :func:`tea_verl.metrics.quality.measure`. Caveat: SVR is measured
   pathwise (sample 1 perturbed by +-h), which presumes a density; on a law with atoms it is not
   the spread valuation of the estimator (the zero-atom-only row shows it). rho is well defined
   on any law.
3. **Why SVR moves**: the credit of a sample at the zero atom and its derivative in its own
   reward, with and without point masses.
4. **What ``tea-verl diagnose`` says in advance**: on 200 prompts x 64 lexicon-like samples and on
   pass/fail samples, the tie rate at the training group size, the fallback groups it predicts per
   batch of 16 prompts, the share of batches it predicts to be judged discrete, and its
   recommendation.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from benchmarks.common import LexiconLike
from tea_verl.config import TeaConfig
from tea_verl.estimators import DISCRETE_TEST_LEVEL, best_of_n_credit
from tea_verl.estimators.table import GEV


def _normal(rng, shape):
    return rng.standard_normal(shape)


LAWS = {
    "normal": _normal,
    "normal, 2 decimals": lambda rng, shape: np.round(rng.standard_normal(shape), 2),
    "normal, 1 decimal": lambda rng, shape: np.round(rng.standard_normal(shape), 1),
    "lexicon-like": LexiconLike().sample,
    "lexicon-like, jittered": LexiconLike(jitter=0.01).sample,
    "pass/fail p=0.2": lambda rng, shape: (rng.random(shape) < 0.2).astype(float),
    "pass/fail p=0.5": lambda rng, shape: (rng.random(shape) < 0.5).astype(float),
    "pass/fail p=0.8": lambda rng, shape: (rng.random(shape) < 0.8).astype(float),
    "3 levels": lambda rng, shape: rng.integers(0, 3, shape) / 2.0,
    "5 levels": lambda rng, shape: rng.integers(0, 5, shape) / 4.0,
}


def decision_table(m: int, n: int, batches: int, sizes=(4, 16, 64, 256), seed: int = 0):
    """Yields the table's lines, one law at a time."""
    yield from [f"# share of batches judged discrete (whole batch -> bon at N = m); m = {m}, N = {n}, "
             f"binomial test of tie probability <= 0.1 at level {DISCRETE_TEST_LEVEL}",
             f"{'law':24s} {'top-tie rate':>12s} " + " ".join(f"{f'{g} prompts':>12s}" for g in sizes)]
    for name, sample in LAWS.items():
        rng = np.random.default_rng(seed)
        cells, ties, eligible = [], 0, 0
        for g in sizes:
            ids = torch.arange(g).repeat_interleave(m)
            count = max(20, batches * 16 // g)
            hits = 0
            for _ in range(count):
                x = torch.from_numpy(np.asarray(sample(rng, (g * m,)), dtype=np.float64))
                _, info = best_of_n_credit(x, ids, "tea_gev", TeaConfig(N=n))
                hits += info.discrete_batch
                ties += info.tie_groups
                eligible += info.eligible_groups
            cells.append(f"{hits / count:12.4f}")
        rate = ties / eligible if eligible else float("nan")
        yield f"{name:24s} {rate:12.4f} " + " ".join(cells)


def cost_table(m: int, n: int, groups: int, samples: int, seed: int = 0):
    """Yields the table's lines, one law at a time."""
    from tea_verl.metrics.quality import measure

    laws = {"lexicon-like": LexiconLike(), "zero atom only": LexiconLike(repeat=0.0),
            "recurring values only": LexiconLike(zero=0.0), "lexicon-like, jittered": LexiconLike(jitter=0.01)}
    ests = ("bon_m", *GEV)
    yield from [f"# SVR and rho with point masses and without; m = {m}, N = {n}, batches of {groups} prompts, "
             f"{samples} rewards each; +- 1 s.e.",
             f"{'law':24s}     " + " ".join(f"{e:>16s}" for e in ests)]
    batches = max(2, samples // (groups * m))
    for name, law in laws.items():
        res = [measure(law, m, n, e, groups=groups, batches=batches, seed=seed) for e in ests]
        yield f"{name:24s} SVR " + " ".join(f"{r['svr']:9.2f}+-{r['svr_se']:.2f}" for r in res)
        yield f"{'':24s} rho " + " ".join(f"{r['rho']:9.2f}+-{r['rho_se']:.2f}" for r in res)


def jump_table(m: int, n: int, groups: int = 4096, seed: int = 0):
    """Yields the credit of a sample at the zero atom and its derivative in its own reward (central
    difference, +-1e-5), with and without point masses: where a tie at the top breaks, the per-group
    fallback switches and the credit jumps."""
    ids = torch.arange(groups).repeat_interleave(m)
    yield (f"# sample 1 fixed at r = 0, the other {m - 1} drawn ({groups} groups): E[c_1] and E[dc_1/dr_1]; "
           f"m = {m}, N = {n}, xi fixed at -0.3, raw credit")
    yield f"{'law':26s} {'estimator':>10s} {'E[c_1]':>9s} {'E[dc_1/dr_1]':>13s} {'max |dc_1/dr_1|':>16s}"
    for name, law in (("zero atom only", LexiconLike(repeat=0.0)), ("zero atom, jittered", LexiconLike(repeat=0.0, jitter=0.01))):
        for est in GEV:
            rng = np.random.default_rng(seed)
            x = law.sample(rng, (groups, m))
            x[:, 0] = 0.0

            def credit(v):
                c, _ = best_of_n_credit(torch.from_numpy(v.reshape(-1)), ids, est, TeaConfig(N=n, shape=-0.3), norm_by_std=False)
                return c.numpy().reshape(groups, m)[:, 0]

            xp, xm = x.copy(), x.copy()
            xp[:, 0] += 1e-5
            xm[:, 0] -= 1e-5
            d = (credit(xp) - credit(xm)) / 2e-5
            yield f"{name:26s} {est:>10s} {credit(x).mean():9.4f} {d.mean():13.3f} {np.abs(d).max():16.1f}"


def diagnose_table(m: int, n: int, seed: int = 0):
    """Yields what diagnose reports on lexicon-like and on pass/fail samples."""
    from tea_verl.metrics.diagnose import diagnose
    from tea_verl.metrics.samples import Samples

    rng = np.random.default_rng(seed)
    laws = {"lexicon-like": LexiconLike().sample(rng, (200, 64)),
            "pass/fail p=0.3": (rng.random((200, 64)) < 0.3).astype(float)}
    yield f"# tea-verl diagnose, 200 prompts x 64 samples, m = {m}, N = {n}, batches of 16 prompts"
    yield f"{'law':16s} {'tie rate at m':>13s} {'fallback groups/batch':>22s} {'discrete batches':>17s}  recommendation"
    for name, x in laws.items():
        uids = [f"p{i}" for i in range(x.shape[0]) for _ in range(x.shape[1])]
        samples = Samples(["d"] * x.size, uids, x.reshape(-1), [None] * x.size)
        d = diagnose(samples, m, n, batch_prompts=16, draws=20_000, seed=seed)
        yield (f"{name:16s} {d.group_tie_rate:13.4f} {d.fallback_groups_per_batch:22.3f} {d.discrete_batch_rate:17.3f}  "
               + " ".join(d.recommendation.overrides))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sections", default="decision,cost,jump,diagnose", help="comma list of decision, cost, jump, diagnose")
    ap.add_argument("--m", type=int, default=8)
    ap.add_argument("--N", type=int, default=64)
    ap.add_argument("--batches", type=int, default=2000, help="batches of 16 prompts per law (scaled for other sizes)")
    ap.add_argument("--groups", type=int, default=16, help="prompts per batch in the SVR/rho measurement")
    ap.add_argument("--samples", type=int, default=200_000, help="rewards per SVR/rho cell")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    tables = {
        "decision": lambda: decision_table(args.m, args.N, args.batches, seed=args.seed),
        "cost": lambda: cost_table(args.m, args.N, args.groups, args.samples, seed=args.seed),
        "diagnose": lambda: diagnose_table(args.m, args.N, seed=args.seed),
        "jump": lambda: jump_table(args.m, args.N, seed=args.seed),
    }
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = [s for s in sections if s not in tables]
    if unknown:
        ap.error(f"unknown section(s) {unknown}; choose from {', '.join(tables)}")
    for name in sections:
        for line in tables[name]():
            print(line, flush=True)
        print()
    print(f"total {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
