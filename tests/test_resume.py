"""A run killed after step 3 (SIGKILL to verl's driver) resumes from its step-2 checkpoint.

``tea-verl smoke --steps 4 --save-freq 2`` saves verl's checkpoint after step 2; the test kills the
driver (``python -m tea_verl.main_ppo``) with SIGKILL once step 3 is logged, before step 4 saves
again. ``tea-verl smoke --steps 4 --save-freq 2 --resume`` (``trainer.resume_mode=auto``) then
loads step 2 and validates before step 3. What must hold:

* it continues with verl's step numbers (3 and 4) and passes the smoke's checks for them;
* the validation of the step-2 weights is the one the killed run logged after step 2, exactly:
  the same weights, prompts and rollout streams (the ``hf_cpu`` rollout seeds each request by the
  step its weights follow, not by how many syncs this process has seen);
* step 3 draws the same answers as the killed run's step 3, so its rewards, lengths and the
  estimator's ``tea/*`` diagnostics are the same.

What may differ, and why: which of a prompt's identical requests gets which answer follows their
arrival (verl sends no per-sample id to the rollout), so the order of samples within a group, and
with it the PPO mini-batches, can differ; from step 3's update on, the weights (and so step 4 and
the validation after step 3) can differ in the last digits, and then by more as runs do.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from tea_verl.launch.common import processes_with

pytestmark = pytest.mark.slow  # starts Ray and trains twice

SAME = ("critic/score/mean", "critic/score/max", "critic/score/min", "response_length/mean")


def _env():
    env = dict(os.environ, RAY_AUTH_MODE="disabled")
    env.pop("VERL_USE_EXTERNAL_MODULES", None)
    return env


def _metrics(path):
    return {r["step"]: r["data"] for r in map(json.loads, path.read_text().splitlines())} if path.exists() else {}


def _kill_driver_after(proc, out, step: int, timeout: float = 900) -> None:
    """SIGKILL verl's driver of the smoke run writing to ``out`` once ``step`` is logged."""
    start = time.time()
    while time.time() - start < timeout:
        if step in _metrics(out / "metrics.jsonl"):
            drivers = [p for p in processes_with("tea_verl.main_ppo") if str(out) in _cmdline(p)]
            assert drivers, "verl's driver is not running"
            for pid in drivers:
                os.kill(pid, signal.SIGKILL)
            return
        if proc.poll() is not None:
            raise AssertionError(f"the run ended before step {step}: {proc.stdout.read()[-3000:]}")
        time.sleep(0.2)
    raise AssertionError(f"step {step} not logged within {timeout} s")


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("resume")
    out = tmp / "out"
    cmd = [sys.executable, "-m", "tea_verl.cli", "smoke", "--steps", "4", "--save-freq", "2", "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_env(), cwd=tmp)
    try:
        _kill_driver_after(proc, out, 3)
        proc.wait(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0  # the smoke reports the killed driver
    killed = _metrics(out / "metrics.jsonl")
    shutil.copy(out / "metrics.jsonl", tmp / "killed_metrics.jsonl")
    latest = (out / "checkpoints" / "latest_checkpointed_iteration.txt").read_text().strip()
    resumed = subprocess.run([*cmd, "--resume"], capture_output=True, text=True, env=_env(), cwd=tmp, timeout=900)
    return killed, latest, resumed, out


def test_the_killed_run_left_the_step_2_checkpoint_and_logged_step_3(runs):
    killed, latest, _, _ = runs
    assert latest == "2"
    assert sorted(killed) == [1, 2, 3]


def test_the_resumed_run_continues_with_steps_3_and_4(runs):
    _, _, resumed, out = runs
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert "resuming after step 2" in resumed.stdout
    with open(out / "smoke.json") as f:
        result = json.load(f)
    assert result["ok"] and {c["step"] for c in result["checks"]} == {3, 4}
    logged = _metrics(out / "metrics.jsonl")
    assert sorted(logged) == [2, 3, 4]  # step 2: the validation before the first resumed step
    assert all(k.startswith("val-") for k in logged[2]) and "training/global_step" in logged[3]
    assert logged[3]["training/global_step"] == 3 and logged[4]["training/global_step"] == 4


def test_the_step_2_weights_validate_as_they_did_before_the_kill(runs):
    killed, _, _, out = runs
    before, after = killed[2], _metrics(out / "metrics.jsonl")[2]
    keys = sorted(k for k in before if k.startswith("val-") and ("exact_best@" in k or "/mean@" in k))
    assert len(keys) >= 8
    for k in keys:
        assert after[k] == pytest.approx(before[k], rel=1e-9, abs=1e-12), k


def test_step_3_draws_the_same_answers_and_the_same_estimator_diagnostics(runs):
    killed, _, _, out = runs
    before, after = killed[3], _metrics(out / "metrics.jsonl")[3]
    keys = [*SAME, *sorted(k for k in before if k.startswith("tea/"))]
    assert any(k.startswith("tea/") for k in keys)
    for k in keys:
        assert math.isfinite(before[k]) and after[k] == pytest.approx(before[k], rel=1e-6, abs=1e-9), k
