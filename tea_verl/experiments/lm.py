"""A tiny language model trained for best-of-N through verl's real trainer on the CPU.

``python -m benchmarks.lm`` (the benchmark) and ``tea-verl demo --lm`` (the same, for users) train
one tiny policy per (estimator, seed) with ``tea_verl.main_ppo``'s task runner and the CPU backend
(:mod:`tea_verl.cpu`): verl's FSDP2 actor with PPO clipping and token-level credit, the ``hf_cpu``
rollout with weight sync, the reward loop with the ``best_of_n`` manager, and validation with the
exact best-of-k metrics. All runs share one Ray session (its start-up is paid once).

**The task.** Every prompt is answered by a *mode word* and six digit words, e.g.
``maybe three one four one five nine``. The reward (:func:`spread_reward`, a verl custom reward
function) reads the generated text:

* ``safe`` and six digit words (mode A) scores ``0.0 + 0.5 z``; ``maybe`` and six digit words
  (mode B) scores ``-1.0 + 1.0 z``; anything else (another first word, fewer or more words, a word
  that is not a digit word) scores ``-4``, a failure far below the rest (mode B's rewards fall
  below it with probability 0.001);
* ``z`` is a fresh standard normal draw for every scored answer: the luck of the draw, which no
  policy can learn. (It used to be a hash of the six digit words. Policies then narrowed to a few
  digit strings and learnt lucky ones, 24-40 % distinct answers on some seeds, which lifted their
  best-of-N by memorising and not by choosing a mode: an artefact of the task, removed.)
* every answer has seven tokens (``--max-response-length``, default 7; the tokenizer is
  word-level): the sampler neither ends an answer before its seventh token (the CPU rollout's
  ``engine_kwargs.hf_cpu.min_tokens``, as vLLM's ``min_tokens``) nor continues it after. The
  end-of-sequence token is the one token no reward anchors: the run's probe (:func:`probe_spec`)
  shows its probability after the sixth and the seventh word drifting under every method, and
  with an end the policy chooses, that drift made every answer too long (or too short) within a
  few updates, under GRPO as under the tail estimators (docs/results.md). ``--max-response-length
  10`` runs the earlier task, where a valid answer must end after its seventh word.

The exact best-of-n of a pure mode is ``mu + sd c_n``, ``c_n`` the expected maximum of n standard
normals. Mode A is better up to n = 26: at best-of-1 (0 against -1.0), best-of-8 (0.712 against
0.424) and best-of-16 (0.883 against 0.766); mode B from n = 27: best-of-64 (1.344 against 1.172)
and best-of-128 (1.595 against 1.297). GRPO's mean reward and best-of-16 training prefer A;
best-of-128 prefers B, so at the paper's budget (m = 16, N = 128) only an estimator that
extrapolates past m finds B. :func:`pure_best_of` gives the values. Because the luck is fresh, a
policy's exact best-of-N is a function of its mode shares alone (:func:`best_of_modes`); the
experiment reports it beside the best-of-N of the validation samples: the same quantity without
the luck's sampling noise.

**The policy.** A config-built Llama (hidden 64, 2 layers) over :mod:`tea_verl.launch.tiny`'s word-level
tokenizer, warm-started by a short supervised phase (:func:`warm_start`) on answers of the right
form with either mode word at random, so that both modes are sampled at the start; seeded per seed.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import sys
import tempfile
import time

import numpy as np

from tea_verl.estimators.table import COMPARISON, GAUSSIAN, LABELS, METHODS, PREFIX, comparison_method
from tea_verl.launch.common import LaunchError, exit_status, read_jsonl

MODULE = "tea_verl.experiments.lm"  # the reward function's pkg:// and the child process (not __name__: "__main__" under -m)
MODE_WORDS = {"safe": "A", "maybe": "B"}
DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
FREE_LEN = 6
MODES = {"A": (0.0, 0.5), "B": (-1.0, 1.0)}  # (mean, sd) of the reward of each mode
INVALID_REWARD = -4.0
DATA_SOURCE = "tea_lm"
ESTIMATORS = COMPARISON  # the estimator table's comparison methods; "bon" is taken for bon_m (bon at N = m)
DEFAULT_ESTIMATORS = ("grpo",) + PREFIX  # grpo, prefix_tea (the paper's), prefix_tea_gev
QUICK_ESTIMATOR = "prefix_tea_gev"  # the README's choice at m = 8 that did not collapse here (docs/results.md)
_QUESTIONS = ("please explain", "tell me about", "write about", "what is", "help me with", "why is", "list", "who is")
_TOPICS = ("code", "math", "a story", "a poem", "the answer")


class LMError(LaunchError):
    """Bad input or a failed run; the message names the problem and the fix."""


# ----------------------------------------------------------------------------------------------
# The task
# ----------------------------------------------------------------------------------------------
_LUCK = np.random.default_rng()  # per process, from the OS: the luck is no function of the answer


def luck() -> float:
    """A fresh standard normal draw (the luck of one scored answer)."""
    return float(_LUCK.standard_normal())


def mode_of(text: str) -> str | None:
    """``"A"``, ``"B"`` or None: the mode of a response (None: not of the task's form)."""
    words = str(text).split()
    if not words or len(words) != 1 + FREE_LEN or not all(w in DIGIT_WORDS for w in words[1:]):
        return None
    return MODE_WORDS.get(words[0])


def spread_reward(data_source=None, solution_str: str = "", ground_truth=None, extra_info=None, **kwargs) -> float:
    """The task's reward, in verl's custom reward signature (see the module docstring)."""
    words = str(solution_str).split()
    mode = MODE_WORDS.get(words[0]) if words else None
    if mode is None or len(words) != 1 + FREE_LEN or not all(w in DIGIT_WORDS for w in words[1:]):
        return INVALID_REWARD
    mu, sd = MODES[mode]
    return float(mu + sd * luck())


def pure_best_of(mode: str, n: int) -> float:
    """Exact best-of-n of always answering in ``mode``."""
    from tea_verl.estimators.gaussian import normal_max_mean

    mu, sd = MODES[mode]
    return float(mu + sd * normal_max_mean(int(n)))


def best_of_modes(shares: np.ndarray, n: int) -> np.ndarray:
    """Exact best-of-n of policies answering mode A, mode B and invalid with ``shares`` (P, 3) ->
    (P,): the expected maximum of n rewards of the task (the invalid atom at -2 as a normal of
    sd 0.005, which moves the value by less than 0.005)."""
    from tea_verl.experiments.bandit import best_of_mixture

    shares = np.asarray(shares, dtype=float)
    mu = np.broadcast_to([MODES["A"][0], MODES["B"][0], INVALID_REWARD], shares.shape)
    sd = np.broadcast_to([MODES["A"][1], MODES["B"][1], 0.005], shares.shape)
    return best_of_mixture(shares, np.ascontiguousarray(mu), np.ascontiguousarray(sd), int(n))


def prompts() -> tuple[list[str], list[str]]:
    """40 prompts from the tiny tokenizer's words: 28 for training, 12 held out for validation."""
    allp = [f"{q} {t}" for t in _TOPICS for q in _QUESTIONS]
    rng = np.random.default_rng(7)
    order = rng.permutation(len(allp))
    allp = [allp[i] for i in order]
    return allp[:28], allp[28:]


def _encode(tok, prompt: str, answer: str) -> tuple[list[int], int]:
    ids = tok.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=True)
    if isinstance(ids, dict) or hasattr(ids, "keys"):
        ids = ids["input_ids"]
    resp = tok(answer, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    return list(ids) + resp, len(ids)


def warm_start(model, tok, train_prompts: list[str], seed: int, steps: int = 300, batch: int = 64, lr: float = 3e-3) -> dict:
    """Supervised warm start on answers of the task's form, either mode word with probability 1/2
    and uniform digits (loss on the answer tokens). Returns the probability of each mode word as
    the first answer token after training, averaged over ``train_prompts``."""
    import torch

    g = np.random.default_rng(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for _ in range(steps):
            rows = []
            for _ in range(batch):
                p = train_prompts[int(g.integers(len(train_prompts)))]
                words = [list(MODE_WORDS)[int(g.integers(2))]] + [DIGIT_WORDS[int(d)] for d in g.integers(10, size=FREE_LEN)]
                rows.append(_encode(tok, p, " ".join(words)))
            width = max(len(ids) for ids, _ in rows)
            inp = torch.full((batch, width), tok.pad_token_id)
            att = torch.zeros((batch, width), dtype=torch.long)
            lab = torch.full((batch, width), -100)
            for i, (ids, n_prompt) in enumerate(rows):
                inp[i, : len(ids)] = torch.tensor(ids)
                att[i, : len(ids)] = 1
                lab[i, n_prompt : len(ids)] = torch.tensor(ids[n_prompt:])
            loss = model(input_ids=inp, attention_mask=att, labels=lab).loss
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    ids = {w: tok.convert_tokens_to_ids(w) for w in MODE_WORDS}
    probs = {w: 0.0 for w in MODE_WORDS}
    with torch.no_grad():
        for p in train_prompts:
            x, _ = _encode(tok, p, "")
            n_prompt = len(x) - 1  # drop the eos appended for an empty answer
            logits = model(input_ids=torch.tensor([x[:n_prompt]])).logits[0, -1]
            pr = torch.softmax(logits.double(), -1)
            for w, i in ids.items():
                probs[w] += float(pr[i]) / len(train_prompts)
    return {"final_loss": loss.item(), "first_word_prob": probs}


def build_assets(path: str, seed: int) -> dict:
    """Tokenizer, warm-started model (``path/model``) and the train/val parquet files."""
    from transformers.utils import logging as hf_logging

    from tea_verl.launch.tiny import build_causal_lm, build_tokenizer, write_prompts

    hf_logging.disable_progress_bar()
    train_p, val_p = prompts()
    tok = build_tokenizer()
    model = build_causal_lm(tok, seed=seed)
    info = warm_start(model, tok, train_p, seed)
    model.save_pretrained(os.path.join(path, "model"))
    tok.save_pretrained(os.path.join(path, "model"))
    write_prompts(os.path.join(path, "train.parquet"), train_p, data_source=DATA_SOURCE, split="train")
    write_prompts(os.path.join(path, "val.parquet"), val_p, data_source=DATA_SOURCE, split="test")
    with open(os.path.join(path, "warm_start.json"), "w") as f:
        json.dump(info, f, indent=1)
    return info


PROBE_DIGITS = "three one four one five nine"


def probe_spec(tok, train_prompts: list[str], out: str) -> dict:
    """The fixed contexts the rollout server probes after every weight sync (``TEA_CPU_PROBE``,
    :mod:`tea_verl.cpu.rollout`): for the first four training prompts and each mode word, the answer's
    start (the probability of each mode word), its sixth word (the probability of ending there: a
    too-short answer) and its seventh (of ending where a valid answer ends). Rows go to ``out``."""
    contexts = []
    for p in train_prompts[:4]:
        start, _ = _encode(tok, p, "")
        contexts.append({"label": "start", "ids": start[:-1]})  # without the eos _encode appends
        for word in MODE_WORDS:
            for label, n_digits in (("after6", FREE_LEN - 1), ("after7", FREE_LEN)):
                ids, _ = _encode(tok, p, " ".join([word, *PROBE_DIGITS.split()[:n_digits]]))
                contexts.append({"label": label, "ids": ids[:-1]})
    tokens = {"eos": tok.eos_token_id, **{w: tok.convert_tokens_to_ids(w) for w in MODE_WORDS}}
    return {"out": out, "tokens": tokens, "contexts": contexts}


def read_probe(path: str, names: list[str]) -> dict[str, list[dict]]:
    """The probe's rows, one list per run: each rollout server (a run) tags its rows, and the runs
    start in ``names``' order. Per row: the training step of the weights, the mean probability of
    ending after the sixth and the seventh word, and of the end token and each mode word at the
    start."""
    if not os.path.exists(path):
        return {}
    servers: dict[str, list[dict]] = {}
    for row in read_jsonl(path):
        servers.setdefault(row["server"], []).append(row)
    if len(servers) != len(names):  # a run that failed early: no reliable pairing
        return {}
    res = {}
    for name, rows in zip(names, servers.values()):
        out = []
        for row in rows:
            by = {}
            for c in row["contexts"]:
                by.setdefault(c["label"], []).append(c)
            out.append({"step": row["global_steps"], "end_after6": float(np.mean([c["eos"] for c in by["after6"]])),
                        "end_after7": float(np.mean([c["eos"] for c in by["after7"]])),
                        "start_eos": float(np.mean([c["eos"] for c in by["start"]])),
                        **{f"start_{w}": float(np.mean([c[w] for c in by["start"]])) for w in MODE_WORDS}})
        res[name] = out
    return res


# ----------------------------------------------------------------------------------------------
# The experiment
# ----------------------------------------------------------------------------------------------
def parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description="Train a tiny LM for best-of-N through verl's real trainer on the CPU: GRPO against the TEA "
        "estimators, same seed, data, steps and learning rate; a table of final best-of-1/m/N and a plot.",
    )
    p.add_argument("--estimators", default=None, help=f"comma-separated, from {','.join(ESTIMATORS)} (default {','.join(DEFAULT_ESTIMATORS)})")
    p.add_argument("--seeds", type=int, default=None, help="seeds 0..S-1 (default 3; 1 with --quick)")
    p.add_argument("--m", type=int, default=None, help="rollouts per prompt in training (default 16, the paper's; 8 with --quick)")
    p.add_argument("--N", type=int, default=None, help="deployment best-of-N (default 128, the paper's; 64 with --quick)")
    p.add_argument("--steps", type=int, default=None, help="training steps per run (default 15; 10 with --quick)")
    p.add_argument("--val-every", type=int, default=5, help="validate every k steps, and before training (default 5)")
    p.add_argument("--val-n", type=int, default=None, help="validation samples per prompt (default N; at least N)")
    p.add_argument("--batch", type=int, default=16, help="prompts per training batch (default 16)")
    p.add_argument("--lr", type=float, default=1e-3, help="actor learning rate (default 1e-3; docs/benchmarks.md says why not 2e-3)")
    p.add_argument("--max-response-length", type=int, default=1 + FREE_LEN,
                   help=f"response cap in tokens (default {1 + FREE_LEN}: an answer's seven words, no end token needed; "
                   "10 runs the earlier task, where a valid answer must end after its seventh word)")
    p.add_argument("--reward-fn", default=None,
                   help="path.py:function, a verl custom reward function (default: the task's own, tea_verl.experiments.lm.spread_reward)")
    p.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                   help="a Hydra override of tea_trainer applied to every run, e.g. algorithm.tea.alpha=0.4 "
                   "(repeatable; keys the experiment sets per run are refused: use its flags)")
    p.add_argument("--quick", action="store_true", help=f"1 seed, grpo and {QUICK_ESTIMATOR}, m = 8, N = 64, 10 steps (under 5 minutes)")
    p.add_argument("--out", default="lm_out", help="output directory (default lm_out/)")
    p.add_argument("--timeout", type=float, default=3600.0, help="seconds before the experiment is stopped (default 3600)")
    return p


