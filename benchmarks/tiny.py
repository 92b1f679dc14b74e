"""Tiny, locally built models and rollout batches for the tests and benchmarks (the model hub is
out of reach on CI machines).

The tokenizer and the Llama config are :mod:`tea_verl.launch.tiny`'s (``tea-verl smoke`` uses them too).
The reward model is a config-built ``LlamaForSequenceClassification`` with one label and seeded
random weights.
"""

from __future__ import annotations

import numpy as np

from tea_verl.launch.tiny import build_tokenizer, llama_config  # noqa: F401  (build_tokenizer: re-exported for the tests)


def build_reward_model(tokenizer, seed: int = 0, hidden: int = 32, layers: int = 2):
    """A config-built Llama sequence classifier (one score per text), seeded, in eval mode."""
    import torch
    from transformers import LlamaForSequenceClassification

    cfg = llama_config(tokenizer, hidden, layers, num_labels=1)
    torch.manual_seed(seed)
    model = LlamaForSequenceClassification(cfg)
    model.eval()
    return model


def model_score_fn(model, tokenizer):
    """``text -> float``: the classifier's single logit for the text (no special tokens added)."""
    import torch

    @torch.no_grad()
    def score(text: str) -> float:
        ids = tokenizer(text, add_special_tokens=False, return_tensors="pt")
        return float(model(**ids).logits[0, -1])

    return score


PROMPTS = [
    "please explain how to write a good answer",
    "tell me a story about one two three",
    "what is two plus two",
    "write a poem about the sea",
]
RESPONSES = [
    "sure here is a helpful answer",
    "first the question then the answer",
    "four",
    "the best answer is yes",
    "no",
    "maybe it is not",
    "two plus two equals four",
    "here is a story",
]


def rollout_batch(tokenizer, prompts=PROMPTS, n=4, seed=0, ground_truth=True, prompt_len=24, response_len=24):
    """A verl DataProto shaped like a rollout batch: ``len(prompts) * n`` samples, left-padded prompts,
    right-padded responses, ``raw_prompt`` chats, data_source, reward_model, extra_info and uid."""
    import torch
    from verl import DataProto

    rng = np.random.default_rng(seed)
    rows_p, rows_r, masks, nt = [], [], [], {k: [] for k in ("raw_prompt", "data_source", "reward_model", "extra_info", "uid")}
    for p_idx, prompt in enumerate(prompts):
        chat = [{"role": "user", "content": prompt}]
        p_ids = tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=True)
        if hasattr(p_ids, "input_ids"):
            p_ids = p_ids["input_ids"]
        p_ids = list(p_ids)[-prompt_len:]
        for j in range(n):
            # distinct per sample (prompt and sample index), so a server can count each sample's requests
            text = f"{RESPONSES[int(rng.integers(len(RESPONSES)))]} {p_idx} {j}"
            r_ids = tokenizer(text, add_special_tokens=False)["input_ids"][: response_len - 1] + [tokenizer.eos_token_id]
            pad_p = [tokenizer.pad_token_id] * (prompt_len - len(p_ids))
            pad_r = [tokenizer.pad_token_id] * (response_len - len(r_ids))
            rows_p.append(pad_p + p_ids)
            rows_r.append(r_ids + pad_r)
            masks.append([0] * len(pad_p) + [1] * len(p_ids) + [1] * len(r_ids) + [0] * len(pad_r))
            nt["raw_prompt"].append(chat)
            nt["data_source"].append("ultrafeedback" if p_idx % 2 == 0 else "hh_rlhf")
            nt["reward_model"].append({"style": "model", "ground_truth": str(p_idx) if ground_truth else None})
            nt["extra_info"].append({"index": p_idx, "split": "test"})
            nt["uid"].append(f"prompt-{p_idx}")
    prompts_t = torch.tensor(rows_p)
    responses_t = torch.tensor(rows_r)
    batch = {
        "prompts": prompts_t,
        "responses": responses_t,
        "input_ids": torch.cat([prompts_t, responses_t], 1),
        "attention_mask": torch.tensor(masks),
    }
    non_tensors = {}
    for k, v in nt.items():
        arr = np.empty(len(v), dtype=object)
        arr[:] = v
        non_tensors[k] = arr
    return DataProto.from_dict(tensors=batch, non_tensors=non_tensors)
