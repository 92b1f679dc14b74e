#!/usr/bin/env python
"""Anthropic HH-RLHF (helpful) -> verl parquet: train + core250.

    python recipes/data/prepare_hh_rlhf.py --out data/hh_rlhf --tokenizer Qwen/Qwen2.5-1.5B-Instruct
    python recipes/data/prepare_hh_rlhf.py --out data/hh_rlhf --local-dir DIR   # DIR/train.jsonl.gz, test.jsonl.gz

Reads the ``helpful-base`` subset by default (``--subset``). Each row's ``chosen`` is one string
of turns ``"\\n\\nHuman: ...\\n\\nAssistant: ..."``; the prompt is the dialogue up to and including
the last ``"\\n\\nAssistant:"``, turned into chat messages (user/assistant alternating, ending with
a user turn). Training prompts come from ``train``, the held-out core250 from ``test``.
"""

from __future__ import annotations

import argparse
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import SchemaError, add_common_args, find_local, read_table, require_columns, run  # noqa: E402

DATASET = "Anthropic/hh-rlhf"
DATA_SOURCE = "hh_rlhf_helpful"
SUBSETS = ("helpful-base", "helpful-online", "helpful-rejection-sampled")
_TURN = re.compile(r"\n\n(Human|Assistant):")


def parse_prompt(dialogue: str, where: str) -> list[dict]:
    """Chat messages of the dialogue up to its last Assistant tag (the response to generate)."""
    if not isinstance(dialogue, str):
        raise SchemaError(f"{where}: 'chosen' must be a string of turns, got {type(dialogue).__name__}")
    last = dialogue.rfind("\n\nAssistant:")
    if last < 0 or not dialogue.startswith("\n\nHuman:"):
        raise SchemaError(f"{where}: 'chosen' must start with '\\n\\nHuman:' and contain '\\n\\nAssistant:' (got {dialogue[:60]!r})")
    head = dialogue[:last]
    parts = _TURN.split(head)
    # parts: ['', 'Human', ' text', 'Assistant', ' text', ...]
    messages = []
    for speaker, text in zip(parts[1::2], parts[2::2]):
        role = "user" if speaker == "Human" else "assistant"
        text = text.strip()
        if messages and messages[-1]["role"] == role:  # a repeated speaker tag: merge the turns
            messages[-1]["content"] += "\n\n" + text
        else:
            messages.append({"role": role, "content": text})
    if not messages or messages[-1]["role"] != "user" or not messages[-1]["content"]:
        raise SchemaError(f"{where}: the prompt must end with a non-empty Human turn before the last Assistant tag")
    return messages


def load_split(split: str, subset: str, local_dir: str | None) -> tuple[list[dict], str]:
    if local_dir:
        path = find_local(local_dir, split)
        return read_table(path), path
    import datasets

    return list(datasets.load_dataset(DATASET, data_dir=subset, split=split)), f"{DATASET}/{subset}:{split}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(ap)
    ap.add_argument("--subset", default="helpful-base", choices=SUBSETS, help="HH-RLHF helpful subset (data_dir)")
    args = ap.parse_args(argv)

    def read_split(split):
        rows, origin = load_split(split, args.subset, args.local_dir)
        require_columns(rows, ("chosen", "rejected"), f"{DATASET} ({args.subset})", origin)
        items = [
            (parse_prompt(r["chosen"], f"{origin}: row {i}"), {"subset": args.subset, "source_row": i})
            for i, r in enumerate(rows)
        ]
        return items, len(rows)

    return run(args, {"train": "train", "eval": "test"}, read_split, DATA_SOURCE, "helpfulness")


if __name__ == "__main__":
    raise SystemExit(main())
