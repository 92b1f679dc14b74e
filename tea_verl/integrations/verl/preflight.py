"""Preflight: settings that would fail late (after model loading and the first rollout) or silently.

``check(config)`` returns every problem found in a composed trainer config, each naming the key
and the fix. ``tea_verl.main_ppo`` runs it before Ray starts; ``tea-verl preflight`` (the recipes'
dry run) prints the composed config and the verdict without starting anything.

Checks:

* ``algorithm.adv_estimator`` is registered (verl validates it only at the first advantage).
* tea / prefix_tea / tea_gev / prefix_tea_gev: ``algorithm.tea.N`` set and above ``rollout.n`` (at
  or below it they reduce to ``bon``, which is then the estimator to name); bon: ``N <= rollout.n``.
* tea / prefix_tea: ``ceil(alpha * rollout.n) >= 2`` (a tail std needs two rewards); the error
  names the smallest rollout.n that works.
* ``rollout.n >= 2`` (a group of one has no comparison).
* validation: ``val_kwargs.n`` at least the reported N (``algorithm.tea.N``), and sampling, not
  greedy decoding (``do_sample`` with ``temperature > 0``): greedy samples are identical copies.
* a reward: the reward model (``reward.reward_model.enable`` with ``model_path``) or a reward
  function (``reward.custom_reward_function.path``); with the ``best_of_n`` manager its routing.
* the ``reward.best_of_n`` settings (:class:`tea_verl.config.BestOfNConfig`), which the validation
  metrics read whatever the manager.
* verl's own ``validate_config`` (batch sizes against GPUs, micro batches, ...), which runs on CPU.
* the data files exist (local paths; remote URIs are left to verl).
* every vLLM/SGLang server (the rollout, the reward model) holds its weights and one sequence of
  its ``max_model_len`` (unset: the model's ``max_position_embeddings``) within
  ``gpu_memory_utilization`` of the GPU (:mod:`.memory`); validation's load is a note.
* no TRL that stops verl's FSDP workers at start-up (:func:`trl_conflict`: TRL 1.13 and later).
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass

from tea_verl.estimators.table import ESTIMATORS, EXACT, GAUSSIAN, TAIL

__all__ = ["Problem", "check", "advice", "compose", "ComposeError", "PreflightError"]


@dataclass
class Problem:
    key: str
    message: str

    def __str__(self) -> str:
        return f"{self.key}: {self.message}"


class PreflightError(ValueError):
    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__(f"preflight found {len(problems)} problem(s):\n" + "\n".join(f"  - {p}" for p in problems))


def advice(cfg) -> list[str]:
    """Non-fatal notes on what a launch will do with the rewards it gets, and on validation's load
    on the rollout's KV cache (printed by the dry run)."""
    from tea_verl.integrations.verl.memory import check_memory

    try:
        memory_notes = check_memory(cfg)[1]
    except ValueError:  # a bad TEA_GPU_MEMORY_GIB is check()'s problem
        memory_notes = []
    import importlib.util

    if int(_sel(cfg, "actor_rollout_ref.model.lora_rank", 0) or 0) > 0 and importlib.util.find_spec("vllm") is None:
        memory_notes.append("vLLM is not installed here: verl's own check of the LoRA rank against vLLM's did not run "
                            f"(tea-verl checked it against vLLM's ranks, up to {VLLM_LORA_RANKS[-1]}); it runs at launch")
    est = str(_sel(cfg, "algorithm.adv_estimator", ""))
    if est not in TAIL:
        return memory_notes
    m = _sel(cfg, "actor_rollout_ref.rollout.n", 1)
    notes = list(memory_notes)
    if est in GAUSSIAN:
        from tea_verl.config import TEA_DEFAULTS
        from tea_verl.estimators.gaussian import tail_size

        alpha = float(_sel(cfg, "algorithm.tea.alpha", TEA_DEFAULTS.alpha))
        if tail_size(alpha, int(m)) == 2:
            notes.append(
                f"{est} at rollout.n = {m} and alpha = {alpha} fits each prompt's tail on its top 2 rewards, where the "
                "Gaussian credit reduces exactly to bon at N = m (the tail mean is the midpoint of the two, so the spread "
                "term vanishes): it does not extrapolate. Use rollout.n with ceil(alpha m) >= 3 (m >= 12 at alpha = 0.25), "
                "or tea_gev/prefix_tea_gev, which extrapolate at any m >= 3 (docs/estimators.md)."
            )
    return notes + [
        f"{est} extrapolates a continuous reward tail. Groups whose top two rewards tie get the exact bon credit "
        f"at N = m, and batches of pass/fail or few-level rewards fall back to bon at N = m as a whole (metrics "
        f"tea/fallback_groups, tea/fallback_batch). To see in advance how often that happens with your reward, run "
        f"`tea-verl diagnose <validation_data_dir> --m {m} --N {_sel(cfg, 'algorithm.tea.N')}` on a validation dump "
        "of the starting policy."
    ]


