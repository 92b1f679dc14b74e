"""verl glue: the registered advantage estimators (the five of :data:`tea_verl.estimators.ESTIMATORS`).

One function per row of :mod:`tea_verl.estimators.table` (:data:`ESTIMATOR_FUNCTIONS`, built from
the table), each with verl's outcome-estimator signature, registered in
``verl.trainer.ppo.core_algos.ADV_ESTIMATOR_REGISTRY`` by :func:`register`, which the
``verl.plugins`` entry point (:mod:`tea_verl.integrations.verl.plugin`) calls on every ``import verl``.

The outcome reward of a response is ``token_level_rewards.sum(-1)`` (as verl's GRPO); the
per-sample best-of-N credit from :mod:`tea_verl.estimators` is broadcast over
``response_mask`` (zero outside it) and returned as both advantages and returns. Settings come
from ``config.tea`` (:class:`tea_verl.config.TeaConfig`) and ``config.norm_adv_by_std_in_grpo``
(true: divide by a reward std, chosen by ``algorithm.tea.std_scale``).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch

from tea_verl.config import TeaConfig
from tea_verl.estimators import ESTIMATORS, CreditInfo, best_of_n_credit
from tea_verl.estimators.layout import uid_to_group_ids
from tea_verl.estimators.table import method

logger = logging.getLogger(__name__)

__all__ = [
    "ESTIMATOR_FUNCTIONS",
    "register",
    "last_info",
    "step_metrics",
    "new_run",
    "uid_to_group_ids",
    "registered_credit",
]

last_info: dict[str, CreditInfo] = {}  # diagnostics of the latest call, per estimator name
_warned_discrete: set[str] = set()  # estimators that already warned about discrete rewards in this process


def new_run() -> None:
    """Forget the latest diagnostics and the once-per-run warnings: a new run in this process."""
    last_info.clear()
    _warned_discrete.clear()


def step_metrics(estimator: str) -> dict[str, float]:
    """The ``tea/*`` step metrics of the latest call of ``estimator`` (empty if it has not run):
    :meth:`tea_verl.estimators.CreditInfo.metrics`, defined in docs/configuration.md's table."""
    info = last_info.get(estimator)
    return {} if info is None else info.metrics(estimator)


def _advantage(
    estimator: str,
    token_level_rewards: torch.Tensor,
    response_mask: torch.Tensor,
    index: Any,
    config: Any,
) -> tuple[torch.Tensor, torch.Tensor]:
    if config is None:
        raise ValueError(
            f"adv_estimator={estimator} needs the algorithm config (algorithm.tea.N at least); verl "
            "passes it as `config`."
        )
    cfg = TeaConfig.from_algorithm(config)
    if token_level_rewards.shape != response_mask.shape or token_level_rewards.dim() != 2:
        raise ValueError(
            "token_level_rewards and response_mask must both be (batch, response_length); got "
            f"{tuple(token_level_rewards.shape)} and {tuple(response_mask.shape)}."
        )
    norm = bool(config.get("norm_adv_by_std_in_grpo", True))
    with torch.no_grad():
        scores = token_level_rewards.sum(dim=-1)
        groups = uid_to_group_ids(index, scores.shape[0], scores.device)
        credit, info = best_of_n_credit(scores, groups, estimator, cfg, norm_by_std=norm)
        last_info[estimator] = info
        if info.discrete_batch and estimator not in _warned_discrete:
            _warned_discrete.add(estimator)
            logger.warning(
                "%s: the rewards look discrete (top two tie in %d of %d prompt groups; binomial test p = %.2g "
                "against a tie probability of %.2f): this batch, and every later one judged discrete, gets the "
                "exact bon credit at N = m instead of the extrapolated one (metric tea/fallback_batch). For "
                "pass/fail or few-level rewards use adv_estimator=bon. This warning is shown once per run.",
                estimator, info.tie_groups, info.eligible_groups, info.discrete_pvalue, cfg.max_top_tie_rate,
            )
        if info.num_singletons:
            logger.warning(
                "%s: %d prompt group(s) have a single response and get zero advantage (no other "
                "sample to compare with); use rollout.n >= 2.",
                estimator,
                info.num_singletons,
            )
        logger.debug("%s: N=%d xi=%.3f shape_r2=%.4f", estimator, cfg.N, info.xi, info.shape_r2)
        advantages = credit.to(token_level_rewards.dtype).unsqueeze(-1) * response_mask
    return advantages, advantages


def _wrapper(name: str):
    """The function verl's registry holds for the estimator ``name``: verl's estimator signature
    (``token_level_rewards``, ``response_mask``, ``index``, ``config``), one per row of the table."""

    def compute(token_level_rewards, response_mask, index=None, config=None, **kwargs):
        return _advantage(name, token_level_rewards, response_mask, index, config)

    compute.__name__ = compute.__qualname__ = f"compute_{name}_advantage"
    compute.__doc__ = method(name).summary or f"The {name} best-of-N credit."
    return compute


ESTIMATOR_FUNCTIONS = {name: _wrapper(name) for name in ESTIMATORS}
"""Registry name -> function, one for every estimator of :mod:`tea_verl.estimators.table`."""


def register() -> None:
    """Register the five estimators in verl's registry. Idempotent.

    A name already held by another function raises (as verl's own decorator does), unless that
    function is ours from an earlier import of this module (e.g. after ``importlib.reload``).
    """
    from verl.trainer.ppo.core_algos import ADV_ESTIMATOR_REGISTRY, register_adv_est

    for name, fn in ESTIMATOR_FUNCTIONS.items():
        held = ADV_ESTIMATOR_REGISTRY.get(name)
        if held is fn:
            continue
        if held is not None and getattr(held, "__module__", None) == fn.__module__:
            ADV_ESTIMATOR_REGISTRY[name] = fn
            continue
        register_adv_est(name)(fn)


def registered_credit(name: str, scores: torch.Tensor, uids: np.ndarray, n: int, norm: bool, **tea_keys) -> torch.Tensor:
    """Per-sample advantage of any verl-registered estimator (verl's own ``grpo`` too), called as
    verl's ``compute_advantage`` does: ``scores`` (B,) become token-level rewards of one token; the
    result is the (B,) scalar. The ``credit`` of :func:`tea_verl.metrics.quality.measure` for verl's
    estimators."""
    from omegaconf import OmegaConf
    from verl.trainer.ppo.core_algos import get_adv_estimator_fn

    fn = get_adv_estimator_fn(name)
    rewards = scores.reshape(-1, 1)
    mask = torch.ones_like(rewards)
    cfg = OmegaConf.create({"norm_adv_by_std_in_grpo": norm, "tea": {"N": n, **tea_keys}})
    kwargs = {"token_level_rewards": rewards, "response_mask": mask, "index": uids, "config": cfg}
    if name in ("grpo", "grpo_vectorized"):
        # verl's compute_advantage passes this flag explicitly to its GRPO branch
        kwargs["norm_adv_by_std_in_grpo"] = norm
    adv, _ = fn(**kwargs)
    return adv[:, 0]
