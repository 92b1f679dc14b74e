"""End-to-end benchmark: the best-of-N mismatch bandit (and its no-regret twin).

    python -m benchmarks.bandit                       # mismatch task, m=8 N=64 and m=4 N=32
    python -m benchmarks.bandit --task random         # no-regret task (no best-of-m/N mismatch)
    python -m benchmarks.bandit --alignment           # gradient cosine with the best-of-N oracle

Each prompt offers K response modes with normal reward laws. In the ``mismatch`` task, mode A is
safe (mean 0, sd 0.5: the best single sample and the best of m), mode B spreads (mean -0.8,
sd 1: worse at best-of-m, best at best-of-N for N >= ~20) and two distractors are weak; every
prompt gets its own location and scale (tails share a shape up to location and scale). The
policy is a softmax over modes per prompt, trained from uniform with Adam, ``m`` rollouts per
prompt per step; advantages come from verl's ``compute_advantage`` on DataProto batches, which
dispatches to the registered estimators (the code path of a verl run), with verl's default std
normalisation. The oracle is ``bon`` with ``N`` rollouts per prompt. Task, training and scoring
are ``tea_verl.experiments.bandit``'s (the demo is this benchmark at one budget and one seed, with a plot).

Score: the exact best-of-N value of each final policy (quadrature over the mixture law), as the
fraction of the way from pure A (0) to pure B (1), averaged over prompts; mean and standard
error over seeds. In the ``random`` task, modes have random means and spreads, only prompts
whose best-of-m and best-of-N optimal modes agree are kept, and the score is the best-of-N
gain over the uniform start; with ``bon_m`` among the estimators, each final gain is also shown
as a multiple of ``bon_m``'s on the same seed (the no-regret ratio), mean and standard error over
seeds. Estimators that cannot run at a budget (the Gaussian family needs ``ceil(alpha m) >= 2``,
m >= 5 at alpha = 0.25) print why instead of a number.

``--alignment`` (the paper's alignment figure, as a table): at the uniform start policy of each
task, the cosine between an estimator's expected policy gradient (averaged over ``--batches``
batches through verl's ``compute_advantage``) and the exact best-of-N gradient (central finite
differences of the exact best-of-N value in the logits), per prompt, mean and standard error
over prompts. Monte Carlo noise left in the average lowers every cosine a little; ``oracle``
(bon with N rollouts) shows how much.
"""

from __future__ import annotations

import argparse
import math
import sys
import time

import numpy as np

from tea_verl.experiments.bandit import DEFAULT_ESTIMATORS, Task, best_of_mixture, best_of_normal, make_task, score, train  # noqa: F401


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


def exact_gradient(task: Task, n: int, eps: float = 1e-5) -> np.ndarray:
    """d J_N / d logits at the uniform policy, (P, K), by central differences of the exact value."""
    P, K = task.mu.shape
    grad = np.zeros((P, K))
    for k in range(K):
        for sign in (1.0, -1.0):
            logits = np.zeros((P, K))
            logits[:, k] += sign * eps
            pi = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
            grad[:, k] += sign * best_of_mixture(pi, task.mu, task.sd, n) / (2 * eps)
    return grad


def expected_gradient(task: Task, estimator: str, m: int, n: int, batches: int, seed: int) -> np.ndarray:
    """The estimator's mean policy gradient at the uniform policy, (P, K), over ``batches`` batches."""
    import torch

    from tea_verl.experiments.bandit import advantages_via_verl, resolve_algorithm

    adv_estimator, rollouts, algorithm = resolve_algorithm(estimator, m, n)
    P, K = task.mu.shape
    gen = torch.Generator().manual_seed(seed)
    mu, sd = torch.from_numpy(task.mu), torch.from_numpy(task.sd)
    uids = np.array([f"prompt-{p}" for p in range(P) for _ in range(rollouts)], dtype=object)
    rows = torch.arange(P).repeat_interleave(rollouts)
    total = torch.zeros(P, K, dtype=torch.float64)
    for _ in range(batches):
        modes = torch.randint(0, K, (P * rollouts,), generator=gen)
        rewards = mu[rows, modes] + sd[rows, modes] * torch.randn(P * rollouts, dtype=torch.float64, generator=gen)
        adv = advantages_via_verl(rewards, uids, adv_estimator, algorithm)
        # grad of log softmax at uniform: e_a - 1/K
        onehot = torch.nn.functional.one_hot(modes, K).double() - 1.0 / K
        total.index_add_(0, rows, adv[:, None] * onehot / rollouts)
    return (total / batches).numpy()


