"""Speed benchmark: the best-of-N estimators against verl's GRPO estimators, side by side.

    python -m benchmarks.speed [--prompts 4096 --m 16 --length 256 --N 256 --repeats 15 --uids uuid]

All estimators are called through verl's registry on the same CPU batch (float32
token_level_rewards of shape (prompts*m, length), a random response mask, and the prompt uids verl's
trainer assigns: ``str(uuid.uuid4())`` per prompt in an object array; ``--uids short`` uses
``uid-000001``-style strings instead), in round-robin order so that machine noise hits every
estimator alike. Reports the median wall time and its ratio to verl's ``grpo_vectorized``; the
target is at most 1.2x for every estimator.

The GEV ``tea_gev``/``prefix_tea_gev`` are timed twice: "warm" (the per-(m, N, xi) weight cache
holds the batch's fitted xi, the steady state of a run: xi lives on a 0.005 grid) and "cold"
(caches cleared before every call, i.e. the first batch at each new xi). The paper's Gaussian
``tea``/``prefix_tea`` have no per-batch cache worth the name (their constants depend on (alpha, N)
and m only) and are timed once.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
import uuid

import numpy as np
import torch
from omegaconf import OmegaConf


def make_batch(prompts: int, m: int, length: int, seed: int = 0, uids: str = "uuid", failures: float = 0.0):
    gen = torch.Generator().manual_seed(seed)
    bs = prompts * m
    lengths = torch.randint(1, length + 1, (bs,), generator=gen)
    mask = (torch.arange(length)[None, :] < lengths[:, None]).float()
    rewards = torch.zeros(bs, length)
    scores = torch.randn(bs, generator=gen)
    if failures:  # a failure atom far below the rest: the atom test's full path and the failure handling
        scores = torch.where(torch.rand(bs, generator=gen) < failures, torch.full_like(scores, -5.0), scores)
    rewards[torch.arange(bs), lengths - 1] = scores
    rng = random.Random(seed)
    if uids == "uuid":  # verl's ray trainer: str(uuid.uuid4()) per prompt, repeated rollout.n times
        ids = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(prompts)]
    else:
        ids = [f"uid-{p:06d}" for p in range(prompts)]
    return rewards, mask, np.array([ids[p] for p in range(prompts) for _ in range(m)], dtype=object)


def clear_caches():
    from tea_verl import estimators as E

    for fn in (E.tea_weights, E.prefix_tea_weights, E.exact.prefix_rank_table, E.exact.best_of_k_table):
        fn.cache_clear()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prompts", type=int, default=4096)
    ap.add_argument("--m", type=int, default=16)
    ap.add_argument("--length", type=int, default=256)
    ap.add_argument("--N", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--uids", choices=("uuid", "short"), default="uuid", help="prompt ids: verl's uuid4 strings (default) or short strings")
    ap.add_argument("--failures", type=float, default=0.0, help="share of the batch at a penalty of -5 (default 0: no failure atom)")
    args = ap.parse_args(argv)
    import verl  # noqa: F401
    from verl.trainer.ppo.core_algos import get_adv_estimator_fn

    from tea_verl.estimators.table import ESTIMATORS, EXACT, GEV

    rewards, mask, uids = make_batch(args.prompts, args.m, args.length, uids=args.uids, failures=args.failures)
    cases = [("grpo_vectorized", "grpo_vectorized", args.N, False), ("grpo", "grpo", args.N, False),
             ("grpo_passk", "grpo_passk", args.N, False)]
    for name in ESTIMATORS:  # every registered estimator; the GEV family warm and cold
        if name in EXACT:
            cases.append((f"{name} (N={args.m})", name, args.m, False))
        elif name in GEV:
            cases += [(f"{name} (warm)", name, args.N, False), (f"{name} (cold)", name, args.N, True)]
        else:
            cases.append((name, name, args.N, False))
    times = {c[0]: [] for c in cases}
    print(f"# {args.prompts} prompts x {args.m} responses x {args.length} tokens, CPU, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads; median of {args.repeats}"
          + (f"; {args.failures:.0%} of the rewards at a penalty of -5" if args.failures else ""))
    for rep in range(args.repeats + 1):  # first round is warm-up, not recorded
        for label, name, n, cold in cases:
            fn = get_adv_estimator_fn(name)
            cfg = OmegaConf.create({"norm_adv_by_std_in_grpo": True, "tea": {"N": n}})
            kwargs = {"norm_adv_by_std_in_grpo": True} if name.startswith("grpo") and name != "grpo_passk" else {}
            if cold:
                clear_caches()
            t0 = time.perf_counter()
            fn(token_level_rewards=rewards, response_mask=mask, index=uids, config=cfg, **kwargs)
            dt = time.perf_counter() - t0
            if rep:
                times[label].append(dt)
    base = statistics.median(times["grpo_vectorized"])
    print(f"{'estimator':22s} {'median ms':>10s} {'x grpo_vectorized':>18s}")
    for label, *_ in cases:
        med = statistics.median(times[label])
        print(f"{label:22s} {1e3 * med:10.1f} {med / base:18.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
