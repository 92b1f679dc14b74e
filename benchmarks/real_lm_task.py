"""The real-model experiment's scorers, as verl custom reward functions (``benchmarks.real_lm``).

verl loads this file by path in its reward workers, so it imports nothing from the repository.
Both scorers read what they need from the sample: the answer (``solution_str``), the topic
(``ground_truth``), and, in ``extra_info``, whether the answer ended with the end token
(``response_ended``, put there by tea-verl's ``best_of_n`` manager) and the judge's model directory
(``judge_model``, written into the dataset rows by the experiment).

* :func:`sentiment`: VADER's compound sentiment of the answer, in [-1, 1] (``vadersentiment``, a
  lexicon and rules);
* :func:`judge`: the start model itself as a judge: the log-odds of "Yes" against "No" as the first
  token of its answer to a fixed question about the answer (the prepared SmolLM2-135M-Instruct,
  never the policy being trained).

An answer cut at ``max_response_length`` (``response_ended`` false) scores :data:`CUT_PENALTY`
(:data:`JUDGE_CUT_PENALTY`) when the scorer is the proxy (:func:`sentiment_proxy`, :func:`judge_proxy`): a failure, which
the experiment names through ``algorithm.tea.failure_reward``. The gold scorers (:func:`sentiment`,
:func:`judge`) score every answer as it is.
"""

from __future__ import annotations

import math
import threading

CUT_PENALTY = -2.0  # sentiment's proxy, below its range [-1, 1]
JUDGE_CUT_PENALTY = -20.0  # the judge's proxy, below the log-odds it gives
QUESTION = ('Here is a sentence about {topic}:\n"{answer}"\n'
            "Is it a fluent, sensible sentence about {topic}? Answer Yes or No.")
_VADER = None
_JUDGES: dict = {}
_LOCK = threading.Lock()  # the manager calls a sync scorer from a thread pool: load the judge once, in one thread


def sentiment(data_source=None, solution_str: str = "", ground_truth=None, extra_info=None, **kwargs) -> float:
    global _VADER
    with _LOCK:
        if _VADER is None:
            from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

            _VADER = SentimentIntensityAnalyzer()
    return float(_VADER.polarity_scores(str(solution_str))["compound"])


def _judge_model(path: str):
    with _LOCK:
        return _load_judge(path)


def _load_judge(path: str):
    if path not in _JUDGES:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tok = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
        yes, no = (tok.encode(w, add_special_tokens=False)[0] for w in ("Yes", "No"))
        _JUDGES[path] = (tok, model, yes, no)
    return _JUDGES[path]


def judge(data_source=None, solution_str: str = "", ground_truth=None, extra_info=None, **kwargs) -> float:
    import torch

    path = (extra_info or {}).get("judge_model")
    if not path:
        raise ValueError("the judge needs extra_info['judge_model'], the prepared model directory (benchmarks.real_lm writes it)")
    tok, model, yes, no = _judge_model(path)
    text = QUESTION.format(topic=ground_truth or "its topic", answer=str(solution_str).strip())
    ids = tok.apply_chat_template([{"role": "user", "content": text}], add_generation_prompt=True, return_tensors="pt",
                                  return_dict=True)["input_ids"]
    with torch.no_grad():
        logits = model(ids).logits[0, -1].double()
    score = float(logits[yes] - logits[no])
    if not math.isfinite(score):
        raise ValueError(f"the judge gave a non-finite log-odds ({score}) for {str(solution_str)[:60]!r}: is {path} a prepared model?")
    return score


def _cut(extra_info) -> bool:
    ended = (extra_info or {}).get("response_ended")
    if ended is None:
        raise ValueError("extra_info['response_ended'] is missing: score through tea-verl's best_of_n manager "
                         "(reward.reward_manager.name=best_of_n), which sets it")
    return not ended


def sentiment_proxy(data_source=None, solution_str: str = "", ground_truth=None, extra_info=None, **kwargs) -> dict:
    """The proxy: the penalty for a cut answer, else the sentiment; ``ended`` goes to verl's dumps."""
    cut = _cut(extra_info)
    return {"score": CUT_PENALTY if cut else sentiment(data_source, solution_str, ground_truth, extra_info), "ended": int(not cut)}


def judge_proxy(data_source=None, solution_str: str = "", ground_truth=None, extra_info=None, **kwargs) -> dict:
    cut = _cut(extra_info)
    return {"score": JUDGE_CUT_PENALTY if cut else judge(data_source, solution_str, ground_truth, extra_info), "ended": int(not cut)}
