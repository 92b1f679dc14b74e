"""Shared steps of the recipe data preparation: verl rows, de-duplication, the prompt-length
filter with the policy's tokenizer, the seeded core250 held-out split, and the parquet output.

verl's RL parquet row: ``data_source`` (str), ``prompt`` (list of {role, content}), ``ability``
(str), ``reward_model`` ({"style": "model", "ground_truth": None}: scored by a reward model) and
``extra_info`` (split, index, and the source's own id).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
from dataclasses import dataclass, field

CORE_SIZE = 250


class SchemaError(ValueError):
    """The input does not have the dataset's schema; the message names the column/row and the fix."""


def normalise(text: str) -> str:
    """The key for de-duplication: case-folded, whitespace collapsed."""
    return re.sub(r"\s+", " ", text).strip().casefold()


def prompt_key(messages: list[dict]) -> str:
    return normalise("\n".join(f"{m['role']}: {m['content']}" for m in messages))


def require_columns(rows: list[dict], columns: tuple[str, ...], dataset: str, origin: str) -> None:
    if not rows:
        raise SchemaError(f"{origin}: no rows")
    missing = [c for c in columns if c not in rows[0]]
    if missing:
        raise SchemaError(
            f"{origin}: missing column(s) {missing} (found {sorted(rows[0])}); expected the schema of {dataset}"
        )


def read_table(path: str) -> list[dict]:
    """Rows of a local .parquet, .jsonl, .jsonl.gz or .json file."""
    if path.endswith(".parquet"):
        import pyarrow.parquet as pq

        return pq.read_table(path).to_pylist()
    if path.endswith((".jsonl", ".jsonl.gz", ".json")):
        import gzip

        opener = gzip.open if path.endswith(".gz") else open
        with opener(path, "rt", encoding="utf-8") as f:
            if path.endswith(".json"):
                data = json.load(f)
                return data if isinstance(data, list) else [data]
            rows = []
            for lineno, line in enumerate(f, 1):
                if line.strip():
                    try:
                        rows.append(json.loads(line))
                    except json.JSONDecodeError as exc:
                        raise SchemaError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from None
            return rows
    raise SchemaError(f"{path}: unknown format; expected .parquet, .jsonl, .jsonl.gz or .json")


def find_local(directory: str, stem: str) -> str:
    for ext in (".parquet", ".jsonl", ".jsonl.gz", ".json"):
        path = os.path.join(directory, stem + ext)
        if os.path.exists(path):
            return path
    raise SchemaError(f"{directory}: no {stem}.parquet/.jsonl/.jsonl.gz/.json (the split files of the local copy)")


def load_tokenizer(path: str | None):
    if path is None:
        return None
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path)


def prompt_length(tokenizer, messages: list[dict]) -> int:
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
    if hasattr(ids, "keys") and "input_ids" in ids:
        ids = ids["input_ids"]
    return len(ids)


@dataclass
class Stats:
    read: dict = field(default_factory=dict)
    duplicates: dict = field(default_factory=dict)
    too_long: dict = field(default_factory=dict)
    overlap_with_core: int = 0
    written: dict = field(default_factory=dict)


def dedupe(items: list[tuple[list[dict], dict]]) -> tuple[list[tuple[list[dict], dict]], int]:
    """Keep the first occurrence of each prompt (by :func:`prompt_key`)."""
    seen, out = set(), []
    for messages, extra in items:
        key = prompt_key(messages)
        if key in seen:
            continue
        seen.add(key)
        out.append((messages, extra))
    return out, len(items) - len(out)


def length_filter(items, tokenizer, max_len: int):
    if tokenizer is None:
        return items, 0
    kept = [(m, e) for m, e in items if prompt_length(tokenizer, m) <= max_len]
    return kept, len(items) - len(kept)


