"""verl plugin entry point: registers the estimators of :data:`tea_verl.estimators.ESTIMATORS` and
the ``best_of_n`` reward manager.

Loaded by ``import verl`` in every process (trainer, Ray workers) through the ``verl.plugins``
entry point declared in pyproject.toml. verl swallows plugin import errors at DEBUG level, so a
failure here is made loud (ERROR log and a RuntimeWarning on stderr) before it is re-raised. It
first checks the verl names it relies on (:mod:`.private`), so that a verl outside the supported
range fails here with one message naming what moved.

Fallback when the package is shipped through a Ray runtime env rather than installed (entry
points need an install): set ``VERL_USE_EXTERNAL_MODULES=tea_verl.plugin`` in the driver and in
``runtime_env.env_vars`` so every worker's ``import verl`` imports it.
"""

from __future__ import annotations

import logging
import warnings

from tea_verl.estimators import ESTIMATORS
from tea_verl.integrations.verl import private

logger = logging.getLogger("tea_verl")

try:
    private.check(users=("reward_manager",))

    from tea_verl.integrations.verl.advantage import register as register_estimators
    from tea_verl.integrations.verl.reward_manager import register as register_manager

    register_estimators()
    register_manager()
except Exception as exc:  # noqa: BLE001 - re-raised below, after making it visible
    _msg = (
        f"tea-verl could not register its advantage estimators ({', '.join(ESTIMATORS)}) or its best_of_n "
        f"reward manager with verl: "
        f"{type(exc).__name__}: {exc}. algorithm.adv_estimator=tea will fail with 'Unknown advantage "
        f"estimator'. Check that verl{private.SUPPORTED_VERL} and tea-verl are installed in this environment."
    )
    logger.error(_msg)
    warnings.warn(_msg, RuntimeWarning, stacklevel=2)
    raise