def _override_key(override: str) -> str:
    """The config key of a Hydra override ``[+|++|~]KEY=VALUE``."""
    return override.partition("=")[0].lstrip("+~")


def _overrides_note(s: dict) -> str:
    """``"; overrides K=V ..."`` for titles and headers, empty without overrides."""
    return f"; overrides {' '.join(s['overrides'])}" if s.get("overrides") else ""


def settings(args) -> dict:
    """The experiment's settings from parsed arguments, checked; bad input is an LMError."""
    from tea_verl.estimators.gaussian import DEFAULT_ALPHA, tail_error

    ests = args.estimators.split(",") if args.estimators else (["grpo", QUICK_ESTIMATOR] if args.quick else list(DEFAULT_ESTIMATORS))
    m = args.m if args.m is not None else (8 if args.quick else 16)
    N = args.N if args.N is not None else (64 if args.quick else 128)
    ests = [e.strip() for e in ests if e.strip()]
    bad = [e for e in ests if e not in ESTIMATORS and e != "bon"]
    if bad or not ests:
        raise LMError(f"--estimators: unknown {bad or 'empty list'}; choose from {','.join(ESTIMATORS)}")
    ests = [comparison_method(e).name for e in ests if e not in bad]  # "bon" is bon_m
    if len(set(ests)) != len(ests):
        raise LMError(f"--estimators lists one twice: {','.join(ests)}")
    seeds = args.seeds if args.seeds is not None else (1 if args.quick else 3)
    steps = args.steps if args.steps is not None else (10 if args.quick else 15)
    val_n = args.val_n if args.val_n is not None else N
    for name, v, lo in (("--seeds", seeds, 1), ("--steps", steps, 1), ("--val-every", args.val_every, 1), ("--m", m, 2), ("--batch", args.batch, 2)):
        if v < lo:
            raise LMError(f"{name} must be >= {lo}, got {v}")
    if N <= m:
        raise LMError(f"--N {N} is not above --m {m}: best-of-N training from m rollouts needs N > m (use bon when N <= m)")
    if val_n < N:
        raise LMError(f"--val-n {val_n} is below --N {N}: validation needs at least N samples per prompt for the exact best-of-N")
    if args.max_response_length < 1 + FREE_LEN:
        raise LMError(f"--max-response-length {args.max_response_length} is below the answer's {1 + FREE_LEN} words: no answer could be valid")
    if args.batch % 2:
        raise LMError(f"--batch must be even (two PPO mini-batches per step), got {args.batch}")
    if not (args.lr > 0 and math.isfinite(args.lr)):
        raise LMError(f"--lr must be a positive number, got {args.lr}")
    overrides = [o.strip() for o in args.override]
    alpha = DEFAULT_ALPHA
    for o in overrides:
        key, (_, eq, value) = _override_key(o), o.partition("=")
        if not eq or not key or not re.fullmatch(r"[A-Za-z_][\w.]*", key):
            raise LMError(f"--override {o!r}: expected KEY=VALUE with a dotted config key, e.g. algorithm.tea.alpha=0.4")
        if key == "algorithm.tea.alpha":
            try:
                alpha = float(value)
            except ValueError:
                raise LMError(f"--override {o!r}: algorithm.tea.alpha must be a number in (0, 0.5)") from None
    for e in ests:
        err = tail_error(e, alpha, m) if e in GAUSSIAN and 0.0 < alpha < 0.5 else None
        if err:
            raise LMError(err)
    return {"estimators": ests, "seeds": seeds, "steps": steps, "val_n": val_n, "m": m, "N": N,
            "val_every": args.val_every, "batch": args.batch, "lr": args.lr, "overrides": overrides,
            "max_response_length": args.max_response_length}


