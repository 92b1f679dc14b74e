"""The frameworks tea-verl plugs into, one subpackage each, all on the same estimator front door
(:func:`tea_verl.estimators.best_of_n_credit`): :mod:`.verl`, :mod:`.trl`, and :mod:`.common`,
what the adapters share."""
