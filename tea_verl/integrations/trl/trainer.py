"""TRL's ``GRPOTrainer`` with best-of-N credit instead of GRPO's group-normalised reward.

TRL computes advantages inline in ``GRPOTrainer._generate_and_score_completions``; there is no
method for the advantages alone. :class:`TeaGRPOTrainer` keeps TRL's generation, reward functions,
loss and logging, and replaces the advantages it returns:

1. ``_calculate_rewards`` is wrapped to keep the rewards TRL gathered from every process
   (one row per completion, one column per reward function);
2. after TRL's own computation, each completion's outcome reward is the weighted sum over reward
   functions (``reward_weights``; TRL's ``sum_then_normalize``), NaN where every function
   returned None (unscorable), and the credit comes from the same front door as verl's
   (:func:`tea_verl.integrations.common.grouped_credit`), over groups of ``num_generations``
   consecutive completions;
3. this process's slice replaces ``advantages``, the logged advantages (``_logs["advantages"]``,
   TRL's completions table) are replaced by the credit used, and the ``tea/*`` statistics, with
   ``tea/unscorable``, join TRL's metrics.

Std scaling: ``scale_rewards="none"`` turns it off; otherwise the credit is divided by a reward
std as ``tea={"std_scale": ...}`` says (default ``"batch"``, the batch mean of the group stds; see
docs/configuration.md), not by TRL's rule. ``multi_objective_aggregation="normalize_then_sum"``
is refused: best-of-N selection ranks completions by one score.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import torch
import trl
from trl import GRPOConfig, GRPOTrainer

from tea_verl.config import TeaConfig
from tea_verl.estimators import ESTIMATORS
from tea_verl.integrations.common import contiguous_groups, grouped_credit

__all__ = ["TeaGRPOConfig", "TeaGRPOTrainer", "TRL_VERSIONS"]

TRL_VERSIONS = ((1, 12), (1, 16))
"""The TRL minor versions the adapter is tested on, oldest and newest (``trl>=1.12``, the ``[trl]``
extra); a TRL outside them gets a warning, and a moved internal fails with a message naming it.
TRL 1.13 removed ``AutoModelForCausalLMWithValueHead``, which verl's FSDP workers import whenever TRL
is installed: that matters only where verl trains, and ``tea-verl preflight`` and
``tea_verl.main_ppo`` refuse such a TRL there (:func:`tea_verl.integrations.verl.preflight.trl_conflict`);
the adapter itself runs on both."""


def _tested() -> str:
    (a, b), (c, d) = TRL_VERSIONS
    return f"trl {a}.{b} to {c}.{d}"


if not TRL_VERSIONS[0] <= tuple(int(x) for x in trl.__version__.split(".")[:2]) <= TRL_VERSIONS[1]:
    warnings.warn(f"tea-verl's TRL adapter is tested with {_tested()}, this is {trl.__version__} "
                  "(pip install 'tea-verl[trl]' installs a tested one)", stacklevel=2)

_HOOKS = ("_generate_and_score_completions", "_calculate_rewards", "_metrics", "_logs")


@dataclass
class TeaGRPOConfig(GRPOConfig):
    """GRPOConfig plus the best-of-N estimator, its budget and tail keys."""

    estimator: str = field(default="tea", metadata={"help": f"best-of-N estimator: one of {', '.join(ESTIMATORS)}"})
    N: int | None = field(default=None, metadata={
        "help": "deployment best-of-N budget, required as in verl (algorithm.tea.N) and OpenRLHF (--tea.N); bon needs N <= num_generations"})
    tea: dict | None = field(default=None, metadata={
        "help": "other tail keys, as verl's algorithm.tea.*: e.g. {'alpha': 0.25, 'failure_reward': -3.0} (docs/configuration.md)"})

    def __post_init__(self):
        super().__post_init__()
        if self.estimator not in ESTIMATORS:
            raise ValueError(f"estimator={self.estimator!r} is not a best-of-N estimator; choose one of {', '.join(ESTIMATORS)}")
        if self.N is None:
            raise ValueError("N is required: the deployment best-of-N budget, e.g. TeaGRPOConfig(..., N=64) "
                             "(the same key as verl's algorithm.tea.N and OpenRLHF's --tea.N)")
        if self.estimator == "bon" and self.N > self.num_generations:
            raise ValueError(f"estimator='bon' is exact only for N <= num_generations; got N={self.N} > "
                             f"num_generations={self.num_generations}. Use 'tea' or 'prefix_tea' to extrapolate, or lower N.")
        if self.multi_objective_aggregation != "sum_then_normalize":
            raise ValueError("multi_objective_aggregation='normalize_then_sum' is not supported with best-of-N credit: "
                             "best-of-N selection ranks completions by one score; use 'sum_then_normalize' (the weighted sum)")
        self.tea_config()  # a bad tail key fails here, naming it

    def tea_config(self) -> TeaConfig:
        """The tail settings as the estimators read them (the same keys and checks as verl's ``algorithm.tea``)."""
        return TeaConfig.from_keys(self.N, self.tea)


class TeaGRPOTrainer(GRPOTrainer):
    """``GRPOTrainer`` whose advantages are best-of-N credits (``args`` must be a :class:`TeaGRPOConfig`)."""

    def __init__(self, *args_, args: TeaGRPOConfig | None = None, **kwargs):
        if not isinstance(args, TeaGRPOConfig):
            raise TypeError("TeaGRPOTrainer needs args=TeaGRPOConfig(...) (GRPOConfig plus estimator, N and tea); "
                            f"got {type(args).__name__}")
        missing = [name for name in _HOOKS[:2] if not callable(getattr(GRPOTrainer, name, None))]
        if missing:
            raise RuntimeError(f"TRL {trl.__version__} has no GRPOTrainer.{missing[0]}, which tea-verl's adapter "
                               f"wraps (tested with {_tested()}); install one of those")
        super().__init__(*args_, args=args, **kwargs)
        for name in _HOOKS[2:]:
            if not hasattr(self, name):
                raise RuntimeError(f"TRL {trl.__version__}'s GRPOTrainer has no {name}, which tea-verl's adapter logs "
                                   f"into (tested with {_tested()}); install one of those")
        self._tea = args.tea_config()
        self._tea_rewards: torch.Tensor | None = None
        self.last_credit: torch.Tensor | None = None  # every process's credit of the latest batch (for tests and callbacks)

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        self._tea_rewards = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        return self._tea_rewards

    def _generate_and_score_completions(self, inputs: list[dict[str, Any]]) -> dict[str, Any]:
        self._tea_rewards = None
        output = super()._generate_and_score_completions(inputs)
        per_func = self._tea_rewards
        if per_func is None:
            raise RuntimeError(f"TRL {trl.__version__}'s GRPOTrainer did not call _calculate_rewards while scoring; "
                               f"tea-verl's adapter needs it (tested with {_tested()})")
        mode = "train" if self.model.training else "eval"
        group = self.num_generations if mode == "train" else self.num_generations_eval
        unscorable = torch.isnan(per_func).all(dim=1)
        rewards = (per_func * self.reward_weights.to(per_func.device).unsqueeze(0)).nansum(dim=1)
        rewards[unscorable] = torch.nan
        groups = contiguous_groups(rewards.shape[0], group, rewards.device)
        credit, _, metrics = grouped_credit(rewards.float(), groups, self.args.estimator, self._tea,
                                            norm_by_std=self.scale_rewards != "none")
        local = output["advantages"].shape[0]
        start = self.accelerator.process_index * local
        output["advantages"] = credit[start:start + local].to(output["advantages"].dtype)
        logged = self._logs["advantages"]  # TRL appended its own advantages for the whole batch last
        for i, value in enumerate(credit.tolist()):
            logged[len(logged) - credit.shape[0] + i] = value
        for key, value in metrics.items():
            self._metrics[mode][key].append(value)
        self.last_credit = credit.detach().cpu()
        return output