def run_name(est: str, seed: int) -> str:
    return f"{est}_s{seed}"


def run_overrides(est: str, seed: int, s: dict, out: str, assets: str, reward: tuple[str, str], ray_tmp: str) -> dict[str, object]:
    """Every key a run sets on ``tea_trainer`` (applied with Hydra's ``++``)."""
    from tea_verl.launch.smoke import smoke_overrides

    # the oracle is `bon` on N rollouts per prompt: the exact best-of-N gradient, at N / m times
    # the rollouts of the others (a ceiling for what m rollouts could do, not a competitor)
    row = comparison_method(est)
    rollouts = row.group_size(s["m"], s["N"])
    o = smoke_overrides(out, assets, reward, s["steps"], 1, ray_tmp, s["batch"], rollouts)
    name = run_name(est, seed)
    o.update({
        "algorithm.adv_estimator": row.registry,
        "algorithm.tea.N": row.n_arg(s["m"], s["N"]),
        "actor_rollout_ref.rollout.n": rollouts,
        "actor_rollout_ref.rollout.val_kwargs.n": s["val_n"],
        "actor_rollout_ref.rollout.val_kwargs.do_sample": True,
        "actor_rollout_ref.rollout.val_kwargs.temperature": 1.0,
        "actor_rollout_ref.rollout.seed": seed,
        "actor_rollout_ref.actor.optim.lr": s["lr"],
        "actor_rollout_ref.actor.ppo_mini_batch_size": s["batch"] // 2,  # two PPO updates per step: clipping acts
        "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu": s["batch"] * rollouts // 2,
        "data.seed": seed,
        "data.max_prompt_length": 32,
        "data.max_response_length": s.get("max_response_length", 1 + FREE_LEN),
        # fixed-length answers: the sampler cannot end one before its seventh token (as vLLM's min_tokens)
        "actor_rollout_ref.rollout.engine_kwargs.hf_cpu.min_tokens": 1 + FREE_LEN if s.get("max_response_length", 1 + FREE_LEN) == 1 + FREE_LEN else 0,
        "trainer.test_freq": s["val_every"],
        "trainer.val_before_train": True,
        "trainer.project_name": "metrics",
        "trainer.experiment_name": name,
        "trainer.validation_data_dir": os.path.join(out, "val", name),
    })
    return o


