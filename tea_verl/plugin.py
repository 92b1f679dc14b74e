"""Kept path: ``VERL_USE_EXTERNAL_MODULES=tea_verl.plugin`` (the fallback for a package shipped
through a Ray runtime env). The plugin is :mod:`tea_verl.integrations.verl.plugin`; importing this
module imports it, which registers the estimators and the ``best_of_n`` manager with verl."""

from tea_verl.integrations.verl import plugin  # noqa: F401  (registers on import)
