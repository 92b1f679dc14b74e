"""``tea-verl smoke``: a real verl launch on the CPU with a tiny model, to check a config before GPU hours.

It composes the same Hydra config a recipe launch would (``--config-name``/``--config-path``, or
``--recipe FILE``, plus overrides), swaps in what a laptop can run, says which keys it replaced,
and runs ``python -m tea_verl.main_ppo`` with the CPU backend (:mod:`tea_verl.cpu`): verl's
FSDP2 actor, agent loop, reward loop, the estimator under test, weight sync and validation with
the ``best_of_n`` manager and the exact best-of-k metrics.

What it replaces (everything else, the estimator and its ``algorithm.tea.*`` keys, the group
size ``rollout.n``, ``val_kwargs``, the optimiser, is the user's):

* the model and tokenizer: a config-built Llama (hidden 64, 2 layers) and a word-level tokenizer
  (:mod:`tea_verl.launch.tiny`), built into ``OUT/assets``;
* the data: 8 short prompts, 4 per training batch and 4 for validation, 16-token responses;
* the reward: ``--reward-fn path.py:function`` (a verl custom reward function) or the built-in
  rule-based :func:`tea_verl.launch.tiny.lexicon_reward`, scored by the ``best_of_n`` manager (no reward
  model);
* the backend: ``trainer.device=cpu``, FSDP2, the ``hf_cpu`` rollout, sdpa attention, one Ray
  worker of each kind, logical GPUs (one per rank), Ray on loopback in a private temp dir;
* the schedule: ``--steps`` steps (default 3), validation after each;
* only where the config leaves them unusable (a bare ``tea_trainer`` has ``rollout.n`` = 1, no
  ``N`` and greedy validation): m = 8, N = 64 and 64 validation samples at temperature 1
  (:func:`fill_ins`).

Output: a progress line per step, a summary, and ``OUT/smoke.json`` with every metric verl logged
per step, the replaced keys, the weight-sync log and the checks. Exit status 0 only when every
check passed: finite non-zero advantages, the actor's weights changed and reached the rollout
(the rollout's token probabilities match the actor's recomputed ones), and the best-of-N validation metrics are
present. ``OUT/smoke.log`` holds verl's full output.
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

from tea_verl import CONFIG_DIR
from tea_verl.launch.common import (
    LaunchError,
    compose_or_fail,
    cpu_env,
    exit_status,
    hydra_value,
    last_error,
    parse_reward_fn,
    read_jsonl,
    require_cpu_backend,
    run_process,
)

DEFAULT_REWARD = ("pkg://tea_verl.launch.tiny", "lexicon_reward")
TRAIN_PROMPTS = 4
RESPONSE_LENGTH = 16
# verl's training/rollout_probs_diff_max: the largest |p_rollout - p_actor| over response tokens, where
# p = exp(log-prob) of the sampled token. Same weights give ~3e-4 here (the actor recomputes in its own
# precision, without the rollout's left padding); a rollout on stale weights differs by far more.
PROB_TOL = 0.05


class SmokeError(LaunchError):
    """A smoke run that cannot start or did not pass; the message says what and the fix."""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="tea-verl smoke",
        description="Run a verl launch on the CPU with a tiny model for a few steps (through python -m "
        "tea_verl.main_ppo) to check a config, estimator, reward wiring and validation metrics.",
        epilog="Example: tea-verl smoke --recipe recipes/config/tea.yaml algorithm.tea.N=64",
    )
    p.add_argument("--config-name", default=None, help="Hydra config name (default: tea_trainer)")
    p.add_argument("--config-path", default=None, help="Hydra config directory (default: tea-verl's)")
    p.add_argument("--recipe", default=None, help="a recipe YAML, e.g. recipes/config/tea.yaml (sets both of the above)")
    p.add_argument("--reward-fn", default=None, help="path.py:function, a verl custom reward function (default: a built-in rule-based one)")
    p.add_argument("--reward-model", action="store_true",
                   help="score training with a reward model served through verl's reward loop (the paper's route: a tiny "
                        "config-built classifier behind /classify, reached through reward_model_via_best_of_n), and "
                        "validation's gold with the reward function")
    p.add_argument("--steps", type=int, default=3, help="training steps, each followed by validation (default 3)")
    p.add_argument("--ranks", type=int, default=1, help="FSDP2 ranks over gloo, one rollout replica each (default 1)")
    p.add_argument("--save-freq", type=int, default=-1,
                   help="save verl's checkpoint every K steps and at the last (default -1: none), in OUT/checkpoints")
    p.add_argument("--resume", action="store_true",
                   help="resume from the latest checkpoint in OUT/checkpoints (trainer.resume_mode=auto), validating "
                        "before the first resumed step; --steps is still the total")
    p.add_argument("--out", default="smoke_out", help="output directory (default smoke_out/)")
    p.add_argument("--timeout", type=float, default=900.0, help="seconds before the run is stopped (default 900)")
    p.add_argument("overrides", nargs="*", help="Hydra overrides, as for a recipe launch")
    return p


def _config_location(args) -> tuple[str, str]:
    if args.recipe:
        recipe = os.path.abspath(args.recipe)
        if not os.path.isfile(recipe):
            raise SmokeError(f"--recipe: {args.recipe} does not exist (e.g. recipes/config/tea.yaml in a clone)")
        return os.path.dirname(recipe), os.path.splitext(os.path.basename(recipe))[0]
    path = os.path.abspath(args.config_path or CONFIG_DIR)
    return path, args.config_name or "tea_trainer"


def smoke_overrides(out: str, assets: str, reward: tuple[str, str], steps: int, ranks: int, ray_tmp: str, batch: int, m: int) -> dict[str, object]:
    """The keys ``tea-verl smoke`` sets, key -> value (applied with Hydra's ``++``)."""
    model = os.path.join(assets, "model")
    if (batch * m) % ranks:
        raise SmokeError(f"--ranks {ranks} must divide the {batch * m} training samples ({batch} prompts x rollout.n {m})")
    micro = batch * m // ranks  # one micro batch per rank: its whole share of the (tiny) batch
    return {
        "trainer.device": "cpu",
        "trainer.nnodes": 1,
        "trainer.n_gpus_per_node": ranks,
        "trainer.total_training_steps": steps,
        "trainer.total_epochs": 1000,
        "trainer.test_freq": 1,
        "trainer.val_before_train": False,
        "trainer.save_freq": -1,
        "trainer.resume_mode": "disable",  # verl's default (auto) would pick up a checkpoint left in OUT: --resume asks
        "trainer.logger": "[console,file]",
        "trainer.project_name": "tea_verl_smoke",
        "trainer.experiment_name": "smoke",
        "trainer.default_local_dir": os.path.join(out, "checkpoints"),
        "trainer.validation_data_dir": None,
        "ray_kwargs.ray_init.num_cpus": 8,
        "ray_kwargs.ray_init.num_gpus": ranks,
        "ray_kwargs.ray_init.include_dashboard": False,
        "ray_kwargs.ray_init._temp_dir": ray_tmp,
        "ray_kwargs.ray_init._node_ip_address": "127.0.0.1",
        "data.train_files": os.path.join(assets, "train.parquet"),
        "data.val_files": os.path.join(assets, "val.parquet"),
        "data.train_batch_size": batch,
        "data.val_batch_size": None,
        "data.max_prompt_length": 32,
        "data.max_response_length": RESPONSE_LENGTH,
        "data.dataloader_num_workers": 0,
        "data.filter_overlong_prompts": False,
        "actor_rollout_ref.model.path": model,
        "actor_rollout_ref.model.use_remove_padding": False,
        "actor_rollout_ref.model.use_shm": False,
        "actor_rollout_ref.model.enable_gradient_checkpointing": False,
        "actor_rollout_ref.model.override_config.attn_implementation": "sdpa",
        "actor_rollout_ref.model.lora_rank": 0,
        "actor_rollout_ref.actor.strategy": "fsdp2",
        "actor_rollout_ref.ref.strategy": "fsdp2",
        "actor_rollout_ref.actor.use_dynamic_bsz": False,
        "actor_rollout_ref.actor.ppo_mini_batch_size": batch,
        "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu": micro,
        "actor_rollout_ref.actor.fsdp_config.param_offload": False,
        "actor_rollout_ref.actor.fsdp_config.optimizer_offload": False,
        "actor_rollout_ref.ref.fsdp_config.param_offload": False,
        "actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu": micro,
        "actor_rollout_ref.ref.log_prob_use_dynamic_bsz": False,
        "actor_rollout_ref.rollout.name": "hf_cpu",
        "actor_rollout_ref.rollout.mode": "async",
        "actor_rollout_ref.rollout.tensor_model_parallel_size": 1,
        "actor_rollout_ref.rollout.data_parallel_size": 1,
        "actor_rollout_ref.rollout.calculate_log_probs": True,
        "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu": micro,
        "actor_rollout_ref.rollout.log_prob_use_dynamic_bsz": False,
        "actor_rollout_ref.rollout.agent.num_workers": 1,
        "actor_rollout_ref.rollout.load_format": "auto",
        "reward.num_workers": 1,
        "reward.reward_model.enable": False,
        "reward.reward_manager.name": "best_of_n",
        "reward.custom_reward_function.path": reward[0],
        "reward.custom_reward_function.name": reward[1],
        "reward.best_of_n.proxy": "function",
        "reward.best_of_n.gold": "none",
        "transfer_queue.backend.SimpleStorage.num_data_storage_units": 1,
    }


def reward_model_overrides(assets: str, gold: tuple[str, str]) -> dict[str, object]:
    """The keys of the reward-model route (``--reward-model``): the tiny classifier in
    ``ASSETS/reward_model`` served under verl's ``vllm`` name (:mod:`tea_verl.cpu.reward_server`),
    colocated, behind verl's router; the ``best_of_n`` manager reached through
    ``reward_model_via_best_of_n`` scores with it (proxy) and with the reward function (gold)."""
    return {
        "reward.reward_model.enable": True,
        # on a pool of its own, so verl's reward loop runs beside the rollout and carries the
        # manager's extra scores (selection score, gold) into validation; colocated, verl 0.9.1
        # hands the manager only the chat and keeps only the summed score (docs/validation.md)
        "reward.reward_model.enable_resource_pool": True,
        "reward.reward_model.n_gpus_per_node": 1,
        "reward.reward_model.nnodes": 1,
        "reward.reward_model.model_path": os.path.join(assets, "reward_model"),
        "reward.reward_model.rollout.name": "vllm",
        "reward.reward_model.rollout.tensor_model_parallel_size": 1,
        "reward.reward_model.rollout.data_parallel_size": 1,
        "reward.reward_model.rollout.pipeline_model_parallel_size": 1,
        "reward.reward_model.rollout.free_cache_engine": False,
        "reward.custom_reward_function.path": "pkg://tea_verl.rewards",
        "reward.custom_reward_function.name": "reward_model_via_best_of_n",
        "reward.best_of_n.proxy": "reward_model",
        "reward.best_of_n.gold": "function",
        "reward.best_of_n.gold_function_path": gold[0],
        "reward.best_of_n.gold_function_name": gold[1],
    }


def fill_ins(cfg) -> dict[str, object]:
    """Values for the keys a bare config leaves unusable (``tea_trainer`` has rollout.n = 1, no N,
    greedy validation): m = 8, N = 64 (``bon``: N = m), validation n = max(N, 16) sampled at
    temperature 1. Keys the user's config or overrides set to usable values are left alone."""
    from omegaconf import OmegaConf

    def sel(key, default=None):
        v = OmegaConf.select(cfg, key, default=default, throw_on_missing=False)
        return default if v is None else v

    out: dict[str, object] = {}
    m = int(sel("actor_rollout_ref.rollout.n", 1))
    if m < 2:
        m = out["actor_rollout_ref.rollout.n"] = 8
    est = str(sel("algorithm.adv_estimator", ""))
    n_big = sel("algorithm.tea.N")
    if n_big is None:  # also for a baseline (grpo, ...): the validation reports best-of-N at this N
        n_big = out["algorithm.tea.N"] = m if est == "bon" else 64
    val_n = int(sel("actor_rollout_ref.rollout.val_kwargs.n", 1))
    if val_n < 2:
        out["actor_rollout_ref.rollout.val_kwargs.n"] = max(int(n_big or 0), 16)
    if not bool(sel("actor_rollout_ref.rollout.val_kwargs.do_sample", False)) or float(sel("actor_rollout_ref.rollout.val_kwargs.temperature", 0.0)) <= 0:
        out["actor_rollout_ref.rollout.val_kwargs.do_sample"] = True
        out["actor_rollout_ref.rollout.val_kwargs.temperature"] = 1.0
    return out


def _replaced(cfg, overrides: dict[str, object]) -> dict[str, tuple[object, object]]:
    from omegaconf import OmegaConf

    out = {}
    for key, new in overrides.items():
        try:
            old = OmegaConf.select(cfg, key, default="<unset>", throw_on_missing=False)
        except Exception:  # noqa: BLE001 - an unresolvable interpolation
            old = "<interpolation>"
        if OmegaConf.is_config(old):
            old = OmegaConf.to_container(old)
        if hydra_value(old) != hydra_value(new) and not (isinstance(old, list) and hydra_value(new) == "[" + ",".join(map(str, old)) + "]"):
            out[key] = (old, new)
    return out


def build_assets(assets: str, reward_model: bool = False) -> None:
    """The smoke run's tiny model and tokenizer (``ASSETS/model``), its prompts
    (``ASSETS/train.parquet``: 4, ``ASSETS/val.parquet``: 4) and, with ``reward_model``, a tiny
    classifier (``ASSETS/reward_model``)."""
    from transformers.utils import logging as hf_logging

    from tea_verl.launch.tiny import PROMPTS, build_causal_lm, build_tokenizer, write_prompts

    hf_logging.disable_progress_bar()  # a tiny model's save needs no progress bar
    tok = build_tokenizer()
    build_causal_lm(tok, os.path.join(assets, "model"))
    write_prompts(os.path.join(assets, "train.parquet"), PROMPTS[:TRAIN_PROMPTS], split="train")
    write_prompts(os.path.join(assets, "val.parquet"), PROMPTS[TRAIN_PROMPTS:], split="test")
    if reward_model:
        from tea_verl.launch.tiny import build_reward_model

        build_reward_model(tok, os.path.join(assets, "reward_model"))


def _num(text: str):
    text = text.strip()
    m = re.fullmatch(r"np\.\w+\((.*)\)", text)
    text = m.group(1) if m else text
    try:
        return float(text)
    except ValueError:
        return None


def evaluate(steps: list[dict], weight_log: list[dict], n_steps: int, first: int = 1) -> list[dict]:
    """The smoke checks per step (``first`` .. ``n_steps``): each is ``{"step", "check", "ok", "detail"}``."""
    out = []

    def add(step, check, ok, detail):
        out.append({"step": step, "check": check, "ok": bool(ok), "detail": detail})

    by_step = {int(r["step"]): r["data"] for r in steps}
    syncs = sorted(weight_log, key=lambda r: r["weight_version"])
    for k in range(first, n_steps + 1):
        d = by_step.get(k)
        if d is None:
            add(k, "logged", False, "verl logged no metrics for this step")
            continue
        lo, hi = d.get("critic/advantages/min"), d.get("critic/advantages/max")
        finite = all(isinstance(v, (int, float)) and math.isfinite(v) for v in (lo, hi))
        add(k, "advantages finite and non-zero", finite and (abs(lo) > 0 or abs(hi) > 0), f"[{lo}, {hi}]")
        diff = d.get("training/rollout_probs_diff_max")
        add(k, "rollout token probabilities match the actor's recomputed ones", diff is not None and math.isfinite(diff) and diff < PROB_TOL,
            f"max |p_rollout - p_actor| = {diff} (tolerance {PROB_TOL})")
        grad, lr = d.get("actor/grad_norm"), d.get("actor/lr")
        # verl syncs the actor's weights to the rollout after each update, tagged with that step
        after = [r for r in syncs if r.get("global_steps") is not None and int(r["global_steps"]) == k]
        if after:
            moved = min(r["l2_from_previous"] for r in after)
            add(k, "actor weights changed and reached the rollout", moved > 0,
                f"|w_after - w_before| = {moved:.3g} at the rollout's sync after step {k}")
        else:
            ok = grad is not None and math.isfinite(grad) and grad > 0 and lr is not None and lr > 0
            add(k, "actor updated (no later sync: grad_norm > 0 and lr > 0)", ok, f"grad_norm {grad}, lr {lr}")
        bon = [key for key in d if "/exact_best@" in key and key.endswith("/mean")]
        sel = [key for key in d if key.startswith("val-") and "bon_selection_score" in key]
        add(k, "best-of-N validation metrics present", bool(bon) and bool(sel),
            f"{len(bon)} exact best-of-k means, {len(sel)} best_of_n selection-score metrics")
    return out


def _summary(steps: list[dict], checks: list[dict]) -> str:
    lines = ["", "step   time s   reward mean   adv mean   adv min   adv max   val exact best@1 -> best@n"]
    for row in steps:
        d = row["data"]
        best = sorted(((int(k.split("exact_best@")[1].split("/")[0]), v) for k, v in d.items() if "/exact_best@" in k and k.endswith("/mean")))
        val = f"{best[0][1]:+.3f} -> {best[-1][1]:+.3f} (n={best[-1][0]})" if best else "-"
        lines.append(f"{row['step']:>4} {d.get('timing_s/step', float('nan')):>8.1f} {d.get('critic/score/mean', float('nan')):>13.3f} "
                     f"{d.get('critic/advantages/mean', float('nan')):>10.3f} {d.get('critic/advantages/min', float('nan')):>9.3f} "
                     f"{d.get('critic/advantages/max', float('nan')):>9.3f}   {val}")
    failed = [c for c in checks if not c["ok"]]
    lines.append("")
    lines.append(f"checks: {len(checks) - len(failed)}/{len(checks)} passed")
    for c in failed:
        lines.append(f"  FAILED step {c['step']}: {c['check']}: {c['detail']}")
    return "\n".join(lines)


def run(argv: list[str] | None = None) -> int:
    ray_tmp = tempfile.mkdtemp(prefix="tea-smoke-ray-")  # Ray's private temp dir, removed on the way out
    try:
        args = _parser().parse_args(argv)
        require_cpu_backend()
        return _smoke(args, ray_tmp)
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)


