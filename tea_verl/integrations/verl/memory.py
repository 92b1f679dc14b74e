"""Will vLLM start? The memory a rollout or reward-model server needs for one sequence.

vLLM refuses to start when the KV cache it can allocate cannot hold one sequence of
``max_model_len`` tokens, and verl passes the model's ``max_position_embeddings`` when
``max_model_len`` is unset: 131,072 tokens for the Llama-3.1 family, 16 GiB of KV cache for an 8B
model before a single request. This module does the arithmetic before any GPU is touched:

* per GPU of a server with tensor-parallel size t: weights ``params x bytes / t``, a fixed
  allowance for activations and CUDA graphs (:data:`OVERHEAD_GIB`), and the KV cache,
  ``2 (K and V) x layers x kv_heads_per_rank x head_dim x bytes`` per token, ``kv_heads_per_rank =
  max(1, kv_heads / t)``;
* against ``gpu_memory_utilization x`` the GPU's memory (``TEA_GPU_MEMORY_GIB``, else the CUDA
  device's, else :data:`DEFAULT_GPU_GIB`).

A model's shape comes from its ``config.json`` (the path itself, or the local Hugging Face cache),
else from :data:`KNOWN_MODELS` (the presets' models), else the check is skipped with a note. The
allowance and the vLLM behaviour it models are not verified on a GPU (recipes/README.md lists what is not).
Never imports verl, torch only to ask for a CUDA device's size.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass

__all__ = ["ModelShape", "KNOWN_MODELS", "OVERHEAD_GIB", "DEFAULT_GPU_GIB", "Server", "footprint", "model_shape", "gpu_gib", "servers", "check_memory"]

GIB = 1024**3
OVERHEAD_GIB = 2.0
"""Per GPU, beyond weights and KV cache: vLLM's activation peak at its profiling batch, CUDA graphs
and the CUDA context (an allowance, not a measurement)."""
DEFAULT_GPU_GIB = 80.0
"""The GPU size assumed when neither ``TEA_GPU_MEMORY_GIB`` nor a CUDA device says (an 80 GB
A100/H100 holds about 79.2 GiB; the allowance covers the difference)."""
DTYPE_BYTES = {"bfloat16": 2, "bf16": 2, "float16": 2, "fp16": 2, "half": 2, "float32": 4, "fp32": 4, "float": 4, "auto": 2}


@dataclass(frozen=True)
class ModelShape:
    """The numbers of a dense decoder's ``config.json`` that its memory depends on."""

    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    hidden: int
    intermediate: int
    vocab: int
    tied: bool
    max_position_embeddings: int

    @classmethod
    def from_config(cls, c: dict) -> ModelShape:
        """From a ``config.json`` dict (Llama, Qwen2/3, Mistral style keys)."""
        heads = int(c["num_attention_heads"])
        return cls(layers=int(c["num_hidden_layers"]), heads=heads, kv_heads=int(c.get("num_key_value_heads") or heads),
                   head_dim=int(c.get("head_dim") or int(c["hidden_size"]) // heads), hidden=int(c["hidden_size"]),
                   intermediate=int(c["intermediate_size"]), vocab=int(c["vocab_size"]),
                   tied=bool(c.get("tie_word_embeddings", False)),
                   max_position_embeddings=int(c.get("max_position_embeddings") or 0))

    def params(self, reward_head: bool = False) -> int:
        """Parameter count: embeddings, attention, MLP, norms, and the output head (a vocab
        projection, none when tied, or one score per token for a reward model)."""
        attn = self.hidden * self.heads * self.head_dim * 2 + self.hidden * self.kv_heads * self.head_dim * 2
        layer = attn + 3 * self.hidden * self.intermediate + 2 * self.hidden
        head = self.hidden if reward_head else (0 if self.tied else self.vocab * self.hidden)
        return self.vocab * self.hidden + self.layers * layer + self.hidden + head

    def kv_bytes_per_token(self, tp: int, dtype_bytes: int = 2) -> int:
        """KV-cache bytes per token on one GPU of a server with tensor-parallel size ``tp``."""
        per_rank = max(1, self.kv_heads // max(1, tp))
        return 2 * self.layers * per_rank * self.head_dim * dtype_bytes


# config.json values of the presets' models (recipes/README.md), for when neither the path nor the
# local Hugging Face cache has the file (preflight never downloads)
_LLAMA_8B = ModelShape(32, 32, 8, 128, 4096, 14336, 128256, False, 131072)
_QWEN3_8B = ModelShape(36, 32, 8, 128, 4096, 12288, 151936, False, 40960)
KNOWN_MODELS: dict[str, ModelShape] = {
    "meta-llama/Llama-3.2-1B-Instruct": ModelShape(16, 32, 8, 64, 2048, 8192, 128256, True, 131072),
    "meta-llama/Llama-3.1-8B": _LLAMA_8B,
    "meta-llama/Llama-3.1-8B-Instruct": _LLAMA_8B,
    "Qwen/Qwen3-4B": ModelShape(36, 32, 8, 128, 2560, 9728, 151936, True, 40960),
    "Qwen/Qwen2.5-1.5B-Instruct": ModelShape(28, 12, 2, 128, 1536, 8960, 151936, True, 32768),
    "Skywork/Skywork-Reward-V2-Llama-3.1-8B": _LLAMA_8B,
    "Skywork/Skywork-Reward-V2-Qwen3-8B": _QWEN3_8B,
    "Skywork/Skywork-Reward-V2-Qwen3-1.7B": ModelShape(28, 16, 8, 128, 2048, 6144, 151936, True, 40960),
}


def model_shape(path: str) -> tuple[ModelShape | None, str]:
    """The shape of the model at ``path`` (a local directory or a hub id), and where it came from."""
    path = os.path.expanduser(str(path))
    local = os.path.join(path, "config.json")
    if os.path.isfile(local):
        with open(local) as f:
            return ModelShape.from_config(json.load(f)), local
    try:  # the local cache only: preflight never downloads
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(path, "config.json")
    except Exception:  # noqa: BLE001 - not a hub id, or no hub library: fall back to the table
        cached = None
    if isinstance(cached, str) and os.path.isfile(cached):
        with open(cached) as f:
            return ModelShape.from_config(json.load(f)), cached
    if path in KNOWN_MODELS:
        return KNOWN_MODELS[path], "tea-verl's table of the presets' models"
    return None, ""


def gpu_gib() -> tuple[float, str]:
    """The GPU memory to check against, in GiB, and where the figure came from."""
    env = os.environ.get("TEA_GPU_MEMORY_GIB")
    if env:
        try:
            value = float(env)
        except ValueError:
            value = float("nan")
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"TEA_GPU_MEMORY_GIB={env!r} is not a positive number of GiB (e.g. 80 for an 80 GB GPU)")
        return value, "TEA_GPU_MEMORY_GIB"
    try:
        import torch

        if torch.cuda.is_available():
            return torch.cuda.get_device_properties(0).total_memory / GIB, "the CUDA device"
    except Exception:  # noqa: BLE001 - no usable CUDA: the default below
        pass
    return DEFAULT_GPU_GIB, f"the default {DEFAULT_GPU_GIB:.0f} GiB (set TEA_GPU_MEMORY_GIB for other GPUs)"


@dataclass(frozen=True)
class Server:
    """One vLLM server of a launch: the policy's rollout or the reward model."""

    what: str
    prefix: str  # the config prefix of its rollout settings
    model: str
    reward_head: bool
    max_model_len: int | None
    gpu_memory_utilization: float
    tp: int
    dtype: str
    max_num_seqs: int
    sequence: int  # prompt + response tokens of one request


def _sel(cfg, path: str, default=None):
    from omegaconf import OmegaConf

    value = OmegaConf.select(cfg, path, default=default)
    return default if value is None else value


def servers(cfg) -> list[Server]:
    """The vLLM/SGLang servers a composed trainer config starts (none for the CPU rollout)."""
    out = []
    seq = int(_sel(cfg, "data.max_prompt_length", 512)) + int(_sel(cfg, "data.max_response_length", 512))
    if str(_sel(cfg, "actor_rollout_ref.rollout.name", "")) in ("vllm", "sglang"):
        p = "actor_rollout_ref.rollout"
        out.append(Server("the policy's rollout", p, str(_sel(cfg, "actor_rollout_ref.model.path", "")), False,
                          _sel(cfg, f"{p}.max_model_len"), float(_sel(cfg, f"{p}.gpu_memory_utilization", 0.5)),
                          int(_sel(cfg, f"{p}.tensor_model_parallel_size", 1)), str(_sel(cfg, f"{p}.dtype", "bfloat16")),
                          int(_sel(cfg, f"{p}.max_num_seqs", 256)), seq))
    if bool(_sel(cfg, "reward.reward_model.enable", False)) and str(_sel(cfg, "reward.reward_model.rollout.name", "")) in ("vllm", "sglang"):
        p = "reward.reward_model.rollout"
        rm_seq = int(_sel(cfg, f"{p}.prompt_length", 0) or 0) + int(_sel(cfg, f"{p}.response_length", 0) or 0)
        out.append(Server("the reward model", p, str(_sel(cfg, "reward.reward_model.model_path", "")), True,
                          _sel(cfg, f"{p}.max_model_len"), float(_sel(cfg, f"{p}.gpu_memory_utilization", 0.5)),
                          int(_sel(cfg, f"{p}.tensor_model_parallel_size", 1)), str(_sel(cfg, f"{p}.dtype", "bfloat16")),
                          int(_sel(cfg, f"{p}.max_num_seqs", 1024)), rm_seq or seq))
    return out


def footprint(s: Server, shape: ModelShape) -> tuple[float, int]:
    """Per GPU of server ``s``: its weights in GiB and its KV cache in bytes per token."""
    nbytes = DTYPE_BYTES.get(s.dtype.lower(), 2)
    return shape.params(s.reward_head) * nbytes / s.tp / GIB, shape.kv_bytes_per_token(s.tp, nbytes)


def check_memory(cfg) -> tuple[list[tuple[str, str]], list[str]]:
    """(problems as (key, message), notes) for every server of ``cfg``: a server that cannot hold
    one sequence of its ``max_model_len`` is a problem naming the key and a value that fits;
    validation's load (``val_kwargs.n`` samples of a prompt at once) is a note."""
    problems: list[tuple[str, str]] = []
    notes: list[str] = []
    found = servers(cfg)
    if not found:
        return problems, notes
    total, source = gpu_gib()
    val_n = int(_sel(cfg, "actor_rollout_ref.rollout.val_kwargs.n", 1))
    for s in found:
        shape, where = model_shape(s.model)
        if shape is None:
            notes.append(f"{s.what} ({s.model}): no config.json at the path or in the local Hugging Face cache, and not "
                         "in tea-verl's table: its start-up memory was not checked")
            continue
        length = int(s.max_model_len) if s.max_model_len else shape.max_position_embeddings
        weights, per_token = footprint(s, shape)
        budget = s.gpu_memory_utilization * total
        kv_room = budget - weights - OVERHEAD_GIB
        need = weights + OVERHEAD_GIB + per_token * length / GIB
        unset = "" if s.max_model_len else f" (unset: verl passes the model's max_position_embeddings, {length})"
        head = (f"{s.what} ({s.model}; shape from {where}) needs about {need:.1f} GiB per GPU for one sequence of "
                f"max_model_len = {length}{unset}: {weights:.1f} GiB of weights at tensor-parallel size {s.tp}, "
                f"{per_token * length / GIB:.1f} GiB of KV cache, {OVERHEAD_GIB:.0f} GiB for activations; "
                f"{s.prefix}.gpu_memory_utilization = {s.gpu_memory_utilization} of {total:.0f} GiB ({source}) "
                f"gives {budget:.1f} GiB")
        if kv_room * GIB < per_token * s.sequence:
            util = min(0.95, math.ceil((weights + OVERHEAD_GIB + per_token * max(s.sequence, 1) / GIB) / total * 100 + 1) / 100)
            problems.append((f"{s.prefix}.gpu_memory_utilization",
                             f"{head}, too little even for the weights and one {s.sequence}-token sequence; raise it "
                             f"(about {util:.2f}) or {s.prefix}.tensor_model_parallel_size"))
            continue
        if need > budget:
            fits = int(kv_room * GIB // per_token) // 1024 * 1024
            fits = max(fits, s.sequence)
            problems.append((f"{s.prefix}.max_model_len",
                             f"{head}: vLLM would refuse to start. Set {s.prefix}.max_model_len to the longest sequence "
                             f"it serves (prompt + response, {s.sequence} here; at most {fits} fits)"))
            continue
        if s.what == "the policy's rollout" and val_n > 1:
            at_once = int(kv_room * GIB // (per_token * s.sequence))
            if at_once < min(val_n, s.max_num_seqs):
                notes.append(f"validation: {s.what}'s KV cache holds about {at_once} sequences of {s.sequence} tokens at "
                             f"once per server; a prompt's val_kwargs.n = {val_n} samples run in about "
                             f"{math.ceil(val_n / max(at_once, 1))} waves (slower, not a failure)")
    return problems, notes
