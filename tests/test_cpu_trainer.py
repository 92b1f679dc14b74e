"""verl's real trainer on the CPU: ``tea-verl smoke`` through ``tea_verl.main_ppo`` with Ray.

Each smoke run is a real launch: Ray on loopback, verl's TaskRunner, FSDP2 actor over gloo, the
agent loop with the ``hf_cpu`` rollout, the reward loop with the ``best_of_n`` manager, the
estimator under test in ``compute_advantage``, weight sync, and validation with the exact
best-of-k metrics. The assertions read the metrics verl logged (``smoke.json``), not smoke's own
verdict. About 90 s per run on 2 cores, most of it Ray and worker start-up.
"""

from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from tea_verl.launch.common import processes_with as _processes_with  # the processes naming a private Ray temp dir

pytestmark = pytest.mark.slow  # starts Ray, trains or runs subprocesses: pytest -m 'not slow' leaves it out

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _env(**extra):
    env = dict(os.environ)
    env.pop("VERL_USE_EXTERNAL_MODULES", None)
    env.setdefault("RAY_AUTH_MODE", "disabled")
    env.update(extra)
    return env


def smoke(tmp_path, *args, name="out", cwd=None):
    out = tmp_path / name
    proc = subprocess.run(
        [sys.executable, "-m", "tea_verl.cli", "smoke", "--out", str(out), *args],
        capture_output=True, text=True, env=_env(), cwd=cwd or tmp_path, timeout=900,
    )
    return proc, out


def _load(out):
    with open(out / "smoke.json") as f:
        return json.load(f)


TEA_METRICS = ("tea/xi", "tea/top_tie_rate", "tea/fallback_groups", "tea/fallback_batch", "tea/singletons",
               "tea/credit_mean", "tea/credit_std", "tea/best_nonpositive_share", "tea/best_lowest_share")


def _assert_trained(result, steps, estimator_advantages=True):
    by_step = {r["step"]: r["data"] for r in result["steps"]}
    from tea_verl.estimators import ESTIMATORS, GAUSSIAN, GEV

    est = result["config"]["adv_estimator"]
    ours = est in ESTIMATORS
    assert sorted(by_step) == list(range(1, steps + 1))
    syncs = {r["global_steps"]: r for r in result["weight_sync"]}
    for k, d in by_step.items():
        lo, hi = d["critic/advantages/min"], d["critic/advantages/max"]
        assert math.isfinite(lo) and math.isfinite(hi) and max(abs(lo), abs(hi)) > 0, f"step {k}: [{lo}, {hi}]"
        if estimator_advantages and est in GAUSSIAN:  # zero below each group's tail threshold, positive at its top
            assert lo <= 0 < hi, f"step {k}: advantages [{lo}, {hi}]"
        elif estimator_advantages:  # centred estimators (bon's credit is >= 0)
            assert lo < 0 < hi, f"step {k}: advantages [{lo}, {hi}] should straddle 0"
        # the weights the actor had after step k reached the rollout, and they moved
        assert syncs[k]["l2_from_previous"] > 0, f"step {k}: the rollout received unchanged weights"
        # generation used the synced weights: the rollout's token probabilities equal the actor's recomputed ones
        assert d["training/rollout_probs_diff_max"] < 0.05
        assert d["training/rollout_actor_probs_pearson_corr"] > 0.99
        bon = {key: v for key, v in d.items() if "/exact_best@" in key and key.endswith("/mean")}
        ks = sorted(int(key.split("exact_best@")[1].split("/")[0]) for key in bon)
        assert ks and ks[0] == 1 and ks[-1] >= 8, ks
        curve = [bon[next(key for key in bon if f"exact_best@{k_}/" in key)] for k_ in ks]
        assert all(b >= a - 1e-9 for a, b in zip(curve, curve[1:])), f"best-of-k must not fall with k: {curve}"
        assert any("bon_selection_score" in key for key in d), "the best_of_n manager's metrics are missing"
        if ours:  # the estimator's state reached verl's step metrics
            # only the GEV family fits a tail shape and logs tea/xi
            expected = TEA_METRICS if est in GEV else [key for key in TEA_METRICS if key != "tea/xi"]
            assert all(key in d for key in expected), sorted(key for key in d if key.startswith("tea/"))
            assert ("tea/xi" in d) == (est in GEV)
            assert d["tea/fallback_batch"] == 0.0 and d["tea/singletons"] == 0.0
        else:
            assert not any(key.startswith("tea/") for key in d)
    assert syncs[0]["l2_from_initial"] == 0.0  # the first sync is the initial model


def _estimator_diff(a: str, b: str) -> list[str]:
    """The lines in which two composed YAML configs differ."""
    la, lb = a.splitlines(), b.splitlines()
    import difflib

    return [line for line in difflib.unified_diff(la, lb, lineterm="", n=0) if line[:1] in "+-" and line[:3] not in ("+++", "---")]


