"""``python -m tea_verl.main_ppo``: verl's PPO entry point with best-of-N validation metrics.

(``tea_verl.main_ppo``, the path users type, runs :func:`main` of this module.)

Identical to ``python -m verl.trainer.main_ppo`` (same Hydra overrides, same checks, verl's
public ``run_ppo``) except that (1) the default config is ``tea_trainer`` (verl's ``ppo_trainer``
plus ``algorithm.tea`` and ``reward.best_of_n``), (2) :mod:`.preflight` checks the config
before Ray starts, and (3) the task runner is
:class:`.validation.TeaTaskRunner`, whose trainer adds the best-of-N validation metrics.
Why a thin entry point and not a patch: verl 0.9.1 has no validation-metrics hook, but
``run_ppo(config, task_runner_class)`` is public; a patch would have to be re-applied to every
installed verl.
"""

from __future__ import annotations

import hydra


@hydra.main(config_path="pkg://tea_verl.conf", config_name="tea_trainer", version_base=None)
def main(config) -> None:
    from verl.trainer.main_ppo import run_ppo
    from verl.utils.device import auto_set_device

    from tea_verl.config import ConfigError
    from tea_verl.integrations.verl import private
    from tea_verl.integrations.verl.preflight import PreflightError, check

    missing = private.unavailable("validation")
    if missing:  # an older verl: one line naming the version and verl's own entry point, no traceback
        raise SystemExit(f"error: {missing}")
    from tea_verl.integrations.verl.validation import TeaTaskRunner

    if not config.trainer.get("use_v1", True):
        raise ConfigError(
            "tea_verl.main_ppo adds the best-of-N validation metrics to verl's v1 trainer; "
            "trainer.use_v1=false (the deprecated legacy trainer) is not supported."
        )
    auto_set_device(config)
    problems = check(config)  # includes reward.best_of_n and verl's own validate_config
    if problems:
        raise PreflightError(problems)
    run_ppo(config, task_runner_class=TeaTaskRunner)


if __name__ == "__main__":
    main()
