"""Kept path: ``reward.custom_reward_function.path=pkg://tea_verl.rewards``. The reward functions are
in :mod:`tea_verl.integrations.verl.rewards`."""

from tea_verl.integrations.verl.rewards import reward_model_via_best_of_n

__all__ = ["reward_model_via_best_of_n"]
