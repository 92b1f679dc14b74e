"""The best_of_n reward manager against real loopback HTTP servers and verl's own reward loop.

The scoring server is real (aiohttp on 127.0.0.1) and serves a real, config-built transformer
sequence classifier with verl's /classify request and response shape. The manager is built by
verl's ``load_reward_manager`` / ``RewardLoopWorker`` from the composed tea_trainer config.
"""

from __future__ import annotations

import asyncio
import math
import re
import textwrap

import pytest
import verl  # noqa: F401 - loads the tea-verl plugin (registrations)

from benchmarks.common import compose_tea_trainer as compose, rm_best_of_n_overrides
from benchmarks.servers import ScoringServer
from benchmarks.tiny import build_reward_model, build_tokenizer, model_score_fn, rollout_batch
from tea_verl.config import ConfigError
from tea_verl.integrations.verl.reward_manager import BestOfNRewardManager


@pytest.fixture(scope="module")
def tok_dir(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("tok"))
    build_tokenizer(path)
    return path


@pytest.fixture(scope="module")
def tok(tok_dir):
    from verl.utils import hf_tokenizer

    return hf_tokenizer(tok_dir)  # loaded the way verl's reward loop loads it


@pytest.fixture(scope="module")
def rm_score(tok):
    return model_score_fn(build_reward_model(tok, seed=0), tok)


def rm_overrides(tok_dir, **best_of_n):
    return [
        *rm_best_of_n_overrides(tok_dir),
        f"actor_rollout_ref.model.path={tok_dir}",
        "reward.best_of_n.backoff_s=0.01",
        "reward.best_of_n.backoff_max_s=0.05",
        *(f"reward.best_of_n.{k}={v}" for k, v in best_of_n.items()),
    ]


def score_batch(worker_or_manager, data):
    """Score like verl's RewardLoopWorker.compute_score_batch: one task per sample, all at once."""

    async def run():
        if hasattr(worker_or_manager, "compute_score_batch"):
            out = await worker_or_manager.compute_score_batch(data)
            manager = worker_or_manager.reward_manager
        else:
            out = await asyncio.gather(*(worker_or_manager.run_single(data[i : i + 1]) for i in range(len(data))))
            manager = worker_or_manager
        if isinstance(manager, BestOfNRewardManager):
            await manager.close()
        return out

    return asyncio.run(run())


def make_manager(tok, tok_dir, address, **best_of_n):
    from verl.trainer.ppo.reward import load_reward_manager

    cfg = compose(rm_overrides(tok_dir, **best_of_n))
    return load_reward_manager(cfg, tok, reward_router_address=address, reward_model_tokenizer=tok)


def test_registered_in_verls_reward_loop_registry():
    from verl.experimental.reward_loop.reward_manager import get_reward_manager_cls
    from verl.trainer.ppo.reward import resolve_reward_manager_cls

    assert get_reward_manager_cls("best_of_n") is BestOfNRewardManager
    assert resolve_reward_manager_cls(compose(["reward.reward_manager.name=best_of_n"])) is BestOfNRewardManager


def test_scores_equal_verls_own_reward_model_path(tok, tok_dir, rm_score):
    """Same samples, same server: verl's built-in RM scoring and best_of_n give identical scores."""
    from verl.experimental.reward_loop.reward_loop import RewardLoopWorker

    data = rollout_batch(tok, n=4)
    with ScoringServer(score_fn=rm_score) as srv:
        ours = score_batch(RewardLoopWorker(compose(rm_overrides(tok_dir)), srv.address), data)
        native_cfg = compose(
            [o for o in rm_overrides(tok_dir) if "custom_reward_function" not in o and "reward_manager" not in o]
        )
        native = score_batch(RewardLoopWorker(native_cfg, srv.address), data)
    assert len(ours) == len(native) == len(data)
    for o, v in zip(ours, native):
        assert o["reward_score"] == pytest.approx(v["reward_score"], abs=1e-12)
        info = o["reward_extra_info"]
        assert info["bon_selection_score"] == o["reward_score"]
        assert info["bon_gold_score"] is None
    lengths = data.batch["attention_mask"][:, data.batch["prompts"].shape[1] :].sum(1).tolist()
    assert [o["reward_extra_info"]["bon_response_length"] for o in ours] == lengths
    assert [o["reward_extra_info"]["bon_data_source"] for o in ours] == list(data.non_tensor_batch["data_source"])
    # the scores vary between samples (a real model, not a constant)
    assert len({round(o["reward_score"], 9) for o in ours}) > len(ours) // 2


