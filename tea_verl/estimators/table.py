"""The one table of estimators and the methods they are compared with.

Everything that lists estimators reads this table: verl registration, the CLI's choices, preflight,
the labels of the demo, the language-model experiment and the benchmarks, and the quality lists.

Rows are *methods*: the five estimators tea-verl registers with verl (``ours``), verl's own GRPO
baselines, and two comparison settings of ``bon`` that the experiments train with:

* ``bon_m``: the exact ``bon`` at N = m, "optimise the best-of-m you can measure";
* ``oracle``: the exact ``bon`` at the deployment N on N rollouts per prompt, N / m times the
  rollouts of every other method: a ceiling, not a competitor.

The experiments also accept ``bon`` for ``bon_m`` (:func:`comparison_method`): in a comparison at
N > m, the exact estimator can only run at N = m.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "Method",
    "METHODS",
    "ESTIMATORS",
    "EXACT",
    "GAUSSIAN",
    "GEV",
    "TAIL",
    "PREFIX",
    "BASELINES",
    "COMPARISON",
    "LABELS",
    "method",
    "comparison_method",
]


@dataclass(frozen=True)
class Method:
    name: str
    """The name users type (``algorithm.adv_estimator`` for the registered ones)."""
    family: str
    """``exact`` (bon), ``gaussian`` (the paper's TEA and Prefix-TEA), ``gev`` (this project's), or
    ``verl`` (verl's own estimators)."""
    label: str
    """The name in tables and plots."""
    registry: str
    """The name in verl's advantage-estimator registry that a run with this method uses."""
    budget: str = "N"
    """The ``algorithm.tea.N`` a comparison run passes: ``"N"`` (the deployment budget) or ``"m"``."""
    rollouts: str = "m"
    """Rollouts per prompt in a comparison run: ``"m"`` or ``"N"`` (the oracle)."""
    summary: str = ""
    """One line on what the credit is (the docstring of the function registered with verl)."""
    function: str = ""
    """``module:function`` of the estimator's math, called by keyword by the front door
    (:func:`tea_verl.estimators.credit.best_of_n_credit`) as its family calls it: the Gaussian family
    ``f(rows, n=N, **reads)`` -> the (G, m) credit of G groups of m rewards; the GEV family
    ``f(m=m, n=N, xi=xi, **reads)`` -> the m prefix weights. Empty for ``exact`` (``bon``) and verl's own."""
    reads: tuple[str, ...] = ()
    """The ``algorithm.tea`` keys :attr:`function` takes, each ``param=key`` where the parameter has
    another name than the key."""
    smallest_m: int = 2
    """The smallest group size at which the method extrapolates to N > m. The Gaussian family's also
    depends on alpha: ``ceil(alpha m) >= 2`` (:func:`tea_verl.estimators.gaussian.min_group_size`)."""

    def keywords(self, config) -> dict:
        """The keyword arguments :attr:`function` takes from the settings ``config`` (a TeaConfig)."""
        pairs = (r.split("=", 1) if "=" in r else (r, r) for r in self.reads)
        return {param: getattr(config, key) for param, key in pairs}

    @property
    def ours(self) -> bool:
        """Registered with verl by tea-verl (the plugin)."""
        return self.family != "verl" and self.registry == self.name

    def n_arg(self, m: int, n: int) -> int:
        """``algorithm.tea.N`` of a comparison run at m rollouts and deployment budget n."""
        return m if self.budget == "m" else n

    def group_size(self, m: int, n: int) -> int:
        """``rollout.n`` of a comparison run at m rollouts and deployment budget n."""
        return n if self.rollouts == "N" else m


METHODS: tuple[Method, ...] = (
    Method("grpo", "verl", "GRPO (mean reward)", "grpo"),
    Method("grpo_passk", "verl", "grpo_passk (verl)", "grpo_passk"),
    Method("bon", "exact", "bon (exact, N <= m)", "bon",
           summary="Exact unbiased best-of-N credit (N <= group size): ``N * E_S[(r_i - max_S r)_+]``."),
    Method("bon_m", "exact", "bon, N = m (best-of-m)", "bon", budget="m"),
    Method("tea", "gaussian", "TEA (paper, Gaussian)", "tea", smallest_m=5,
           function="tea_verl.estimators.gaussian:tea_credit", reads=("alpha",),
           summary="TEA (the paper's): Gaussian upper-tail credit plugged in from the top ``ceil(alpha m)`` rewards "
                   "(any N; equals ``bon`` for N <= m)."),
    Method("prefix_tea", "gaussian", "Prefix-TEA (paper, Gaussian)", "prefix_tea", smallest_m=5,
           function="tea_verl.estimators.gaussian:prefix_tea_credit",
           reads=("alpha", "order=jackknife_order", "sizes=jackknife_sizes", "orderings=jackknife_orderings"),
           summary="Prefix-TEA (the paper's): TEA debiased by a jackknife over sub-samples (equals ``bon`` for N <= m)."),
    Method("tea_gev", "gev", "TEA-GEV", "tea_gev", smallest_m=3,
           function="tea_verl.estimators.gev:tea_weights", reads=("smoothing", "order", "rho"),
           summary="TEA-GEV: the exact prefix estimators combined to approximate the best-of-N advantage of a fitted "
                   "GEV law (any N; equals ``bon`` for N <= m)."),
    Method("prefix_tea_gev", "gev", "Prefix-TEA-GEV", "prefix_tea_gev", smallest_m=3,
           function="tea_verl.estimators.gev:prefix_tea_weights", reads=("smoothing", "order", "rho"),
           summary="Prefix-TEA-GEV: moment cancellation over the exact prefix estimators on a GEV scaling law "
                   "(equals ``bon`` for N <= m)."),
    Method("oracle", "exact", "oracle: bon with N rollouts", "bon", rollouts="N"),
)

_BY_NAME = {row.name: row for row in METHODS}

ESTIMATORS = tuple(row.name for row in METHODS if row.ours)
"""The five estimators tea-verl registers with verl: bon, tea, prefix_tea, tea_gev, prefix_tea_gev."""
EXACT = tuple(name for name in ESTIMATORS if _BY_NAME[name].family == "exact")
GAUSSIAN = tuple(name for name in ESTIMATORS if _BY_NAME[name].family == "gaussian")
GEV = tuple(name for name in ESTIMATORS if _BY_NAME[name].family == "gev")
TAIL = GAUSSIAN + GEV
"""The estimators that extrapolate to N > m."""
PREFIX = tuple(name for name in TAIL if name.startswith("prefix_"))
"""The tail estimators debiased over prefixes: prefix_tea (the paper's) and prefix_tea_gev."""
BASELINES = tuple(row.name for row in METHODS if row.family == "verl")
COMPARISON = tuple(row.name for row in METHODS if row.name != "bon")
"""The methods of a comparison at N > m (the demo, the benchmarks, the language-model experiment)."""
LABELS = {row.name: row.label for row in METHODS}


def method(name: str) -> Method:
    """The row of ``name``; a ``ValueError`` naming the choices for an unknown one."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise ValueError(f"unknown method {name!r}; choose one of {', '.join(_BY_NAME)}") from None


def comparison_method(name: str) -> Method:
    """The row of a method in a comparison at N > m: ``bon`` means ``bon_m`` there."""
    return method("bon_m" if name == "bon" else name)