def compose_runs(s: dict, out: str, reward: tuple[str, str], ray_tmp: str) -> list[dict]:
    """Every run's overrides and composed config (a run per estimator and seed); a bad --override is
    an LMError before any work."""
    from tea_verl import CONFIG_DIR
    from tea_verl.launch.common import compose_or_fail, hydra_value

    runs = []
    for seed in range(s["seeds"]):
        assets = os.path.join(out, "assets", f"seed{seed}")
        for est in s["estimators"]:
            o = run_overrides(est, seed, s, out, assets, reward, ray_tmp)
            for extra in s.get("overrides", []):
                key = _override_key(extra)
                if key in o:
                    raise LMError(f"--override {extra!r}: the experiment sets {key} itself for every run "
                                  "(use its own flags: --m, --N, --lr, --steps, --batch, --val-n, --seeds)")
            overrides = [f"++{k}={hydra_value(v)}" for k, v in o.items()] + list(s.get("overrides", []))
            cfg = compose_or_fail(CONFIG_DIR, "tea_trainer", overrides)
            runs.append({"name": run_name(est, seed), "estimator": est, "seed": seed, "assets": assets,
                         "overrides": overrides, "cfg": cfg})
    return runs


def _child(plan_path: str) -> int:
    """Run every planned run in one Ray session (``python -m tea_verl.experiments.lm --child PLAN``)."""
    import ray
    from omegaconf import OmegaConf
    from ray import PlacementGroupID
    from ray.util.placement_group import PlacementGroup, placement_group_table, remove_placement_group
    from verl.trainer.constants_ppo import get_ppo_ray_runtime_env
    from verl.utils.device import auto_set_device

    from tea_verl import CONFIG_DIR
    from tea_verl.integrations.verl.preflight import compose
    from tea_verl.integrations.verl.validation import TeaTaskRunner

    with open(plan_path) as f:
        plan = json.load(f)
    cfgs = [compose(CONFIG_DIR, "tea_trainer", r["overrides"]) for r in plan["runs"]]
    init = OmegaConf.to_container(cfgs[0].ray_kwargs.ray_init, resolve=True)
    init = {k: v for k, v in init.items() if v is not None and k != "runtime_env"}
    ray.init(**init, runtime_env=OmegaConf.to_container(OmegaConf.create(get_ppo_ray_runtime_env(cfgs[0])), resolve=True))
    total_gpus = ray.cluster_resources().get("GPU", 0)
    for i, (r, cfg) in enumerate(zip(plan["runs"], cfgs)):
        auto_set_device(cfg)
        t0 = time.time()
        print(f"[lm] run {i + 1}/{len(cfgs)} {r['name']}: start", flush=True)
        runner = TeaTaskRunner.remote()
        ray.get(runner.run.remote(cfg))
        ray.kill(runner)
        # verl's resource pools are placement groups scoped to this driver, not to the task runner:
        # remove them, or the next run waits for a logical GPU that is never released
        for pg_id, info in placement_group_table().items():
            if info.get("state") != "REMOVED":
                remove_placement_group(PlacementGroup(PlacementGroupID(bytes.fromhex(pg_id))))
        deadline = time.time() + 120
        while ray.available_resources().get("GPU", 0) < total_gpus:
            if time.time() > deadline:  # the next run's workers need the logical GPU back
                raise RuntimeError(f"run {r['name']}'s workers did not release Ray's logical GPU within 120 s")
            time.sleep(0.5)
        print(f"[lm] run {i + 1}/{len(cfgs)} {r['name']}: done in {time.time() - t0:.1f} s", flush=True)
    ray.shutdown()
    return 0


def _val_files(out: str, name: str) -> list[tuple[int, str]]:
    d = os.path.join(out, "val", name)
    if not os.path.isdir(d):
        return []
    steps = []
    for f in os.listdir(d):
        mt = re.fullmatch(r"(\d+)\.jsonl", f)
        if mt:
            steps.append((int(mt[1]), os.path.join(d, f)))
    return sorted(steps)


