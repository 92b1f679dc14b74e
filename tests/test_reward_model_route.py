"""The paper's route on the CPU: training scored by a reward model that verl's reward loop starts
and reaches through its router, and best-of-N validation with proxy and gold.

``tea-verl smoke --reward-model`` serves a config-built tiny classifier under verl's ``vllm`` name
(:mod:`tea_verl.cpu.reward_server`, vLLM's ``/classify``), on a pool of its own; the ``best_of_n``
manager is reached through ``reward_model_via_best_of_n`` and scores the proxy with the reward
model and the gold with the smoke's rule-based reward. Everything is real: verl's trainer,
``RewardModelManager``, its naive router process, the reward-loop workers, HTTP on loopback.
"""

from __future__ import annotations

import json

import pytest
import torch
from test_cpu_trainer import _load, smoke  # tests/ is on sys.path (pytest prepends it)

pytestmark = pytest.mark.slow  # starts Ray, trains or runs subprocesses: pytest -m 'not slow' leaves it out


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("rm_route")
    proc, out = smoke(tmp, "--steps", "1", "--reward-model", f"trainer.rollout_data_dir={tmp / 'rollouts'}")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return tmp, out, _load(out)


def test_smoke_with_a_reward_model_passes_and_validates_proxy_and_gold(run):
    _, _, result = run
    assert result["ok"] and result["config"]["reward_model"]
    assert result["replaced"]["reward.reward_model.enable"]["now"] is True
    val = result["steps"][-1]["data"]
    for key in ("val-core/tea_smoke/bon_selection_score/exact_best@64/mean", "val-core/tea_smoke/bon_gold_score/selected@64/mean",
                "val-aux/tea_smoke/bon_gold_score/selected@1/mean"):
        assert key in val and val[key] == val[key], key  # present and not NaN
    # the gold is the rule-based reward, the proxy the classifier: two different scores
    assert val["val-core/tea_smoke/bon_selection_score/exact_best@64/mean"] != val["val-core/tea_smoke/bon_gold_score/selected@64/mean"]


def test_the_training_steps_are_scored_by_the_reward_model(run):
    """Each training answer's score is one the reward-model server served (its request log), each
    answer (training and validation) was scored exactly once, and the served scores are the
    classifier's logits for the chats it received, recomputed here."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tmp, out, result = run
    served = [json.loads(line) for line in (out / "reward_model.jsonl").read_text().splitlines()]
    rows = [json.loads(line) for f in sorted((tmp / "rollouts").glob("*.jsonl")) for line in f.read_text().splitlines()]
    m = result["config"]["rollout_n"]
    assert len(rows) == 4 * m  # one step of 4 prompts
    val_n = 4 * 64  # 4 validation prompts x val_kwargs.n
    assert len(served) == len(rows) + val_n  # every answer scored once: no retry, no double request
    scores = sorted(round(r["score"], 5) for r in served)
    for row in rows:  # every training score is a served one
        assert round(row["score"], 5) in scores, row
    # the served texts are chats in the reward model's template, scored by the classifier
    rm_dir = out / "assets" / "reward_model"
    tok = AutoTokenizer.from_pretrained(rm_dir)
    model = AutoModelForSequenceClassification.from_pretrained(rm_dir).eval()
    for r in served[:: max(1, len(served) // 24)]:
        assert "assistant" in r["input"]
        with torch.no_grad():
            expected = float(model(**tok(r["input"], add_special_tokens=False, return_tensors="pt")).logits[0, -1])
        assert r["score"] == pytest.approx(expected, abs=1e-5)
