"""The ``hf_cpu`` rollout server on its own (no Ray): reproducible per-request sampling that
follows the policy. A real config-built Llama answers real token requests; the batching the
server does is the one verl's agent loop sees."""

from __future__ import annotations

import asyncio
import math
from collections import Counter
from types import SimpleNamespace

import pytest
import torch

from tea_verl.cpu.rollout import HFRolloutServer
from tea_verl.launch import tiny


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("tiny_lm"))
    tiny.build_causal_lm(tiny.build_tokenizer(), path, seed=0)
    return path


def _server(model_dir, seed=3, response_length=6):
    return HFRolloutServer(SimpleNamespace(seed=seed, response_length=response_length), {"path": model_dir}, 0)


def _prompts():
    tok = tiny.build_tokenizer()
    return [tok.encode(p) for p in ("a b c", "d e", "f g h i")]


async def _ask(server, requests, max_tokens=6):
    """Send (prompt index, prompt ids) requests concurrently; returns {prompt index: outputs}."""
    outs = await asyncio.gather(*(server.generate(ids, {"temperature": 1.0, "max_tokens": max_tokens}) for _, ids in requests))
    got: dict[int, list] = {}
    for (i, _), out in zip(requests, outs):
        got.setdefault(i, []).append(tuple(out.token_ids))
    return {i: sorted(v) for i, v in got.items()}


def test_a_prompts_samples_do_not_depend_on_arrival_or_batching(model_dir):
    prompts = _prompts()
    together = [(i, p) for i, p in enumerate(prompts) for _ in range(4)]

    async def one_batch():
        return await _ask(_server(model_dir), together)

    async def reversed_in_three_batches():
        server = _server(model_dir)
        got: dict[int, list] = {}
        for chunk in ([r for r in together if r[0] == 2], [r for r in together if r[0] == 0][:3],
                      [r for r in reversed(together) if r[0] != 2][:5]):
            for i, outs in (await _ask(server, chunk)).items():
                got.setdefault(i, []).extend(outs)
        return {i: sorted(v) for i, v in got.items()}

    a, b = asyncio.run(one_batch()), asyncio.run(reversed_in_three_batches())
    assert a == b
    assert all(len(set(v)) > 1 for v in a.values()), "identical requests must draw different streams"
    other_seed = asyncio.run(_ask(_server(model_dir, seed=4), together))
    assert other_seed != a


def test_new_weights_draw_new_streams(model_dir):
    async def before_and_after():
        server = _server(model_dir)
        ids = _prompts()[0]
        first = await _ask(server, [(0, ids)] * 4)
        server.load_weights(server.model.state_dict())  # same values, a new weight version
        return first, await _ask(server, [(0, ids)] * 4)

    first, second = asyncio.run(before_and_after())
    assert first != second


def test_first_tokens_follow_the_policy(model_dir):
    """4096 one-token samples of one prompt against the model's softmax: every token's frequency
    within 5 binomial standard errors of its probability."""
    server = _server(model_dir, response_length=1)
    ids = _prompts()[1]
    n = 4096

    async def draw():
        outs = await asyncio.gather(*(server.generate(ids, {"temperature": 1.0, "max_tokens": 1, "logprobs": True})
                                      for _ in range(n)))
        return [(o.token_ids[0], o.log_probs[0]) for o in outs]

    draws = asyncio.run(draw())
    with torch.no_grad():
        logits = server.model(input_ids=torch.tensor([ids])).logits[0, -1].double()
    p = torch.softmax(logits, -1)
    counts = Counter(t for t, _ in draws)
    for tok in range(p.numel()):
        q = float(p[tok])
        se = math.sqrt(max(q * (1 - q), 1e-12) / n)
        assert abs(counts.get(tok, 0) / n - q) <= 5 * se + 1e-9, (tok, counts.get(tok, 0) / n, q)
    for tok, logp in draws[:50]:  # the reported log-probability is the policy's
        assert logp == pytest.approx(float(torch.log(p[tok])), abs=1e-4)