def _smoke(args, ray_tmp: str) -> int:
    if args.steps < 1:
        raise SmokeError(f"--steps must be >= 1, got {args.steps}")
    if args.ranks < 1:
        raise SmokeError(f"--ranks must be >= 1, got {args.ranks}")
    if args.save_freq == 0 or args.save_freq < -1:
        raise SmokeError(f"--save-freq must be a number of steps >= 1 (or -1: no checkpoints), got {args.save_freq}")
    if args.reward_model:  # a drill's fault injection, checked before Ray starts
        from tea_verl.cpu.reward_server import read_faults

        try:
            read_faults(os.environ.get("TEA_CPU_REWARD_FAULTS"))
        except ValueError as exc:
            raise SmokeError(str(exc)) from None
    started = time.time()
    out = os.path.abspath(args.out)
    first = 1
    if args.resume:
        from tea_verl.integrations.verl.faults import latest_checkpoint

        done = latest_checkpoint(os.path.join(out, "checkpoints"))
        if done is None:
            raise SmokeError(f"--resume: {os.path.join(out, 'checkpoints')} holds no checkpoint; run with --save-freq first")
        if done >= args.steps:
            raise SmokeError(f"--resume: the checkpoint is of step {done}, and --steps {args.steps} is no further; raise --steps")
        first = done + 1
        print(f"[smoke] resuming after step {done} from {os.path.join(out, 'checkpoints')}", flush=True)
    reward = parse_reward_fn(args.reward_fn) if args.reward_fn else DEFAULT_REWARD
    config_dir, config_name = _config_location(args)
    cfg, hydra_overrides, replaced, m = _compose_checked(args, out, reward, config_dir, config_name, ray_tmp)
    rc, metrics_path, weight_path, log_path = _run_trainer(args, out, cfg, hydra_overrides, config_dir, config_name, ray_tmp)
    from omegaconf import OmegaConf

    steps = read_jsonl(metrics_path)
    weight_log = read_jsonl(weight_path)
    checks = evaluate(steps, weight_log, args.steps, first) if rc == 0 else []
    result = {
        "ok": rc == 0 and bool(checks) and all(c["ok"] for c in checks),
        "returncode": rc,
        "wall_s": round(time.time() - started, 1),
        "config": {"config_path": config_dir, "config_name": config_name, "overrides": list(args.overrides),
                   "adv_estimator": cfg.algorithm.adv_estimator, "rollout_n": m, "N": OmegaConf.select(cfg, "algorithm.tea.N"),
                   "reward_fn": f"{reward[0]}:{reward[1]}", "ranks": args.ranks, "reward_model": args.reward_model},
        "replaced": {k: {"was": v[0], "now": v[1]} for k, v in replaced.items()},
        "checks": checks,
        "weight_sync": weight_log,
        "steps": steps,
    }
    with open(os.path.join(out, "smoke.json"), "w") as f:
        json.dump(result, f, indent=1, default=str)
    if rc != 0:
        raise SmokeError(f"verl's run failed (exit {rc}): {last_error(log_path)}  Full log: {log_path}")
    print(_summary(steps, checks))
    print(f"\n[smoke] {'PASSED' if result['ok'] else 'FAILED'} in {result['wall_s']:.0f} s; wrote {os.path.join(out, 'smoke.json')}")
    return 0 if result["ok"] else 1