def core_split(items, size: int, seed: int):
    """The held-out core set: the ``size`` prompts of least ``sha256(seed, prompt key)``.

    Deterministic and independent of the input order (a re-download in another order gives the
    same set); ties are impossible (distinct prompts after de-duplication).
    """
    if len(items) < size:
        raise SchemaError(f"only {len(items)} evaluation prompts after de-duplication and filtering; core{size} needs {size}")
    ranked = sorted(items, key=lambda it: hashlib.sha256(f"{seed}\0{prompt_key(it[0])}".encode()).hexdigest())
    return ranked[:size]


def to_row(messages, extra, data_source: str, ability: str, split: str, index: int) -> dict:
    return {
        "data_source": data_source,
        "prompt": messages,
        "ability": ability,
        "reward_model": {"style": "model", "ground_truth": None},
        "extra_info": {"split": split, "index": index, **extra},
    }


def write_parquet(rows: list[dict], path: str) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)


def finish(train_items, eval_items, args, data_source: str, ability: str, stats: Stats) -> dict:
    """Dedupe, filter, split core250 off the evaluation split, drop its prompts from training, write."""
    tok = load_tokenizer(args.tokenizer)
    train_items, stats.duplicates["train"] = dedupe(train_items)
    eval_items, stats.duplicates["eval"] = dedupe(eval_items)
    train_items, stats.too_long["train"] = length_filter(train_items, tok, args.max_prompt_length)
    eval_items, stats.too_long["eval"] = length_filter(eval_items, tok, args.max_prompt_length)
    core = core_split(eval_items, args.core_size, args.seed)
    core_keys = {prompt_key(m) for m, _ in core}
    before = len(train_items)
    train_items = [(m, e) for m, e in train_items if prompt_key(m) not in core_keys]
    stats.overlap_with_core = before - len(train_items)
    if args.max_train is not None:
        train_items = train_items[: args.max_train]
    train_rows = [to_row(m, e, data_source, ability, "train", i) for i, (m, e) in enumerate(train_items)]
    core_rows = [to_row(m, e, data_source, ability, f"core{args.core_size}", i) for i, (m, e) in enumerate(core)]
    write_parquet(train_rows, os.path.join(args.out, "train.parquet"))
    write_parquet(core_rows, os.path.join(args.out, f"core{args.core_size}.parquet"))
    stats.written = {"train": len(train_rows), f"core{args.core_size}": len(core_rows)}
    summary = {
        "data_source": data_source,
        "seed": args.seed,
        "max_prompt_length": args.max_prompt_length if tok is not None else None,
        "tokenizer": args.tokenizer,
        **stats.__dict__,
    }
    with open(os.path.join(args.out, "prep_summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    print(json.dumps(summary, indent=1))
    if tok is None:
        print("warning: no --tokenizer given: the prompt-length filter was skipped", file=sys.stderr)
    return summary


def run(args, splits: dict, read_split, data_source: str, ability: str) -> int:
    """Read each split (``splits``: role "train"/"eval" -> split name) with ``read_split(split) ->
    (items, rows read)``, then :func:`finish`. A schema error is printed and exits 1."""
    stats = Stats()
    try:
        parts = {}
        for role, split in splits.items():
            parts[role], stats.read[role] = read_split(split)
        finish(parts["train"], parts["eval"], args, data_source, ability, stats)
    except SchemaError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def add_common_args(ap) -> None:
    ap.add_argument("--out", required=True, help="output directory: train.parquet, core250.parquet, prep_summary.json")
    ap.add_argument("--local-dir", default=None, help="read the dataset's split files from this directory instead of the hub")
    ap.add_argument("--tokenizer", default=None, help="the policy's tokenizer (hub id or local dir) for the length filter")
    ap.add_argument("--max-prompt-length", type=int, default=1024, help="drop prompts longer than this many tokens (chat template applied)")
    ap.add_argument("--core-size", type=int, default=CORE_SIZE, help="held-out evaluation prompts (default 250)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the held-out split")
    ap.add_argument("--max-train", type=int, default=None, help="cap the training prompts (after filtering)")
