"""Best-of-N advantage estimators: pure torch math (never imports verl).

Symbols follow ``docs/estimators.md``. For one prompt, ``r_1..r_m`` are the outcome rewards of
its ``m`` rollouts (a *group*); ``N`` is the deployment best-of-N budget. Every estimator returns
one scalar credit per sample whose conditional mean, times ``grad log pi(y_i)``, estimates the
gradient of best-of-N performance. Three families, one file each:

* :mod:`.exact`: ``bon`` (N <= m), exact and unbiased for ``grad E[max of N rewards]``;
* :mod:`.gaussian`: the paper's ``tea`` and ``prefix_tea`` (any N): a Gaussian model of each
  prompt's upper alpha tail, the tail-shaped credit plugged in from the group's top rewards, and a
  jackknife over sub-samples that debiases it;
* :mod:`.gev`: this project's ``tea_gev`` and ``prefix_tea_gev`` (any N): linear combinations of
  the exact prefix estimators under a GEV test-time scaling law with a pooled, fitted tail shape;

with the shared group layout in :mod:`.layout` and the plain-data table of names in :mod:`.table`.
The front door, :func:`best_of_n_credit` (validation, tie and discreteness handling, dispatch,
std scaling), is :mod:`.credit`; this package only re-exports.

For ``N <= m`` every estimator is ``bon`` exactly. A group whose top two rewards tie gets the
exact ``bon`` credit at N = m, and so does a whole batch that a binomial test judges discrete
(:func:`top_tie_groups`): neither a GEV law nor a Gaussian tail fits there.

Optional normalisation divides by a reward std: the batch mean of the group stds (default) or
each group's own std (GRPO's convention, which damps the spread-seeking credit).

Degenerate cases: a singleton group has no "others", so its credit is 0 (documented; the verl
glue logs how many). Constant or all-tied groups give exactly 0.
"""

from __future__ import annotations

from tea_verl.estimators.credit import (
    DISCRETE_TEST_LEVEL,
    EPSILON,
    CreditInfo,
    best_of_n_credit,
    binomial_sf,
    top_tie_groups,
    top_tie_rate,
)
from tea_verl.estimators.exact import best_of_k_curves, bon_weights, prefix_to_rank_weights, rank_credit
from tea_verl.estimators.gev import SHAPE_GRID_STEP, bulk_quantile, fit_tail_shape, phi, pooled_shape, prefix_tea_weights, tea_weights
from tea_verl.estimators.layout import GroupLayout, check_finite, group_layout
from tea_verl.estimators.table import ESTIMATORS, GAUSSIAN, GEV, TAIL

__all__ = [
    "ESTIMATORS",
    "GAUSSIAN",
    "GEV",
    "TAIL",
    "EPSILON",
    "DISCRETE_TEST_LEVEL",
    "GroupLayout",
    "group_layout",
    "best_of_k_curves",
    "fit_tail_shape",
    "SHAPE_GRID_STEP",
    "bulk_quantile",
    "phi",
    "pooled_shape",
    "bon_weights",
    "prefix_tea_weights",
    "tea_weights",
    "prefix_to_rank_weights",
    "rank_credit",
    "best_of_n_credit",
    "binomial_sf",
    "check_finite",
    "top_tie_groups",
    "top_tie_rate",
    "CreditInfo",
]