def read_validation(path: str, ks: tuple[int, ...] = ()) -> dict:
    """From one verl validation dump: the exact best-of-k curve (k = 1..n, averaged over prompts)
    and the fraction of samples in each mode; with ``ks`` (the task's own reward only), also the
    exact best-of-k of each prompt's mode shares (:func:`best_of_modes`), averaged over prompts."""
    from tea_verl.metrics.curves import summarize_curves
    from tea_verl.metrics.samples import read_jsonl_rows, samples_from_rows

    rows = read_jsonl_rows(path)  # read once: the scores for the curve, the outputs for the modes
    samples = samples_from_rows(rows, path)
    groups: dict[str, list[float]] = {}
    for uid, x in zip(samples.uid, samples.selection):
        groups.setdefault(uid, []).append(float(x))
    curve = summarize_curves(DATA_SOURCE, [(np.asarray(v), None) for v in groups.values()])
    outputs = [str(row.get("output", "")) for _, row in rows]
    modes = {"A": 0, "B": 0, None: 0}
    for text in outputs:
        modes[mode_of(text)] += 1
    n = max(len(outputs), 1)
    distinct = len({text.strip() for text in outputs}) / n
    res = {"best": curve.best_mean.tolist(), "prompts": curve.num_prompts, "p_A": modes["A"] / n,
           "p_B": modes["B"] / n, "p_other": modes[None] / n, "distinct": distinct}
    if ks:
        shares: dict[str, np.ndarray] = {}
        for uid, text in zip(samples.uid, outputs):
            shares.setdefault(uid, np.zeros(3))[{"A": 0, "B": 1, None: 2}[mode_of(text)]] += 1
        table = np.array([v / v.sum() for v in shares.values()])
        res["best_modes"] = {str(k): float(best_of_modes(table, k).mean()) for k in ks}
    return res


# verl's step metrics kept per run
TRAIN_KEYS = ("critic/score/mean", "critic/advantages/mean", "critic/advantages/max", "critic/advantages/min",
              "tea/credit_mean", "tea/credit_std", "tea/xi", "tea/failure_share", "actor/pg_clipfrac", "actor/grad_norm",
              "actor/entropy", "actor/ppo_kl", "response_length/mean", "timing_s/step")


def collect(out: str, runs: list[dict], ks: tuple[int, ...] = ()) -> dict:
    """Per run: validation curves and mode fractions per validation step (with ``ks``, the best-of-k
    of the mode shares too), verl's per-step advantage statistics, and the probe's per-step
    probabilities; read from the run's dumps, metrics file and the probe's rows."""
    res = {}
    probes = read_probe(os.path.join(out, "probe.jsonl"), [r["name"] for r in runs])
    for r in runs:
        name = r["name"]
        vals = {step: read_validation(p, ks) for step, p in _val_files(out, name)}
        if not vals:
            raise LMError(f"run {name} left no validation dumps in {os.path.join(out, 'val', name)}; see {os.path.join(out, 'lm.log')}")
        metrics_path = os.path.join(out, "metrics", "metrics", f"{name}.jsonl")
        steps = [{"step": row["step"], **{k: row["data"][k] for k in TRAIN_KEYS if k in row["data"]}}
                 for row in read_jsonl(metrics_path)]  # verl's file logger; no file: no steps
        res[name] = {"estimator": r["estimator"], "seed": r["seed"], "val": {str(k): v for k, v in vals.items()}, "train": steps,
                     "probe": probes.get(name, [])}
    return res


def _final(run: dict) -> dict:
    return run["val"][max(run["val"], key=int)]


def _mean_se(xs: list[float]) -> tuple[float, float]:
    a = np.asarray(xs, dtype=float)
    return float(a.mean()), (float(a.std(ddof=1) / math.sqrt(a.size)) if a.size > 1 else float("nan"))


def summarize(res: dict, s: dict) -> dict:
    """Final best-of-1/m/N (of the validation samples, and of the mode shares when the runs have
    it), P(mode B) and P(invalid) per estimator: mean and s.e. over seeds, the worst run's
    P(invalid), and, against GRPO, the paired differences over the seeds both ran."""
    out = {}
    ks = (1, s["m"], s["N"])
    for est in s["estimators"]:
        finals = [v for v in res.values() if v["estimator"] == est]
        rows = {}
        for k in ks:
            rows[f"best@{k}"] = _mean_se([_final(v)["best"][k - 1] for v in finals])
            if all("best_modes" in _final(v) for v in finals):
                rows[f"modes@{k}"] = _mean_se([_final(v)["best_modes"][str(k)] for v in finals])
        rows["p_B"] = _mean_se([_final(v)["p_B"] for v in finals])
        rows["p_other"] = _mean_se([_final(v)["p_other"] for v in finals])
        rows["worst_p_other"] = float(max(_final(v)["p_other"] for v in finals))
        start = [v["val"][min(v["val"], key=int)] for v in finals]
        rows["start"] = {f"best@{k}": float(np.mean([x["best"][k - 1] for x in start])) for k in ks}
        if all("best_modes" in x for x in start):
            rows["start"].update({f"modes@{k}": float(np.mean([x["best_modes"][str(k)] for x in start])) for k in ks})
        rows["start"]["p_B"] = float(np.mean([x["p_B"] for x in start]))
        rows["start"]["p_other"] = float(np.mean([x["p_other"] for x in start]))
        out[est] = rows
    if "grpo" in out:
        base = {v["seed"]: v for v in res.values() if v["estimator"] == "grpo"}
        for est in s["estimators"]:
            if est == "grpo":
                continue
            pairs = [(v, base[v["seed"]]) for v in res.values() if v["estimator"] == est and v["seed"] in base]
            d = {"seeds": len(pairs),
                 f"best@{s['N']}": _mean_se([_final(x)["best"][s["N"] - 1] - _final(g)["best"][s["N"] - 1] for x, g in pairs]),
                 "grpo_best@1": _mean_se([_final(g)["best"][0] - _final(x)["best"][0] for x, g in pairs])}
            if all("best_modes" in _final(x) and "best_modes" in _final(g) for x, g in pairs):
                key = str(s["N"])
                d[f"modes@{s['N']}"] = _mean_se([_final(x)["best_modes"][key] - _final(g)["best_modes"][key] for x, g in pairs])
                d["grpo_modes@1"] = _mean_se([_final(g)["best_modes"]["1"] - _final(x)["best_modes"]["1"] for x, g in pairs])
            out[est]["paired"] = d
    return out