@pytest.fixture(scope="module")
def tea_and_grpo(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("smoke")
    tea = smoke(tmp, name="tea")
    grpo = smoke(tmp, "algorithm.adv_estimator=grpo", name="grpo")
    return tea, grpo


def test_smoke_default_trains_tea_end_to_end(tea_and_grpo):
    (proc, out), _ = tea_and_grpo
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = _load(out)
    assert result["ok"] and result["config"]["adv_estimator"] == "tea"
    assert result["config"]["rollout_n"] == 8 and result["config"]["N"] == 64
    _assert_trained(result, steps=3)
    assert "[smoke] step 3/3" in proc.stdout and "PASSED" in proc.stdout
    assert "Traceback" not in proc.stderr
    # it says which keys it replaced, and records them
    assert "actor_rollout_ref.model.path" in result["replaced"] and "actor_rollout_ref.model.path:" in proc.stdout


def test_smoke_grpo_runs_and_only_estimator_keys_differ(tea_and_grpo):
    (_, tea_out), (proc, out) = tea_and_grpo
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = _load(out)
    assert result["config"]["adv_estimator"] == "grpo"
    _assert_trained(result, steps=3)
    diff = _estimator_diff(open(tea_out / "composed_config.yaml").read(), open(out / "composed_config.yaml").read())
    # paths under the two output directories and the private Ray temp dirs differ by construction;
    # everything else is the estimator
    diff = [line for line in diff if "/tea/" not in line and "/grpo/" not in line and "tea-smoke-ray-" not in line]
    assert sorted(diff) == sorted(["-  adv_estimator: tea", "+  adv_estimator: grpo"]), diff


def test_smoke_recipe_prefix_tea_on_two_ranks(tmp_path):
    # the README's command: the recipe config (KL loss, so a reference model too), FSDP2 over gloo on two ranks
    proc, out = smoke(tmp_path, "--recipe", "recipes/config/prefix_tea.yaml", "--steps", "2", "--ranks", "2",
                      name="prefix_tea_2ranks", cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = _load(out)
    assert result["config"]["ranks"] == 2 and result["config"]["adv_estimator"] == "prefix_tea"
    assert result["config"]["config_name"] == "prefix_tea"
    assert all("actor/kl_loss" in r["data"] for r in result["steps"])  # the recipe's KL loss ran, against the ref model
    _assert_trained(result, steps=2)
    # two rollout replicas, one per rank, each received every sync
    assert sorted({r["replica"] for r in result["weight_sync"]}) == [0, 1]


def test_smoke_bon_with_validation(tmp_path):
    proc, out = smoke(tmp_path, "--steps", "1", "algorithm.adv_estimator=bon", name="bon")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = _load(out)
    assert result["config"]["N"] == 8  # bon: N = m filled in
    _assert_trained(result, steps=1, estimator_advantages=False)


@pytest.mark.parametrize(
    "args, message",
    [
        (["algorithm.adv_estimator=nope"], "'nope' is not a registered advantage estimator"),
        (["--reward-fn", "missing.py:score"], "missing.py does not exist"),
        (["algorithm.adv_estimator=bon", "algorithm.tea.N=64"], "the exact bon estimator needs N <= m"),
        (["algorithm.tea.NN=3"], "Could not override 'algorithm.tea.NN'"),
    ],
)
def test_broken_launch_fails_fast_with_one_message(tmp_path, args, message):
    start = time.time()
    proc, out = smoke(tmp_path, *args)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.count("error:") == 1
    assert time.time() - start < 60  # before Ray starts
    assert not (out / "smoke.log").exists()


def test_reward_fn_from_a_file_is_used(tmp_path):
    from tea_verl.launch.common import LaunchError, parse_reward_fn

    f = tmp_path / "my_reward.py"
    f.write_text("def score(data_source, solution_str, ground_truth, extra_info=None, **kw):\n    return float(len(solution_str))\n")
    assert parse_reward_fn(f"{f}:score") == (str(f), "score")
    with pytest.raises(LaunchError, match="has no function 'nope'"):
        parse_reward_fn(f"{f}:nope")


def _sigint_as_at_a_terminal():
    # A shell starts a background job (`pytest ... &`) with SIGINT ignored, its children inherit
    # that, and Python then leaves SIGINT ignored: the Ctrl-C below would be lost and the smoke run
    # would finish with 0. At a terminal, Ctrl-C reaches a process whose SIGINT is the default.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_stops_ray_and_the_workers(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-m", "tea_verl.cli", "smoke", "--out", str(tmp_path / "out")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(), cwd=tmp_path,
        preexec_fn=_sigint_as_at_a_terminal,
    )
    marker, lines = None, []
    for line in proc.stdout:
        lines.append(line)
        m = re.search(r"_temp_dir: \S+ -> (\S+)", line)
        marker = marker or (m.group(1) if m else None)
        if line.startswith("[smoke] starting Ray"):
            break
    assert marker, "".join(lines)
    deadline = time.time() + 120  # wait until Ray's processes exist, then interrupt
    while time.time() < deadline and not _processes_with(marker):
        time.sleep(1)
    assert _processes_with(marker), "Ray never started"
    time.sleep(5)
    proc.send_signal(signal.SIGINT)
    rc = proc.wait(timeout=120)
    assert rc == 130, proc.stderr.read()[-2000:]
    time.sleep(2)
    assert _processes_with(marker) == [], "Ray processes outlived the interrupted smoke run"


def test_cpu_platform_answers_for_the_cpu():
    import torch

    from tea_verl.cpu.platform import PlatformCPU

    p = PlatformCPU()
    assert p.device_name == "cpu" and p.current_device() == torch.device("cpu")
    assert p.communication_backend_name() == "gloo" and p.ray_resource_name() == "GPU"
    mod = p.device_module
    state = mod.get_rng_state()
    a = torch.rand(3)
    mod.set_rng_state(state)
    assert torch.equal(a, torch.rand(3))
    free, total = mod.mem_get_info()
    assert 0 <= free <= total
    with pytest.raises(AttributeError, match="CpuDeviceModule"):
        mod.some_new_cuda_api  # noqa: B018


def test_a_run_past_its_timeout_is_stopped_with_one_message(tmp_path):
    proc, out = smoke(tmp_path, "--timeout", "15")
    assert proc.returncode == 2 and "error: the run took more than 15 s and was stopped" in proc.stderr
    marker = re.search(r"_temp_dir: \S+ -> (\S+)", proc.stdout).group(1)
    time.sleep(2)
    assert _processes_with(marker) == []
