"""OpenRLHF glue: best-of-N credit in OpenRLHF's PPO trainer (``tea-verl openrlhf``, :mod:`.patch`).

OpenRLHF has no estimator registry: its advantages are computed in
``RemoteExperienceMaker.compute_advantages_and_returns``, which branches on the estimator name.
:mod:`.patch` replaces that method with one that computes the best-of-N credit for tea-verl's
estimators (through :func:`tea_verl.integrations.common.grouped_credit`, the front door verl's
glue uses too) and calls OpenRLHF's own for every other estimator. :mod:`.launch` runs OpenRLHF's
``train_ppo_ray`` with the patch installed in the driver and in every Ray worker. Importing this
package imports neither OpenRLHF nor Ray."""