def _fmt_ms(ms: tuple[float, float], sign: str = "+") -> str:
    m_, se = ms
    return f"{m_:{sign}.3f} ± {se:.3f}" if math.isfinite(se) else f"{m_:{sign}.3f}"


def _z(ms: tuple[float, float]) -> str:
    m_, se = ms
    return f" ({m_ / se:+.1f} s.e.)" if math.isfinite(se) and se > 0 else ""


def format_table(summary: dict, s: dict, default_reward: bool) -> str:
    """The final table; then, per estimator, its paired differences with GRPO (same warm start,
    data and rollout seed): mean ± s.e. of the per-seed differences."""
    m, n = s["m"], s["N"]
    modes = all(f"modes@{n}" in r for r in summary.values())
    cols = ["best-of-1", f"best-of-{m}", f"best-of-{n}"] + ([f"best-of-{n} (modes)"] if modes else []) + ["P(mode B)", "P(invalid)", "worst P(inv.)"]
    lines = [f"{'method':<28} " + " ".join(f"{c:>19}" for c in cols)]
    first = next(iter(summary.values()))["start"]
    cells = [f"{first['best@1']:+.3f}", f"{first[f'best@{m}']:+.3f}", f"{first[f'best@{n}']:+.3f}"]
    cells += [f"{first[f'modes@{n}']:+.3f}"] if modes and f"modes@{n}" in first else ([""] if modes else [])
    cells += [f"{first['p_B']:.3f}", f"{first['p_other']:.3f}", ""]
    lines.append(f"{'warm start (step 0)':<28} " + " ".join(f"{c:>19}" for c in cells))
    for est, r in summary.items():
        cells = [_fmt_ms(r["best@1"]), _fmt_ms(r[f"best@{m}"]), _fmt_ms(r[f"best@{n}"])]
        cells += [_fmt_ms(r[f"modes@{n}"])] if modes else []
        cells += [_fmt_ms(r["p_B"], ""), _fmt_ms(r["p_other"], ""), f"{r['worst_p_other']:.3f}"]
        lines.append(f"{LABELS[est]:<28} " + " ".join(f"{c:>19}" for c in cells))
    if default_reward:
        for mode in "AB":
            cells = [f"{pure_best_of(mode, k):+.3f}" for k in (1, m, n)] + ([f"{pure_best_of(mode, n):+.3f}"] if modes else [])
            cells += [f"{float(mode == 'B'):.3f}", f"{0.0:.3f}", ""]
            lines.append(f"{'pure mode ' + mode + ' (exact)':<28} " + " ".join(f"{c:>19}" for c in cells))
    for est, r in summary.items():
        d = r.get("paired")
        if not d:
            continue
        line = f"{est} - grpo, paired over {d['seeds']} seed(s): best-of-{n} {_fmt_ms(d[f'best@{n}'])}{_z(d[f'best@{n}'])}"
        if f"modes@{n}" in d:
            line += f", of the mode shares {_fmt_ms(d[f'modes@{n}'])}{_z(d[f'modes@{n}'])}"
        line += f"; grpo - {est} at best-of-1 {_fmt_ms(d['grpo_best@1'])}"
        if "grpo_modes@1" in d:
            line += f" (mode shares {_fmt_ms(d['grpo_modes@1'])})"
        lines.append(line)
    return "\n".join(lines)


def format_trajectory(res: dict, s: dict) -> str:
    """Per validation step, mean over seeds: the fraction of answers in mode B, the fraction of
    invalid answers, and the exact best-of-N; then, over the training steps of all seeds, verl's
    advantage range (medians of the per-step min and max), the largest gradient norm and the
    median PPO clip fraction."""
    steps = sorted({int(k) for v in res.values() for k in v["val"]})
    lines = [f"{'P(B) P(invalid) best-of-' + str(s['N']) + ' at step':<34} " + " ".join(f"{t:>17}" for t in steps)
             + f" {'adv min/max':>13} {'max grad':>9} {'clipfrac':>9}"]
    for est in s["estimators"]:
        runs = [v for v in res.values() if v["estimator"] == est]
        cells = []
        for t in steps:
            vals = [v["val"][str(t)] for v in runs if str(t) in v["val"]]
            cells.append(f"{np.mean([x['p_B'] for x in vals]):.2f} {np.mean([x['p_other'] for x in vals]):.2f} "
                         f"{np.mean([x['best'][s['N'] - 1] for x in vals]):+.2f}")
        train = [t for v in runs for t in v["train"] if "critic/advantages/max" in t]

        def stat(fn, key):
            xs = [t[key] for t in train if key in t]
            return fn(xs) if xs else float("nan")

        adv = f"{stat(np.median, 'critic/advantages/min'):+.1f}/{stat(np.median, 'critic/advantages/max'):+.1f}"
        lines.append(f"{LABELS[est]:<34} " + " ".join(f"{c:>17}" for c in cells)
                     + f" {adv:>13} {stat(np.max, 'actor/grad_norm'):>9.1f} {stat(np.median, 'actor/pg_clipfrac'):>9.3f}")
    return "\n".join(lines)


def format_probe(res: dict, s: dict) -> str:
    """Per estimator, mean over seeds, at every other few training steps, on the probe's fixed
    contexts. Answers of fixed length (the default): the probability that the first word is a mode
    word, of the end token first (which the sampler masks before the seventh token: mass no sampled
    answer can correct) and of starting in mode B. Answers free to end: the probability of ending
    after the seventh word (where a valid answer ends) and after the sixth (too short), and of
    starting in mode B. Empty without probe rows."""
    runs = [v for v in res.values() if v.get("probe")]
    if not runs:
        return ""
    fixed = s.get("max_response_length", 1 + FREE_LEN) == 1 + FREE_LEN
    steps = sorted({row["step"] for v in runs for row in v["probe"] if row["step"] is not None})
    stride = max(1, math.ceil(len(steps) / 8))
    shown = steps[::stride] + ([steps[-1]] if (len(steps) - 1) % stride else [])
    what = ("P(first word a mode word) / P(end token first, masked) / P(start maybe)" if fixed
            else "P(end after word 7) / P(end after word 6) / P(start maybe)")
    lines = [f"probe on fixed contexts, {what}, at step", f"{'':<28} " + " ".join(f"{t:>16}" for t in shown)]

    def cell(at: list[dict]) -> str:
        if fixed:
            first = [sum(r.get(f"start_{w}", 0.0) for w in MODE_WORDS) for r in at]
            parts = (np.mean(first), np.mean([r.get("start_eos", float("nan")) for r in at]))
        else:
            parts = (np.mean([r["end_after7"] for r in at]), np.mean([r["end_after6"] for r in at]))
        return f"{parts[0]:.2f}/{parts[1]:.2f}/{np.mean([r['start_maybe'] for r in at]):.2f}"

    for est in s["estimators"]:
        rows = [row for v in runs if v["estimator"] == est for row in v["probe"]]
        if not rows:
            continue
        cells = [cell(at) if (at := [row for row in rows if row["step"] == t]) else "-" for t in shown]
        lines.append(f"{LABELS[est]:<28} " + " ".join(f"{c:>16}" for c in cells))
    return "\n".join(lines)


