"""verl: the registered advantage estimators (:mod:`.advantage`), the ``best_of_n`` reward manager
(:mod:`.reward_manager`), the best-of-N validation metrics (:mod:`.validation`), the entry point
``python -m tea_verl.main_ppo`` (:mod:`.main_ppo`), the config checks (:mod:`.preflight`), the plugin
that registers them (:mod:`.plugin`), and every verl name they rely on that is not public API
(:mod:`.private`). Importing this package imports none of them (the CPU backend imports
:mod:`.private` alone)."""
