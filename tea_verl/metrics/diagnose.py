"""``tea-verl diagnose``: is a reward tail in the regime the estimators assume, and what to use.

Input: many scored samples per prompt (a verl validation dump or a JSONL/Parquet table, read by
:func:`tea_verl.metrics.samples.read_samples`). Steps:

1. **Standardise per prompt**: ``z = (s - mean_p) / std_p``. The estimators assume tails that
   share a shape up to location and scale, so the shape is read off the pooled z-scores.
   Prompts with fewer than ``min_samples`` samples, and constant prompts, are left out (counted).
2. **Ties and discreteness at the training group size**: groups of m are resampled (without
   replacement) from each prompt's raw scores, and batches of ``batch_prompts`` such groups go
   through the estimators' own tie handling (:func:`tea_verl.estimators.best_of_n_credit`): the
   top-two tie rate of groups of m (those groups get the exact ``bon`` credit at N = m in
   training), the expected number of such fallback groups per batch, and the share of batches the
   binomial test would declare discrete (the whole batch then gets ``bon`` at N = m). A continuous
   law never ties; a few point masses tie rarely; pass/fail and few-level rewards tie in most
   groups.
3. **Tail shape** xi with a 95% bootstrap interval over prompts: the estimators' own fit (GEV
   basis ``phi_xi(k) = (k^xi - 1)/xi``, exact best-of-k curves summed over prompts, k = 2..n).
   ``xi < 0``: bounded (Weibull domain); ``0``: Gumbel-like; ``> 0``: heavy.
4. **Does the law extrapolate?** Fit the law on k <= m (what training sees) and predict best-of-n
   (the largest sampled k): the miss, in standard errors over prompts.
5. **Estimator quality on your law**: SVR and rho (:mod:`tea_verl.metrics.quality`) of ``bon`` at N = m
   and of each tail-estimator setting, for your (m, N), on the empirical law of the pooled
   z-scores (:class:`tea_verl.metrics.quality.EmpiricalLaw`).
6. **Recommendation**: among settings with SVR in [0.85, 1.2] and rho >= 0.85 x rho(bon at N = m),
   the highest rho; ``bon`` when N <= m or the rewards are discrete.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from tea_verl.config import TEA_DEFAULTS, TeaConfig
from tea_verl.metrics.curves import prompt_curves
from tea_verl.metrics.samples import Samples

# torch and the estimators are imported inside the functions that use them, so that the CLI can
# reject bad arguments (check_arguments) in milliseconds, before torch and verl load

__all__ = ["DiagnoseError", "Diagnosis", "diagnose", "format_diagnosis", "MIN_SAMPLES"]

MIN_SAMPLES = 8
SVR_RANGE = (0.85, 1.2)
RHO_FRACTION = 0.85
DISCRETE_MAJORITY = 0.5  # above this predicted share of discrete batches, recommend bon outright
SHAPE_BOUNDS = TEA_DEFAULTS.shape_bounds  # the search range of the fit, as in training


class DiagnoseError(ValueError):
    """Input that cannot be diagnosed; the message says what is missing and the minimum."""


@dataclass
class Candidate:
    label: str
    estimator: str  # display name for tea_verl.metrics.quality.measure
    keys: dict
    overrides: list[str]
    svr: float = float("nan")
    svr_se: float = float("nan")
    rho: float = float("nan")
    rho_se: float = float("nan")
    eligible: bool = False
    svr_off: float = float("nan")  # with failure handling off (failure_reward=-inf), measured when there is an atom
    rho_off: float = float("nan")


@dataclass
class Diagnosis:
    m: int
    N: int
    min_samples: int
    prompts: int
    samples_per_prompt: dict[int, int]
    left_out_short: int
    left_out_constant: int
    top_tie_rate: float
    batch_prompts: int = 0
    group_tie_rate: float = float("nan")  # top-two tie rate of resampled groups of m (non-constant ones)
    fallback_groups_per_batch: float = float("nan")  # expected groups per batch that get bon at N = m
    discrete_batch_rate: float = float("nan")  # predicted share of batches declared discrete
    xi: float | None = None
    xi_ci: tuple[float, float] | None = None
    law_r2: float | None = None
    extrapolation: dict | None = None
    atoms: int = 0
    shape_at_bound: str | None = None  # "lower" / "upper" when the fitted xi sits at its search bound
    failure_value: float | None = None  # the failure atom of all samples, as training detects it (estimators.failures)
    failure_share: float = 0.0  # the share of the samples exactly at it
    failure_below_share: float = 0.0  # the share at or below it: what training takes as failures
    rare_penalty: float | None = None  # no atom, but the lowest score is held exactly by >= 2 samples, far below the rest
    rare_penalty_share: float = 0.0
    candidates: list[Candidate] = field(default_factory=list)
    reference: Candidate | None = None
    recommendation: Candidate | None = None
    reasons: list[str] = field(default_factory=list)

    @property
    def shape_sign(self) -> str:
        if self.xi_ci is None:
            return "unknown"
        lo, hi = self.xi_ci
        if hi < 0:
            return "negative"
        if lo > 0:
            return "positive"
        return "zero"

    def as_dict(self) -> dict:
        def cand(c):
            keys = ("label", "overrides", "svr", "svr_se", "rho", "rho_se", "eligible", "svr_off", "rho_off")
            return None if c is None else {k: getattr(c, k) for k in keys}

        return {
            "m": self.m, "N": self.N, "prompts": self.prompts,
            "samples_per_prompt": {str(k): v for k, v in self.samples_per_prompt.items()},
            "left_out_short": self.left_out_short, "left_out_constant": self.left_out_constant,
            "top_tie_rate": self.top_tie_rate, "batch_prompts": self.batch_prompts,
            "group_tie_rate": self.group_tie_rate, "fallback_groups_per_batch": self.fallback_groups_per_batch,
            "discrete_batch_rate": self.discrete_batch_rate, "failure_value": self.failure_value,
            "failure_share": self.failure_share, "failure_below_share": self.failure_below_share,
            "rare_penalty": self.rare_penalty, "rare_penalty_share": self.rare_penalty_share,
            "shape_at_bound": self.shape_at_bound, "xi": self.xi, "xi_ci95": self.xi_ci, "shape_sign": self.shape_sign,
            "law_r2": self.law_r2, "extrapolation_check": self.extrapolation,
            "reference_bon_at_m": cand(self.reference), "candidates": [cand(c) for c in self.candidates],
            "recommendation": cand(self.recommendation), "reasons": self.reasons,
        }


def rare_penalty(scores: np.ndarray) -> float | None:
    """The lowest score when it looks like a fixed penalty too rare for the failure-atom test: held
    exactly by at least two samples and below the next score by more than the scores' interquartile
    range. None otherwise."""
    x = np.asarray(scores, dtype=float)
    x = x[np.isfinite(x)]
    if x.size < 4:
        return None
    low = x.min()
    rest = x[x > low]
    if (x == low).sum() < 2 or rest.size == 0:
        return None
    q1, q3 = np.percentile(x, [25, 75])
    return float(low) if rest.min() - low > q3 - q1 > 0 else None


def _failure_advice(d: Diagnosis) -> list[str]:
    """The failure-penalty lines of the report: the atom (or a penalty too rare to be one), how many
    a training batch holds against the atom test's minimum, and what to set."""
    from tea_verl.estimators.failures import ATOM_MIN_COUNT, ATOM_MIN_SHARE

    batch = d.batch_prompts * d.m
    need = max(ATOM_MIN_COUNT, math.ceil(ATOM_MIN_SHARE * batch))
    if d.failure_value is not None:
        value, share = d.failure_value, d.failure_below_share
        head = (f"  failure atom: {d.failure_share:.1%} of the samples score exactly {value:g}, {share:.1%} at or below it, with "
                "little valid mass near it. The tail estimators take the answers at or below it as failures (their penalty's "
                "size no longer counts, and their credit is pushed below the valid answers that are not best; metric "
                "tea/failure_share); the table below shows the credit's quality with that handling on and off.")
    elif d.rare_penalty is not None:
        value, share = d.rare_penalty, d.rare_penalty_share
        head = (f"  a penalty too rare to be detected: {share:.2%} of the samples score exactly {value:g}, far below every other "
                "score (the failure-atom test needs more of them).")
    else:
        return []
    per_batch = share * batch
    rare = (f" A training batch of {d.batch_prompts} prompts x m = {d.m} holds about {per_batch:.1f} of them, under the "
            f"{need} the atom test needs, so without the key training sees them as ordinary low rewards and a tail "
            "estimator's credit can rank them above valid answers." if per_batch < need else "")
    return [head + rare + f" Name the penalty: algorithm.tea.failure_reward={value:g}. On a language model, watch "
            "tea/failure_share, the share of invalid answers and response_length/mean (docs/results.md, \"A language model\")."]


