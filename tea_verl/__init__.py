"""tea-verl: best-of-N-oriented advantage estimators (bon, TEA, Prefix-TEA) for verl.

``tea_verl.estimators`` is the pure torch math (no verl import); ``tea_verl.advantage`` the verl
glue, registered through the ``verl.plugins`` entry point (``tea_verl.plugin``).
"""

import os

__version__ = "0.1.0"

CONFIG_DIR = os.path.join(os.path.dirname(__file__), "conf")
"""Directory holding ``tea_trainer.yaml`` (pass it to verl as ``--config-path``)."""
