"""The main job on a laptop (``tea-verl demo``): the best-of-N mismatch bandit (docs/method.md section 7).

Each prompt offers K = 4 response modes with normal reward laws. Mode A is safe (mean 0, sd 0.5:
the best single sample and the best of m), mode B spreads (mean -0.8, sd 1: worse at best-of-m,
best at best-of-N for N >= ~20), two distractors are weak; every prompt gets its own location
and scale. The policy is a softmax over modes per prompt, trained from uniform with Adam on
``m`` rollouts per prompt per step. Advantages go through verl exactly as in a real run: the
rewards become ``token_level_rewards`` of a DataProto with prompt ``uid``s, and verl's
``compute_advantage`` dispatches to the registered estimator with the ``algorithm`` config
(``norm_adv_by_std_in_grpo=True``, verl's default). The oracle trains ``bon`` on ``N`` rollouts.

Score: the exact best-of-N value of the policy (quadrature over the mixture law), averaged over
prompts, and the fraction of the way from the mean-optimal policy (pure A: 0) to the
best-of-N-optimal policy (pure B: 1).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from tea_verl.estimators.table import COMPARISON, GAUSSIAN, GEV, LABELS, comparison_method

__all__ = [
    "Task",
    "make_task",
    "best_of_mixture",
    "best_of_normal",
    "resolve_algorithm",
    "advantages_via_verl",
    "train",
    "score",
    "main",
    "DEFAULT_ESTIMATORS",
]

DEFAULT_ESTIMATORS = COMPARISON  # every comparison method of the estimator table
VARIANT_KEYS = {**{name: "alpha" for name in GAUSSIAN}, **{name: "smoothing" for name in GEV}}
"""``NAME@VALUE`` runs an estimator with another value of this key: ``prefix_tea@0.4`` (alpha),
``tea_gev@0.01`` (smoothing)."""


@dataclass
class Task:
    mu: np.ndarray  # (P, K) mode means
    sd: np.ndarray  # (P, K) mode sds
    kind: str
    cache: dict = field(default_factory=dict, repr=False)


def make_task(kind: str, prompts: int, rng: np.random.Generator, m: int, n: int) -> Task:
    """``mismatch``: the demo task. ``random``: random modes whose best-of-m and best-of-N optimal
    modes agree (the no-regret benchmark)."""
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
    """Exact ``E[max of n]`` for per-prompt normal mixtures (P, K) -> (P,), by quadrature on t.

    ``E[M] = int_0^inf (1 - F^n) dt - int_-inf^0 F^n dt``, F the mixture CDF.
    """
    c = mu.mean(1, keepdims=True)
    s = sd.max(1, keepdims=True)
    z = (_T[None, None, :] * s[:, :, None] + c[:, :, None] - mu[:, :, None]) / sd[:, :, None]
    F = np.einsum("pk,pkt->pt", pi, torch.special.ndtr(torch.from_numpy(z)).numpy())
    Fn = F**n
    t = _T[None, :] * s + c
    integrand = np.where(t >= 0, 1.0 - Fn, -Fn)
    return np.trapezoid(integrand, t, axis=1)


def best_of_normal(mu: float, sd: float, n: int) -> float:
    return float(best_of_mixture(np.ones((1, 1)), np.array([[mu]]), np.array([[sd]]), n)[0])


def resolve_algorithm(estimator: str, m: int, n: int):
    """A comparison method (a name of :data:`DEFAULT_ESTIMATORS`, ``bon`` for ``bon_m``, or a
    ``NAME@VALUE`` variant, :data:`VARIANT_KEYS`) -> (verl estimator name, rollouts per prompt, the
    ``algorithm`` config of a verl run with it: ``algorithm.tea.N``, the variant's key, verl's default
    std normalisation). An unknown name is a ValueError naming the choices."""
    from omegaconf import OmegaConf

    keys: dict = {}
    name, _, value = estimator.partition("@")
    if value:
        if name not in VARIANT_KEYS:
            raise ValueError(f"{estimator!r}: NAME@VALUE variants exist for {', '.join(VARIANT_KEYS)}")
        try:
            keys = {VARIANT_KEYS[name]: float(value)}
        except ValueError:
            raise ValueError(f"{estimator!r}: the value after @ must be a number") from None
    row = comparison_method(name)
    algorithm = OmegaConf.create(
        {"adv_estimator": row.registry, "norm_adv_by_std_in_grpo": True, "tea": {"N": row.n_arg(m, n), **keys}}
    )
    return row.registry, row.group_size(m, n), algorithm


def advantages_via_verl(rewards: torch.Tensor, uids: np.ndarray, adv_estimator: str, algorithm) -> torch.Tensor:
    """One step's advantages through verl's ``compute_advantage`` on a DataProto, as in training.

    ``rewards`` (B,) outcome rewards become a one-token response's ``token_level_rewards``.
    """
    from verl import DataProto
    from verl.trainer.ppo.ray_trainer import compute_advantage

    tl = rewards.reshape(-1, 1)
    data = DataProto.from_dict(
        tensors={"token_level_rewards": tl, "response_mask": torch.ones_like(tl)}, non_tensors={"uid": uids}
    )
    data = compute_advantage(
        data, adv_estimator=adv_estimator, norm_adv_by_std_in_grpo=algorithm.norm_adv_by_std_in_grpo, config=algorithm
    )
    return data.batch["advantages"][:, 0].double()


def train(task: Task, estimator: str, m: int, n: int, steps: int, lr: float, seed: int, checkpoints=(), on_step=None,
          tea_keys=None):
    """Train per-prompt softmax policies; returns the probabilities (P, K) after each checkpoint
    step (or only the final ones when ``checkpoints`` is empty). ``tea_keys``: further
    ``algorithm.tea`` keys set on the resolved config (e.g. ``{"failure_reward": -inf}``)."""
    adv_estimator, rollouts, algorithm = resolve_algorithm(estimator, m, n)
    for key, val in (tea_keys or {}).items():
        algorithm.tea[key] = val
    gen = torch.Generator().manual_seed(seed)
    P, K = task.mu.shape
    logits = torch.zeros(P, K, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([logits], lr=lr)
    mu = torch.from_numpy(task.mu)
    sd = torch.from_numpy(task.sd)
    uids = np.array([f"prompt-{p}" for p in range(P) for _ in range(rollouts)], dtype=object)
    rows = torch.arange(P).repeat_interleave(rollouts)
    snapshots = []
    for step in range(1, steps + 1):
        with torch.no_grad():
            probs = torch.softmax(logits, 1)
            modes = torch.multinomial(probs, rollouts, replacement=True, generator=gen).reshape(-1)
            noise = torch.randn(P * rollouts, dtype=torch.float64, generator=gen)
            rewards = mu[rows, modes] + sd[rows, modes] * noise
            adv = advantages_via_verl(rewards, uids, adv_estimator, algorithm)
        logp = torch.log_softmax(logits, 1)[rows, modes]
        loss = -(adv * logp).sum() / rollouts
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step in checkpoints:
            snapshots.append(torch.softmax(logits, 1).detach().numpy())
        if on_step is not None:
            on_step(step)
    return snapshots if checkpoints else torch.softmax(logits, 1).detach().numpy()


def value(task: Task, pi: np.ndarray, n: int) -> float:
    """Mean over prompts of the exact best-of-n value of the policy."""
    return float(np.mean(best_of_mixture(pi, task.mu, task.sd, n)))


def _references(task: Task, n: int) -> tuple[np.ndarray, np.ndarray]:
    key = ("refs", n)
    if key not in task.cache:
        P, K = task.mu.shape
        if task.kind == "mismatch":  # pure A (mean-optimal) and pure B (best-of-N-optimal)
            lo = np.repeat(np.eye(K)[:1], P, 0)
            hi = np.repeat(np.eye(K)[1:2], P, 0)
            task.cache[key] = (best_of_mixture(lo, task.mu, task.sd, n), best_of_mixture(hi, task.mu, task.sd, n))
        else:  # the uniform start
            uniform = np.full((P, K), 1.0 / K)
            task.cache[key] = (best_of_mixture(uniform, task.mu, task.sd, n), None)
    return task.cache[key]


def score(task: Task, pi: np.ndarray, n: int) -> float:
    """``mismatch``: fraction of the way from pure A (0) to pure B (1) of the best-of-N value,
    averaged over prompts. ``random``: best-of-N gain over the uniform policy."""
    v = best_of_mixture(pi, task.mu, task.sd, n)
    lo, hi = _references(task, n)
    if task.kind == "mismatch":
        return float(np.mean((v - lo) / (hi - lo)))
    return float(np.mean(v - lo))


class Progress:
    """A progress bar on stderr: redrawn in place on a terminal, a line per 10% in a log."""

    def __init__(self, total: int, width: int = 30, stream=None):
        self.total, self.width, self.stream = total, width, stream or sys.stderr
        self.done = 0
        self.t0 = time.perf_counter()
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self._last = -1

    def update(self, done: int, label: str) -> None:
        self.done = done
        frac = done / self.total
        tick = int(frac * (100 if self.tty else 10))
        if tick == self._last and done < self.total:
            return
        self._last = tick
        bar = "#" * int(self.width * frac)
        elapsed = time.perf_counter() - self.t0
        eta = f"~{elapsed / frac - elapsed:4.0f}s left" if frac > 0.02 else "          "
        end = "" if self.tty else "\n"
        start = "\r" if self.tty else ""
        self.stream.write(f"{start}  [{bar:<{self.width}s}] {100 * frac:5.1f}%  {label:<28s} {elapsed:5.0f}s elapsed, {eta} {end}")
        self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
        self.stream.flush()


def plot(curves: dict, steps: list[int], m: int, n: int, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    for i, (name, ys) in enumerate(curves.items()):
        style = "--" if name == "oracle" else "-"
        ax.plot(steps, ys, style, lw=2, color=f"C{i}", label=LABELS.get(name, name))
    ax.axhline(1.0, color="k", lw=0.8, ls=":")
    ax.axhline(0.0, color="k", lw=0.8, ls=":")
    ax.text(steps[-1], 1.0, "best-of-N-optimal policy ", ha="right", va="bottom", fontsize=8)
    ax.text(steps[-1], 0.0, "mean-optimal policy ", ha="right", va="bottom", fontsize=8)
    ax.set_xlabel("training step (Adam)")
    ax.set_ylabel("best-of-N value (0: mean-optimal, 1: best-of-N-optimal)")
    ax.set_title(f"mismatch bandit: m = {m} rollouts per prompt in training, best-of-{n} at deployment")
    ax.set_ylim(-0.1, 1.1)
    ax.grid(alpha=0.3)
    ax.legend(loc="center right", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def run_demo(m: int, n: int, steps: int, seed: int, estimators, prompts: int, lr: float, every: int, out: str | None,
             progress: bool = True) -> dict:
    import verl  # noqa: F401  (the tea-verl plugin registers its estimators)

    task = make_task("mismatch", prompts, np.random.default_rng(1000 + seed), m, n)
    checkpoints = sorted({*range(every, steps + 1, every), steps})
    # progress in steps; scoring the checkpoints of a method counts as a fifth of its training
    per_method = steps + max(1, steps // 5)
    bar = Progress(len(estimators) * per_method) if progress else None
    results = {}
    for i, e in enumerate(estimators):
        base = i * per_method

        def tick(step, e=e, base=base):
            if bar is not None:
                bar.update(base + step, f"{e}: step {step}/{steps}")

        t0 = time.perf_counter()
        pis = train(task, e, m, n, steps, lr, seed, checkpoints, on_step=tick)
        uniform = np.full_like(pis[0], 1.0 / pis[0].shape[1])
        fraction = [score(task, pi, n) for pi in [uniform, *pis]]
        results[e] = {
            "fraction": fraction,
            "final_value": value(task, pis[-1], n),
            "wall_s": time.perf_counter() - t0,  # training and scoring its checkpoints
        }
        if bar is not None:
            bar.update(base + per_method, f"{e}: scored")
    if bar is not None:
        bar.close()
    P, K = task.mu.shape
    refs = {
        "mean_optimal_value": value(task, np.repeat(np.eye(K)[:1], P, 0), n),
        "bon_optimal_value": value(task, np.repeat(np.eye(K)[1:2], P, 0), n),
    }
    summary = {"m": m, "N": n, "steps": steps, "seed": seed, "prompts": prompts, "lr": lr, "checkpoints": [0, *checkpoints],
               "references": refs, "results": results}
    if out:
        os.makedirs(out, exist_ok=True)
        with open(os.path.join(out, "demo.json"), "w") as f:
            json.dump(summary, f, indent=1)
        plot({e: r["fraction"] for e, r in results.items()}, [0, *checkpoints], m, n, os.path.join(out, "demo.png"))
    return summary


def format_table(summary: dict) -> str:
    m, n = summary["m"], summary["N"]
    refs = summary["references"]
    lines = [
        f"mismatch bandit: m = {m} rollouts per prompt, deployment best-of-{n}, {summary['steps']} steps, "
        f"{summary['prompts']} prompts, seed {summary['seed']}",
        f"best-of-{n} value of the mean-optimal policy (safe mode A): {refs['mean_optimal_value']:.3f}; "
        f"of the best-of-{n}-optimal policy (spread mode B): {refs['bon_optimal_value']:.3f}",
        "",
        f"{'method':30s} {'best-of-' + str(n) + ' value':>18s} {'fraction A->B':>14s} {'wall s':>8s}",
    ]
    for e, r in summary["results"].items():
        lines.append(f"{LABELS.get(e, e):30s} {r['final_value']:18.3f} {r['fraction'][-1]:14.3f} {r['wall_s']:8.1f}")
    lines.append("")
    lines.append("fraction A->B: 0 = the mean-optimal policy, 1 = the best-of-N-optimal policy; "
                 "wall s: training and scoring the plotted checkpoints")
    return "\n".join(lines)


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = argparse.ArgumentParser(
        prog="tea-verl demo", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="tea-verl demo --lm: instead of the bandit, train a tiny language model through verl's real trainer on "
        "the CPU (grpo against tea_gev and prefix_tea_gev, 3 seeds, about 25 minutes; with --quick 1 seed, under 5 "
        "minutes); its options: tea-verl demo --lm --help",
    )
    ap.add_argument("--m", type=int, default=8, help="rollouts per prompt in training (default 8)")
    ap.add_argument("--N", type=int, default=64, help="deployment best-of-N (default 64)")
    ap.add_argument("--steps", type=int, default=1000, help="Adam steps (default 1000)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--estimators", default=",".join(DEFAULT_ESTIMATORS),
                    help=f"comma list from {', '.join(DEFAULT_ESTIMATORS)} (default: all)")
    ap.add_argument("--prompts", type=int, default=96)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--out", default="demo_out", help="directory for demo.png and demo.json (default demo_out)")
    ap.add_argument("--quick", action="store_true",
                    help="32 prompts, 400 steps: the same story in about a third of the time")
    args = ap.parse_args(argv)
    if args.quick:
        args.prompts, args.steps = 32, min(args.steps, 400)
    ests = [e.strip() for e in args.estimators.split(",") if e.strip()]
    for e in ests:
        try:
            resolve_algorithm(e, 2, 4)
        except ValueError as exc:
            ap.error(f"--estimators: {exc}")
    ests = [e if "@" in e else comparison_method(e).name for e in ests]  # "bon" is bon_m here
    if args.m < 2 or args.N < 2:
        ap.error("--m and --N must be >= 2")
    if args.N <= args.m:
        ap.error(f"--N {args.N} is not above --m {args.m}: the demo shows extrapolation to a deployment best-of-N beyond "
                 "the m training rollouts (with N <= m the exact bon is the estimator to use); pick --N > --m, e.g. 8 * m")
    if args.steps < 1:
        ap.error("--steps must be >= 1")
    every = max(1, args.steps // 50)
    t0 = time.perf_counter()
    summary = run_demo(args.m, args.N, args.steps, args.seed, ests, args.prompts, args.lr, every, args.out)
    print(format_table(summary))
    if args.out:
        print(f"\nplot: {os.path.join(args.out, 'demo.png')}   data: {os.path.join(args.out, 'demo.json')}")
    print(f"total {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