def format_runs(res: dict, s: dict) -> str:
    """One line per run: its final validation (with the share of distinct answers: a policy that
    repeats a few lucky strings lifts best-of-N above what a pure mode's fresh luck gives), and the
    largest fitted tail shape (GEV estimators) and gradient norm over its training steps."""
    n = s["N"]
    lines = [f"{'run':<20} {f'best-of-{n}':>11} {'P(mode B)':>10} {'P(invalid)':>11} {'distinct':>9} {'max tea/xi':>11} {'max grad norm':>14}"]
    for name, v in sorted(res.items(), key=lambda kv: (s["estimators"].index(kv[1]["estimator"]), kv[1]["seed"])):
        f = _final(v)
        xi = [t["tea/xi"] for t in v["train"] if t.get("tea/xi") is not None]
        grad = [t["actor/grad_norm"] for t in v["train"] if t.get("actor/grad_norm") is not None]
        lines.append(f"{name:<20} {f['best'][n - 1]:>+11.3f} {f['p_B']:>10.2f} {f['p_other']:>11.2f} {f.get('distinct', float('nan')):>9.2f} "
                     f"{(f'{max(xi):+.2f}' if xi else '-'):>11} {(f'{max(grad):.1f}' if grad else '-'):>14}")
    return "\n".join(lines)


def plot(res: dict, s: dict, path: str, default_reward: bool) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = s["N"]
    fig, (ax1, ax3, ax2) = plt.subplots(1, 3, figsize=(16, 4.4))
    colors = {row.name: f"C{i}" for i, row in enumerate(METHODS)}
    for est in s["estimators"]:
        runs = [v for v in res.values() if v["estimator"] == est]
        steps = sorted({int(k) for v in runs for k in v["val"]})
        ys = np.array([[v["val"][str(t)]["best"][n - 1] for t in steps] for v in runs])
        mean = ys.mean(0)
        ax1.plot(steps, mean, "-o", ms=3, color=colors[est], label=LABELS[est])
        for key, style in (("p_B", "-"), ("p_other", ":")):
            frac = np.array([[v["val"][str(t)][key] for t in steps] for v in runs]).mean(0)
            ax3.plot(steps, frac, style, color=colors[est], label=LABELS[est] if key == "p_B" else None)
        if len(runs) > 1:
            se = ys.std(0, ddof=1) / math.sqrt(len(runs))
            ax1.fill_between(steps, mean - se, mean + se, color=colors[est], alpha=0.2)
        last = np.array([v["val"][max(v["val"], key=int)]["best"] for v in runs]).mean(0)
        ax2.plot(np.arange(1, last.size + 1), last, color=colors[est], label=LABELS[est])
    if default_reward:
        ks = np.arange(1, s["val_n"] + 1)
        for mode, style in (("A", ":"), ("B", "--")):
            ax2.plot(ks, [pure_best_of(mode, k) for k in ks], style, color="gray", label=f"pure mode {mode} (exact)")
            ax1.axhline(pure_best_of(mode, n), ls=style, color="gray", lw=1)
    ax1.set_xlabel("training step")
    ax1.set_ylabel(f"exact best-of-{n} (validation)")
    ax1.set_title(f"best-of-{n} during training (mean ± s.e., {s['seeds']} seed{'s' if s['seeds'] > 1 else ''})")
    ax3.set_xlabel("training step")
    ax3.set_ylabel("fraction of validation answers")
    ax3.set_ylim(-0.02, 1.02)
    ax3.set_title("in mode B (solid) and invalid (dotted)")
    ax2.set_xscale("log", base=2)
    ax2.set_xlabel("k")
    ax2.set_ylabel("exact best-of-k")
    ax2.set_title("best-of-k curve at the end")
    ax2.legend(fontsize=7)
    ax1.legend(fontsize=7)
    fig.suptitle(f"tiny LM through verl's trainer on the CPU: m = {s['m']} rollouts, deployment best-of-{n}{_overrides_note(s)}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run(argv: list[str] | None = None, prog: str = "python -m benchmarks.lm") -> int:
    """Check every run's config, warm-start the policies, train every run in one child process (one
    Ray session), then collect, tabulate and plot the results."""
    from tea_verl.launch.common import parse_reward_fn, quiet_verl, require_cpu_backend

    quiet_verl()
    args = parser(prog).parse_args(argv)
    require_cpu_backend()
    s = settings(args)
    reward = parse_reward_fn(args.reward_fn) if args.reward_fn else (f"pkg://{MODULE}", "spread_reward")
    started = time.time()
    out = os.path.abspath(args.out)
    ray_tmp = tempfile.mkdtemp(prefix="tea-lm-ray-")
    try:
        runs, warm, plan_path, probe_path = _prepare(s, out, reward, ray_tmp)
        _train(s, out, plan_path, probe_path, args.timeout, ray_tmp, started)
        _report(s, out, runs, reward, warm, args.reward_fn is None, started)
        return 0
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)


