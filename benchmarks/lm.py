"""End-to-end benchmark: a tiny LM trained for best-of-N through verl's real trainer on the CPU.

    python -m benchmarks.lm                                   # grpo, prefix_tea, prefix_tea_gev; m=16, N=128; 15 steps; 3 seeds
    python -m benchmarks.lm --estimators grpo,oracle          # the power check: the exact best-of-N gradient from N rollouts
    python -m benchmarks.lm --m 8 --N 64                      # the smaller budget
    python -m benchmarks.lm --reward-fn my_reward.py:score   # the same experiment on another reward
    python -m benchmarks.lm --quick                           # 1 seed, grpo and the recommended estimator
    python -m benchmarks.lm --alignment                       # where the credit points, by answer kind (about a minute)
    python -m benchmarks.lm --policy-alignment                # the same cosine in the LM's parameters, at its warm start (minutes)
    python -m benchmarks.lm --merge lm_out/lm.json,lm_paper/lm.json --out docs/lm   # one table and plot from several runs

The task, the warm start and the experiment are :mod:`tea_verl.experiments.lm`'s (``tea-verl demo --lm`` runs
the same). Output: a table of final best-of-1 / best-of-m / best-of-N per estimator (mean ± s.e.
over seeds; with the task's own reward also the best-of-N of the policy's mode shares), the
paired differences with GRPO (every method on the same warm start, data and rollout seed), the
probe of fixed contexts per step (the probability of ending after the sixth and seventh word, of
starting in mode B), the per-step fraction of answers in mode B with the best-of-N and verl's advantage
range, ``lm_out/lm.png`` (best-of-N against step, and the best-of-k curve at the end) and
``lm_out/lm.json`` (every validation curve, mode fraction and verl's per-step advantage statistics).

``--alignment``: the LM's answers reduced to their three kinds (mode A, mode B, invalid: the reward
law of each kind as in the task, the invalid atom at -2 given sd 0.01 so that it does not tie), at
mode probabilities seen in the LM runs. For each estimator, its expected policy gradient in the
three kind logits (through verl's ``compute_advantage``, ``--batches`` batches of 64 groups of m)
against the exact best-of-N gradient (central differences of the exact best-of-N value): the
cosine, and each kind's share of the gradient (unit-norm components; the invalid kind's sign says
whether the update makes invalid answers likelier).
"""

import argparse
import sys

import numpy as np

from tea_verl.experiments.lm import main

KINDS = ("A", "B", "invalid")
POINTS = ((0.50, 0.48, 0.02), (0.10, 0.80, 0.10), (0.05, 0.65, 0.30))


def _task():
    from tea_verl.experiments.lm import INVALID_REWARD, MODES

    mu = np.array([[MODES["A"][0], MODES["B"][0], INVALID_REWARD]])
    sd = np.array([[MODES["A"][1], MODES["B"][1], 0.01]])
    return mu, sd


def exact_gradient(pi: np.ndarray, n: int, eps: float = 1e-5) -> np.ndarray:
    """d E[max of n] / d logits at ``pi`` (3,), by central differences of the exact value."""
    from tea_verl.experiments.bandit import best_of_mixture

    mu, sd = _task()
    grad = np.zeros(3)
    for k in range(3):
        for sign in (1.0, -1.0):
            logits = np.log(pi).copy()
            logits[k] += sign * eps
            p = np.exp(logits) / np.exp(logits).sum()
            grad[k] += sign * best_of_mixture(p[None], mu, sd, n)[0] / (2 * eps)
    return grad