def _standardise(samples: Samples, prompts: dict, min_samples: int):
    """Per-prompt z-scores of the prompts kept (and their raw scores, in the same order)."""
    kept, raw, short, const, ties = [], [], 0, 0, 0
    for idx in prompts.values():
        s = samples.selection[idx]
        if s.size < min_samples:
            short += 1
            continue
        sd = s.std()
        if not sd > 0:
            const += 1
            continue
        top2 = np.sort(s)[-2:]
        ties += int(top2[0] == top2[1])
        kept.append((s - s.mean()) / sd)
        raw.append(s)
    return kept, raw, short, const, ties


def check_arguments(m: int, N: int, min_samples: int = MIN_SAMPLES, batch_prompts: int = 128) -> None:
    """Raise :class:`DiagnoseError` for settings diagnose cannot use (cheap: no torch, no data)."""
    if m < 2:
        raise DiagnoseError(f"--m (rollouts per prompt in training) must be >= 2, got {m}")
    if N < 1:
        raise DiagnoseError(f"--N (the deployment best-of-N) must be >= 1, got {N}")
    if batch_prompts < 1:
        raise DiagnoseError(f"--batch-prompts (prompts per training batch, data.train_batch_size) must be >= 1, got {batch_prompts}")
    if min_samples < 4:
        raise DiagnoseError(f"--min-samples must be >= 4 (the shape fit needs k = 2..4 at least), got {min_samples}")


