"""verl glue: the registered advantage estimators (the five of :data:`tea_verl.estimators.ESTIMATORS`).

Each function has verl's outcome-estimator signature and is registered in
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

logger = logging.getLogger(__name__)

__all__ = [
    "compute_bon_advantage",
    "compute_tea_advantage",
    "compute_prefix_tea_advantage",
    "compute_tea_gev_advantage",
    "compute_prefix_tea_gev_advantage",
    "ESTIMATOR_FUNCTIONS",
    "register",
    "last_info",
    "step_metrics",
    "new_run",
    "uid_to_group_ids",
]

last_info: dict[str, CreditInfo] = {}  # diagnostics of the latest call, per estimator name
_warned_discrete: set[str] = set()  # estimators that already warned about discrete rewards in this process


def new_run() -> None:
    """Forget the latest diagnostics and the once-per-run warnings: a new run in this process."""
    last_info.clear()
    _warned_discrete.clear()


def step_metrics(estimator: str) -> dict[str, float]:
    """The ``tea/*`` step metrics of the latest call of ``estimator`` (empty if it has not run).

    ``tea/xi``, ``tea/shape_r2`` (GEV family only): the tail shape used and the pooled fit's R^2
    (nan when no group needed extrapolation or the shape is fixed); ``tea/top_tie_rate``: share of the non-constant
    groups of m < N samples whose top two rewards tie; ``tea/fallback_groups``: groups that got the
    exact ``bon`` credit at N = m instead of the extrapolated one (tied tops, or every group of a
    discrete batch); ``tea/fallback_batch``: 1 when the batch was judged discrete and fell back as a
    whole; ``tea/discrete_pvalue``: that test's p-value; ``tea/singletons``: groups of one sample
    (zero credit); ``tea/credit_mean``, ``tea/credit_std``: the credit over samples of groups of
    >= 2, after the std scaling; ``tea/best_nonpositive_share``, ``tea/best_lowest_share``: share of
    non-constant groups whose best sample gets credit <= 0, and the group's lowest credit;
    ``tea/failure_share``: share of the batch taken as failures (``algorithm.tea.failure_reward``,
    or an atom at the batch bottom), whose credit is capped below the valid answers'.
    """
    info = last_info.get(estimator)
    return {} if info is None else info.metrics(estimator)


def uid_to_group_ids(index: Any, batch_size: int, device: torch.device) -> torch.Tensor:
    """Map verl's prompt uids (numpy object array, list or tensor) to contiguous ids 0..G-1."""
    if index is None:
        raise ValueError(
            "best-of-N estimators need `index` (the prompt uid of each sample) to form groups; verl "
            "passes data.non_tensor_batch['uid'] when the batch has it. Make sure the trainer assigns "
            "uids before repeating prompts rollout.n times (verl's ray trainer does)."
        )
    if isinstance(index, torch.Tensor):
        index = index.detach().cpu().numpy()
    arr = np.asarray(index)
    if arr.ndim != 1 or arr.shape[0] != batch_size:
        raise ValueError(
            f"`index` must hold one prompt uid per sample: expected shape ({batch_size},), got {arr.shape}."
        )
    if arr.dtype != object:  # numbers or fixed-width strings: numpy's sort-based factorisation is fast
        _, inverse = np.unique(arr, return_inverse=True)
        return torch.as_tensor(inverse.reshape(-1), dtype=torch.long, device=device)
    # verl's uids are uuid4 strings in an object array, which np.unique sorts as Python objects: 20-35 ms
    # of a 55-70 ms call at 4096 x 16 samples on this project's CPU machines, against about 4 ms for a
    # hash map. It numbers groups in order of first appearance; any ids 0..G-1 will do, since every
    # group is credited on its own.
    ids: dict = {}
    try:
        codes = [ids.setdefault(u, len(ids)) for u in arr.tolist()]
    except TypeError:  # unhashable uids (lists, arrays): group by string form
        ids.clear()
        codes = [ids.setdefault(str(u), len(ids)) for u in arr.tolist()]
    return torch.tensor(codes, dtype=torch.long, device=device)


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


def compute_bon_advantage(token_level_rewards, response_mask, index=None, config=None, **kwargs):
    """Exact unbiased best-of-N advantage (N <= group size): ``N * E_S[(r_i - max_S r)_+]``."""
    return _advantage("bon", token_level_rewards, response_mask, index, config)


def compute_tea_advantage(token_level_rewards, response_mask, index=None, config=None, **kwargs):
    """TEA (the paper's): Gaussian upper-tail credit plugged in from the top ``ceil(alpha m)``
    rewards (any N; equals ``bon`` for N <= m)."""
    return _advantage("tea", token_level_rewards, response_mask, index, config)


def compute_prefix_tea_advantage(token_level_rewards, response_mask, index=None, config=None, **kwargs):
    """Prefix-TEA (the paper's): TEA debiased by a jackknife over sub-samples (equals ``bon`` for N <= m)."""
    return _advantage("prefix_tea", token_level_rewards, response_mask, index, config)


def compute_tea_gev_advantage(token_level_rewards, response_mask, index=None, config=None, **kwargs):
    """TEA-GEV: the exact prefix estimators combined to approximate the best-of-N advantage of a
    fitted GEV law (any N; equals ``bon`` for N <= m)."""
    return _advantage("tea_gev", token_level_rewards, response_mask, index, config)


def compute_prefix_tea_gev_advantage(token_level_rewards, response_mask, index=None, config=None, **kwargs):
    """Prefix-TEA-GEV: moment cancellation over the exact prefix estimators on a GEV scaling law
    (equals ``bon`` for N <= m)."""
    return _advantage("prefix_tea_gev", token_level_rewards, response_mask, index, config)


ESTIMATOR_FUNCTIONS = {name: globals()[f"compute_{name}_advantage"] for name in ESTIMATORS}
"""Registry name -> function, for every estimator of the table (a missing function fails at import)."""


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