def _prepare(s: dict, out: str, reward: tuple[str, str], ray_tmp: str):
    """Compose and check every run, clear the previous results, warm-start each seed's policy and
    write the plan and the probe; returns (runs, warm starts, plan path, probe path)."""
    runs = compose_runs(s, out, reward, ray_tmp)  # every config composes before any work
    from tea_verl.integrations.verl.preflight import check

    not_built = {"data.train_files", "data.val_files"}  # the warm start writes them below
    for r in runs:
        problems = [p for p in check(r["cfg"]) if p.key not in not_built]
        if problems:
            raise LMError(f"run {r['name']}: the config would fail in verl:\n" + "\n".join(f"  - {p}" for p in problems))
    for sub in ("val", "metrics"):  # a previous run's results, once this one can start
        shutil.rmtree(os.path.join(out, sub), ignore_errors=True)
    os.makedirs(out, exist_ok=True)
    n_runs = len(runs)
    print(f"[lm] {n_runs} runs: {','.join(s['estimators'])} x {s['seeds']} seed(s); m = {s['m']}, N = {s['N']}, "
          f"{s['steps']} steps of {s['batch']} prompts, validation every {s['val_every']} steps with {s['val_n']} samples "
          f"per prompt; reward {reward[0]}:{reward[1]}{_overrides_note(s)}", flush=True)
    warm = {}
    for seed in range(s["seeds"]):
        t0 = time.time()
        warm[seed] = build_assets(os.path.join(out, "assets", f"seed{seed}"), seed)
        p = warm[seed]["first_word_prob"]
        print(f"[lm] seed {seed}: warm start in {time.time() - t0:.0f} s, P(first word safe) {p['safe']:.2f}, maybe {p['maybe']:.2f}", flush=True)
    for r in runs:
        problems = check(r["cfg"])
        if problems:
            raise LMError(f"run {r['name']}: the config would fail in verl:\n" + "\n".join(f"  - {p}" for p in problems))
    plan_path = os.path.join(out, "plan.json")
    with open(plan_path, "w") as f:
        json.dump({"settings": s, "runs": [{k: r[k] for k in ("name", "estimator", "seed", "overrides")} for r in runs]}, f, indent=1)
    from transformers import AutoTokenizer

    probe_path = os.path.join(out, "probe.json")
    if os.path.exists(os.path.join(out, "probe.jsonl")):
        os.remove(os.path.join(out, "probe.jsonl"))
    with open(probe_path, "w") as f:
        tok = AutoTokenizer.from_pretrained(os.path.join(out, "assets", "seed0", "model"))
        json.dump(probe_spec(tok, prompts()[0], os.path.join(out, "probe.jsonl")), f)
    return runs, warm, plan_path, probe_path


def _train(s: dict, out: str, plan_path: str, probe_path: str, timeout: float, ray_tmp: str, started: float) -> None:
    """Every run in one child process, with a progress line per run and per validation."""
    from tea_verl.launch.common import cpu_env, run_process

    env = cpu_env(VERL_FILE_LOGGER_PATH=None, VERL_FILE_LOGGER_ROOT=os.path.join(out, "metrics"), TEA_CPU_PROBE=probe_path)
    log_path = os.path.join(out, "lm.log")
    print(f"[lm] starting Ray once for all runs (about a minute on 2 cores); full log: {log_path}", flush=True)
    state = {"run": ""}

    def on_line(line: str) -> None:
        mt = re.search(r"\[lm\] run (\d+)/(\d+) (\S+): (.*)$", line)
        if mt:
            state["run"] = mt[3]
            print(f"[lm] {time.time() - started:6.0f} s  run {mt[1]}/{mt[2]} {mt[3]}: {mt[4]}", flush=True)
            return True
        return False

    def progress(step, total, rest, elapsed):
        best = re.search(rf"exact_best@{s['N']}/mean:([-\d.e+]+)", rest)
        score = re.search(r"critic/score/mean:([-\d.e+]+)", rest)
        if best or step == total:
            parts = ([f"reward mean {float(score[1]):+.3f}"] if score else []) + (
                [f"validation best-of-{s['N']} {float(best[1]):+.3f}"] if best else [])
            print(f"[lm] {time.time() - started:6.0f} s  {state['run']} step {step}/{total}: {', '.join(parts)}", flush=True)

    cmd = [sys.executable, "-m", MODULE, "--child", plan_path]
    rc = run_process(cmd, env, log_path, s["steps"], timeout, ray_tmp, progress, on_line=on_line)
    if rc != 0:
        from tea_verl.launch.common import last_error

        raise LMError(f"the runs failed (exit {rc}) during {state['run'] or 'start-up'}: {last_error(log_path)}  Full log: {log_path}")


def _report(s: dict, out: str, runs: list[dict], reward: tuple[str, str], warm: dict, default_reward: bool, started: float) -> None:
    """The results of every run: ``lm.json``, ``lm.png`` and the tables."""
    res = collect(out, runs, (1, s["m"], s["N"]) if default_reward else ())
    summary = summarize(res, s)
    table = format_table(summary, s, default_reward)
    png = os.path.join(out, "lm.png")
    plot(res, s, png, default_reward)
    result = {"settings": s, "reward_fn": f"{reward[0]}:{reward[1]}", "warm_start": warm, "summary": summary,
              "runs": res, "wall_s": round(time.time() - started, 1),
              "pure_modes": {mode: {str(k): pure_best_of(mode, k) for k in (1, s["m"], s["N"])} for mode in "AB"} if default_reward else None}
    with open(os.path.join(out, "lm.json"), "w") as f:
        json.dump(result, f, indent=1)
    print()
    print(f"tiny LM through verl's trainer (CPU): m = {s['m']}, deployment best-of-{s['N']}, {s['steps']} steps, "
          f"final validation ({s['val_n']} samples x {_final(next(iter(res.values())))['prompts']} prompts), "
          f"mean ± s.e. over {s['seeds']} seed(s){_overrides_note(s)}")
    print(table)
    print()
    print(format_trajectory(res, s))
    print()
    probe = format_probe(res, s)
    if probe:
        print(probe)
        print()
    print(format_runs(res, s))
    print(f"\nplot: {png}   data: {os.path.join(out, 'lm.json')}")
    if s["seeds"] == 1:
        print("one seed: no standard errors; the paired comparison over 3 seeds is `python -m benchmarks.lm` "
              "(docs/results.md, 'A language model, through verl's own trainer').")
    print(f"total {time.time() - started:.0f} s")


def main(argv: list[str] | None = None, prog: str = "python -m benchmarks.lm") -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--child"]:
        return _child(argv[1])
    return exit_status(lambda: run(argv, prog), "lm")  # LMError is a LaunchError


if __name__ == "__main__":
    sys.exit(main())
