"""End-to-end benchmark: the best-of-N mismatch bandit (and its no-regret twin).

    python -m benchmarks.bandit                       # mismatch task, m=8 N=64 and m=4 N=32
    python -m benchmarks.bandit --task random         # no-regret task (no best-of-m/N mismatch)

Each prompt offers K response modes with normal reward laws. In the ``mismatch`` task, mode A is
safe (mean 0, sd 0.5: the best single sample and the best of m), mode B spreads (mean -0.8,
sd 1: worse at best-of-m, best at best-of-N for N >= ~20) and two distractors are weak; every
prompt gets its own location and scale (tails share a shape up to location and scale). The
policy is a softmax over modes per prompt, trained from uniform with Adam, ``m`` rollouts per
prompt per step; advantages come from the estimators registered in verl (the same functions a
verl run calls), with verl's default std normalisation. The oracle is ``bon`` with ``N``
rollouts per prompt.

Score: the exact best-of-N value of each final policy (quadrature over the mixture law), as the
fraction of the way from pure A (0) to pure B (1), averaged over prompts; mean and standard
error over seeds. In the ``random`` task, modes have random means and spreads, only prompts
whose best-of-m and best-of-N optimal modes agree are kept, and the score is the best-of-N
gain over the uniform start.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass

import numpy as np
import torch

from benchmarks.common import call_registered, resolve

DEFAULT_ESTIMATORS = ("grpo", "grpo_passk", "bon_m", "tea", "prefix_tea", "oracle")


@dataclass
class Task:
    mu: np.ndarray  # (P, K) mode means
    sd: np.ndarray  # (P, K) mode sds
    kind: str


def make_task(kind: str, prompts: int, rng: np.random.Generator, m: int, n: int) -> Task:
    if kind == "mismatch":
        base_mu = np.array([0.0, -0.8, -1.5, -1.2])
        base_sd = np.array([0.5, 1.0, 0.5, 0.3])
        loc = rng.normal(0.0, 1.0, size=(prompts, 1))
        scale = np.exp(rng.normal(0.0, 0.3, size=(prompts, 1)))
        return Task(loc + scale * base_mu, scale * np.broadcast_to(base_sd, (prompts, 4)).copy(), kind)
    if kind == "random":
        mus, sds = [], []
        while len(mus) < prompts:
            mu = rng.normal(0.0, 1.0, size=4)
            sd = rng.uniform(0.2, 1.0, size=4)
            jm = [best_of_normal(mu[k], sd[k], m) for k in range(4)]
            jn = [best_of_normal(mu[k], sd[k], n) for k in range(4)]
            if int(np.argmax(jm)) == int(np.argmax(jn)):
                mus.append(mu)
                sds.append(sd)
        return Task(np.array(mus), np.array(sds), kind)
    raise ValueError(f"unknown task {kind!r}: choose mismatch or random")


_T = np.linspace(-12.0, 12.0, 6001)


def best_of_mixture(pi: np.ndarray, mu: np.ndarray, sd: np.ndarray, n: int) -> np.ndarray:
    """Exact E[max of n] for per-prompt normal mixtures (P, K) -> (P,), by quadrature on t.

    E[M] = int_0^inf (1 - F^n) dt - int_-inf^0 F^n dt, F the mixture CDF.
    """
    from scipy.special import ndtr

    # shift and scale each prompt so its modes lie well inside the grid
    c = mu.mean(1, keepdims=True)
    s = sd.max(1, keepdims=True)
    z = (_T[None, None, :] * s[:, :, None] + c[:, :, None] - mu[:, :, None]) / sd[:, :, None]
    F = np.einsum("pk,pkt->pt", pi, ndtr(z))
    Fn = F**n
    t = _T[None, :] * s + c
    integrand = np.where(t >= 0, 1.0 - Fn, -Fn)
    return np.trapezoid(integrand, t, axis=1)


def best_of_normal(mu: float, sd: float, n: int) -> float:
    pi = np.ones((1, 1))
    return float(best_of_mixture(pi, np.array([[mu]]), np.array([[sd]]), n)[0])


def train(task: Task, estimator: str, m: int, n: int, steps: int, lr: float, seed: int, checkpoints=()):
    """Train per-prompt softmax policies.

    Returns the final probabilities (P, K), or, when ``checkpoints`` (step counts) are given, the
    list of probabilities after each of those steps.
    """
    (reg, n_arg), rollouts = resolve(estimator, m, n), m
    keys = {}
    if estimator.startswith("tea@"):  # tea at another smoothing, e.g. "tea@0.01"
        reg, keys = "tea", {"smoothing": float(estimator.split("@", 1)[1])}
    elif estimator == "oracle":
        reg, n_arg, rollouts = "bon", n, n
    gen = torch.Generator().manual_seed(seed)
    P, K = task.mu.shape
    logits = torch.zeros(P, K, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([logits], lr=lr)
    mu = torch.from_numpy(task.mu)
    sd = torch.from_numpy(task.sd)
    uids = np.repeat(np.arange(P), rollouts).astype(object)
    rows = torch.arange(P).repeat_interleave(rollouts)
    snapshots = []
    for step in range(1, steps + 1):
        with torch.no_grad():
            probs = torch.softmax(logits, 1)
            modes = torch.multinomial(probs, rollouts, replacement=True, generator=gen).reshape(-1)
            noise = torch.randn(P * rollouts, dtype=torch.float64, generator=gen)
            rewards = mu[rows, modes] + sd[rows, modes] * noise
            adv = call_registered(reg, rewards, uids, n_arg, True, **keys)
        logp = torch.log_softmax(logits, 1)[rows, modes]
        loss = -(adv.detach() * logp).sum() / rollouts
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step in checkpoints:
            snapshots.append(torch.softmax(logits, 1).detach().numpy())
    final = torch.softmax(logits, 1).detach().numpy()
    return snapshots if checkpoints else final


def score(task: Task, pi: np.ndarray, n: int) -> float:
    value = best_of_mixture(pi, task.mu, task.sd, n)
    if task.kind == "mismatch":
        P, K = pi.shape
        pure = np.eye(K)
        va = best_of_mixture(np.repeat(pure[:1], P, 0), task.mu, task.sd, n)
        vb = best_of_mixture(np.repeat(pure[1:2], P, 0), task.mu, task.sd, n)
        return float(np.mean((value - va) / (vb - va)))
    uniform = np.full_like(pi, 1.0 / pi.shape[1])
    return float(np.mean(value - best_of_mixture(uniform, task.mu, task.sd, n)))


def run(kind, m, n, estimators, seeds, prompts, checkpoints, lr, progress=True):
    """Train every estimator on every seed; returns {estimator: (scores (seeds, checkpoints), seconds)}."""
    results = {e: ([], 0.0) for e in estimators}
    steps = max(checkpoints)
    total = len(estimators) * seeds
    done = 0
    for seed in range(seeds):
        task = make_task(kind, prompts, np.random.default_rng(1000 + seed), m, n)
        for e in estimators:
            t0 = time.perf_counter()
            pis = train(task, e, m, n, steps, lr, seed, checkpoints)
            scores, secs = results[e]
            scores.append([score(task, pi, n) for pi in pis])
            results[e] = (scores, secs + time.perf_counter() - t0)
            done += 1
            if progress:
                bar = "#" * int(30 * done / total)
                print(f"\r  [{bar:<30s}] {done}/{total} {kind} m={m} N={n}: {e} seed {seed}   ",
                      end="", file=sys.stderr, flush=True)
    if progress:
        print(file=sys.stderr)
    return results


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", choices=("mismatch", "random"), default="mismatch")
    ap.add_argument("--budgets", default="8x64,4x32", help="comma list of m x N")
    ap.add_argument("--estimators", default=",".join(DEFAULT_ESTIMATORS),
                    help="comma list; 'tea@S' runs tea with algorithm.tea.smoothing=S")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--prompts", type=int, default=96)
    ap.add_argument("--checkpoints", default="100,300,1000", help="Adam steps at which to score (the last is the run length)")
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--quick", action="store_true", help="1 seed, 32 prompts, 20,60 steps (for tests)")
    args = ap.parse_args(argv)
    if args.quick:
        args.seeds, args.prompts, args.checkpoints = 1, 32, "20,60"
    import verl  # noqa: F401  (the entry point registers bon, tea, prefix_tea)

    ests = args.estimators.split(",")
    checkpoints = sorted({int(c) for c in args.checkpoints.split(",")})
    label = "fraction of the way from pure A to pure B" if args.task == "mismatch" else "best-of-N gain over uniform"
    for b in args.budgets.split(","):
        m, n = (int(v) for v in b.split("x"))
        res = run(args.task, m, n, ests, args.seeds, args.prompts, checkpoints, args.lr)
        print(f"# {args.task} bandit, m={m}, N={n}: {label} after k Adam steps (mean +- s.e. over "
              f"{args.seeds} seeds; {args.prompts} prompts, lr {args.lr}; oracle = bon with N rollouts)")
        print(f"{'estimator':12s} " + " ".join(f"{'k=' + str(c):>16s}" for c in checkpoints) + f" {'seconds':>8s}")
        for e in ests:
            s, secs = res[e]
            s = np.asarray(s)
            cells = []
            for j in range(len(checkpoints)):
                se = np.std(s[:, j], ddof=1) / math.sqrt(len(s)) if len(s) > 1 else float("nan")
                cells.append(f"{np.mean(s[:, j]):7.3f} +- {se:5.3f}")
            print(f"{e:12s} " + " ".join(f"{c:>16s}" for c in cells) + f" {secs:8.1f}")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