def test_gold_from_a_verifier_only_where_the_prompt_has_ground_truth(tmp_path, tok, tok_dir, rm_score):
    verifier = tmp_path / "verifier.py"
    verifier.write_text(
        textwrap.dedent(
            """
            def compute_score(data_source, solution_str, ground_truth, extra_info=None):
                return 1.0 if solution_str.split()[-2] == ground_truth else 0.0
            """
        )
    )
    data = rollout_batch(tok, n=3)
    for i in range(0, len(data), 2):  # half the prompts carry no ground truth
        data.non_tensor_batch["reward_model"][i] = {"style": "model", "ground_truth": None}
    with ScoringServer(score_fn=rm_score) as srv:
        manager = make_manager(tok, tok_dir, srv.address, gold="function", gold_function_path=str(verifier))
        out = score_batch(manager, data)
    golds = [o["reward_extra_info"]["bon_gold_score"] for o in out]
    assert golds[0::2] == [None] * len(golds[0::2])
    assert golds[1::2] == [1.0] * len(golds[1::2])  # responses end with "<prompt index> <sample index>"


def test_gold_from_a_second_endpoint(tok, tok_dir, rm_score):
    gold_score = model_score_fn(build_reward_model(tok, seed=1), tok)
    data = rollout_batch(tok, n=2)
    with ScoringServer(score_fn=rm_score) as proxy, ScoringServer(score_fn=gold_score) as gold:
        manager = make_manager(
            tok, tok_dir, proxy.address, gold="endpoint", gold_endpoint=gold.address, gold_model="gold-rm",
            gold_tokenizer_path=tok_dir,
        )
        out = score_batch(manager, data)
        assert sum(gold.successes.values()) == len(data)
    resp = data.batch["responses"]
    for i, o in enumerate(out):
        # the gold scorer sees the chat (prompt + decoded response) in its own template, without BOS
        n_valid = int(data.batch["attention_mask"][i, -resp.shape[1] :].sum())
        chat = list(data.non_tensor_batch["raw_prompt"][i]) + [
            {"role": "assistant", "content": tok.decode(resp[i, :n_valid], skip_special_tokens=True)}
        ]
        text = tok.apply_chat_template(chat, tokenize=False)[len(tok.bos_token) :]
        g = o["reward_extra_info"]["bon_gold_score"]
        assert g == pytest.approx(gold_score(text), abs=1e-12)
        assert abs(g - o["reward_score"]) > 1e-6  # a different model


def test_failing_once_is_retried_and_every_sample_is_scored_exactly_once(tok, tok_dir, rm_score):
    data = rollout_batch(tok, n=8)
    with ScoringServer(score_fn=rm_score) as clean:
        reference = score_batch(make_manager(tok, tok_dir, clean.address), data)
    with ScoringServer(score_fn=rm_score, fail_once_fraction=0.3) as flaky:
        manager = make_manager(tok, tok_dir, flaky.address)
        out = score_batch(manager, data)
        counts = flaky.successes
        injected = flaky.state.failures
    assert injected > 0  # the server did fail some requests
    assert manager.stats["retries"] == injected
    assert len(counts) == len(data) and set(counts.values()) == {1}
    assert [o["reward_score"] for o in out] == pytest.approx([r["reward_score"] for r in reference], abs=1e-12)


def _unscored(out):
    return [o for o in out if o["reward_extra_info"]["bon_unscored"]]


def test_a_sample_that_cannot_be_scored_is_marked_and_named_not_zeroed(tok, tok_dir, rm_score):
    data = rollout_batch(tok, n=2)
    bad = " 2 1 "  # prompt index 2, sample 1: the response text ends with "2 1"
    with ScoringServer(score_fn=rm_score, fail_always=lambda text: bad in text) as srv:
        manager = make_manager(tok, tok_dir, srv.address, max_retries=2)
        out = score_batch(manager, data)
        assert srv.state.failures == 3  # first try + 2 retries
    unscored = _unscored(out)
    assert len(unscored) == 1 and manager.stats["unscored"] == 1
    u = unscored[0]
    assert math.isnan(u["reward_score"]) and math.isnan(u["reward_extra_info"]["bon_selection_score"])
    assert re.search(r"uid=prompt-2 index=2 .*failed 3 times", u["reward_extra_info"]["bon_unscored_reason"])
    scored = [o for o in out if not o["reward_extra_info"]["bon_unscored"]]
    assert len(scored) == len(data) - 1 and all(math.isfinite(o["reward_score"]) for o in scored)
    assert all(o["reward_extra_info"]["bon_unscored_reason"] is None for o in scored)