def group_size_ties(raw: list[np.ndarray], m: int, N: int, batch_prompts: int, batches: int = 300,
                    seed: int = 0) -> tuple[float, float, float]:
    """Resample training-like batches (``batch_prompts`` prompts, a group of m of each prompt's raw
    scores drawn without replacement) and run them through the estimator's tie handling.

    Returns (top-two tie rate of non-constant groups, fallback groups per batch, share of batches
    declared discrete)."""
    import torch

    from tea_verl.estimators import best_of_n_credit

    rng = np.random.default_rng(seed + 1)
    usable = [s for s in raw if s.size >= m]
    ids = torch.arange(batch_prompts).repeat_interleave(m)
    ties = eligible = fallbacks = discrete = 0
    for _ in range(batches):
        pick = rng.integers(0, len(usable), batch_prompts)
        x = np.concatenate([rng.choice(usable[i], m, replace=False) for i in pick])
        _, info = best_of_n_credit(torch.from_numpy(x.astype(np.float64)), ids, "tea_gev", TeaConfig(N=max(N, m + 1), shape=0.0))
        ties += info.tie_groups
        eligible += info.eligible_groups
        fallbacks += info.fallback_groups
        discrete += info.discrete_batch
    return (ties / eligible if eligible else 0.0), fallbacks / batches, discrete / batches


def diagnose(
    samples: Samples,
    m: int,
    N: int,
    min_samples: int = MIN_SAMPLES,
    batch_prompts: int = 128,
    draws: int = 100_000,
    groups: int = 256,
    n_boot: int = 200,
    seed: int = 0,
    progress=None,
) -> Diagnosis:
    """Run the six steps of the module docstring. ``draws``: rewards per SVR/rho evaluation."""
    check_arguments(m, N, min_samples, batch_prompts)
    d, kept, kept_raw = _describe(samples, m, N, min_samples, batch_prompts, seed)
    n_min = min(d.samples_per_prompt)
    curves = np.stack([prompt_curves(z)[0][:n_min] for z in kept])  # (P, n_min) exact best-of-k of z
    curves = curves - curves[:, :1]
    _fit_shape(d, curves, n_boot, seed)
    _check_extrapolation(d, curves, m, n_min)
    if _without_tail(d, m, N, batch_prompts):
        return d
    _measure_candidates(d, kept, kept_raw, m, N, draws, groups, seed, progress)
    _recommend(d, m)
    return d


