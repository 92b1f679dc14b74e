"""Reward functions shipped with tea-verl (for ``reward.custom_reward_function``)."""

from __future__ import annotations


def reward_model_via_best_of_n(**kwargs):
    """Routing marker: lets verl 0.9.1 hand reward-model scoring to the ``best_of_n`` manager.

    With ``reward.reward_model.enable=True``, verl's ``RewardLoopWorker`` calls the configured
    reward manager only when ``reward.custom_reward_function.path`` is set. Point it here
    (``path=pkg://tea_verl.rewards``, ``name=reward_model_via_best_of_n``) together with
    ``reward.reward_manager.name=best_of_n``: that manager then queries the reward model through
    verl's reward router itself and never calls this function. Any other manager would call it,
    and gets this error instead of a silent score.
    """
    raise RuntimeError(
        "reward_model_via_best_of_n (pkg://tea_verl.rewards) is a routing marker for reward.reward_manager.name=best_of_n "
        "(with reward.best_of_n.proxy=auto or reward_model); another reward manager called it. Set "
        "reward.reward_manager.name=best_of_n, or point reward.custom_reward_function at a real reward function."
    )