def _lora_check_needs_vllm(cfg, exc: Exception) -> bool:
    """verl's last check (the LoRA rank against vLLM's) imports vLLM, which a machine without it (a
    login node, a CPU) cannot: there, with a LoRA policy on the vLLM rollout, that import's error
    means every earlier check passed. The rank is checked here instead; :func:`advice` says so."""
    import importlib.util

    lora = int(_sel(cfg, "actor_rollout_ref.model.lora_rank", 0) or 0)
    return (lora > 0 and str(_sel(cfg, "actor_rollout_ref.rollout.name", "")) == "vllm"
            and importlib.util.find_spec("vllm") is None and "vllm version None" in str(exc))


VLLM_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
"""The LoRA ranks vLLM serves (``vllm.config.lora.MaxLoRARanks``, as verl 0.9.1 lists them)."""


class ComposeError(ValueError):
    """A config that does not compose (unknown key, bad override, missing config); one line."""


def compose(config_dir: str, config_name: str, overrides=()):
    """Compose a Hydra config as a launch would; a failure raises :class:`ComposeError` with
    Hydra's message and the fix, never a traceback of Hydra's internals."""
    import os

    from hydra import compose as hydra_compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    if not os.path.isdir(config_dir):
        raise ComposeError(f"config directory {config_dir} does not exist (--config-path)")
    try:
        with initialize_config_dir(config_dir=os.path.abspath(config_dir), version_base=None):
            return hydra_compose(config_name, overrides=list(overrides))
    except (HydraException, OmegaConfBaseException) as exc:
        first = next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
        hint = ""
        if "Could not override" in first or "Key '" in first:
            hint = " (no such key: check the spelling, or add it with '+key=value' if it is new)"
        elif "Cannot find primary config" in first:
            hint = f" (--config-name: a YAML file name without .yaml in {config_dir})"
        elif "parsing override" in first.lower() or "mismatched input" in first:
            hint = " (overrides are key=value, e.g. algorithm.tea.N=64)"
        raise ComposeError(f"the config does not compose: {first}{hint}") from None


def _sel(cfg, path: str, default=None):
    from omegaconf import OmegaConf

    try:
        v = OmegaConf.select(cfg, path, default=default, throw_on_missing=False)
    except Exception:  # noqa: BLE001 - an unresolvable interpolation counts as unset here
        return default
    return default if v is None else v


def _is_missing(cfg, path: str) -> bool:
    from omegaconf import OmegaConf

    try:
        return OmegaConf.is_missing(cfg, path)
    except Exception:  # noqa: BLE001
        return False


def _files(value) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]


@functools.lru_cache(maxsize=1)
def trl_conflict() -> str | None:
    """A TRL that stops verl's FSDP workers at start-up, or None. verl (0.7.1 to 0.9.1) imports TRL's PPO
    value-head class whenever TRL is installed (``trl.experimental.ppo``, else ``trl``), and TRL 1.13
    removed it from both."""
    import importlib.util

    if importlib.util.find_spec("trl") is None:
        return None
    from importlib.metadata import PackageNotFoundError, version

    try:
        found = version("trl")
    except PackageNotFoundError:
        return None
    import warnings

    try:  # verl's own two tries (verl/models/transformers/monkey_patch.py)
        with warnings.catch_warnings():  # TRL warns on any import from trl.experimental
            warnings.simplefilter("ignore")
            from trl.experimental.ppo import AutoModelForCausalLMWithValueHead  # noqa: F401
        return None
    except ImportError:
        pass
    try:
        from trl import AutoModelForCausalLMWithValueHead  # noqa: F401,F811
        return None
    except ImportError:
        pass
    from tea_verl.integrations.verl.private import verl_version

    return (f"trl {found} is installed, and verl {verl_version()}'s FSDP workers import trl's AutoModelForCausalLMWithValueHead "
            "whenever trl is installed; TRL removed it in 1.13, so every worker would fail at start-up. Install "
            "trl<1.13 where verl trains (pip install 'trl>=1.12,<1.13'), or uninstall trl there; the TRL adapter itself "
            "runs on TRL 1.12 to 1.16")


