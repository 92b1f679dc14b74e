"""Scoring faults: samples that cannot be scored, in the policy's pieces and in verl's trainer.

The fast tests check the pieces (the validation split, the setting, the fault injection's input
checks). The slow ones run ``tea-verl smoke --reward-model``: verl's trainer with the tiny
classifier served under verl's ``vllm`` name behind verl's router, the ``best_of_n`` manager
scoring through it, and faults injected in that real server (``TEA_CPU_REWARD_FAULTS``): HTTP 503
for a share of inputs, or the server's process exiting mid-run.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import time

import pytest

from tea_verl.config import BestOfNConfig, ConfigError
from tea_verl.cpu.reward_server import read_faults
from tea_verl.integrations.verl.faults import split_unscored
from tea_verl.launch.common import processes_with

NAN = float("nan")
TRAIN, VAL = 4 * 8, 4 * 64  # one smoke step's samples (4 prompts x rollout.n 8); one validation (4 x 64)
VAL_PROMPT = "list three safe steps"  # one of the smoke's four validation prompts (tea_verl.launch.tiny)


def test_unscored_validation_samples_are_counted_and_left_out():
    ds = ["a"] * 4 + ["b"] * 2
    uids = ["p1", "p1", "p2", "p2", "q", "q"]
    infos = {"reward": [1.0, NAN, 3.0, 4.0, 5.0, NAN], "bon_selection_score": [1.0, NAN, 3.0, 4.0, 5.0, NAN],
             "bon_unscored": [False, True, False, False, False, True],
             "bon_unscored_reason": [None, "r1", None, None, None, "r2"]}
    expected = {("a", "p1"): 2, ("a", "p2"): 2, ("b", "q"): 2}
    ds2, uids2, infos2, turns, expected2, metrics, share, reasons = split_unscored(ds, uids, infos, [], expected)
    assert ds2 == ["a", "a", "a", "b"] and uids2 == ["p1", "p2", "p2", "q"]
    assert infos2 == {"reward": [1.0, 3.0, 4.0, 5.0], "bon_selection_score": [1.0, 3.0, 4.0, 5.0]}
    assert metrics == {"val-aux/a/unscored/count": 1.0, "val-aux/a/unscored/share": 0.25,
                       "val-aux/b/unscored/count": 1.0, "val-aux/b/unscored/share": 0.5}
    assert share == pytest.approx(2 / 6) and reasons == ["r1", "r2"]
    assert expected2 == {("a", "p1"): 1, ("a", "p2"): 2, ("b", "q"): 1} and expected[("a", "p1")] == 2  # a copy
    assert turns == []


def test_without_the_best_of_n_manager_nothing_is_split():
    ds, uids, infos = ["a", "a"], ["p", "p"], {"reward": [1.0, 2.0]}
    assert split_unscored(ds, uids, infos, [1, 1]) == (ds, uids, infos, [1, 1], None, {}, 0.0, [])


def test_all_scored_logs_a_zero_share():
    out = split_unscored(["a"], ["p"], {"reward": [1.0], "bon_unscored": [False], "bon_unscored_reason": [None]}, [])
    assert out[5] == {"val-aux/a/unscored/count": 0.0, "val-aux/a/unscored/share": 0.0} and out[6] == 0.0


@pytest.mark.parametrize("value", [-0.1, 1.5, "some", True, NAN])
def test_max_unscored_share_setting(value):
    with pytest.raises(ConfigError, match=r"reward.best_of_n.max_unscored_share must be a number in \[0, 1\]"):
        BestOfNConfig(max_unscored_share=value)
    assert BestOfNConfig().max_unscored_share == 0.01


@pytest.mark.parametrize("text, message", [("{not json", "is not JSON"), ('{"fail_sometimes": 0.1}', "keys among"),
                                           ('[1]', "keys among"), ('{"fail_once_share": 2}', r"must lie in \[0, 1\]")])
def test_fault_injection_refuses_what_it_does_not_know(text, message):
    with pytest.raises(ValueError, match=message):
        read_faults(text)
    assert read_faults(None) == {} and read_faults('{"exit_after": 3}') == {"exit_after": 3}


# --------------------------------------------------------------------------------------------------
# verl's trainer with a faulty reward server
# --------------------------------------------------------------------------------------------------
# 3 retries: verl's router answers a failing server with a 500 and at times resets the next pooled
# connection (ClientOSError: connection reset), a transient fault of its own that a retry clears
FAST_RETRIES = ["reward.best_of_n.backoff_s=0.05", "reward.best_of_n.backoff_max_s=0.2", "reward.best_of_n.max_retries=3"]


def faulty_smoke(tmp_path, faults: dict, *args):
    """``tea-verl smoke --reward-model`` with ``faults`` injected in the reward server. Returns the
    completed process, the output directory, the seconds it ran and the Ray processes it left."""
    out = tmp_path / "out"
    env = dict(os.environ, TEA_CPU_REWARD_FAULTS=json.dumps(faults), RAY_AUTH_MODE="disabled")
    env.pop("VERL_USE_EXTERNAL_MODULES", None)
    before = set(processes_with("tea-smoke-ray-"))
    start = time.time()
    proc = subprocess.run([sys.executable, "-m", "tea_verl.cli", "smoke", "--reward-model", "--out", str(out), *args],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=900)
    ended = time.time()
    left = set(processes_with("tea-smoke-ray-")) - before
    return proc, out, ended - start, left, ended


def served(out):
    rows = [json.loads(line) for line in (out / "reward_model.jsonl").read_text().splitlines()]
    return [r for r in rows if "score" in r], [r for r in rows if "fault" in r]


def metrics(out):
    return {r["step"]: r["data"] for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines())}


@pytest.mark.slow
def test_faults_within_the_retries_score_every_sample_exactly_once(tmp_path):
    proc, out, _, left, _ = faulty_smoke(tmp_path, {"fail_once_share": 0.3}, "--steps", "1", *FAST_RETRIES)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ok, faults = served(out)
    assert len(faults) > 0.1 * (TRAIN + VAL)  # about 30 % of the distinct inputs failed once
    assert len(ok) == TRAIN + VAL  # every sample scored once: a failure retried, never a double score
    assert {r["input"] for r in faults} <= {r["input"] for r in ok}
    val = metrics(out)[1]
    assert val["val-aux/tea_smoke/unscored/count"] == 0.0
    assert math.isfinite(val["val-core/tea_smoke/bon_selection_score/exact_best@64/mean"])
    assert not left


@pytest.mark.slow
def test_unscored_validation_samples_are_left_out_and_the_run_goes_on(tmp_path):
    faults = {"fail_always_share": 1.0, "only_containing": VAL_PROMPT}  # one validation prompt of four
    proc, out, _, left, _ = faulty_smoke(tmp_path, faults, "--steps", "1", *FAST_RETRIES,
                                         "reward.best_of_n.max_unscored_share=0.3")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ok, failed = served(out)
    assert len(ok) == TRAIN + 3 * 64 and not any(VAL_PROMPT in r["input"] for r in ok)
    # each of the prompt's samples reached the server 1 to 4 times (a try the router's reset ate never did)
    assert all(VAL_PROMPT in r["input"] for r in failed) and 64 <= len(failed) <= 4 * 64
    val = metrics(out)[1]
    assert val["val-aux/tea_smoke/unscored/count"] == 64.0 and val["val-aux/tea_smoke/unscored/share"] == 0.25
    # best-of-k over the three prompts still scored; no metric verl logged is NaN
    assert math.isfinite(val["val-core/tea_smoke/bon_selection_score/exact_best@64/mean"])
    bad = [k for k, v in val.items() if k.startswith("val-") and isinstance(v, float) and math.isnan(v)]
    assert not bad, bad
    assert not (out / "checkpoints" / "global_step_1").exists()  # it went on: no stop, no stop's checkpoint
    assert not left


@pytest.mark.slow
def test_unscored_validation_above_the_share_stops_the_run_with_a_checkpoint(tmp_path):
    faults = {"fail_always_share": 1.0, "only_containing": VAL_PROMPT}
    proc, out, _, left, _ = faulty_smoke(tmp_path, faults, "--steps", "2", *FAST_RETRIES,
                                         "reward.best_of_n.max_unscored_share=0.1")
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0
    found = re.search(r"([\d.]+)% of the validation's samples could not be scored \(more than reward.best_of_n.max_unscored_share = 0.1\)", text)
    assert found and float(found.group(1)) >= 25.0, text[-3000:]  # the prompt's 64 of 256 (a router reset may add one)
    assert "checkpoint of step 1 saved" in text and "could not score sample uid=" in text  # the first samples' errors, named
    assert (out / "checkpoints" / "latest_checkpointed_iteration.txt").read_text().strip() == "1"
    assert (out / "checkpoints" / "global_step_1" / "actor").is_dir()
    assert 2 not in metrics(out)  # stopped at step 1's validation
    assert not left


@pytest.mark.slow
def test_a_killed_reward_server_stops_the_run_with_a_clear_error_and_no_process_left(tmp_path):
    # the server's process exits a few requests into step 2 (after step 1's training and validation)
    faults = {"exit_after": TRAIN + VAL + 5}
    proc, out, wall, left, ended = faulty_smoke(tmp_path, faults, "--steps", "3", *FAST_RETRIES,
                                                "reward.best_of_n.timeout_s=10")
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "step 2:" in text and "training samples could not be scored" in text, text[-3000:]
    assert "checkpoint of step 1 saved" in text
    assert (out / "checkpoints" / "latest_checkpointed_iteration.txt").read_text().strip() == "1"
    _, faults_seen = served(out)
    died = [r["t"] for r in faults_seen if r["fault"] == "exit"]
    assert len(died) == 1
    # retries through verl's router (3 tries, 2 s and 4 s apart) x 4, the checkpoint and Ray's shutdown
    assert ended - died[0] < 180, f"{ended - died[0]:.0f} s from the server's death to the run's end"
    assert not left, f"processes left: {sorted(left)}"


def test_a_validation_dump_with_unscored_samples_reads_without_them(tmp_path):
    from tea_verl.metrics.samples import ReportError, read_jsonl_rows, samples_from_rows

    rows = [{"uid": "p", "score": 1.0, "bon_unscored": False}, {"uid": "p", "score": NAN, "bon_unscored": True},
            {"uid": "p", "score": 2.0, "bon_unscored": False}]
    path = tmp_path / "0.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")  # verl's dump writes NaN as JSON's NaN
    samples = samples_from_rows(read_jsonl_rows(str(path)), "dump")
    assert list(samples.selection) == [1.0, 2.0] and samples.unscored == 1
    with pytest.raises(ReportError, match="no scored samples"):
        samples_from_rows([("x", rows[1])], "dump")
    with pytest.raises(ReportError, match="every score must be finite"):  # NaN without the mark is still an error
        samples_from_rows([("x", {"uid": "p", "score": NAN})], "dump")