def _describe(samples: Samples, m: int, N: int, min_samples: int, batch_prompts: int, seed: int):
    """Steps 1-2: the prompts kept (standardised), the failure atom or a rare penalty, and the ties
    at the group size. Returns the diagnosis so far, and the kept prompts' z-scores and raw scores."""
    import torch

    from tea_verl.estimators.failures import bottom_atom

    prompts = samples.prompts()
    atom = bottom_atom(torch.as_tensor(samples.selection, dtype=torch.float64))
    kept, kept_raw, short, const, ties = _standardise(samples, prompts, min_samples)
    raw = [samples.selection[idx] for idx in prompts.values() if samples.selection[idx].size >= min_samples]
    if len(kept) < 2:
        counts = sorted({len(idx) for idx in prompts.values()})[:8]
        raise DiagnoseError(
            f"diagnose needs at least 2 prompts with >= {min_samples} samples each and a non-constant score; "
            f"{samples.origin} has {len(prompts)} prompt(s) ({short} with fewer samples, {const} constant; sample counts "
            f"seen: {counts}). Validate with more samples per prompt (val_kwargs.n >= {min_samples}, ideally >= 64)."
        )
    sizes: dict[int, int] = {}
    for z in kept:
        sizes[z.size] = sizes.get(z.size, 0) + 1
    d = Diagnosis(
        m=m, N=N, min_samples=min_samples, prompts=len(kept), samples_per_prompt=dict(sorted(sizes.items())), left_out_short=short,
        left_out_constant=const, top_tie_rate=ties / len(kept), batch_prompts=batch_prompts,
    )
    if atom is not None:
        d.failure_value = atom
        d.failure_share = float(np.mean(samples.selection == atom))
        d.failure_below_share = float(np.mean(samples.selection <= atom))
    else:
        d.rare_penalty = rare_penalty(samples.selection)
        if d.rare_penalty is not None:
            d.rare_penalty_share = float(np.mean(samples.selection == d.rare_penalty))
    if all(r.size >= m for r in raw):
        d.group_tie_rate, d.fallback_groups_per_batch, d.discrete_batch_rate = group_size_ties(raw, m, N, batch_prompts, seed=seed)
    else:
        d.reasons.append(f"tie check at the group size skipped: some prompts have fewer than m = {m} samples")
    return d, kept, kept_raw


def _fit_shape(d: Diagnosis, curves: np.ndarray, n_boot: int, seed: int) -> None:
    """Step 3: the tail shape, the estimators' own pooled fit (k = 2..n_min), with a bootstrap
    interval over prompts."""
    import torch

    from tea_verl.estimators import fit_tail_shape

    def fit(rows: np.ndarray) -> tuple[float, float]:
        return fit_tail_shape(torch.from_numpy(rows.sum(0)), SHAPE_BOUNDS, kmin=2)

    d.xi, d.law_r2 = fit(curves)
    rng = np.random.default_rng(seed)
    boots = [fit(curves[rng.integers(0, len(curves), len(curves))])[0] for _ in range(n_boot)]
    d.xi_ci = (float(np.quantile(boots, 0.025)), float(np.quantile(boots, 0.975)))
    for side, bound in zip(("lower", "upper"), SHAPE_BOUNDS):
        if abs(d.xi - bound) < 1e-6:
            d.shape_at_bound = side
            d.reasons.append(
                f"the tail shape estimate sits at the {side} bound of its search range {list(SHAPE_BOUNDS)} "
                "(algorithm.tea.shape_bounds): the best fit may lie beyond it, and the interval is cut there"
            )


def _check_extrapolation(d: Diagnosis, curves: np.ndarray, m: int, n_min: int) -> None:
    """Step 4: the law fitted on k = 2..m, predicted at k = n_min, against the measured curve."""
    import torch

    from tea_verl.estimators import fit_tail_shape, phi

    if not (n_min > m and m >= 3):
        d.reasons.append(f"extrapolation check skipped: it needs more than m = {m} samples per prompt")
        return
    mean = curves.mean(0)
    sem = curves.std(0, ddof=1) / math.sqrt(len(curves))
    xi_m, _ = fit_tail_shape(torch.from_numpy(curves[:, :m].sum(0)), SHAPE_BOUNDS, kmin=2 if m >= 4 else 1)
    ks = np.arange(2 if m >= 4 else 1, m + 1, dtype=np.float64)
    X = np.stack([np.ones_like(ks), phi(xi_m, torch.from_numpy(ks)).numpy()], 1)
    coef, *_ = np.linalg.lstsq(X, mean[ks.astype(int) - 1], rcond=None)
    pred = float(coef[0] + coef[1] * phi(xi_m, torch.tensor([float(n_min)]))[0])
    miss = pred - float(mean[-1])
    d.extrapolation = {
        "fit_on_k": [int(ks[0]), m], "xi_fitted_on_k_le_m": xi_m, "k": n_min,
        "predicted": pred, "measured": float(mean[-1]), "miss": miss,
        "miss_in_se": miss / float(sem[-1]) if sem[-1] > 0 else None,
    }


