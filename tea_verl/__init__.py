"""tea-verl: best-of-N-oriented advantage estimators (bon, TEA, Prefix-TEA, TEA-GEV, Prefix-TEA-GEV)
for verl.

Subpackages, each importing only those below it (pyproject.toml's import-linter contract):

* :mod:`tea_verl.cli`: the ``tea-verl`` command line;
* :mod:`tea_verl.experiments`: the bandit demo and the tiny language-model experiment;
* :mod:`tea_verl.launch`: CPU launches of verl's trainer (``tea-verl smoke``) and their tiny model;
* :mod:`tea_verl.cpu`: verl's trainer on a CPU (platform, engines, rollout);
* :mod:`tea_verl.integrations`: the framework glue (verl: estimators, reward manager, validation);
* :mod:`tea_verl.metrics`: best-of-k curves, the scaling-law fit, estimator quality, diagnosis;
* :mod:`tea_verl.estimators`: the pure torch math and the one table of estimators;
* :mod:`tea_verl.config`: the settings and their defaults.

Kept paths: ``python -m tea_verl.main_ppo``, ``pkg://tea_verl.rewards`` and
``VERL_USE_EXTERNAL_MODULES=tea_verl.plugin`` / ``tea_verl.cpu``.
"""

import os

__version__ = "0.1.0"

CONFIG_DIR = os.path.join(os.path.dirname(__file__), "conf")
"""Directory holding ``tea_trainer.yaml`` (pass it to verl as ``--config-path``)."""

VERL_PACKAGES = ("verl", "hydra", "omegaconf", "ray", "tensordict")
"""verl and the packages it brings: a missing one means the [verl] extra is not installed."""
