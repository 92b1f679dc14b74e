"""Best-of-N validation report: read scored samples, compute exact curves, fit the law, write out.

Inputs (``read_samples``):

* a verl validation dump: the directory given as ``trainer.validation_data_dir`` (the newest
  ``<step>.jsonl`` is read unless a step is given) or one of its files. verl's v1 trainer writes one
  row per generated output with ``uid = {prompt uid}_{session}_{index}``; a multi-output session
  repeats its final score on every output, so one row per (prompt, session) is kept (the highest
  index). The selection score is ``bon_selection_score`` when the ``best_of_n`` reward manager
  wrote it, else ``score``; gold is ``bon_gold_score``; the data source ``bon_data_source``.
* a JSONL or Parquet table with one row per sample: ``uid`` (the prompt), ``score`` (or
  ``selection_score``), optional ``gold_score`` (``null`` where a prompt has none) and optional
  ``data_source``.

Prompts may hold different numbers of samples (reported, and averaged per k over the prompts that
reach k). A prompt whose gold score is present on only some samples is left out of the
selected-gold curve and counted in the report.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from dataclasses import dataclass, field

import numpy as np

from tea_verl.bon_metrics import CurveSummary, ScalingLawFit, fit_scaling_law, log2_ks, summarize_curves

logger = logging.getLogger("tea_verl")

__all__ = ["Samples", "ReportError", "read_samples", "analyse", "Report", "format_report", "write_report"]

SELECTION_FIELDS = ("bon_selection_score", "selection_score", "score")
GOLD_FIELDS = ("bon_gold_score", "gold_score")
SOURCE_FIELDS = ("bon_data_source", "data_source")
DEFAULT_EXTRAPOLATE = (128, 256, 512, 1024)
_V1_KEY = re.compile(r"^(?P<uid>.+)_(?P<session>\d+)_(?P<index>\d+)$")


class ReportError(ValueError):
    """A malformed input file or setting; the message names the line, field and fix."""


@dataclass
class Samples:
    """One row per scored sample."""

    data_source: list[str]
    uid: list[str]
    selection: np.ndarray  # float64, finite
    gold: list[float | None]
    origin: str = ""
    dropped_duplicates: int = 0  # verl multi-output sessions: outputs that repeat a session score

    def __len__(self) -> int:
        return len(self.uid)

    def prompts(self) -> dict[tuple[str, str], list[int]]:
        """Sample positions per prompt, keyed by (data source, uid), in first-seen order."""
        groups: dict[tuple[str, str], list[int]] = {}
        for i, key in enumerate(zip(self.data_source, self.uid)):
            groups.setdefault(key, []).append(i)
        return groups


def _finite(value, where: str, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ReportError(f"{where}: field {name!r} must be a number, got {value!r}")
    v = float(value)
    if not math.isfinite(v):
        raise ReportError(f"{where}: field {name!r} is {v}; every score must be finite (fix or drop that sample)")
    return v


def _pick(row: dict, names: tuple[str, ...]) -> str | None:
    for name in names:
        if name in row:
            return name
    return None


def _from_rows(rows: list[tuple[str, dict]], origin: str, verl_dump: bool) -> Samples:
    if not rows:
        raise ReportError(f"{origin}: no samples")
    ds, uids, sel, gold = [], [], [], []
    session_of: dict[tuple[str, str], tuple[int, int]] = {}  # (uid, session) -> (index, row position)
    dropped = 0
    for where, row in rows:
        if not isinstance(row, dict):
            raise ReportError(f"{where}: expected an object with fields uid and score, got {type(row).__name__}")
        if "uid" not in row or row["uid"] is None:
            raise ReportError(f"{where}: missing field 'uid' (the prompt id that groups a prompt's samples)")
        sel_name = _pick(row, SELECTION_FIELDS)
        if sel_name is None:
            raise ReportError(f"{where}: missing the selection score: one of the fields {', '.join(SELECTION_FIELDS)}")
        uid = str(row["uid"])
        s = _finite(row[sel_name], where, sel_name)
        gold_name = _pick(row, GOLD_FIELDS)
        g = None
        if gold_name is not None and row[gold_name] is not None:
            g = _finite(row[gold_name], where, gold_name)
        src_name = _pick(row, SOURCE_FIELDS)
        src = str(row[src_name]) if src_name is not None and row[src_name] is not None else "unknown"
        if verl_dump:
            m = _V1_KEY.match(uid)
            if m:
                key = (m["uid"], m["session"])
                idx = int(m["index"])
                if key in session_of:
                    dropped += 1
                    prev_idx, pos = session_of[key]
                    if idx > prev_idx:  # keep the session's final output
                        session_of[key] = (idx, pos)
                        ds[pos], sel[pos], gold[pos] = src, s, g
                    continue
                session_of[key] = (idx, len(uids))
                uid = m["uid"]
        ds.append(src)
        uids.append(uid)
        sel.append(s)
        gold.append(g)
    return Samples(ds, uids, np.asarray(sel, dtype=np.float64), gold, origin=origin, dropped_duplicates=dropped)


def read_jsonl_rows(path: str) -> list[tuple[str, dict]]:
    """The rows of a JSONL file as ``(path:line, row)`` pairs; a bad line is a ReportError."""
    rows = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rows.append((f"{path}:{lineno}", json.loads(line)))
            except json.JSONDecodeError as exc:
                raise ReportError(f"{path}:{lineno}: not valid JSON ({exc.msg} at column {exc.colno})") from None
    return rows


def _read_parquet(path: str) -> list[tuple[str, dict]]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as exc:  # noqa: BLE001 - re-raised with the file named
        raise ReportError(f"{path}: cannot be read as Parquet ({type(exc).__name__}: {exc})") from None
    return [(f"{path}: row {i}", r) for i, r in enumerate(table.to_pylist())]


def _newest_step_file(directory: str) -> str:
    steps = []
    for name in os.listdir(directory):
        m = re.fullmatch(r"(\d+)\.jsonl", name)
        if m:
            steps.append((int(m[1]), name))
    if not steps:
        raise ReportError(
            f"{directory}: no '<step>.jsonl' files; pass a verl validation_data_dir, one of its files, or a "
            "JSONL/Parquet table of uid and score"
        )
    return os.path.join(directory, max(steps)[1])


def read_samples(path: str, step: int | None = None) -> Samples:
    """Read scored samples from a verl validation dump (dir or file) or a JSONL/Parquet table."""
    if not os.path.exists(path):
        raise ReportError(f"{path}: no such file or directory")
    if step is not None and not os.path.isdir(path):
        raise ReportError(f"--step {step} selects a step of a validation_data_dir, but {path} is a file; drop --step or pass the directory")
    if os.path.isdir(path):
        path = os.path.join(path, f"{step}.jsonl") if step is not None else _newest_step_file(path)
        if not os.path.exists(path):
            raise ReportError(f"{path}: no validation dump for step {step}")
    if path.endswith(".parquet"):
        rows = _read_parquet(path)
    elif path.endswith((".jsonl", ".json")):
        rows = read_jsonl_rows(path)
    else:
        raise ReportError(f"{path}: unknown format; expected .jsonl or .parquet (or a verl validation_data_dir)")
    return samples_from_rows(rows, path)


def samples_from_rows(rows: list[tuple[str, dict]], origin: str) -> Samples:
    """Samples from rows already read (``(where, row)`` pairs, as :func:`read_jsonl_rows` gives),
    for a caller that also needs other fields of the rows, such as a verl dump's ``output``."""
    verl_dump = bool(rows) and isinstance(rows[0][1], dict) and {"input", "output", "step"} <= rows[0][1].keys()
    return _from_rows(rows, origin, verl_dump)


def samples_from_verl(data_sources, sample_uids, infos: dict[str, list]) -> Samples:
    """Samples from the arguments verl's trainer passes to ``_val_metrics_update``.

    The selection score is ``bon_selection_score`` where the ``best_of_n`` manager wrote it, else
    verl's ``reward`` (the summed ``rm_scores``); gold is ``bon_gold_score``.
    """
    n = len(sample_uids)
    sel_key = "bon_selection_score" if "bon_selection_score" in infos else "reward"
    if sel_key not in infos:
        raise ReportError("validation outputs carry neither 'bon_selection_score' nor 'reward'")
    rows = []
    gold = infos.get("bon_gold_score")
    for i in range(n):
        row = {"uid": sample_uids[i], "score": infos[sel_key][i], "data_source": data_sources[i]}
        if gold is not None and len(gold) == n:
            row["gold_score"] = gold[i]
        rows.append((f"validation sample {i} (uid {sample_uids[i]})", row))
    return _from_rows(rows, "verl validation", verl_dump=False)


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
            f"law's extrapolations are not meaningful" + (f"; those above the top level {top:g} are capped at it ({', '.join(map(str, capped))})" if capped else "")
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
