"""The settings: ``algorithm.tea`` (:class:`TeaConfig`) and ``reward.best_of_n``
(:class:`BestOfNConfig`), typed objects validated once, with errors that name the key.

The bottom layer of the package: pure Python, no torch and no verl. The defaults live here and
only here: the estimators read theirs from :data:`TEA_DEFAULTS`, and ``tea_verl/conf/tea_keys.yaml``
(the Hydra keys that extend verl's ``ppo_trainer``) declares the same keys with the same defaults,
which a test checks. docs/configuration.md documents them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from types import SimpleNamespace
from typing import Any

__all__ = ["TeaConfig", "TEA_DEFAULTS", "BestOfNConfig", "ConfigError"]


class ConfigError(ValueError):
    """A bad ``algorithm.tea`` setting; the message names the key and the fix."""


@dataclass(frozen=True)
class TeaConfig:
    N: int
    """Deployment best-of-N budget: the number of samples drawn and ranked by the reward at test
    time. Required. ``bon`` needs ``N <= rollout.n``; ``tea``/``prefix_tea`` (and the GEV
    ``tea_gev``/``prefix_tea_gev``) extrapolate to ``N > rollout.n`` and equal ``bon`` when
    ``N <= rollout.n``."""

    alpha: float = 0.25
    """``tea``/``prefix_tea`` (the paper's Gaussian family): the upper-tail fraction whose
    statistics (threshold, mean, std of the top ``ceil(alpha m)`` rewards) define the credit.
    In (0, 0.5); groups need ``ceil(alpha m) >= 2`` (m >= 5 at the default 0.25)."""

    jackknife_order: int = 2
    """``prefix_tea``: bias-cancellation order of the jackknife over sub-sample sizes (1: an average
    of plug-ins, no cancellation; 2: cancels the 1/k bias term; 3: also 1/k^2, more variance)."""

    jackknife_sizes: int = 4
    """``prefix_tea``: number J of sub-sample (tail) sizes combined, spread between the group's
    tail size k and k/2; fewer when the group's tail has fewer distinct sizes."""

    jackknife_orderings: int = 2
    """``prefix_tea``: fixed random orderings of each group whose cyclic windows form the
    sub-samples (more: less Monte Carlo noise, more work)."""

    shape: float | str = "pooled"
    """``tea_gev``/``prefix_tea_gev``: tail shape xi of the GEV scaling law ``J_n = a + b (n^xi - 1)/xi``. ``"pooled"`` (default)
    fits one xi per batch on the sum of every group's exact best-of-k curve (tails share a shape
    across prompts up to location and scale); a number fixes it (0 = Gumbel/exponential-like
    tails, < 0 bounded rewards, > 0 heavy tails)."""

    shape_bounds: tuple[float, float] = (-1.0, 0.5)
    """Search interval of the pooled xi fit. xi >= 1 has no mean; the upper bound keeps the
    extrapolation finite."""

    shape_fallback: float = 0.0
    """xi used when the batch cannot inform a fit (groups of fewer than 3 samples, or every group
    constant)."""

    smoothing: float = 1e-3
    """Weight of ``|w|^2`` (the variance proxy) against each estimator's criterion: for ``tea`` the
    L2 error of the approximated best-of-N advantage, for ``prefix_tea`` the credit's variation
    in the bulk of the law (its worst-case bias from the bulk). Larger is lower variance
    (``inf`` would be the least-norm moment-cancelling weights over all orders, for both);
    smaller follows the criterion more closely. Chosen by the benchmarks in docs/estimators.md."""

    order: int = 1
    """Moment-cancellation order: 1 cancels (a, b) of the scaling law; 2 also cancels a
    second-order term ``c * phi_{xi+rho}(n)`` (needs m >= 3; more variance)."""

    rho: float = -1.0
    """Second-order shape offset (order 2 only); must be < 0."""

    std_scale: str = "batch"
    """With ``algorithm.norm_adv_by_std_in_grpo=true``: ``batch`` (default) divides all credits by
    the batch mean of the per-prompt reward stds; ``group`` divides each prompt's credits by its
    own std, as GRPO does. The per-group std grows with a sample's own reward and so damps the
    spread-seeking credit (SVR of prefix_tea 0.66-0.71 at m = 4; docs/estimators.md)."""

    max_top_tie_rate: float = 0.1
    """The largest top-two tie probability of a continuous law with point masses. Groups whose
    top two rewards tie get the exact bon credit at N = m; a batch in which a one-sided binomial
    test (level 5 %) rejects "tie probability <= this" is judged discrete (pass/fail, a few levels:
    tail extrapolation can flip the sign of the best responses' credit there) and gets bon at
    N = m as a whole. 1.0 turns the batch test off. Never raises on data."""

    failure_reward: float | None = None
    """Tail estimators: rewards at or below this value are failures (invalid, unscorable or
    off-format answers with a fixed penalty). ``null`` (default): rewards at or below the batch's
    failure atom, if it has one (:func:`tea_verl.estimators.failures.bottom_atom`). Failures get less
    credit than the mean of the valid answers of their group that are not best (``failure_push``), and no
    credit depends on how low the penalty is (docs/estimators.md, section 11). ``-inf`` turns failure handling off."""

    failure_push: float = 4.0
    """Tail estimators, where failures are found: their credit is lowered, relative to the valid
    answers of their group, by this many valid-reward scales (the group-centred credit of a
    mean-validity term beside the best-of-N objective, which itself barely separates a failure from
    a valid answer that is not best). 0 leaves the capped credit as it is (docs/estimators.md,
    section 11)."""

    extra: dict = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._check_budget()
        self._check_shape()
        self._check_numbers()
        self._check_failures()
        if self.extra:
            known = ", ".join(f.name for f in fields(self) if f.name != "extra")
            raise ConfigError(
                f"unknown key(s) under algorithm.tea: {sorted(self.extra)}; known keys: {known}."
            )

    def _check_budget(self) -> None:
        n = self.N
        if n is None:
            raise ConfigError(
                "algorithm.tea.N is required: set it to the deployment best-of-N budget, e.g. "
                "algorithm.tea.N=64 (with the tea_trainer config) or +algorithm.tea.N=64 (with plain ppo_trainer)."
            )
        if isinstance(n, bool) or not isinstance(n, (int, float)) or int(n) != n or n < 1:
            raise ConfigError(f"algorithm.tea.N must be an integer >= 1 (the best-of-N budget), got {n!r}.")
        object.__setattr__(self, "N", int(n))

    def _check_shape(self) -> None:
        shape = self.shape
        if isinstance(shape, str):
            if shape != "pooled":
                try:
                    shape = float(shape)
                except ValueError:
                    raise ConfigError(
                        f"algorithm.tea.shape must be 'pooled' or a number (the tail shape xi), got {shape!r}."
                    ) from None
        if not isinstance(shape, str):
            if isinstance(shape, bool) or not isinstance(shape, (int, float)) or not math.isfinite(shape):
                raise ConfigError(f"algorithm.tea.shape must be 'pooled' or a finite number, got {shape!r}.")
            shape = float(shape)
            if not -2.0 <= shape < 1.0:
                raise ConfigError(
                    f"algorithm.tea.shape={shape} is outside [-2, 1): xi >= 1 has no finite mean. "
                    "Use 'pooled' or a value such as 0.0."
                )
        object.__setattr__(self, "shape", shape)
        try:
            lo, hi = (float(v) for v in self.shape_bounds)
        except (TypeError, ValueError):
            raise ConfigError(
                f"algorithm.tea.shape_bounds must be two numbers [lo, hi], got {self.shape_bounds!r}."
            ) from None
        if not (-2.0 <= lo < hi <= 0.9):
            raise ConfigError(
                f"algorithm.tea.shape_bounds must satisfy -2 <= lo < hi <= 0.9, got [{lo}, {hi}]; default [-1.0, 0.5]."
            )
        object.__setattr__(self, "shape_bounds", (lo, hi))

    def _check_numbers(self) -> None:
        for key in ("shape_fallback", "smoothing", "rho", "max_top_tie_rate"):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ConfigError(f"algorithm.tea.{key} must be a finite number, got {v!r}.")
            object.__setattr__(self, key, float(v))
        if not -2.0 <= self.shape_fallback < 1.0:
            raise ConfigError(f"algorithm.tea.shape_fallback must lie in [-2, 1), got {self.shape_fallback}.")
        if self.smoothing <= 0:
            raise ConfigError(
                f"algorithm.tea.smoothing must be > 0 (it regularises the weights), got {self.smoothing}; default 1e-3."
            )
        if self.std_scale not in ("batch", "group"):
            raise ConfigError(
                f"algorithm.tea.std_scale must be 'batch' or 'group', got {self.std_scale!r}; default 'batch'."
            )
        if not 0.0 <= self.max_top_tie_rate <= 1.0:
            raise ConfigError(
                f"algorithm.tea.max_top_tie_rate must lie in [0, 1], got {self.max_top_tie_rate}; default 0.1."
            )
        if isinstance(self.alpha, bool) or not isinstance(self.alpha, (int, float)) or not 0.0 < self.alpha < 0.5:
            raise ConfigError(
                f"algorithm.tea.alpha must be a number in (0, 0.5) (the upper-tail fraction), got {self.alpha!r}; default 0.25."
            )
        object.__setattr__(self, "alpha", float(self.alpha))
        for key, lo, hi in (("jackknife_order", 1, 3), ("jackknife_sizes", 1, 16), ("jackknife_orderings", 1, 64)):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
                raise ConfigError(f"algorithm.tea.{key} must be an integer in [{lo}, {hi}], got {v!r}.")
        if self.order not in (1, 2) or isinstance(self.order, bool):
            raise ConfigError(f"algorithm.tea.order must be 1 or 2, got {self.order!r}.")
        if self.rho >= 0:
            raise ConfigError(f"algorithm.tea.rho must be < 0 (a second-order tail term), got {self.rho}.")

    def _check_failures(self) -> None:
        fr = self.failure_reward
        if fr is not None:
            if isinstance(fr, str):
                try:
                    fr = float(fr)
                except ValueError:
                    fr = None
            if fr is None or isinstance(fr, bool) or not isinstance(fr, (int, float)) or math.isnan(fr) or fr == math.inf:
                raise ConfigError(
                    f"algorithm.tea.failure_reward must be null (detect a failure atom at the bottom of the batch), a "
                    f"number (rewards at or below it are failures) or -inf (off), got {self.failure_reward!r}."
                )
            object.__setattr__(self, "failure_reward", float(fr))
        fp = self.failure_push
        if isinstance(fp, bool) or not isinstance(fp, (int, float)) or not math.isfinite(fp) or fp < 0:
            raise ConfigError(
                f"algorithm.tea.failure_push must be a finite number >= 0 (valid-reward scales between a failure "
                f"and the valid answers; 0 off), got {fp!r}; default 1.0."
            )
        object.__setattr__(self, "failure_push", float(fp))

    @classmethod
    def from_algorithm(cls, algorithm: Any) -> TeaConfig:
        """Read ``tea`` from verl's ``algorithm`` node (OmegaConf DictConfig, dict or None)."""
        node = None if algorithm is None else _get(algorithm, "tea")
        if node is None:
            raise ConfigError(
                "algorithm.tea is missing: the best-of-N estimators need at least algorithm.tea.N "
                "(the deployment best-of-N budget). Launch with --config-name=tea_trainer (see "
                "`tea-verl config-dir`) and algorithm.tea.N=64, or add +algorithm.tea.N=64."
            )
        raw = _to_dict(node)
        return cls.from_keys(raw.pop("N", None), raw)

    @classmethod
    def from_keys(cls, N: Any, keys: Any = None) -> TeaConfig:
        """The settings from ``N`` and a mapping of the other ``algorithm.tea`` keys, as every
        framework's adapter holds them (TRL's ``tea=``, OpenRLHF's ``--tea``): the same checks, and an
        unknown key is a :class:`ConfigError` naming the known ones."""
        raw = dict(keys or {})
        names = {f.name for f in fields(cls)} - {"extra", "N"}
        known = {k: v for k, v in raw.items() if k in names}
        extra = {k: v for k, v in raw.items() if k not in names}
        return cls(N=N, **known, extra=extra)


TEA_DEFAULTS = SimpleNamespace(**{f.name: f.default for f in fields(TeaConfig) if f.name not in ("N", "extra")})
"""The default of every ``algorithm.tea`` key but ``N`` (which has none), read from :class:`TeaConfig`:
``TEA_DEFAULTS.alpha`` is 0.25. The one source of the estimators' keyword defaults."""


PROXY_SOURCES = ("auto", "function", "reward_model")
GOLD_SOURCES = ("none", "function", "endpoint")


@dataclass(frozen=True)
class BestOfNConfig:
    """The ``reward.best_of_n`` node: the ``best_of_n`` reward manager and the validation metrics.

    Declared with these defaults in ``tea_trainer.yaml``; README lists every key.
    """

    proxy: str = "auto"
    """Where the proxy reward (training reward and best-of-N selection score) comes from.
    ``reward_model``: the reward model behind verl's reward router (``reward.reward_model.enable``),
    queried exactly as verl's own reward loop does; ``function``: the reward function
    (``reward.custom_reward_function`` or verl's rule-based default); ``auto``: ``reward_model``
    when verl hands the manager a router address, else ``function``."""

    gold: str = "none"
    """Second scorer for the selected-gold curve: ``none``, ``function`` (a rule-based verifier,
    called only for prompts whose ``reward_model.ground_truth`` is set) or ``endpoint`` (a second
    reward endpoint of the same /classify shape)."""

    gold_function_path: str | None = None
    """``gold=function``: file or ``pkg://module`` of the verifier (verl's custom-function loader)."""

    gold_function_name: str = "compute_score"
    """``gold=function``: the function's name; called like a verl reward function."""

    gold_endpoint: str | None = None
    """``gold=endpoint``: ``host:port`` of the gold scorer."""

    gold_model: str | None = None
    """``gold=endpoint``: the ``model`` field sent with each request."""

    gold_tokenizer_path: str | None = None
    """``gold=endpoint``: local tokenizer directory whose chat template formats the gold input."""

    max_concurrency: int = 64
    """Scoring requests in flight per reward-loop worker (verl starts ``reward.num_workers``)."""

    max_retries: int = 4
    """Retries of a transient failure (connection error, timeout, HTTP 429 or 5xx) per request.
    Other failures (HTTP 4xx, a malformed response) are not retried."""

    backoff_s: float = 0.25
    """First retry delay; doubled per retry (with +-50% jitter), capped by ``backoff_max_s``."""

    backoff_max_s: float = 8.0
    """Largest retry delay."""

    timeout_s: float = 120.0
    """Per-request timeout (a timeout counts as a transient failure)."""

    max_unscored_share: float = 0.01
    """Validation: the largest share of a validation's samples that may stay unscored (their scorer
    still failing after ``max_retries``, or raising) before the run stops. Unscored samples are
    counted (``val-aux/{data_source}/unscored/share``) and left out of the best-of-k estimates; above
    the share the trainer saves a checkpoint and stops with the first samples' errors. In training
    any unscored sample stops the run the same way: a sample without a reward has no credit."""

    extrapolate_to: tuple[int, ...] = (128, 256, 512, 1024)
    """Validation metrics: budgets N' for the scaling-law extrapolation (those above
    ``val_kwargs.n``); logged under names that say ``extrapolated``."""

    shape: float | str = "fit"
    """Validation metrics: tail shape xi of the law ``J_k = a + b Phi_xi(k)``: ``fit`` or a number."""

    shape_bounds: tuple[float, float] = (-2.0, 0.5)
    """Validation metrics: search interval of the fitted xi."""

    extra: dict = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        k = "reward.best_of_n."
        if self.proxy not in PROXY_SOURCES:
            raise ConfigError(f"{k}proxy must be one of {PROXY_SOURCES}, got {self.proxy!r}.")
        if self.gold in (None, False):
            object.__setattr__(self, "gold", "none")
        if self.gold not in GOLD_SOURCES:
            raise ConfigError(f"{k}gold must be one of {GOLD_SOURCES}, got {self.gold!r}.")
        if self.gold == "function" and not self.gold_function_path:
            raise ConfigError(
                f"{k}gold=function needs {k}gold_function_path (a file or pkg://module holding the verifier)."
            )
        if self.gold == "endpoint":
            for key in ("gold_endpoint", "gold_model", "gold_tokenizer_path"):
                if not getattr(self, key):
                    raise ConfigError(
                        f"{k}gold=endpoint needs {k}{key} (endpoint host:port, the model name it serves, "
                        "and a local tokenizer directory for its chat template)."
                    )
        for key in ("max_concurrency", "max_retries"):
            v = getattr(self, key)
            lo = 1 if key == "max_concurrency" else 0
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise ConfigError(f"{k}{key} must be an integer >= {lo}, got {v!r}.")
        for key in ("backoff_s", "backoff_max_s", "timeout_s"):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
                raise ConfigError(f"{k}{key} must be a positive number of seconds, got {v!r}.")
            object.__setattr__(self, key, float(v))
        share = self.max_unscored_share
        if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0.0 <= share <= 1.0:
            raise ConfigError(f"{k}max_unscored_share must be a number in [0, 1] (0: any unscored sample stops the run), got {share!r}.")
        object.__setattr__(self, "max_unscored_share", float(share))
        if self.backoff_max_s < self.backoff_s:
            raise ConfigError(f"{k}backoff_max_s ({self.backoff_max_s}) must be >= {k}backoff_s ({self.backoff_s}).")
        try:
            ns = tuple(int(n) for n in (self.extrapolate_to or ()))
        except (TypeError, ValueError):
            raise ConfigError(f"{k}extrapolate_to must be a list of integers, got {self.extrapolate_to!r}.") from None
        if any(n < 2 for n in ns):
            raise ConfigError(f"{k}extrapolate_to must hold budgets >= 2, got {list(ns)}.")
        object.__setattr__(self, "extrapolate_to", ns)
        shape = self.shape
        if shape != "fit":
            try:
                shape = float(shape)
            except (TypeError, ValueError):
                raise ConfigError(f"{k}shape must be 'fit' or a number < 1, got {self.shape!r}.") from None
            if not (math.isfinite(shape) and -2.0 <= shape < 1.0):
                raise ConfigError(f"{k}shape must lie in [-2, 1) (xi >= 1 has no mean), got {shape}.")
        object.__setattr__(self, "shape", shape)
        try:
            lo, hi = (float(v) for v in self.shape_bounds)
        except (TypeError, ValueError):
            raise ConfigError(f"{k}shape_bounds must be two numbers [lo, hi], got {self.shape_bounds!r}.") from None
        if not (-2.0 <= lo < hi <= 0.9):
            raise ConfigError(f"{k}shape_bounds must satisfy -2 <= lo < hi <= 0.9, got [{lo}, {hi}].")
        object.__setattr__(self, "shape_bounds", (lo, hi))
        if self.extra:
            known = ", ".join(f.name for f in fields(self) if f.name != "extra")
            raise ConfigError(f"unknown key(s) under reward.best_of_n: {sorted(self.extra)}; known keys: {known}.")

    @property
    def fit_shape(self) -> float | None:
        return None if self.shape == "fit" else float(self.shape)

    @classmethod
    def from_config(cls, config: Any) -> BestOfNConfig:
        """Read ``reward.best_of_n`` from the full trainer config (absent node: all defaults)."""
        reward = None if config is None else _get(config, "reward")
        node = None if reward is None else _get(reward, "best_of_n")
        if node is None:
            return cls()
        raw = _to_dict(node, "reward.best_of_n")
        names = {f.name for f in fields(cls)} - {"extra"}
        return cls(**{k: v for k, v in raw.items() if k in names}, extra={k: v for k, v in raw.items() if k not in names})


def _get(node: Any, key: str) -> Any:
    if isinstance(node, Mapping):
        return node.get(key)
    getter = getattr(node, "get", None)
    if getter is not None:
        return getter(key)
    return getattr(node, key, None)


def _to_dict(node: Any, where: str = "algorithm.tea") -> dict:
    try:
        from omegaconf import DictConfig, OmegaConf

        if isinstance(node, DictConfig):
            return dict(OmegaConf.to_container(node, resolve=True))
    except ImportError:  # pragma: no cover - omegaconf comes with verl
        pass
    if isinstance(node, Mapping):
        return dict(node)
    raise ConfigError(f"{where} must be a mapping of settings, got {type(node).__name__}.")


BEST_OF_N_DEFAULTS = SimpleNamespace(**{f.name: f.default for f in fields(BestOfNConfig) if f.name != "extra"})
"""The default of every ``reward.best_of_n`` key, read from :class:`BestOfNConfig`: the one source of
the validation metrics' and ``tea-verl bon-report``'s defaults (``extrapolate_to``, ...)."""