def kind_batches(pi: np.ndarray, estimator: str, m: int, n: int, batches: int, groups: int, seed: int, tea: dict | None = None):
    """``batches`` batches of ``groups`` groups of answer kinds drawn from ``pi``, each with its
    rewards and the estimator's advantages through verl's ``compute_advantage`` (``tea``: more
    ``algorithm.tea`` keys); yields ``(kinds, rewards, advantages)``, one entry per answer."""
    import torch

    from tea_verl.experiments.bandit import advantages_via_verl, resolve_algorithm

    adv_estimator, rollouts, algorithm = resolve_algorithm(estimator, m, n)
    for key, value in (tea or {}).items():
        algorithm.tea[key] = value
    mu, sd = (torch.from_numpy(a[0]) for a in _task())
    gen = torch.Generator().manual_seed(seed)
    p = torch.from_numpy(np.asarray(pi, dtype=np.float64))
    uids = np.array([f"g{g}" for g in range(groups) for _ in range(rollouts)], dtype=object)
    for _ in range(batches):
        kinds = torch.multinomial(p, groups * rollouts, replacement=True, generator=gen)
        rewards = mu[kinds] + sd[kinds] * torch.randn(groups * rollouts, dtype=torch.float64, generator=gen)
        # invalid answers score exactly the penalty, as the LM's reward gives them (the exact gradient's
        # quadrature needs the narrow mode of _task; the estimators see the atom, as in training)
        rewards = torch.where(kinds == 2, mu[2], rewards)
        yield kinds, rewards, advantages_via_verl(rewards, uids, adv_estimator, algorithm)


def expected_gradient(pi: np.ndarray, estimator: str, m: int, n: int, batches: int, groups: int, seed: int,
                      tea: dict | None = None) -> np.ndarray:
    """The estimator's mean policy gradient in the kind logits at ``pi`` (3,)."""
    import torch

    p = torch.from_numpy(np.asarray(pi, dtype=np.float64))
    total = torch.zeros(3, dtype=torch.float64)
    for kinds, _, adv in kind_batches(pi, estimator, m, n, batches, groups, seed, tea):
        score = torch.nn.functional.one_hot(kinds, 3).double() - p  # d log softmax / d logits
        total += (adv[:, None] * score).sum(0) / kinds.numel()
    return (total / batches).numpy()