def test_client_errors_are_not_retried(tok, tok_dir, rm_score):
    data = rollout_batch(tok, n=1)
    with ScoringServer(score_fn=rm_score, fail_always=lambda text: True, fail_status=400) as srv:
        manager = make_manager(tok, tok_dir, srv.address, max_retries=5)
        out = score_batch(manager, data)
        assert srv.state.failures <= len(data)  # one request per sample at most, no retries
    assert len(_unscored(out)) == len(data)
    assert all(re.search(r"HTTP 400 .*not retried", o["reward_extra_info"]["bon_unscored_reason"]) for o in out)


def test_a_scorer_that_returns_no_number_leaves_the_sample_unscored(tmp_path, tok, tok_dir):
    fn = tmp_path / "bad_reward.py"
    fn.write_text("def compute_score(data_source, solution_str, ground_truth, extra_info=None):\n"
                  "    return {'score': 'high'} if solution_str.endswith('2 1') else 1.0\n")
    from verl.trainer.ppo.reward import load_reward_manager

    cfg = compose([f"actor_rollout_ref.model.path={tok_dir}", "reward.reward_manager.name=best_of_n",
                   f"reward.custom_reward_function.path={fn}", "reward.custom_reward_function.name=compute_score"])
    out = score_batch(load_reward_manager(cfg, tok), rollout_batch(tok, n=2))
    bad = _unscored(out)
    assert bad and all("is not a number" in o["reward_extra_info"]["bon_unscored_reason"] for o in bad)
    assert all(o["reward_score"] == 1.0 for o in out if o not in bad)


def test_requests_in_flight_stay_within_the_bound(tok, tok_dir, rm_score):
    data = rollout_batch(tok, n=8)
    with ScoringServer(score_fn=rm_score, latency_s=0.02) as srv:
        score_batch(make_manager(tok, tok_dir, srv.address, max_concurrency=3), data)
        assert srv.state.max_in_flight == 3


def test_reward_function_proxy_without_a_reward_model(tmp_path, tok, tok_dir):
    fn = tmp_path / "length_reward.py"
    fn.write_text("def compute_score(data_source, solution_str, ground_truth, extra_info=None):\n"
                  "    return {'score': float(len(solution_str)), 'chars': len(solution_str)}\n")
    from verl.experimental.reward_loop.reward_loop import RewardLoopWorker

    cfg = compose(
        [
            "reward.reward_manager.name=best_of_n",
            f"reward.custom_reward_function.path={fn}",
            f"actor_rollout_ref.model.path={tok_dir}",
        ]
    )
    data = rollout_batch(tok, n=2)
    out = score_batch(RewardLoopWorker(cfg, None), data)
    resp = data.batch["responses"]
    for i, o in enumerate(out):
        n_valid = int(data.batch["attention_mask"][i, -resp.shape[1] :].sum())
        text = tok.decode(resp[i, :n_valid], skip_special_tokens=True)
        assert o["reward_score"] == float(len(text)) == o["reward_extra_info"]["bon_selection_score"]
        assert o["reward_extra_info"]["chars"] == len(text)


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["reward.best_of_n.proxy=oracle"], r"reward.best_of_n.proxy must be one of"),
        (["reward.best_of_n.gold=endpoint"], r"gold=endpoint needs reward.best_of_n.gold_endpoint"),
        (["reward.best_of_n.gold=function"], r"gold=function needs reward.best_of_n.gold_function_path"),
        (["reward.best_of_n.max_concurrency=0"], r"max_concurrency must be an integer >= 1"),
        (["reward.best_of_n.timeout_s=-1"], r"timeout_s must be a positive number"),
        (["+reward.best_of_n.concurrency=8"], r"unknown key\(s\) under reward.best_of_n: \['concurrency'\]"),
        (["reward.best_of_n.gold=function", "reward.best_of_n.gold_function_path=/nonexistent.py"], r"cannot be loaded"),
    ],
)
def test_bad_settings_fail_at_construction(tok, tok_dir, overrides, message):
    from verl.trainer.ppo.reward import load_reward_manager

    cfg = compose(rm_overrides(tok_dir) + overrides)
    with pytest.raises(ConfigError, match=message):
        load_reward_manager(cfg, tok, reward_router_address="127.0.0.1:1", reward_model_tokenizer=tok)


