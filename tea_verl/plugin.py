"""verl plugin entry point: registers bon, tea, prefix_tea and the ``best_of_n`` reward manager.

Loaded by ``import verl`` in every process (trainer, Ray workers) through the ``verl.plugins``
entry point declared in pyproject.toml. verl swallows plugin import errors at DEBUG level, so a
failure here is made loud (ERROR log and a RuntimeWarning on stderr) before it is re-raised.

Fallback when the package is shipped through a Ray runtime env rather than installed (entry
points need an install): set ``VERL_USE_EXTERNAL_MODULES=tea_verl.plugin`` in the driver and in
``runtime_env.env_vars`` so every worker's ``import verl`` imports it.
"""

from __future__ import annotations

import logging
import warnings

logger = logging.getLogger("tea_verl")

try:
    from tea_verl.advantage import register as _register
    from tea_verl.reward_manager import register as _register_manager

    _register()
    _register_manager()
except Exception as exc:  # noqa: BLE001 - re-raised below, after making it visible
    _msg = (
        f"tea-verl could not register its advantage estimators (bon, tea, prefix_tea) or its best_of_n "
        f"reward manager with verl: "
        f"{type(exc).__name__}: {exc}. algorithm.adv_estimator=tea will fail with 'Unknown advantage "
        "estimator'. Check that verl>=0.9.1,<0.10 and tea-verl are installed in this environment."
    )
    logger.error(_msg)
    warnings.warn(_msg, RuntimeWarning, stacklevel=2)
    raise