def alignment(argv) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.lm --alignment")
    ap.add_argument("--alignment", action="store_true")
    ap.add_argument("--estimators", default="grpo,bon_m,tea_gev,prefix_tea_gev,oracle")
    ap.add_argument("--m", type=int, default=8)
    ap.add_argument("--N", type=int, default=64)
    ap.add_argument("--batches", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    from tea_verl.launch.common import quiet_verl

    quiet_verl()
    ests = [e.strip() for e in args.estimators.split(",") if e.strip()]
    print(f"# the LM's answers as three kinds (A, B, invalid); m = {args.m}, N = {args.N}; expected gradient over "
          f"{args.batches} batches of 64 groups; cosine with the exact best-of-{args.N} gradient, and the unit-norm "
          "gradient's components (A, B, invalid)")
    for pi in POINTS:
        pi = np.asarray(pi)
        truth = exact_gradient(pi, args.N)
        unit = truth / np.linalg.norm(truth)
        print(f"\nP(A, B, invalid) = ({pi[0]:.2f}, {pi[1]:.2f}, {pi[2]:.2f})")
        print(f"  {'exact best-of-' + str(args.N):<16} cos  1.000   components ({unit[0]:+.2f}, {unit[1]:+.2f}, {unit[2]:+.2f})")
        for e in ests:
            g = expected_gradient(pi, e, args.m, args.N, args.batches, 64, args.seed)
            u = g / np.linalg.norm(g)
            print(f"  {e:<16} cos {float(u @ unit):+.3f}   components ({u[0]:+.2f}, {u[1]:+.2f}, {u[2]:+.2f})", flush=True)
    print(f"\n# mean credit by rank in the group (1 = best) at P = {POINTS[1]}, and the mean credit of invalid answers "
          "against that of valid answers that are not their group's best (verl's advantages, default std scaling)")
    for e in ests:
        if e == "oracle":
            continue
        by_rank, invalid, valid_rest = credit_by_rank(np.asarray(POINTS[1]), e, args.m, args.N, 200, args.seed)
        print(f"  {e:<16} " + " ".join(f"{c:+6.2f}" for c in by_rank) + f"   invalid {invalid:+.2f}, valid not best {valid_rest:+.2f}")
    return 0


def credit_by_rank(pi: np.ndarray, estimator: str, m: int, n: int, batches: int, seed: int, tea: dict | None = None):
    """Mean credit by rank within the group (1 = best), and the mean credit of invalid answers and
    of valid answers that are not their group's best, over ``batches`` batches of 64 groups."""
    groups = 64
    rollouts = m if estimator != "oracle" else n
    sums, counts = np.zeros(rollouts), np.zeros(rollouts)
    inv, rest = [], []
    for kinds, rewards, adv in kind_batches(pi, estimator, m, n, batches, groups, seed, tea):
        adv = adv.numpy().reshape(groups, rollouts)
        r = rewards.numpy().reshape(groups, rollouts)
        rank = np.argsort(np.argsort(-r, 1), 1)
        for k in range(rollouts):
            sums[k] += adv[rank == k].sum()
            counts[k] += (rank == k).sum()
        is_inv = kinds.numpy().reshape(groups, rollouts) == 2
        inv.extend(adv[is_inv].tolist())
        rest.extend(adv[(~is_inv) & (rank > 0)].tolist())
    return sums / counts, float(np.mean(inv)), float(np.mean(rest))


def policy_alignment(argv) -> int:
    """The same cosine in the LM's own parameters, at its warm start: per-sample gradients of the
    answer's log-probability (summed over its tokens), weighted by each estimator's credit through
    verl's ``compute_advantage`` on groups of m, against the oracle (``bon`` at N on groups of N).
    The estimators use one half of each prompt's answers and the oracle the other, so their Monte
    Carlo noise is independent; the oracle's own cosine across the halves is the ceiling."""
    import tempfile

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tea_verl.experiments import lm
    from tea_verl.experiments.bandit import advantages_via_verl, resolve_algorithm
    from tea_verl.launch.common import quiet_verl

    ap = argparse.ArgumentParser(prog="python -m benchmarks.lm --policy-alignment")
    ap.add_argument("--policy-alignment", action="store_true")
    ap.add_argument("--estimators", default="grpo,bon_m,tea,prefix_tea,tea_gev,prefix_tea_gev")
    ap.add_argument("--m", type=int, default=8)
    ap.add_argument("--N", type=int, default=64)
    ap.add_argument("--samples", type=int, default=256, help="answers per prompt (a multiple of 2 N; default 256)")
    ap.add_argument("--prompts", type=int, default=8, help="training prompts used (default 8)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if args.samples % (2 * args.N) or args.samples % args.m:
        print(f"error: --samples {args.samples} must be a multiple of 2 N = {2 * args.N} and of m = {args.m}", file=sys.stderr)
        return 2
    quiet_verl()
    torch.manual_seed(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        lm.build_assets(tmp, args.seed)
        tok = AutoTokenizer.from_pretrained(f"{tmp}/model")
        model = AutoModelForCausalLM.from_pretrained(f"{tmp}/model").double()
    prompts = lm.prompts()[0][: args.prompts]
    params = [p for p in model.parameters() if p.requires_grad]
    grads, rewards, kinds = [], [], []
    for i, prompt in enumerate(prompts):
        ids = tok.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True, return_tensors="pt")
        ids = ids["input_ids"] if hasattr(ids, "keys") else ids
        with torch.no_grad():
            out = model.generate(ids.repeat(args.samples, 1), do_sample=True, temperature=1.0, top_k=0, top_p=1.0,
                                 max_new_tokens=lm.FREE_LEN + 4, pad_token_id=tok.pad_token_id)
        resp = out[:, ids.shape[1]:]
        for r in resp:
            end = (r == tok.eos_token_id).nonzero()
            n_tok = int(end[0]) + 1 if len(end) else r.numel()
            text = tok.decode(r[:n_tok], skip_special_tokens=True)
            rewards.append(lm.spread_reward(solution_str=text))
            kinds.append(lm.mode_of(text) or "invalid")
            full = torch.cat([ids[0], r[:n_tok]])[None]
            logp = torch.log_softmax(model(input_ids=full).logits[0, ids.shape[1] - 1: -1], -1)
            total = logp.gather(1, r[:n_tok, None]).sum()
            grads.append(torch.cat([g.reshape(-1) for g in torch.autograd.grad(total, params)]).float())
        print(f"\r  sampled and differentiated prompt {i + 1}/{len(prompts)}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    G = torch.stack(grads)  # (prompts * samples, params)
    r = torch.tensor(rewards, dtype=torch.float64)
    P, S = len(prompts), args.samples

    def gradient(estimator: str, half: int | None = None) -> torch.Tensor:
        adv_estimator, rollouts, algorithm = resolve_algorithm(estimator, args.m, args.N)
        idx = torch.arange(P * S).view(P, S)
        if half is not None:
            idx = idx[:, half * S // 2:(half + 1) * S // 2]
        idx = idx.reshape(-1)
        uids = np.array([f"p{j // rollouts}" for j in range(idx.numel())], dtype=object)
        adv = advantages_via_verl(r[idx], uids, adv_estimator, algorithm)
        return (adv.float()[:, None] * G[idx]).sum(0)

    def cos(a, b):
        return float(a @ b / (a.norm() * b.norm()))

    oracle = gradient("oracle", 1)  # the estimators use the other half: independent Monte Carlo noise
    ceiling = cos(gradient("oracle", 0), oracle)
    share = {k: kinds.count(k) / len(kinds) for k in ("A", "B", "invalid")}
    print(f"# the tiny LM at its warm start (seed {args.seed}): {P} prompts x {S} answers "
          f"(A {share['A']:.2f}, B {share['B']:.2f}, invalid {share['invalid']:.2f}); {G.shape[1]} parameters; "
          f"cosine of each estimator's policy gradient (m = {args.m}) with the oracle's (bon on groups of N = {args.N})")
    print(f"  {'oracle, split halves':<24} cos {ceiling:+.3f}   (the Monte Carlo ceiling)")
    for e in [e.strip() for e in args.estimators.split(",") if e.strip()]:
        print(f"  {e:<24} cos {cos(gradient(e, 0), oracle):+.3f}", flush=True)
    return 0


def merge(argv) -> int:
    """Re-render the table and plot from several ``lm.json`` files of runs with the same settings
    (m, N, steps, seeds, validation), e.g. the default run and ``--estimators bon,tea,prefix_tea``."""
    import json
    import os

    from tea_verl.experiments import lm

    ap = argparse.ArgumentParser(prog="python -m benchmarks.lm --merge")
    ap.add_argument("--merge", required=True, help="comma-separated lm.json files")
    ap.add_argument("--out", default="lm_merged", help="directory for lm.png and lm.json (default lm_merged/)")
    args = ap.parse_args(argv)
    loaded = [json.load(open(p)) for p in args.merge.split(",")]
    keys = ("m", "N", "steps", "seeds", "val_n", "val_every", "batch", "lr")
    first = loaded[0]["settings"]
    for d, path in zip(loaded, args.merge.split(",")):
        if (any(d["settings"][k] != first[k] for k in keys) or d["reward_fn"] != loaded[0]["reward_fn"]
                or d["settings"].get("overrides", []) != first.get("overrides", [])):
            print(f"error: {path} has other settings, overrides or reward than {args.merge.split(',')[0]}; merge runs of one experiment", file=sys.stderr)
            return 2
    settings = dict(first, estimators=[e for d in loaded for e in d["settings"]["estimators"]])
    if len(set(settings["estimators"])) != len(settings["estimators"]):
        print(f"error: an estimator appears in more than one file: {settings['estimators']}", file=sys.stderr)
        return 2
    runs = {k: v for d in loaded for k, v in d["runs"].items()}
    default_reward = loaded[0]["pure_modes"] is not None
    summary = lm.summarize(runs, settings)
    os.makedirs(args.out, exist_ok=True)
    lm.plot(runs, settings, os.path.join(args.out, "lm.png"), default_reward)
    with open(os.path.join(args.out, "lm.json"), "w") as f:
        json.dump({"settings": settings, "reward_fn": loaded[0]["reward_fn"], "summary": summary, "runs": runs,
                   "pure_modes": loaded[0]["pure_modes"], "merged_from": args.merge.split(",")}, f, indent=1)
    print(lm.format_table(summary, settings, default_reward))
    print()
    print(lm.format_trajectory(runs, settings))
    print()
    probe = lm.format_probe(runs, settings)
    if probe:
        print(probe)
        print()
    print(lm.format_runs(runs, settings))
    print(f"\nplot: {os.path.join(args.out, 'lm.png')}   data: {os.path.join(args.out, 'lm.json')}")
    return 0


if __name__ == "__main__":
    argv = sys.argv[1:]
    if "--alignment" in argv:
        sys.exit(alignment(argv))
    if "--policy-alignment" in argv:
        sys.exit(policy_alignment(argv))
    if any(a == "--merge" or a.startswith("--merge=") for a in argv):
        sys.exit(merge(argv))
    sys.exit(main(argv, prog="python -m benchmarks.lm"))