def check(cfg) -> list[Problem]:
    """Every problem in a composed trainer config (an OmegaConf DictConfig); empty when ready."""
    import verl  # noqa: F401  (plugins register their estimators and managers)

    problems: list[Problem] = []
    N = _check_estimator(cfg, problems)
    _check_validation(cfg, N, problems)
    _check_reward(cfg, problems)
    _check_resources(cfg, problems)
    return problems


def _check_estimator(cfg, problems: list[Problem]):
    """The estimator is registered, its group size and ``algorithm.tea`` fit it; returns the
    deployment N the run reports (None where there is none)."""
    from verl.trainer.ppo.core_algos import ADV_ESTIMATOR_REGISTRY

    from tea_verl.config import ConfigError, TeaConfig
    from tea_verl.integrations.verl import plugin

    if str(_sel(cfg, "reward.reward_manager.name", "")) == "best_of_n" and plugin.MANAGER_UNAVAILABLE:
        problems.append(Problem("reward.reward_manager.name", f"best_of_n: {plugin.MANAGER_UNAVAILABLE}"))
    est = str(_sel(cfg, "algorithm.adv_estimator", ""))
    builtin = {"gae", "grpo"}  # compute_advantage's own branches
    if est not in ADV_ESTIMATOR_REGISTRY and est not in builtin:
        problems.append(Problem(
            "algorithm.adv_estimator",
            f"{est!r} is not a registered advantage estimator (verl would fail only at the first advantage "
            f"computation, after the first rollout); registered: {', '.join(sorted(ADV_ESTIMATOR_REGISTRY))}. "
            f"If it is one of tea-verl's ({', '.join(ESTIMATORS)}), check that tea-verl is installed where the trainer runs.",
        ))
    n_roll = _sel(cfg, "actor_rollout_ref.rollout.n", 1)
    if int(n_roll) < 2:
        problems.append(Problem("actor_rollout_ref.rollout.n", f"is {n_roll}: groups need >= 2 rollouts per prompt (set the m of best-of-N training, e.g. 8)"))
    N = None
    if est in ESTIMATORS:
        try:
            tea = TeaConfig.from_algorithm(_sel(cfg, "algorithm"))
            N = tea.N
        except ConfigError as exc:
            problems.append(Problem("algorithm.tea", str(exc)))
        else:
            from tea_verl.estimators.gaussian import tail_error

            error = tail_error(est, tea.alpha, int(n_roll)) if est in GAUSSIAN and int(n_roll) >= 2 and N > int(n_roll) else None
            if error:
                problems.append(Problem("actor_rollout_ref.rollout.n", f"is {n_roll}: {error}"))
        if N is not None and est in TAIL and N <= int(n_roll):
            problems.append(Problem(
                "algorithm.tea.N",
                f"N = {N} is not above rollout.n = {n_roll}: {est} then reduces to the exact estimator; "
                "use algorithm.adv_estimator=bon, or set N to the deployment best-of-N (> rollout.n).",
            ))
        if N is not None and est in EXACT and N > int(n_roll):
            problems.append(Problem(
                "algorithm.tea.N",
                f"N = {N} is above rollout.n = {n_roll}: the exact bon estimator needs N <= m; use tea or "
                "prefix_tea to extrapolate to N, or raise rollout.n.",
            ))
    else:
        N = _sel(cfg, "algorithm.tea.N")  # the reported deployment N for a baseline run
    return N


def _check_validation(cfg, N, problems: list[Problem]) -> None:
    """Validation samples enough answers per prompt, and samples them (not greedily)."""
    val_n = int(_sel(cfg, "actor_rollout_ref.rollout.val_kwargs.n", 1))
    if N is not None and val_n < int(N):
        problems.append(Problem(
            "actor_rollout_ref.rollout.val_kwargs.n",
            f"is {val_n}, below the reported best-of-N (algorithm.tea.N = {N}): validation would measure "
            f"best-of-k only up to {val_n}; set val_kwargs.n >= {N}.",
        ))
    temp = float(_sel(cfg, "actor_rollout_ref.rollout.val_kwargs.temperature", 0.0))
    do_sample = bool(_sel(cfg, "actor_rollout_ref.rollout.val_kwargs.do_sample", False))
    if val_n > 1 and (not do_sample or temp <= 0):
        problems.append(Problem(
            "actor_rollout_ref.rollout.val_kwargs",
            f"greedy validation (do_sample={do_sample}, temperature={temp}) with n = {val_n}: every sample of a "
            "prompt is the same response, so best-of-k is flat. Set val_kwargs.do_sample=true and "
            "val_kwargs.temperature to the deployment temperature (e.g. 1.0).",
        ))