def alignment(kinds, budgets, estimators, prompts, batches, seed=0):
    """Cosine of each estimator's expected gradient with the exact best-of-N gradient; yields lines."""
    from tea_verl.metrics.quality import infeasible

    for kind in kinds:
        for m, n in budgets:
            task = make_task(kind, prompts, np.random.default_rng(1000 + seed), m, n)
            truth = exact_gradient(task, n)
            cells = []
            for e in estimators:
                why = infeasible(e, m)
                if why:
                    cells.append(why)
                    continue
                g = expected_gradient(task, e, m, n, batches, seed)
                cos = (g * truth).sum(1) / (np.linalg.norm(g, axis=1) * np.linalg.norm(truth, axis=1))
                cells.append(f"{np.mean(cos):6.3f} +- {_se(cos):5.3f}")
                print(f"\r  alignment {kind} m={m} N={n}: {e}        ", end="", file=sys.stderr, flush=True)
            yield f"{kind:9s} {m:3d} {n:4d} " + " ".join(f"{c:>16s}" for c in cells)
    print(file=sys.stderr)


def _se(x: np.ndarray) -> float:
    return float(np.std(x, ddof=1) / math.sqrt(len(x))) if len(x) > 1 else float("nan")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", choices=("mismatch", "random"), default="mismatch")
    ap.add_argument("--budgets", default="8x64,4x32", help="comma list of m x N")
    ap.add_argument("--estimators", default=",".join(DEFAULT_ESTIMATORS),
                    help="comma list; 'tea_gev@S' (or 'prefix_tea_gev@S') runs it with algorithm.tea.smoothing=S")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--prompts", type=int, default=96)
    ap.add_argument("--checkpoints", default="100,300,1000", help="Adam steps at which to score (the last is the run length)")
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--seed", type=int, default=0, help="--alignment: task and sampling seed")
    ap.add_argument("--quick", action="store_true", help="1 seed, 32 prompts, 20,60 steps (for tests)")
    ap.add_argument("--alignment", action="store_true",
                    help="print the gradient cosine with the exact best-of-N gradient at the start policy, on both tasks")
    ap.add_argument("--batches", type=int, default=400, help="--alignment: batches averaged per estimator")
    args = ap.parse_args(argv)
    if args.quick:
        args.seeds, args.prompts, args.checkpoints = 1, 32, "20,60"
    import verl  # noqa: F401  (the entry point registers the estimators)

    ests = args.estimators.split(",")
    budgets = [tuple(int(v) for v in b.split("x")) for b in args.budgets.split(",")]
    if args.alignment:
        print(f"# cosine with the exact best-of-N gradient at the uniform policy (mean +- s.e. over {args.prompts} "
              f"prompts; {args.batches} batches averaged per estimator)")
        print(f"{'task':9s} {'m':>3s} {'N':>4s} " + " ".join(f"{e:>16s}" for e in ests))
        for line in alignment(("mismatch", "random"), budgets, ests, args.prompts, args.batches, args.seed):
            print(line, flush=True)
        return 0
    checkpoints = sorted({int(c) for c in args.checkpoints.split(",")})
    label = "fraction of the way from pure A to pure B" if args.task == "mismatch" else "best-of-N gain over uniform"
    from tea_verl.metrics.quality import infeasible

    for m, n in budgets:
        skipped = {e: infeasible(e, m) for e in ests if infeasible(e, m)}
        res = run(args.task, m, n, [e for e in ests if e not in skipped], args.seeds, args.prompts, checkpoints, args.lr)
        print(f"# {args.task} bandit, m={m}, N={n}: {label} after k Adam steps (mean +- s.e. over "
              f"{args.seeds} seeds; {args.prompts} prompts, lr {args.lr}; oracle = bon with N rollouts)")
        # no regret (random task): the final gain as a multiple of bon_m's, paired by seed (same task)
        ref = np.asarray(res["bon_m"][0])[:, -1] if args.task == "random" and "bon_m" in res else None
        print(f"{'estimator':14s} " + " ".join(f"{'k=' + str(c):>16s}" for c in checkpoints) + f" {'seconds':>8s}"
              + ("" if ref is None else f" {'x bon_m (k=' + str(checkpoints[-1]) + ')':>18s}"))
        for e in ests:
            if e in skipped:
                print(f"{e:12s} {skipped[e]}")
                continue
            s, secs = res[e]
            s = np.asarray(s)
            cells = []
            for j in range(len(checkpoints)):
                cells.append(f"{np.mean(s[:, j]):7.3f} +- {_se(s[:, j]):5.3f}")
            line = f"{e:14s} " + " ".join(f"{c:>16s}" for c in cells) + f" {secs:8.1f}"
            if ref is not None:
                ratio = s[:, -1] / ref
                line += f" {np.mean(ratio):9.3f} +- {_se(ratio):5.3f}"
            print(line)
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
