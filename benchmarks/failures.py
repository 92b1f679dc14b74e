"""Failures: answers far below the rest (a failure atom), through verl's ``compute_advantage``.

    python -m benchmarks.failures                      # every section (about 2 minutes on 2 cores)
    python -m benchmarks.failures --sections order     # one of: order, fp, scorers, scorer_credit, unchanged, bandit, caps, push

* ``order``: laws with a failure atom of probability ``p`` at a penalty (-3 to -30) under a valid law
  that mixes a normal mode and a Gumbel mode. For every tail estimator at (8, 64) and (16, 128),
  the mean credit of failing answers and of valid answers that are not their group's best, in units
  of the credit's sd, with failure handling on (``algorithm.tea.failure_reward`` unset: the atom is
  detected) and off (``-inf``). The target: failing answers at most the valid non-best mean + 0.02.
* ``fp``: how often the atom test (:func:`tea_verl.estimators.failures.bottom_atom`) fires on
  continuous laws without an atom, in float32 and in bfloat16 (a reward model's output), by batch
  size.
* ``scorers``: the same on real scorers' laws (``benchmarks.scorer_laws``: a lexicon on a real
  model's answers, integer judge scores, reward-model scores rounded to two decimals, rule-based
  partial credit), without a penalty and with 2 % or 5 % of the batch at a penalty below the valid
  bulk: how often the test fires, and finds the penalty; beside the test it replaced.
* ``scorer_credit``: on the real scorers' laws without a penalty, the share of batches (64 to 4096
  samples) whose credit differs between the default and ``failure_reward=-inf``.
* ``unchanged``: on the same continuous laws, the share of batches whose credit differs at all with
  failure handling on and off (it is only the share of batches the atom test fires on).
* ``bandit``: the mismatch bandit (``benchmarks.bandit``'s task, 96 prompts, lr 0.05, 1000 steps,
  3 seeds) trained with failure handling on and off, for the GEV pair at (8, 64) and the paper's
  pair at (16, 128): each final score, and the largest difference between the two final policies.
* ``caps``: the tiny LM's answers as three kinds (``benchmarks.lm``'s alignment: modes A and B and
  invalid answers at exactly -2), m = 8, N = 64, for the GEV pair with failure handling off, with
  censoring only, with the cap at the least credit of a group's valid non-best answers, and as
  shipped (the cap at their mean): the expected gradient's cosine with the exact best-of-64
  gradient at three policies, and invalid answers' mean credit against valid non-best answers'.
* ``push``: the same kinds, for every tail estimator at its budget ((8, 64) for the GEV pair, (16,
  128) for all four), at ``algorithm.tea.failure_push`` 0, 1, 2 and 4 (the default): the cosine with the exact
  best-of-N gradient and the gradient's invalid component.
* ``dump`` (with ``--dump FILE --failure-reward R``; not in the default list): a validation dump of
  verl's (one JSON line per sample with ``gts``/``input``, ``score`` and ``bon_response_length``),
  each prompt's samples dealt into groups of ``--m`` (50 reshuffles): the credit of the failures
  (score <= R) and of the valid answers that are not best under GRPO and the tail estimators at
  ``failure_push`` 0, 1 and the default (4), and the correlation of length and score over the valid answers.
  ``python -m benchmarks.real_lm`` writes such dumps (its ``val/<run>/0.jsonl``: the start;
  ``docs/real_lm/study/start_s0.jsonl.gz`` is the study's, seed 0; ``.gz`` is read as such).
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from omegaconf import OmegaConf

from tea_verl.config import TeaConfig
from tea_verl.estimators.failures import bottom_atom
from tea_verl.estimators.table import TAIL

SECTIONS = ("order", "fp", "scorers", "scorer_credit", "unchanged", "bandit", "caps", "push")
ON_REQUEST = ("dump",)
PENALTIES = (-3.0, -10.0, -30.0)
BUDGETS = ((8, 64), (16, 128))


def valid_mixture(rng: np.random.Generator, size: int) -> np.ndarray:
    """Half a normal mode (0, 0.5), half a Gumbel mode (-0.8, scale 1): a safe and a spread mode."""
    safe = rng.normal(0.0, 0.5, size)
    spread = -0.8 + rng.gumbel(0.0, 1.0, size)
    return np.where(rng.random(size) < 0.5, safe, spread)


def with_failures(rng: np.random.Generator, size: int, p: float, penalty: float) -> np.ndarray:
    x = valid_mixture(rng, size)
    return np.where(rng.random(size) < p, penalty, x)


def advantages(scores: np.ndarray, m: int, estimator: str, n: int, **tea) -> np.ndarray:
    """verl's compute_advantage on a one-token DataProto, as in training (std scaling on)."""
    from tea_verl.experiments.bandit import advantages_via_verl

    uids = np.repeat(np.arange(scores.size // m), m).astype(str).astype(object)
    algo = OmegaConf.create({"adv_estimator": estimator, "norm_adv_by_std_in_grpo": True, "tea": {"N": n, **tea}})
    return advantages_via_verl(torch.from_numpy(scores), uids, estimator, algo).numpy()


def order_stats(scores: np.ndarray, credit: np.ndarray, m: int, penalty: float) -> tuple[float, float]:
    """Mean credit of failures and of valid non-best answers, in units of the credit's sd."""
    x, c = scores.reshape(-1, m), credit.reshape(-1, m)
    fail = x <= penalty
    vmax = np.where(fail, -np.inf, x).max(1, keepdims=True)
    nonbest = ~fail & (x < vmax)
    sd = c.std()
    return float(c[fail].mean() / sd), float(c[nonbest].mean() / sd)


def section_order(args) -> None:
    print(f"## order: mean credit of failing answers vs valid answers that are not best, in credit sd; failure p = {args.p}, "
          f"{args.batches} batches of {args.groups} prompts; handling on (atom detected) / off (failure_reward=-inf)")
    head = " ".join(f"{f'({m}, {n}) {pen:g}':>27s}" for m, n in BUDGETS for pen in PENALTIES)
    print(f"{'estimator':16s} {'':4s} {head}")
    for est in TAIL:
        rows = {"on": [], "off": []}
        for m, n in BUDGETS:
            for pen in PENALTIES:
                rng = np.random.default_rng(args.seed)
                acc = {"on": [], "off": []}
                for _ in range(args.batches):
                    s = with_failures(rng, args.groups * m, args.p, pen)
                    acc["on"].append(order_stats(s, advantages(s, m, est, n), m, pen))
                    acc["off"].append(order_stats(s, advantages(s, m, est, n, failure_reward=float("-inf")), m, pen))
                for k in rows:
                    f, v = np.mean(acc[k], 0)
                    rows[k].append(f"{f:+.2f} vs {v:+.2f}")
        for k, cells in rows.items():
            print(f"{est:16s} {k:4s} " + " ".join(f"{c:>27s}" for c in cells), flush=True)


def _lexicon(rng, n):
    from benchmarks.common import LexiconLike

    return LexiconLike().sample(rng, (n,))


def lm_like(rng: np.random.Generator, n: int, invalid: float = 0.05) -> np.ndarray:
    """The tiny LM's reward: mode A 0 + 0.5 z, mode B -0.8 + z (half each), ``invalid`` at -2.
    About 6 % of the valid rewards fall below the penalty."""
    x = np.where(rng.random(n) < 0.5, 0.5 * rng.standard_normal(n), -0.8 + rng.standard_normal(n))
    return np.where(rng.random(n) < invalid, -2.0, x)


LAWS = {  # continuous laws, and one with point masses inside it
    "normal": lambda rng, n: rng.standard_normal(n),
    "gumbel": lambda rng, n: rng.gumbel(0.0, 1.0, n),
    "student5": lambda rng, n: rng.standard_t(5, n),
    "beta25": lambda rng, n: rng.beta(2.0, 5.0, n),
    "lognormal": lambda rng, n: rng.lognormal(0.0, 1.0, n),
    "narrow": lambda rng, n: 3.0 + 0.05 * rng.standard_normal(n),  # in bfloat16: a few dozen distinct values
    "lexicon": _lexicon,  # point masses inside the law (benchmarks.common.LexiconLike): no failure atom either
}


SIZES = (64, 128, 512, 4096)


def _share(draw, test, batches: int, seed: int) -> list[float]:
    """Per batch size: the share of ``batches`` batches ``draw(rng, B)`` on which ``test`` holds."""
    out = []
    for b in SIZES:
        rng = np.random.default_rng(seed)
        out.append(sum(bool(test(draw(rng, b))) for _ in range(batches)) / batches)
    return out


def section_fp(args) -> None:
    sizes = SIZES
    print(f"## fp: share of batches in which the atom test finds a failure atom, {args.fp_batches} batches per cell; "
          "the last rows have one (the tiny LM's reward, failures 5 % and 2 %): the share found")
    print(f"{'law':10s} {'dtype':9s} " + " ".join(f"{f'B = {b}':>9s}" for b in sizes))
    for name, draw in LAWS.items():
        for dtype in (torch.float32, torch.bfloat16):
            cells = []
            for b in sizes:
                rng = np.random.default_rng(args.seed)
                hits = 0
                for _ in range(args.fp_batches):
                    x = torch.from_numpy(draw(rng, b)).to(dtype).double()
                    hits += bottom_atom(x) is not None
                cells.append(f"{hits / args.fp_batches:9.4f}")
            print(f"{name:10s} {str(dtype).split('.')[-1]:9s} " + " ".join(cells), flush=True)
    for invalid in (0.05, 0.02):
        for dtype in (torch.float64, torch.bfloat16):  # bfloat16: the penalty inside a rounded valid tail
            def draw(rng, b, invalid=invalid, dtype=dtype):
                return torch.from_numpy(lm_like(rng, b, invalid)).to(dtype).double()
            for name, atom in (("", bottom_atom), (" previous", previous_atom)):
                if dtype == torch.float64 and name:
                    continue
                cells = _share(draw, lambda x, atom=atom: atom(x) == -2.0, args.fp_batches, args.seed)
                label = f"{str(dtype).split('.')[-1]}{name}"
                print(f"{f'lm {invalid:.0%}':10s} {label:9s} " + " ".join(f"{c:9.4f}" for c in cells), flush=True)
    # the LM experiment's own reward (tea_verl.experiments.lm: modes A and B, invalid answers at -4):
    # the share of batches in which this test and the previous one (previous_atom) give the same answer
    from tea_verl.experiments import lm as task

    (a_mu, a_sd), (b_mu, b_sd) = task.MODES["A"], task.MODES["B"]
    for invalid in (0.05, 0.02):
        def draw(rng, n, invalid=invalid):
            x = np.where(rng.random(n) < 0.5, a_mu + a_sd * rng.standard_normal(n), b_mu + b_sd * rng.standard_normal(n))
            return np.where(rng.random(n) < invalid, task.INVALID_REWARD, x.astype(np.float32)).astype(np.float64)
        found = _share(draw, lambda x: bottom_atom(torch.from_numpy(x)) == task.INVALID_REWARD, args.fp_batches, args.seed)
        same = _share(draw, lambda x: bottom_atom(torch.from_numpy(x)) == previous_atom(torch.from_numpy(x)), args.fp_batches, args.seed)
        print(f"{f'lm task {invalid:.0%}':14s} {'found':>5s} " + " ".join(f"{c:9.4f}" for c in found), flush=True)
        print(f"{f'lm task {invalid:.0%}':14s} {'same':>5s} " + " ".join(f"{c:9.4f}" for c in same), flush=True)


def section_scorers(args) -> None:
    """The real scorers' laws (benchmarks.scorer_laws): how often the atom test fires without a
    penalty, and finds the penalty when 2 % or 5 % of the batch get it; today's test (the one
    before the real-scorer laws, :func:`previous_atom`) beside it."""
    from benchmarks import scorer_laws as S

    print(f"## scorers: real scorers' laws, {args.fp_batches} batches per cell. Without a penalty: the share of batches in "
          "which the atom test fires; with one (share of the batch at the law's penalty): the share in which it finds it. "
          "'new' is the shipped test, 'previous' the one it replaced")
    print(f"{'law':12s} {'penalty':>13s} {'test':9s} " + " ".join(f"{f'B = {b}':>9s}" for b in SIZES))
    for law in S.LAWS:
        for share in (0.0, 0.02, 0.05):
            pen = S.PENALTIES[law]
            draw = (lambda rng, b, law=law, share=share: S.with_penalty(law, rng, b, share)[0]) if share else S.LAWS[law]
            label = f"{share:.0%} at {pen:g}" if share else "none"
            for name, atom in (("new", bottom_atom), ("previous", previous_atom)):
                if share:
                    test = lambda x, atom=atom, pen=pen: atom(torch.from_numpy(x)) == pen  # noqa: E731
                else:
                    test = lambda x, atom=atom: atom(torch.from_numpy(x)) is not None  # noqa: E731
                cells = _share(draw, test, args.fp_batches, args.seed)
                print(f"{law:12s} {label:>13s} {name:9s} " + " ".join(f"{c:9.4f}" for c in cells), flush=True)


def previous_atom(scores: torch.Tensor) -> float | None:
    """The atom test before the real-scorer laws, kept to measure against: the lowest value that at
    least 5 samples and 1 % of the batch hold exactly, 3 times as many as either neighbouring value,
    with at most 15 % of the batch below it. It took ordinary repeated values of real scorers for
    penalties (a lexicon's one-word compounds, a judge's heavy bottom step)."""
    import math

    total = scores.numel()
    if total < 2:
        return None
    values, counts = torch.unique(scores, sorted=True, return_counts=True)
    if values.numel() < 2:
        return None
    zero = counts.new_zeros(1)
    neighbours = torch.maximum(torch.cat([zero, counts[:-1]]), torch.cat([counts[1:], zero]))
    below = torch.cumsum(counts, 0) - counts
    ok = (counts >= max(5, math.ceil(0.01 * total))) & (counts >= 3 * neighbours) & (below <= 0.15 * total)
    ok[-1] = False  # some of the batch above it
    hit = torch.nonzero(ok)
    return float(values[hit[0, 0]]) if hit.numel() else None


def section_scorer_credit(args) -> None:
    """On the real scorers' laws without a penalty: the share of batches whose credit (through
    verl's compute_advantage, m = 8, N = 64) differs at all between the default
    (failure_reward unset: the atom test) and failure_reward=-inf; with the shipped test ('new') and
    with the one it replaced ('previous')."""
    from benchmarks import scorer_laws as S
    from tea_verl.estimators import failures

    m, n, count = 8, 64, args.batches * 10
    print(f"## scorer_credit: real scorers' laws without a penalty, m = {m}, N = {n}, {count} batches per cell: "
          "the share of batches whose credit differs between the default and failure_reward=-inf")
    print(f"{'law':12s} {'test':9s} {'B':>5s} " + " ".join(f"{e:>15s}" for e in TAIL))
    shipped = failures.bottom_atom
    try:
        for law, draw in S.LAWS.items():
            for name, atom in (("new", shipped), ("previous", previous_atom)):
                failures.bottom_atom = atom
                for b in (64, 512, 1024, 4096):
                    cells = []
                    for est in TAIL:
                        rng = np.random.default_rng(args.seed)
                        changed = 0
                        for _ in range(count):
                            s = draw(rng, b)
                            off = advantages(s, m, est, n, failure_reward=float("-inf"))
                            changed += not np.array_equal(advantages(s, m, est, n), off)
                        cells.append(f"{changed / count:15.3f}")
                    print(f"{law:12s} {name:9s} {b:5d} " + " ".join(cells), flush=True)
    finally:
        failures.bottom_atom = shipped


def section_unchanged(args) -> None:
    print(f"## unchanged: share of batches (groups x m = {args.groups} x 16, bfloat16 rewards, N = 128) whose credit differs "
          f"with failure handling on and off, {args.batches} batches per cell")
    print(f"{'law':10s} " + " ".join(f"{e:>15s}" for e in TAIL))
    for name, draw in LAWS.items():
        cells = []
        for est in TAIL:
            rng = np.random.default_rng(args.seed)
            changed = 0
            for _ in range(args.batches):
                s = torch.from_numpy(draw(rng, args.groups * 16)).to(torch.bfloat16).double().numpy()
                changed += not np.array_equal(advantages(s, 16, est, 128), advantages(s, 16, est, 128, failure_reward=float("-inf")))
            cells.append(f"{changed / args.batches:15.3f}")
        print(f"{name:10s} " + " ".join(cells), flush=True)


def section_bandit(args) -> None:
    from tea_verl.experiments import bandit

    steps, seeds = 1000, 3
    print(f"## bandit: the mismatch bandit (96 prompts, lr 0.05, {steps} steps) with failure handling on and off; final score "
          "(0 = pure A, 1 = pure B) and the largest difference between the final policies' probabilities")
    for est, m, n in (("tea_gev", 8, 64), ("prefix_tea_gev", 8, 64), ("tea", 16, 128), ("prefix_tea", 16, 128)):
        for seed in range(seeds):
            task = bandit.make_task("mismatch", 96, np.random.default_rng(seed), m, n)
            on = bandit.train(task, est, m, n, steps, 0.05, seed)
            off = bandit.train(task, est, m, n, steps, 0.05, seed, tea_keys={"failure_reward": float("-inf")})
            print(f"{est:15s} ({m}, {n}) seed {seed}   on {bandit.score(task, on, n):.4f}   off {bandit.score(task, off, n):.4f}"
                  f"   max |P_on - P_off| {np.abs(on - off).max():.1e}", flush=True)


def least_cap(credit, padded, fail, layout):
    """The rejected cap: at the least credit of the group's valid answers that are not best."""
    import math

    valid = layout.mask & ~fail
    vmax = torch.where(valid, padded, torch.full_like(padded, -math.inf)).amax(1, keepdim=True)
    nonbest = valid & (padded < vmax)
    big = torch.full_like(credit, math.inf)
    limit = torch.where(nonbest.any(1, keepdim=True), torch.where(nonbest, credit, big).amin(1, keepdim=True),
                        torch.where(valid, credit, big).amin(1, keepdim=True))
    return torch.where(fail & torch.isfinite(limit), torch.minimum(credit, limit), credit)


def section_caps(args) -> None:
    from benchmarks import lm as L
    from tea_verl.estimators import failures
    from tea_verl.estimators.table import GEV

    shipped = (failures.censor, failures.cap)
    unpushed = {"failure_push": 0.0}
    variants = {
        "off": (lambda padded, fail, layout: padded, lambda credit, padded, fail, layout: credit, unpushed),
        "censor only": (shipped[0], lambda credit, padded, fail, layout: credit, unpushed),
        "cap at least": (shipped[0], least_cap, unpushed),
        "cap at mean": (*shipped, unpushed),
        "shipped": (*shipped, {}),
    }
    exact = [L.exact_gradient(np.asarray(p), 64) for p in L.POINTS]
    print(f"## caps: the LM's answer kinds, m = 8, N = 64, {args.batches * 5} batches of 64 groups; cosine with the exact "
          f"best-of-64 gradient at P(A, B, invalid) = {', '.join(str(p) for p in L.POINTS)}; invalid vs valid non-best "
          f"mean credit at {L.POINTS[1]}; 'shipped' adds the failure push (failure_push = {TeaConfig.failure_push:g}, the default)")
    try:
        for name, (censor, cap, tea) in variants.items():
            failures.censor, failures.cap = censor, cap
            for est in GEV:
                cos = []
                for p, g in zip(L.POINTS, exact):
                    e = L.expected_gradient(np.asarray(p), est, 8, 64, args.batches * 5, 64, args.seed, tea)
                    cos.append(float(e @ g / np.linalg.norm(e) / np.linalg.norm(g)))
                _, invalid, rest = L.credit_by_rank(np.asarray(L.POINTS[1]), est, 8, 64, args.batches * 5, args.seed, tea)
                print(f"{name:13s} {est:15s} cos " + " ".join(f"{c:+.2f}" for c in cos) + f"   invalid {invalid:+.2f} vs {rest:+.2f}",
                      flush=True)
    finally:
        failures.censor, failures.cap = shipped


PUSHES = (0.0, 1.0, 2.0, 4.0)


def section_push(args) -> None:
    from benchmarks import lm as L
    from tea_verl.estimators.table import GAUSSIAN, GEV

    print(f"## push: the LM's answer kinds, {args.batches * 5} batches of 64 groups, at P(A, B, invalid) = "
          f"{', '.join(str(p) for p in L.POINTS)}: the expected gradient's cosine with the exact best-of-N one, and its "
          f"invalid component (unit norm; < 0: invalid answers get less likely); failure_push = {', '.join(map(str, PUSHES))}")
    for m, n, names in ((8, 64, GEV), (16, 128, GAUSSIAN + GEV)):
        exact = [L.exact_gradient(np.asarray(p), n) for p in L.POINTS]
        ref = " ".join(f"{g[2] / np.linalg.norm(g):+.2f}" for g in exact)
        print(f"({m}, {n})  exact best-of-{n}: invalid {ref}")
        for est in names:
            for push in PUSHES:
                cos, inv = [], []
                for p, g in zip(L.POINTS, exact):
                    e = L.expected_gradient(np.asarray(p), est, m, n, args.batches * 5, 64, args.seed, {"failure_push": push})
                    cos.append(float(e @ g / np.linalg.norm(e) / np.linalg.norm(g)))
                    inv.append(float(e[2] / np.linalg.norm(e)))
                print(f"({m}, {n})  {est:15s} push {push:<4g} cos " + " ".join(f"{c:+.2f}" for c in cos)
                      + "   invalid " + " ".join(f"{v:+.2f}" for v in inv), flush=True)


def section_dump(args) -> None:
    import json

    from tea_verl.experiments.bandit import advantages_via_verl

    if not args.dump or args.failure_reward is None:
        raise SystemExit("error: --sections dump needs --dump FILE (a validation dump) and --failure-reward R (the penalty)")
    by: dict[str, list] = {}
    import gzip

    with (gzip.open(args.dump, "rt") if args.dump.endswith(".gz") else open(args.dump)) as fh:
        for line in fh:
            row = json.loads(line)
            by.setdefault(row.get("gts") or row["input"], []).append((float(row["score"]), int(row["bon_response_length"])))
    m, rng = args.m, np.random.default_rng(args.seed)
    scores, lengths, uids = [], [], []
    for rep in range(50):
        for k, rows in enumerate(by.values()):
            order = rng.permutation(len(rows))
            for g in range(len(rows) // m):
                for i in order[g * m:(g + 1) * m]:
                    scores.append(rows[i][0])
                    lengths.append(rows[i][1])
                    uids.append(f"{rep}-{k}-{g}")
    x, lengths = np.array(scores), np.array(lengths)
    fail = x <= args.failure_reward
    print(f"## dump: {args.dump}: {len(by)} prompts, {len(x) // 50} samples, failures (score <= {args.failure_reward:g}) "
          f"{fail.mean():.3f}; groups of m = {m} (50 reshuffles), N = {args.N}; credit in units of its sd")
    print(f"correlation of length and score over the valid answers: {np.corrcoef(lengths[~fail], x[~fail])[0, 1]:+.3f}")
    xs, fs = x.reshape(-1, m), fail.reshape(-1, m)
    nonbest = ~fs & (xs < np.where(fs, -np.inf, xs).max(1, keepdims=True))
    uids = np.array(uids, dtype=object)
    for est in ("grpo", *TAIL):
        for push in ((None,) if est == "grpo" else (0.0, 1.0, TeaConfig.failure_push)):
            tea = {"N": args.N, "failure_reward": args.failure_reward, **({} if push is None else {"failure_push": push})}
            algo = OmegaConf.create({"adv_estimator": est, "norm_adv_by_std_in_grpo": True, "tea": tea})
            a = advantages_via_verl(torch.from_numpy(x), uids, est, algo).numpy().reshape(-1, m)
            sd, gap = a.std(), a[nonbest].mean() - a[fs].mean()
            label = "" if push is None else f"push {push:g}"
            print(f"{est:15s} {label:8s} failures {a[fs].mean() / sd:+.2f}  valid non-best {a[nonbest].mean() / sd:+.2f}"
                  f"  gap {gap / sd:+.2f} sd ({gap:+.2f}; credit sd {sd:.2f})", flush=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sections", default=",".join(SECTIONS), help=f"comma list of {', '.join(SECTIONS)}")
    ap.add_argument("--p", type=float, default=0.15, help="failure probability of the order section (default 0.15)")
    ap.add_argument("--groups", type=int, default=64, help="prompts per batch (default 64)")
    ap.add_argument("--batches", type=int, default=20, help="batches per cell of order and unchanged (default 20)")
    ap.add_argument("--fp-batches", type=int, default=2000, help="batches per cell of fp (default 2000)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dump", default=None, help="dump section: a validation dump (JSON lines)")
    ap.add_argument("--failure-reward", type=float, default=None, help="dump section: the penalty that marks a failure")
    ap.add_argument("--m", type=int, default=16, help="dump section: group size (default 16)")
    ap.add_argument("--N", type=int, default=128, help="dump section: best-of-N (default 128)")
    args = ap.parse_args(argv)
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    bad = [s for s in sections if s not in SECTIONS + ON_REQUEST]
    if bad:
        ap.error(f"unknown section(s) {bad}; choose from {', '.join(SECTIONS + ON_REQUEST)}")
    import verl  # noqa: F401  (the plugin registers the estimators)

    for name in sections:
        {"order": section_order, "fp": section_fp, "scorers": section_scorers, "scorer_credit": section_scorer_credit,
         "unchanged": section_unchanged, "bandit": section_bandit, "caps": section_caps,
         "push": section_push, "dump": section_dump}[name](args)
        print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