def _check_reward(cfg, problems: list[Problem]) -> None:
    """A reward model or function is set, and the ``best_of_n`` manager is reachable with it."""
    from tea_verl.config import BestOfNConfig, ConfigError

    rm_on = bool(_sel(cfg, "reward.reward_model.enable", False))
    rm_path = _sel(cfg, "reward.reward_model.model_path")
    fn_path = _sel(cfg, "reward.custom_reward_function.path")
    if rm_on and not rm_path:
        problems.append(Problem("reward.reward_model.model_path",
                                "reward.reward_model.enable=true but no model_path: set the reward model (e.g. Skywork/Skywork-Reward-V2-Qwen3-1.7B)"))
    if rm_on and _is_missing(cfg, "reward.reward_model.rollout.name"):
        problems.append(Problem("reward.reward_model.rollout.name", "the reward model's serving engine is unset: set vllm (or sglang)"))
    if not rm_on and not fn_path:
        problems.append(Problem(
            "reward",
            "no reward model (reward.reward_model.enable) and no reward function (reward.custom_reward_function.path): "
            "verl would fall back to its rule-based default_compute_score, which scores only its built-in data "
            "sources (math, code, ...). Enable a reward model or point to a reward function.",
        ))
    try:  # read by the validation metrics whatever the manager
        s = BestOfNConfig.from_config(cfg)
    except ConfigError as exc:
        problems.append(Problem("reward.best_of_n", str(exc)))
    else:
        if str(_sel(cfg, "reward.reward_manager.name", "")) == "best_of_n":
            if rm_on and not fn_path:
                problems.append(Problem(
                    "reward.custom_reward_function.path",
                    "with the reward model enabled verl 0.9.1 calls the best_of_n manager only when a custom reward "
                    "function is set: reward.custom_reward_function.path=pkg://tea_verl.rewards "
                    "reward.custom_reward_function.name=reward_model_via_best_of_n",
                ))
            if s.proxy == "reward_model" and not rm_on:
                problems.append(Problem("reward.best_of_n.proxy", "proxy=reward_model needs reward.reward_model.enable=true"))


def _check_resources(cfg, problems: list[Problem]) -> None:
    """verl's own checks, LoRA ranks, GPU memory, the TRL conflict and the data files."""
    try:  # verl's own checks (batch sizes against GPUs, micro batches, ...): they run on CPU too
        import contextlib
        import io

        from verl.trainer.ppo.utils import need_critic, need_reference_policy
        from verl.utils.config import validate_config

        with contextlib.redirect_stdout(io.StringIO()):
            validate_config(config=cfg, use_reference_policy=need_reference_policy(cfg), use_critic=need_critic(cfg))
    except Exception as exc:  # noqa: BLE001 - reported as a problem, with verl's message
        if not _lora_check_needs_vllm(cfg, exc):
            problems.append(Problem("verl validate_config", f"{type(exc).__name__}: {exc}"))
    lora = int(_sel(cfg, "actor_rollout_ref.model.lora_rank", 0) or 0)
    if lora > VLLM_LORA_RANKS[-1]:
        problems.append(Problem("actor_rollout_ref.model.lora_rank", f"is {lora}; vLLM serves LoRA ranks up to {VLLM_LORA_RANKS[-1]}"))
    from tea_verl.integrations.verl.memory import check_memory

    try:  # will vLLM start: weights and one max_model_len sequence of KV cache per GPU
        problems += [Problem(key, message) for key, message in check_memory(cfg)[0]]
    except ValueError as exc:
        problems.append(Problem("TEA_GPU_MEMORY_GIB", str(exc)))
    trl_problem = trl_conflict()
    if trl_problem:
        problems.append(Problem("environment", trl_problem))
    for key in ("data.train_files", "data.val_files"):
        for f in _files(_sel(cfg, key)):
            if "://" in f:
                continue
            if not os.path.exists(os.path.expanduser(f)):
                problems.append(Problem(key, f"{f} does not exist (prepare the data first: recipes/data/prepare_*.py)"))