def _without_tail(d: Diagnosis, m: int, N: int, batch_prompts: int) -> bool:
    """Where no tail estimator applies (N <= m, or discrete rewards), recommend bon and say so;
    otherwise note the ties the tail estimators will meet. True when the diagnosis is done."""
    if N <= m:
        d.recommendation = Candidate("bon (exact, N <= m)", "bon_m", {}, ["algorithm.adv_estimator=bon", f"algorithm.tea.N={N}"])
        d.reasons.append(f"N = {N} <= m = {m}: the exact estimator needs no tail assumption (tea/prefix_tea reduce to it)")
        return True
    if d.discrete_batch_rate > DISCRETE_MAJORITY:
        d.recommendation = Candidate("bon at N = m", "bon_m", {}, ["algorithm.adv_estimator=bon", f"algorithm.tea.N={m}"])
        d.reasons.append(
            f"the rewards look discrete: the top two of a group of {m} tie in {d.group_tie_rate:.0%} of groups, and "
            f"{d.discrete_batch_rate:.0%} of batches of {batch_prompts} prompts would be declared discrete, in which "
            "the tail estimators train with bon at N = m anyway; use it directly (N is then m, not the deployment N)"
        )
        return True
    if d.fallback_groups_per_batch > 0:
        d.reasons.append(
            f"ties: {d.group_tie_rate:.1%} of groups of {m} tie at the top; about {d.fallback_groups_per_batch:.1f} of "
            f"{batch_prompts} groups per batch will get bon at N = m (metric tea/fallback_groups); "
            f"{d.discrete_batch_rate:.1%} of batches would be declared discrete (tea/fallback_batch)"
        )
    return False


def _candidates(m: int, N: int, xi: float) -> list[Candidate]:
    """From the table: the paper's Gaussian family first (when m holds a 2-sample tail at the
    default alpha), then each GEV estimator with its pooled shape and with the shape fitted here."""
    from tea_verl.estimators.gaussian import DEFAULT_ALPHA, tail_size
    from tea_verl.estimators.table import GAUSSIAN, GEV

    xi_fixed = round(xi, 3)
    base = [f"algorithm.tea.N={N}"]
    return [
        Candidate(f"{e} (Gaussian, alpha {DEFAULT_ALPHA})", e, {}, [f"algorithm.adv_estimator={e}", *base])
        for e in GAUSSIAN if tail_size(DEFAULT_ALPHA, m) >= 2
    ] + [
        c
        for e in GEV
        for c in (
            Candidate(f"{e} (pooled shape)", e, {}, [f"algorithm.adv_estimator={e}", *base]),
            Candidate(f"{e} (shape {xi_fixed:+.3f})", e, {"shape": xi_fixed},
                      [f"algorithm.adv_estimator={e}", *base, f"algorithm.tea.shape={xi_fixed}"]),
        )
    ]


