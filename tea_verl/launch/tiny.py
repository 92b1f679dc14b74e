"""Tiny, locally built assets for CPU runs: tokenizer, causal LM, prompts and a rule-based reward.

The model hub is out of reach on CI machines and a laptop check should not download gigabytes, so
``tea-verl smoke`` builds everything here from a config:

* :func:`build_tokenizer`: a word-level fast tokenizer over :data:`WORDS` with a chat template,
  saved in the Hugging Face format (``AutoTokenizer.from_pretrained(dir)`` and verl's
  ``hf_tokenizer`` load it like a hub tokenizer);
* :func:`build_causal_lm`: a config-built ``LlamaForCausalLM`` (hidden 64, 2 layers), seeded;
* :func:`write_prompts`: verl RL parquet rows (``data_source``, ``prompt``, ``reward_model``,
  ``extra_info``);
* :func:`lexicon_reward`: the default reward function of ``tea-verl smoke``, in verl's custom
  reward signature. Each word of :data:`WORDS` carries a fixed weight (a seeded normal draw);
  a response scores the mean weight of its words, ``(1/sqrt(len))``-shrunk towards 0, so that
  scores are continuous (top ties rare) and a policy can learn to raise them.
"""

from __future__ import annotations

import math
import os

import numpy as np

WORDS = (
    "the a an is are was be to of and in that it for on with as at by this from or not but what how why "
    "who which when where can do does please explain write tell me you i we they he she good bad best answer "
    "question help helpful honest harmless safe sure here step first then finally because so yes no maybe "
    "code math story poem list one two three four five six seven eight nine ten zero plus minus equals"
).split()
SPECIAL = ["<pad>", "<unk>", "<s>", "</s>", "<|system|>", "<|user|>", "<|assistant|>"]
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|> {{ m['content'] }} {% endfor %}"
    "{% if add_generation_prompt %}<|assistant|> {% endif %}"
)
PROMPTS = [
    "please explain how to write a good answer",
    "tell me a story about one two three",
    "what is two plus two",
    "write a poem about the sea",
    "why is the answer yes",
    "list three safe steps",
    "help me write code",
    "who is helpful and honest",
]


def build_tokenizer(path: str | None = None):
    """A fast word-level tokenizer with a chat template; saved to ``path`` when given."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(SPECIAL + list(dict.fromkeys(WORDS)) + [str(d) for d in range(10)] + list(".,?!:;'\"()-+=*/"))}
    tk = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation(), pre_tokenizers.Digits(individual_digits=True)])
    tk.decoder = decoders.WordPiece(prefix="##", cleanup=True)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=tk,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
        additional_special_tokens=SPECIAL[4:],
    )
    tok.chat_template = CHAT_TEMPLATE
    if path is not None:
        os.makedirs(path, exist_ok=True)
        tok.save_pretrained(path)
    return tok


def llama_config(tokenizer, hidden: int = 64, layers: int = 2, **extra):
    """A tiny ``LlamaConfig`` over ``tokenizer``'s vocabulary (4 heads, MLP width 2 x hidden)."""
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=512,
        pad_token_id=tokenizer.pad_token_id,
        **extra,
    )


def build_causal_lm(tokenizer, path: str | None = None, seed: int = 0, hidden: int = 64, layers: int = 2):
    """A config-built ``LlamaForCausalLM``, seeded; saved with the tokenizer to ``path`` when given."""
    import torch
    from transformers import LlamaForCausalLM

    cfg = llama_config(tokenizer, hidden, layers, bos_token_id=tokenizer.bos_token_id,
                       eos_token_id=tokenizer.eos_token_id, tie_word_embeddings=False)
    with torch.random.fork_rng(devices=[]):  # seeded without touching the caller's global RNG
        torch.manual_seed(seed)
        model = LlamaForCausalLM(cfg)
    if path is not None:
        os.makedirs(path, exist_ok=True)
        model.save_pretrained(path)
        tokenizer.save_pretrained(path)
    return model


def build_reward_model(tokenizer, path: str, seed: int = 1, hidden: int = 32, layers: int = 2):
    """A config-built ``LlamaForSequenceClassification`` (one score per text), seeded, saved with the
    tokenizer to ``path``: the reward model of ``tea-verl smoke --reward-model``."""
    import torch
    from transformers import LlamaForSequenceClassification

    cfg = llama_config(tokenizer, hidden, layers, num_labels=1)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForSequenceClassification(cfg).eval()
    os.makedirs(path, exist_ok=True)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return model


def write_prompts(path: str, prompts=PROMPTS, data_source: str = "tea_smoke", split: str = "train") -> str:
    """Write verl RL parquet rows for ``prompts`` to ``path``; returns the path."""
    import pandas as pd

    rows = [
        {
            "data_source": data_source,
            "prompt": [{"role": "user", "content": p}],
            "ability": "chat",
            "reward_model": {"style": "rule", "ground_truth": ""},
            "extra_info": {"split": split, "index": i},
        }
        for i, p in enumerate(prompts)
    ]
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    pd.DataFrame(rows).to_parquet(path)
    return path


_WEIGHTS = dict(zip(WORDS, np.random.default_rng(20261130).standard_normal(len(WORDS)).tolist()))


def lexicon_reward(data_source=None, solution_str: str = "", ground_truth=None, extra_info=None, **kwargs) -> float:
    """The default rule-based reward of ``tea-verl smoke`` (see the module docstring)."""
    words = [w for w in str(solution_str).lower().split() if w]
    if not words:
        return -1.0
    total = sum(_WEIGHTS.get(w, -0.5) for w in words)
    return float(total / len(words) * (1.0 - 1.0 / math.sqrt(len(words) + 1.0)))