def _eos_heavy_server(model_dir, min_tokens: int | None):
    """A server whose policy ends about half of its answers at every token (the end-of-sequence
    row of the output layer raised), with ``engine_kwargs.hf_cpu.min_tokens`` when given."""
    engine = {"hf_cpu": {"min_tokens": min_tokens}} if min_tokens is not None else {}
    server = HFRolloutServer(SimpleNamespace(seed=5, response_length=6, engine_kwargs=engine), {"path": model_dir}, 0)
    eos = next(iter(server.eos_ids))
    with torch.no_grad():
        head = server.model.get_output_embeddings().weight
        hidden = server.model(input_ids=torch.tensor([_prompts()[0]]), output_hidden_states=True).hidden_states[-1][0, -1]
        head[eos] += 6.0 * hidden / hidden.norm() ** 2  # about +6 on the end token's logit
    return server, eos


def test_min_tokens_keeps_the_end_token_out_of_the_first_tokens(model_dir):
    """As vLLM's ``min_tokens``: with ``engine_kwargs.hf_cpu.min_tokens = 4`` no answer ends before
    its fourth token, while the same policy without it ends many answers at the first; the reported
    log-probabilities stay the policy's, so verl's actor recomputes the same values."""
    ids = _prompts()[0]

    async def lengths(server):
        outs = await asyncio.gather(*(server.generate(ids, {"temperature": 1.0, "max_tokens": 6, "logprobs": True}) for _ in range(200)))
        return outs

    free, eos = _eos_heavy_server(model_dir, None)
    outs = asyncio.run(lengths(free))
    assert sum(len(o.token_ids) == 1 and o.token_ids[0] == eos for o in outs) > 60
    held, eos = _eos_heavy_server(model_dir, 4)
    outs = asyncio.run(lengths(held))
    assert all(len(o.token_ids) >= 4 for o in outs)
    assert all(eos not in o.token_ids[:3] for o in outs)
    with torch.no_grad():
        p = torch.log_softmax(held.model(input_ids=torch.tensor([ids])).logits[0, -1].double(), -1)
    for o in outs[:20]:
        assert o.log_probs[0] == pytest.approx(float(p[o.token_ids[0]]), abs=1e-4)


def test_probe_rows_follow_the_weight_syncs(model_dir, tmp_path, monkeypatch):
    """``TEA_CPU_PROBE``: after each weight sync the server appends the named tokens' probabilities
    after each fixed context, tagged with its instance and the training step; they change with the
    weights."""
    import json

    tok = tiny.build_tokenizer()
    spec = {"out": str(tmp_path / "probe.jsonl"), "tokens": {"eos": tok.eos_token_id, "the": tok.convert_tokens_to_ids("the")},
            "contexts": [{"label": "a", "ids": _prompts()[0]}, {"label": "b", "ids": _prompts()[1]}]}
    (tmp_path / "probe.json").write_text(json.dumps(spec))
    monkeypatch.setenv("TEA_CPU_PROBE", str(tmp_path / "probe.json"))
    server = _server(model_dir)
    state = {k: v.clone() for k, v in server.model.state_dict().items()}
    server.load_weights(state, global_steps=0)
    state["lm_head.weight"][tok.eos_token_id] += 1.0
    server.load_weights(state, global_steps=1)
    rows = [json.loads(x) for x in open(tmp_path / "probe.jsonl")]
    assert [r["global_steps"] for r in rows] == [0, 1] and rows[0]["server"] == rows[1]["server"]
    assert [c["label"] for c in rows[0]["contexts"]] == ["a", "b"]
    with torch.no_grad():
        p = torch.softmax(server.model(input_ids=torch.tensor([_prompts()[1]])).logits[0, -1].double(), -1)
    assert rows[1]["contexts"][1]["eos"] == pytest.approx(float(p[tok.eos_token_id]), rel=1e-9)
    assert rows[1]["contexts"][0]["eos"] > rows[0]["contexts"][0]["eos"]
    (tmp_path / "bad.json").write_text(json.dumps({"out": "x"}))
    monkeypatch.setenv("TEA_CPU_PROBE", str(tmp_path / "bad.json"))
    with pytest.raises(ValueError, match="missing"):
        _server(model_dir)