def _compose_checked(args, out: str, reward: tuple[str, str], config_dir: str, config_name: str, ray_tmp: str):
    """The user's config with the CPU run's keys, its assets built and preflight-checked; prints what
    was replaced. Returns (config, Hydra overrides, replaced keys, rollout.n)."""
    assets = os.path.join(out, "assets")
    user_cfg = compose_or_fail(config_dir, config_name, args.overrides)
    batch = TRAIN_PROMPTS
    filled = fill_ins(user_cfg)
    m = int(filled.get("actor_rollout_ref.rollout.n", user_cfg.actor_rollout_ref.rollout.n))
    overrides = {**filled, **smoke_overrides(out, assets, reward, args.steps, args.ranks, ray_tmp, batch, m)}
    if args.reward_model:
        overrides.update(reward_model_overrides(assets, reward))
        overrides["ray_kwargs.ray_init.num_gpus"] = args.ranks + 1  # one logical GPU for the reward model's pool
    if args.save_freq > 0:
        overrides["trainer.save_freq"] = args.save_freq
    if args.resume:
        overrides.update({"trainer.resume_mode": "auto", "trainer.val_before_train": True})
    replaced = _replaced(user_cfg, overrides)
    hydra_overrides = list(args.overrides) + [f"++{k}={hydra_value(v)}" for k, v in overrides.items()]
    cfg = compose_or_fail(config_dir, config_name, hydra_overrides)

    from omegaconf import OmegaConf

    from tea_verl.integrations.verl.preflight import check

    build_assets(assets, reward_model=args.reward_model)  # seconds; before the checks, which look for the data files
    problems = check(cfg)
    if problems:
        raise SmokeError("the config would fail in verl:\n" + "\n".join(f"  - {p}" for p in problems))
    est = cfg.algorithm.adv_estimator
    print(f"[smoke] {config_name} ({config_dir}): adv_estimator={est}, rollout.n={m}, "
          f"N={OmegaConf.select(cfg, 'algorithm.tea.N')}, val_kwargs.n={cfg.actor_rollout_ref.rollout.val_kwargs.n}, "
          f"reward {reward[0]}:{reward[1]}", flush=True)
    print(f"[smoke] replaced {len(replaced)} key(s) for the CPU run:", flush=True)
    for key, (old, new) in replaced.items():
        print(f"  {key}: {hydra_value(old)} -> {hydra_value(new)}", flush=True)
    return cfg, hydra_overrides, replaced, m


