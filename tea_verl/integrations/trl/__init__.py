"""TRL glue: :class:`TeaGRPOTrainer`, TRL's ``GRPOTrainer`` with best-of-N credit, and its config
:class:`TeaGRPOConfig` (GRPOConfig plus the estimator, N and the tail keys).

Importing this module imports TRL (``pip install trl``); nothing else in tea-verl does."""

from tea_verl.integrations.trl.trainer import TRL_VERSIONS, TeaGRPOConfig, TeaGRPOTrainer

__all__ = ["TeaGRPOConfig", "TeaGRPOTrainer", "TRL_VERSIONS"]
