"""Best-of-N validation report: exact curves of scored samples, the scaling-law fit, written out.

The samples come from :mod:`.samples` (a verl validation dump or a JSONL/Parquet table). Prompts
may hold different numbers of samples (reported, and averaged per k over the prompts that reach k).
A prompt whose gold score is present on only some samples is left out of the selected-gold curve and
counted in the report.
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import dataclass, field

import numpy as np

from tea_verl.config import BEST_OF_N_DEFAULTS
from tea_verl.metrics.curves import CurveSummary, ScalingLawFit, fit_scaling_law, log2_ks, summarize_curves
from tea_verl.metrics.samples import Samples

logger = logging.getLogger("tea_verl")

__all__ = ["analyse", "Report", "SourceReport", "format_report", "write_report", "plot_report"]

DEFAULT_EXTRAPOLATE = BEST_OF_N_DEFAULTS.extrapolate_to  # reward.best_of_n.extrapolate_to


@dataclass
class SourceReport:
    summary: CurveSummary
    fit: ScalingLawFit | None
    fit_note: str = ""
    gold_incomplete_prompts: int = 0


@dataclass
class Report:
    origin: str
    num_samples: int
    sources: dict[str, SourceReport] = field(default_factory=dict)
    dropped_duplicates: int = 0

    def as_dict(self) -> dict:
        out = {"origin": self.origin, "num_samples": self.num_samples, "data_sources": {}}
        for name, src in self.sources.items():
            s = src.summary
            out["data_sources"][name] = {
                "prompts": s.num_prompts,
                "samples_per_prompt": {str(k): v for k, v in s.n_counts.items()},
                "uneven_samples_per_prompt": s.uneven,
                "gold_incomplete_prompts": src.gold_incomplete_prompts,
                "curve": _curve_rows(s),
                "scaling_law": None if src.fit is None else src.fit.as_dict(),
                "scaling_law_note": src.fit_note or None,
            }
        out["dropped_repeated_session_outputs"] = self.dropped_duplicates
        return out


def _none_if_nan(x) -> float | None:
    return None if x is None or not math.isfinite(float(x)) else float(x)


def _curve_rows(s: CurveSummary) -> list[dict]:
    rows = []
    for i, k in enumerate(s.ks):
        row = {
            "k": int(k),
            "prompts": int(s.prompts_at_k[i]),
            "best_of_k": float(s.best_mean[i]),
            "best_of_k_sem": _none_if_nan(s.best_sem[i]),
        }
        if s.gold_mean is not None and i < s.gold_mean.size:
            row.update(
                selected_gold=float(s.gold_mean[i]),
                selected_gold_sem=_none_if_nan(s.gold_sem[i]),
                gold_prompts=int(s.gold_prompts_at_k[i]),
            )
        rows.append(row)
    return rows


def analyse(
    samples: Samples,
    extrapolate_to=DEFAULT_EXTRAPOLATE,
    shape: float | None = None,
    shape_bounds: tuple[float, float] = (-2.0, 0.5),
    n_boot: int = 200,
) -> Report:
    """Group by (data source, uid), compute the exact curves and fit the scaling law per source."""
    groups: dict[str, list[list[int]]] = {}
    for (src, _uid), idx in samples.prompts().items():
        groups.setdefault(src, []).append(idx)
    report = Report(origin=samples.origin, num_samples=len(samples), dropped_duplicates=samples.dropped_duplicates)
    for src in sorted(groups):
        per_prompt, incomplete = [], 0
        for idx in groups[src]:
            sel = samples.selection[idx]
            golds = [samples.gold[i] for i in idx]
            have = sum(g is not None for g in golds)
            gold = np.asarray(golds, dtype=np.float64) if have == len(idx) else None
            if 0 < have < len(idx):
                incomplete += 1
            per_prompt.append((sel, gold))
        summary, rows = summarize_curves(src, per_prompt, keep_rows=True)
        # the law is fitted on the k range every prompt reaches, so each point averages the same prompts
        k_fit = min(summary.n_counts)
        fit, note = None, ""
        try:
            fit = fit_scaling_law(
                summary.best_mean[:k_fit],
                summary.best_sem[:k_fit],
                xi=shape,
                bounds=shape_bounds,
                extrapolate_to=tuple(extrapolate_to),
                prompt_rows=rows,
                n_boot=n_boot,
            )
        except ValueError as exc:
            note = str(exc)
        if fit is not None and fit.extrapolated:
            note = _extrapolation_caveats(fit, k_fit, np.concatenate([p[0] for p in per_prompt]), note)
        if summary.uneven:
            note = (note + " " if note else "") + (
                f"uneven samples per prompt {summary.n_counts}: the law is fitted on k = 1..{k_fit}"
            )
        report.sources[src] = SourceReport(summary, fit, note, incomplete)
    return report


EXTRAPOLATION_RATIO_WARN = 16  # extrapolating further than this multiple of the sampled n gets a warning
DISCRETE_LEVELS = 5  # scores with at most this many distinct values are treated as discrete


def _extrapolation_caveats(fit: ScalingLawFit, k_fit: int, scores: np.ndarray, note: str) -> str:
    """Say how far the extrapolations reach beyond the sampled n, and cap them at the largest
    observed score when the scores are discrete (a best-of-N' of a law on a few levels cannot
    exceed its top level; the continuous law would overshoot it)."""
    notes = [note] if note else []
    far = max(fit.extrapolated)
    if far > EXTRAPOLATION_RATIO_WARN * k_fit:
        notes.append(
            f"warning: extrapolating from k <= {k_fit} sampled per prompt to {far} ({far / k_fit:.0f}x): beyond the "
            "sampled range the law is an assumption, not a measurement; sample more per prompt (val_kwargs.n) to check it"
        )
    levels = np.unique(scores[np.isfinite(scores)])
    if levels.size <= DISCRETE_LEVELS:
        top = float(levels[-1])
        capped = [n for n, v in fit.extrapolated.items() if v > top]
        for n in capped:
            fit.extrapolated[n] = top
            fit.extrapolated_se.pop(n, None)  # the bootstrap spread of an overshooting law says nothing here
        notes.append(
            f"warning: the scores take only {levels.size} distinct values: discrete rewards have no continuous tail, so the "
            f"law's extrapolations are not meaningful"
            + (f"; those above the top level {top:g} are capped at it ({', '.join(map(str, capped))})" if capped else "")
        )
    return "\n".join(notes)


def format_report(report: Report) -> str:
    """Plain-text tables: best-of-k and selected gold at k = 1, 2, 4, ..., n, then the law."""
    lines = [f"best-of-N report: {report.origin} ({report.num_samples} samples)"]
    if report.dropped_duplicates:
        lines.append(f"  {report.dropped_duplicates} repeated outputs of multi-output sessions skipped (one per session)")
    for name, src in report.sources.items():
        s = src.summary
        lines.append("")
        lines.append(f"[{name}] {s.num_prompts} prompts, samples per prompt: " + ", ".join(f"{n} x {c}" for n, c in s.n_counts.items()))
        if s.uneven:
            lines.append("  uneven samples per prompt: each k averages the prompts with at least k samples")
        if src.gold_incomplete_prompts:
            lines.append(f"  {src.gold_incomplete_prompts} prompts with gold on only some samples: left out of the selected-gold curve")
        has_gold = s.gold_mean is not None
        head = f"  {'k':>6} {'prompts':>8} {'best-of-k':>12} {'+-sem':>9}"
        if has_gold:
            head += f" {'sel. gold':>12} {'+-sem':>9}"
        lines.append(head)
        for k in log2_ks(int(s.ks[-1])):
            i = k - 1
            row = f"  {k:>6} {s.prompts_at_k[i]:>8} {s.best_mean[i]:>12.4f} {_fmt(s.best_sem[i]):>9}"
            if has_gold and i < s.gold_mean.size:
                row += f" {s.gold_mean[i]:>12.4f} {_fmt(s.gold_sem[i]):>9}"
            lines.append(row)
        fit = src.fit
        if fit is not None:
            if not fit.xi_fitted:
                xi_txt = f"xi = {fit.xi:+.3f} (fixed)"
            elif fit.xi_at_bound:
                xi_txt = (f"xi = {fit.xi:+.3f} (AT THE {fit.xi_at_bound.upper()} BOUND of the search range "
                          f"{list(fit.xi_bounds)}: the best fit may lie beyond it; no standard error)")
            else:
                xi_txt = f"xi = {fit.xi:+.3f} (fitted" + (f", se {fit.xi_se:.3f})" if fit.xi_se is not None else ")")
            z = "n/a" if fit.max_abs_z is None else f"{fit.max_abs_z:.2f}"
            lines.append(
                f"  law J_k = a + b Phi_xi(k): a = {fit.a:.4f}, b = {fit.b:.4f}, {xi_txt}; R^2 = {fit.r2:.5f}, "
                f"rmse = {fit.rmse:.2e}, max |resid|/sem = {z}"
            )
            if fit.xi_fitted:
                lines.append("  (the validation law's exact basis Phi_xi, k = 1..n, raw scores; tea-verl diagnose reports "
                             "the estimators' shape, basis (n^xi - 1)/xi, which differs)")
            if fit.max_abs_z is not None and fit.max_abs_z > 3:
                lines.append("  warning: the law misses the measured curve by more than 3 standard errors; treat extrapolations with care")
            for n, v in fit.extrapolated.items():
                se = fit.extrapolated_se.get(n)
                lines.append(f"  best-of-{n} = {v:.4f}" + (f" +- {se:.4f}" if se is not None else "") + f"  (EXTRAPOLATED beyond the sampled k = {fit.k_max})")
        for note in src.fit_note.splitlines():
            lines.append(f"  note: {note}")
    return "\n".join(lines)


def _fmt(x) -> str:
    return "n/a" if x is None or not math.isfinite(float(x)) else f"{float(x):.4f}"


def write_report(report: Report, out_dir: str, plot: bool = True) -> dict[str, str]:
    """Write ``bon_report.csv`` (every k, measured and extrapolated), ``bon_report.json`` and
    ``bon_report.png``; returns their paths."""
    import csv

    os.makedirs(out_dir, exist_ok=True)
    paths = {"csv": os.path.join(out_dir, "bon_report.csv"), "json": os.path.join(out_dir, "bon_report.json")}
    cols = ["data_source", "kind", "k", "prompts", "best_of_k", "best_of_k_sem", "selected_gold", "selected_gold_sem", "gold_prompts"]
    with open(paths["csv"], "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        for name, src in report.sources.items():
            for row in _curve_rows(src.summary):
                w.writerow({"data_source": name, "kind": "measured", **row})
            if src.fit is not None:
                for n, v in src.fit.extrapolated.items():
                    w.writerow(
                        {"data_source": name, "kind": "extrapolated", "k": n, "best_of_k": v, "best_of_k_sem": src.fit.extrapolated_se.get(n)}
                    )
    with open(paths["json"], "w") as f:
        json.dump(report.as_dict(), f, indent=1)
    if plot:
        paths["png"] = os.path.join(out_dir, "bon_report.png")
        plot_report(report, paths["png"])
    return paths


def plot_report(report: Report, path: str, max_sources: int = 6) -> None:
    """Best-of-k (with the fitted law, dashed where extrapolated) and selected gold against k."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(report.sources)[:max_sources]
    has_gold = any(report.sources[n].summary.gold_mean is not None for n in names)
    ncols = 2 if has_gold else 1
    fig, axes = plt.subplots(len(names), ncols, figsize=(6.0 * ncols, 3.6 * len(names)), squeeze=False)
    for r, name in enumerate(names):
        src = report.sources[name]
        s = src.summary
        ax = axes[r][0]
        ax.plot(s.ks, s.best_mean, "o", ms=2.5, color="C0", label="exact best-of-k (measured)")
        sem = np.nan_to_num(s.best_sem, nan=0.0)
        ax.fill_between(s.ks, s.best_mean - sem, s.best_mean + sem, color="C0", alpha=0.2, lw=0)
        if src.fit is not None:
            fit = src.fit
            kk = np.unique(np.geomspace(1, fit.k_max, 200).round())
            ax.plot(kk, fit.predict(kk), "-", color="C1", label=f"law fit (xi = {fit.xi:+.2f})")
            if fit.extrapolated:
                ke = np.unique(np.geomspace(fit.k_max, max(fit.extrapolated), 100).round())
                ax.plot(ke, fit.predict(ke), "--", color="C1", label="extrapolation")
                ns = list(fit.extrapolated)
                ax.errorbar(ns, [fit.extrapolated[n] for n in ns], yerr=[fit.extrapolated_se.get(n, 0.0) for n in ns],
                            fmt="s", ms=4, color="C1", mfc="none")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("k (samples per prompt)")
        ax.set_ylabel("selection score")
        ax.set_title(f"{name}: best-of-k ({s.num_prompts} prompts)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        if has_gold:
            ax = axes[r][1]
            if s.gold_mean is not None:
                kg = np.arange(1, s.gold_mean.size + 1)
                gsem = np.nan_to_num(s.gold_sem, nan=0.0)
                ax.plot(kg, s.gold_mean, "o-", ms=2.5, color="C2", label="gold of the selected response")
                ax.fill_between(kg, s.gold_mean - gsem, s.gold_mean + gsem, color="C2", alpha=0.2, lw=0)
                ax.legend(fontsize=8)
            else:
                ax.text(0.5, 0.5, "no gold scores", ha="center", va="center", transform=ax.transAxes)
            ax.set_xscale("log", base=2)
            ax.set_xlabel("k (samples per prompt)")
            ax.set_ylabel("gold score")
            ax.set_title(f"{name}: selected gold")
            ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