def test_reward_model_without_the_routing_function_is_refused(tok, tok_dir):
    from verl.trainer.ppo.reward import load_reward_manager

    cfg = compose([o for o in rm_overrides(tok_dir) if "custom_reward_function" not in o])
    with pytest.raises(ConfigError, match=r"never calls the best_of_n manager.*reward_model_via_best_of_n"):
        load_reward_manager(cfg, tok, reward_router_address="127.0.0.1:1", reward_model_tokenizer=tok)


def test_proxy_reward_model_needs_the_router(tok, tok_dir):
    from verl.trainer.ppo.reward import load_reward_manager

    cfg = compose(["reward.reward_manager.name=best_of_n", "reward.best_of_n.proxy=reward_model"])
    with pytest.raises(ConfigError, match=r"proxy=reward_model needs verl's reward router"):
        load_reward_manager(cfg, tok)


def test_routing_marker_refuses_other_managers():
    from tea_verl.rewards import reward_model_via_best_of_n

    with pytest.raises(RuntimeError, match=r"routing marker for reward.reward_manager.name=best_of_n"):
        reward_model_via_best_of_n(data_source="x", solution_str="y", ground_truth=None, extra_info={})


def test_colocated_path_without_dataset_fields_warns_once_that_gold_is_unavailable(tmp_path, tok, tok_dir, rm_score, caplog):
    """verl's colocated reward-model path sends only prompts, responses, attention_mask and raw_prompt."""
    from verl import DataProto

    verifier = tmp_path / "v.py"
    verifier.write_text("def compute_score(data_source, solution_str, ground_truth, extra_info=None):\n    return 1.0\n")
    full = rollout_batch(tok, n=2)
    bare = DataProto.from_dict(
        tensors={k: full.batch[k] for k in ("prompts", "responses", "attention_mask")},
        non_tensors={"raw_prompt": full.non_tensor_batch["raw_prompt"]},
    )
    with ScoringServer(score_fn=rm_score) as srv:
        manager = make_manager(tok, tok_dir, srv.address, gold="function", gold_function_path=str(verifier))
        with caplog.at_level("WARNING", logger="tea_verl"):
            out = score_batch(manager, bare)
    assert all(o["reward_extra_info"]["bon_gold_score"] is None for o in out)
    assert all(isinstance(o["reward_score"], float) for o in out)
    assert caplog.text.count("gold scores are unavailable here") == 1


def test_the_reward_function_sees_whether_an_answer_ended_or_was_cut(tmp_path, tok, tok_dir):
    """extra_info gains response_length (valid tokens) and response_ended (the last valid token is
    the tokenizer's end token), which the decoded text cannot show; a dataset's own keys win."""
    fn = tmp_path / "ended_reward.py"
    fn.write_text("def compute_score(data_source, solution_str, ground_truth, extra_info=None):\n"
                  "    return {'score': float(extra_info['response_length']), 'ended': int(extra_info['response_ended'])}\n")
    from verl.experimental.reward_loop.reward_loop import RewardLoopWorker

    cfg = compose(["reward.reward_manager.name=best_of_n", f"reward.custom_reward_function.path={fn}",
                   f"actor_rollout_ref.model.path={tok_dir}"])
    data = rollout_batch(tok, n=3)
    resp = data.batch["responses"]
    rows = len(data)
    lengths = [int(data.batch["attention_mask"][i, -resp.shape[1]:].sum()) for i in range(rows)]
    other = 7 if tok.eos_token_id != 7 else 8
    for i in range(rows):  # the first answer closes with the end token, the others are cut
        resp[i, lengths[i] - 1] = tok.eos_token_id if i == 0 else other
    data.non_tensor_batch["extra_info"][2] = {**dict(data.non_tensor_batch["extra_info"][2] or {}), "response_ended": True}
    out = score_batch(RewardLoopWorker(cfg, None), data)
    assert [o["reward_score"] for o in out] == [float(n) for n in lengths]
    assert [o["reward_extra_info"]["ended"] for o in out] == [1, 0, 1] + [0] * (rows - 3)
