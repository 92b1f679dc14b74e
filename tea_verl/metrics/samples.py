"""The data model of scored samples (:class:`Samples`) and its readers.

Inputs (:func:`read_samples`):

* a verl validation dump: the directory given as ``trainer.validation_data_dir`` (the newest
  ``<step>.jsonl`` is read unless a step is given) or one of its files. verl's v1 trainer writes one
  row per generated output with ``uid = {prompt uid}_{session}_{index}``; a multi-output session
  repeats its final score on every output, so one row per (prompt, session) is kept (the highest
  index). The selection score is ``bon_selection_score`` when the ``best_of_n`` reward manager
  wrote it, else ``score``; gold is ``bon_gold_score``; the data source ``bon_data_source``.
* a JSONL or Parquet table with one row per sample: ``uid`` (the prompt), ``score`` (or
  ``selection_score``), optional ``gold_score`` (``null`` where a prompt has none) and optional
  ``data_source``;
* the arguments verl's trainer passes to its validation metrics (:func:`samples_from_verl`).

Used by the report (:mod:`.report`), the diagnosis (:mod:`.diagnose`), the validation metrics and
the language-model experiment.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass

import numpy as np

__all__ = [
    "Samples",
    "ReportError",
    "read_samples",
    "read_jsonl_rows",
    "samples_from_rows",
    "samples_from_verl",
    "SELECTION_FIELDS",
    "GOLD_FIELDS",
    "SOURCE_FIELDS",
]

SELECTION_FIELDS = ("bon_selection_score", "selection_score", "score")
GOLD_FIELDS = ("bon_gold_score", "gold_score")
SOURCE_FIELDS = ("bon_data_source", "data_source")
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
    unscored: int = 0  # samples the best_of_n manager could not score (``bon_unscored``), left out

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
    dropped = unscored = 0
    for where, row in rows:
        if not isinstance(row, dict):
            raise ReportError(f"{where}: expected an object with fields uid and score, got {type(row).__name__}")
        if row.get("bon_unscored") is True:  # left out, as the trainer's validation metrics leave it out
            unscored += 1
            continue
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
    if not uids:
        raise ReportError(f"{origin}: no scored samples ({unscored} unscored)")
    return Samples(ds, uids, np.asarray(sel, dtype=np.float64), gold, origin=origin, dropped_duplicates=dropped,
                   unscored=unscored)


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
