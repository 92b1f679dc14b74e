"""verl plugin entry point: registers the estimators of :data:`tea_verl.estimators.ESTIMATORS` and
the ``best_of_n`` reward manager.

Loaded by ``import verl`` in every process (trainer, Ray workers): verl 0.9.1 and later read the
``verl.plugins`` entry point declared in pyproject.toml; every verl from 0.7.1 on imports the
modules named in ``VERL_USE_EXTERNAL_MODULES`` (``tea_verl.plugin``), which is also the way when the
package is shipped through a Ray runtime env rather than installed (entry points need an install):
set it in the driver and in ``runtime_env.env_vars``. :data:`LOADED_BY` says which one loaded it.

The estimators come first and need only verl's public ``register_adv_est``: a failure there is made
loud (ERROR log and a RuntimeWarning on stderr, since verl swallows plugin import errors at DEBUG
level) and re-raised. The ``best_of_n`` manager needs verl's reward-loop registry (:mod:`.private`);
where this verl lacks it, the estimators stay registered and one warning names the version and the
way around.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings

from tea_verl.estimators import ESTIMATORS
from tea_verl.integrations.verl import private

logger = logging.getLogger("tea_verl")

_PLUGIN_MODULES = ("tea_verl.plugin", "tea_verl.integrations.verl.plugin")


def _loaded_by() -> str:
    named = {m.strip() for m in os.environ.get("VERL_USE_EXTERNAL_MODULES", "").split(",")}
    if named & set(_PLUGIN_MODULES):
        return "VERL_USE_EXTERNAL_MODULES"
    verl = sys.modules.get("verl")
    if verl is not None and hasattr(verl, "_plugins_policy"):  # set by a verl that reads entry points, before it does
        return "the verl.plugins entry point"
    return "a direct import of tea_verl.plugin"


LOADED_BY = _loaded_by()
"""How this process loaded the plugin: ``VERL_USE_EXTERNAL_MODULES``, the ``verl.plugins`` entry
point, or a direct import (``tea-verl preflight`` prints it)."""

MANAGER_UNAVAILABLE: str | None = None
"""Why the ``best_of_n`` manager is not registered on this verl (None: it is)."""


def _loud(msg: str) -> None:
    logger.error(msg)
    warnings.warn(msg, RuntimeWarning, stacklevel=3)


try:
    private.require("estimators", include_heavy=False)
    from tea_verl.integrations.verl.advantage import register as register_estimators

    register_estimators()
except Exception as exc:  # noqa: BLE001 - re-raised below, after making it visible
    _loud(f"tea-verl could not register its advantage estimators ({', '.join(ESTIMATORS)}) with verl: "
          f"{type(exc).__name__}: {exc}. algorithm.adv_estimator=tea will fail with 'Unknown advantage estimator'. "
          f"Check that verl{private.SUPPORTED_VERL} and tea-verl are installed in this environment.")
    raise

MANAGER_UNAVAILABLE = private.unavailable("reward_manager", include_heavy=False)
if MANAGER_UNAVAILABLE is None:
    try:
        from tea_verl.integrations.verl.reward_manager import register as register_manager

        register_manager()
    except Exception as exc:  # noqa: BLE001 - re-raised below, after making it visible
        _loud(f"tea-verl registered its estimators but could not register the best_of_n reward manager: "
              f"{type(exc).__name__}: {exc}")
        raise
else:
    _loud(f"tea-verl registered its estimators ({', '.join(ESTIMATORS)}); the best_of_n reward manager is not "
          f"registered: {MANAGER_UNAVAILABLE}")