def _measure_candidates(d: Diagnosis, kept, kept_raw, m: int, N: int, draws: int, groups: int, seed: int, progress) -> None:
    """Step 5: SVR and rho of bon at N = m and of every candidate on the empirical law of the pooled
    z-scores (with failure handling on and off where the law has a failure atom)."""
    from tea_verl.metrics.quality import measure

    z_all = np.concatenate(kept)
    d.atoms = z_all.size
    if z_all.size < 4 * N:
        d.reasons.append(f"only {z_all.size} pooled samples for N = {N}: the empirical tail above quantile 1 - 1/{2 * z_all.size} is flat")
    law, keys_on = _empirical_law(d, z_all, np.concatenate(kept_raw))
    d.reference = Candidate(f"bon at N = m = {m}", "bon_m", {}, ["algorithm.adv_estimator=bon", f"algorithm.tea.N={m}"])
    d.candidates = _candidates(m, N, d.xi)
    batches = max(2, draws // (groups * m))
    for i, c in enumerate([d.reference, *d.candidates]):
        if progress:
            progress(i, 1 + len(d.candidates), c.label)
        r = measure(law, m, N, c.estimator, groups=groups, batches=batches, seed=seed, tea_keys={**c.keys, **keys_on})
        c.svr, c.svr_se, c.rho, c.rho_se = (float(r[k]) for k in ("svr", "svr_se", "rho", "rho_se"))
        if keys_on and c is not d.reference:  # bon at N = m has no failure handling to turn off
            r = measure(law, m, N, c.estimator, groups=groups, batches=batches, seed=seed,
                        tea_keys={**c.keys, "failure_reward": float("-inf")})
            c.svr_off, c.rho_off = float(r["svr"]), float(r["rho"])


def _recommend(d: Diagnosis, m: int) -> None:
    """Step 6: among the candidates with SVR in range and rho at least a share of bon's, the highest
    rho (to 0.01), then the per-batch pooled shape, then SVR closest to 1; bon at N = m if none."""
    lo, hi = SVR_RANGE
    for c in d.candidates:
        c.eligible = lo <= c.svr <= hi and c.rho >= RHO_FRACTION * d.reference.rho
    eligible = [c for c in d.candidates if c.eligible]
    if eligible:
        # the pooled shape follows the policy as it moves (a shape fixed from today's samples does not)
        d.recommendation = max(eligible, key=lambda c: (round(c.rho, 2), "shape" not in c.keys, -abs(c.svr - 1.0)))
        d.reasons.append(
            f"{d.recommendation.label}: SVR {d.recommendation.svr:.2f} in [{lo}, {hi}] and the highest rho "
            f"({d.recommendation.rho:.2f}, against {d.reference.rho:.2f} for bon at N = m)"
        )
    else:
        closest = min(d.candidates, key=lambda c: abs(c.svr - 1.0))
        d.recommendation = d.reference
        d.reasons.append(
            f"no tail setting has SVR in [{lo}, {hi}] with rho >= {RHO_FRACTION} x bon's on this law (closest: "
            f"{closest.label}, SVR {closest.svr:.2f}); the tail assumption looks off, so bon at N = m is the safe choice"
        )
    if d.extrapolation and d.extrapolation["miss_in_se"] is not None and abs(d.extrapolation["miss_in_se"]) > 3:
        d.reasons.append(
            f"warning: the law fitted on k <= {m} misses the measured best-of-{d.extrapolation['k']} by "
            f"{d.extrapolation['miss_in_se']:.1f} standard errors"
        )


def _empirical_law(d: Diagnosis, z: np.ndarray, raw: np.ndarray):
    """The law the estimators are measured on, and the algorithm.tea keys that turn failure
    handling on there. Without a failure atom: the pooled z-scores (:class:`EmpiricalLaw`, no ties)
    and no keys. With one: the valid answers' z-scores with the failures as one atom at their median
    z-score (kept below every valid one), named by ``failure_reward`` as the advice says to."""
    from tea_verl.metrics.quality import EmpiricalLaw

    if d.failure_value is None:
        return EmpiricalLaw(z), {}
    fail = raw <= d.failure_value
    valid = z[~fail]
    if np.unique(valid).size < 2:
        d.reasons.append("failure atom: fewer than two distinct valid scores, so the table is measured without failure handling")
        return EmpiricalLaw(z), {}
    zf = float(min(np.median(z[fail]), valid.min() - 0.01))
    return EmpiricalLaw(valid, atom=zf, atom_share=float(fail.mean())), {"failure_reward": zf}


def rule_of_thumb(m: int) -> str:
    """Which estimator family the benchmarks favour at group size m (docs/estimators.md, 0b)."""
    from tea_verl.estimators.gaussian import DEFAULT_ALPHA, tail_size

    k = tail_size(DEFAULT_ALPHA, m)
    if k < 2:
        return (f"m = {m}: the paper's tea/prefix_tea cannot run (a tail of {k} reward at alpha = {DEFAULT_ALPHA}); "
                "use tea_gev or prefix_tea_gev")
    if k == 2:
        return (f"m = {m}: the paper's tea/prefix_tea fit a 2-reward tail, where their credit is exactly best-of-m "
                "(no extrapolation); use tea_gev or prefix_tea_gev")
    if k == 3:
        return (f"m = {m}: the paper's tea extrapolates from a 3-reward tail with a large spread bias (SVR about 0.65 "
                "on a normal law); use tea_gev or prefix_tea_gev")
    return (f"m = {m}: prefix_tea (the paper's, debiased) on normal-like tails, prefix_tea_gev on skewed or heavy "
            "tails (Gumbel, Student-t, lognormal), where the Gaussian family undervalues spread")


def format_diagnosis(d: Diagnosis) -> str:
    L = [f"tail diagnosis for m = {d.m} training rollouts, deployment best-of-{d.N}"]
    L.append(f"  prompts: {d.prompts} (samples per prompt: " + ", ".join(f"{n} x {c}" for n, c in d.samples_per_prompt.items()) + ")")
    if d.left_out_short or d.left_out_constant:
        L.append(f"  left out: {d.left_out_short} prompts with < {d.min_samples} samples, {d.left_out_constant} constant prompts")
    L.append(f"  top-two tie rate over all samples of a prompt: {d.top_tie_rate:.1%} of prompts")
    if d.group_tie_rate == d.group_tie_rate:
        L.append(f"  at the training group size m = {d.m}: top two tie in {d.group_tie_rate:.1%} of groups; per batch of "
                 f"{d.batch_prompts} prompts {d.fallback_groups_per_batch:.2f} fallback groups (bon at N = m), "
                 f"{d.discrete_batch_rate:.1%} of batches declared discrete")
    L.extend(_failure_advice(d))
    if d.xi is not None:
        lo, hi = d.xi_ci
        kind = {"negative": "bounded (Weibull domain)", "zero": "Gumbel-like (exponential tail)", "positive": "heavy (Frechet domain)"}[d.shape_sign]
        bound = f" (AT THE {d.shape_at_bound.upper()} BOUND of {list(SHAPE_BOUNDS)})" if d.shape_at_bound else ""
        L.append(f"  tail shape xi = {d.xi:+.3f}{bound}, 95% CI [{lo:+.3f}, {hi:+.3f}]: {kind}; law R^2 = {d.law_r2:.5f}")
        L.append("    (the estimators' shape: basis (n^xi - 1)/xi, k = 2..n, standardised scores; bon-report fits the "
                 "validation law's exact basis to raw scores, so its xi differs)")
    if d.extrapolation:
        e = d.extrapolation
        z = "n/a" if e["miss_in_se"] is None else f"{e['miss_in_se']:+.1f} s.e."
        L.append(f"  law fitted on k = {e['fit_on_k'][0]}..{e['fit_on_k'][1]} predicts best-of-{e['k']} = {e['predicted']:.3f} "
                 f"(standardised); measured {e['measured']:.3f}; miss {e['miss']:+.3f} ({z})")
    if d.candidates:
        L.append("")
        off = d.failure_value is not None and any(c.svr_off == c.svr_off for c in d.candidates)
        extra = f" {'SVR off':>8s} {'rho off':>8s}" if off else ""
        L.append(f"  {'setting':34s} {'SVR':>13s} {'rho':>13s}{extra}  (on your empirical law, {d.atoms} pooled samples"
                 + ("; 'off': failure handling off, failure_reward=-inf)" if off else ")"))
        for c in [d.reference, *d.candidates]:
            mark = " *" if c is d.recommendation else ("  " if not c.eligible else " .")
            cols = f" {c.svr_off:8.2f} {c.rho_off:8.2f}" if off and c is not d.reference else (" " * 18 if off else "")
            L.append(f"  {c.label:34s} {c.svr:6.2f}+-{c.svr_se:.2f}  {c.rho:6.2f}+-{c.rho_se:.2f}{cols}{mark}")
        L.append(f"  (target SVR in [{SVR_RANGE[0]}, {SVR_RANGE[1]}], rho >= {RHO_FRACTION} x bon's; '.' eligible, '*' recommended)")
    L.append("")
    L.append("recommendation: " + " ".join(d.recommendation.overrides))
    L.append(f"  - rule of thumb from the reference-law benchmarks, {rule_of_thumb(d.m)}; the table above is for your law")
    for r in d.reasons:
        L.append(f"  - {r}")
    return "\n".join(L)