def _run_trainer(args, out: str, cfg, hydra_overrides: list[str], config_dir: str, config_name: str, ray_tmp: str):
    """``tea_verl.main_ppo`` in a child process with the CPU backend, a progress line per step.
    Returns (exit status, metrics path, weight-sync log path, log path)."""
    from omegaconf import OmegaConf

    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "composed_config.yaml"), "w") as f:
        f.write(OmegaConf.to_yaml(cfg))
    metrics_path = os.path.join(out, "metrics.jsonl")
    weight_path = os.path.join(out, "weight_sync.jsonl")
    for p in (metrics_path, weight_path):
        if os.path.exists(p):
            os.remove(p)
    reward_log = os.path.join(out, "reward_model.jsonl")
    if os.path.exists(reward_log):
        os.remove(reward_log)
    env = cpu_env(VERL_FILE_LOGGER_PATH=metrics_path, TEA_CPU_WEIGHT_LOG=weight_path,
                  **({"TEA_CPU_REWARD_LOG": reward_log} if args.reward_model else {}))
    cmd = [sys.executable, "-m", "tea_verl.main_ppo", f"--config-path={config_dir}", f"--config-name={config_name}",
           f"hydra.run.dir={os.path.join(out, 'hydra')}", *hydra_overrides]
    log_path = os.path.join(out, "smoke.log")
    print(f"[smoke] starting Ray and verl's workers (about a minute on 2 cores); full log: {log_path}", flush=True)

    def progress(step, total, rest, elapsed):
        fields = dict((kv.split(":", 1)[0].strip(), _num(kv.split(":", 1)[1])) for kv in rest.split(" - ") if ":" in kv)

        def val(key):
            v = fields.get(key)
            return float("nan") if v is None else v

        print(f"[smoke] step {step}/{total} done at {elapsed:5.1f} s: step {val('timing_s/step'):.1f} s, "
              f"reward mean {val('critic/score/mean'):+.3f}, advantages "
              f"[{val('critic/advantages/min'):+.3f}, {val('critic/advantages/max'):+.3f}]", flush=True)

    rc = run_process(cmd, env, log_path, args.steps, args.timeout, ray_tmp, progress)
    return rc, metrics_path, weight_path, log_path


def main(argv: list[str] | None = None) -> int:
    return exit_status(lambda: run(argv), "smoke")


if __name__ == "__main__":
    sys.exit(main())
