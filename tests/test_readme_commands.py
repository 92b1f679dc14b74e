"""Every command in the code blocks of README.md and of the pages its commands moved to
(:data:`PAGES`), parsed from them so that they cannot drift:
run here as written (in the set-up environment, as after ``source .venv/bin/activate``) with the
exit status and output the README documents, or listed with the reason it cannot run here.

A README command missing from :data:`EXPECTED` fails the test: add it with its expectation.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

pytestmark = pytest.mark.slow  # starts Ray, trains or runs subprocesses: pytest -m 'not slow' leaves it out

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PREFIXES = ("bash ", ".venv/bin/", "tea-verl", "python ", "DRY_RUN=", "for ", "source ")


PAGES = ("README.md", "docs/results.md", "docs/tools.md", "docs/frameworks.md")


def readme_commands() -> list[str]:
    text = "\n".join(open(os.path.join(ROOT, page), encoding="utf-8").read() for page in PAGES)
    commands = []
    for block in re.findall(r"^```[^\n]*\n(.*?)^```", text, re.S | re.M):
        pending = ""
        for line in block.splitlines():
            line = pending + line.strip()
            pending = ""
            if line.endswith("\\"):
                pending = line[:-1].rstrip() + " "
                continue
            if line.startswith(PREFIXES):
                commands.append(" ".join(re.sub(r"\s+#.*$", "", line).split()))  # comment off, spaces normalised
    return commands


# command -> ("ci", why) | ("skip", why) | ("run", exit status, text that must appear in stdout+stderr)
EXPECTED = {
    "bash scripts/setup.sh && .venv/bin/tea-verl demo": ("ci", ".ci/run runs it verbatim on a fresh clone"),
    "bash scripts/setup.sh && .venv/bin/python -m pytest -q": ("ci", ".ci/run runs it verbatim (this suite)"),
    "tea-verl --help": ("run", 0, "bon-report"),
    "tea-verl demo --help": ("run", 0, "--quick"),
    "tea-verl smoke --help": ("run", 0, "--reward-fn"),
    "tea-verl diagnose --help": ("run", 0, "--batch-prompts"),
    "tea-verl bon-report --help": ("run", 0, "--extrapolate"),
    "tea-verl preflight --help": ("run", 0, "--save-config"),
    "tea-verl preflight algorithm.tea.NN=64": ("run", 2, "error: the config does not compose: Could not override 'algorithm.tea.NN'."),
    "tea-verl diagnose no_such_dir --m 8 --N 64": ("run", 1, "error: no_such_dir: no such file or directory"),
    "tea-verl diagnose no_such_dir --m 0 --N 64": ("run", 1, "error: --m (rollouts per prompt in training) must be >= 2, got 0"),
    "tea-verl demo --N 4": ("run", 2, "error: --N 4 is not above --m 8"),
    "python -m tea_verl.main_ppo algorithm.adv_estimator=tea algorithm.tea.N=64 actor_rollout_ref.rollout.n=8 ...your usual data/model/trainer overrides...":
        ("skip", "a template: the user's data, model and GPUs complete it (tea-verl smoke runs the same entry point on the CPU)"),
    'python -m verl.trainer.main_ppo --config-path="$(tea-verl config-dir)" --config-name=tea_trainer algorithm.adv_estimator=tea algorithm.tea.N=64 actor_rollout_ref.rollout.n=8 ...':
        ("skip", "a template: the user's data, model and GPUs complete it"),
    "python -m benchmarks.lm": ("skip", "about 50 minutes (9 runs of verl's trainer at m = 16, N = 128); tests/test_lm.py runs the same experiment code with 2 estimators x 2 steps"),
    "python -m benchmarks.lm --estimators bon,tea,prefix_tea --out lm_paper": ("skip", "about 25 minutes; the same code as the line above"),
    "python -m benchmarks.lm --m 16 --estimators grpo,prefix_tea,prefix_tea_gev --out lm_m16": ("skip", "about 34 minutes; the same code as the line above"),
    "python -m benchmarks.lm --estimators grpo,tea,prefix_tea --out lm_draw2": ("skip", "about 30 minutes; the same code as the line above"),
    "python -m benchmarks.lm --estimators grpo,oracle --out lm_oracle": ("skip", "about 48 minutes (the oracle trains on 64 rollouts per prompt); tests/test_lm.py checks the oracle's config"),
    "python -m benchmarks.lm --estimators grpo,tea --seeds 10 --out lm_seeds10": ("skip", "about an hour (20 runs); the same code as the default command, with --seeds"),
    "python -m benchmarks.lm --alignment": ("run", 0, "cos"),
    "tea-verl demo --lm --quick": ("skip", "about 4 minutes; tests/test_lm.py runs the same experiment code with 2 estimators x 2 steps"),
    "tea-verl demo --lm --help": ("run", 0, "--reward-fn"),
    "tea-verl smoke": ("ci", "tests/test_cpu_trainer.py runs it (test_smoke_default_trains_tea_end_to_end)"),
    "tea-verl smoke --reward-model --steps 1": ("ci", "tests/test_reward_model_route.py runs it (with a rollout dump directory)"),
    "tea-verl smoke algorithm.adv_estimator=grpo": ("ci", "tests/test_cpu_trainer.py runs it (test_smoke_grpo_runs_and_only_estimator_keys_differ)"),
    "tea-verl smoke --recipe recipes/config/prefix_tea.yaml --steps 2 --ranks 2": ("ci", "tests/test_cpu_trainer.py runs it (test_smoke_recipe_prefix_tea_on_two_ranks)"),
    "tea-verl diagnose $OUT/val --m 8 --N 64": ("run", 0, "recommendation: algorithm.adv_estimator="),
    "tea-verl bon-report $OUT/val": ("run", 0, "wrote "),
    "python recipes/data/prepare_ultrafeedback.py --out ~/data/tea_verl/ultrafeedback --tokenizer Qwen/Qwen2.5-1.5B-Instruct":
        ("skip", "downloads from the model hub; tests/test_recipes.py runs it on fixtures in the real schema"),
    "DRY_RUN=1 METHOD=tea bash recipes/ultrafeedback/run_single_node.sh": ("run", 1, "preflight: FAILED, 2 problem(s)"),
    "for METHOD in grpo tea prefix_tea; do METHOD=$METHOD bash recipes/ultrafeedback/run_single_node.sh; done":
        ("skip", "trains on 8 GPUs"),
    "tea-verl bon-report outputs/ultrafeedback_tea_m8_N64/validation": ("skip", "reads the validation dump of the GPU run above"),
    "tea-verl openrlhf --help": ("run", 0, "prefix_tea_gev"),
    "tea-verl openrlhf --algo.advantage.estimator tea --tea.N 64 --rollout.n_samples_per_prompt 8 ...your usual OpenRLHF arguments...":
        ("skip", "a template: OpenRLHF's training needs GPUs; tests/test_openrlhf.py runs the patched advantage step and a Ray actor"),
}


def test_every_readme_command_has_an_expectation():
    commands = readme_commands()
    assert len(commands) >= 10
    unknown = [c for c in commands if c not in EXPECTED]
    assert not unknown, "README commands without an expectation in tests/test_readme_commands.py:\n" + "\n".join(unknown)
    stale = [c for c in EXPECTED if c not in commands]
    assert not stale, "expectations for commands no longer in the README:\n" + "\n".join(stale)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """$OUT/val: a validation dump of 40 prompts x 64 scores from a bounded continuous law."""
    out = tmp_path_factory.mktemp("readme")
    val = out / "val"
    val.mkdir()
    rng = np.random.default_rng(0)
    with open(val / "3.jsonl", "w") as f:
        for p in range(40):
            for s in rng.beta(2.0, 5.0, 64) + 0.1 * p:
                f.write(json.dumps({"uid": f"p{p}", "score": float(s)}) + "\n")
    return out


@pytest.mark.parametrize("command", [c for c, e in EXPECTED.items() if e[0] == "run"])
def test_readme_command_runs_as_documented(command, workspace, tmp_path):
    _, status, text = EXPECTED[command]
    env = dict(os.environ)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")  # the activated .venv
    env["OUT"] = str(workspace)
    env["HOME"] = str(tmp_path)  # no ~/data: the dry run's data are missing, as on a fresh machine
    env["RAY_AUTH_MODE"] = "disabled"
    cwd = ROOT if ("recipes/" in command or "benchmarks." in command) else str(tmp_path)  # benchmarks run from a clone
    proc = subprocess.run(["bash", "-c", command], capture_output=True, text=True, env=env, cwd=cwd, timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode == status, f"{command}: exit {proc.returncode}, documented {status}\n{out[-3000:]}"
    assert text in out, f"{command}: {text!r} not in the output\n{out[-3000:]}"
    assert "Traceback" not in out, f"{command}: a traceback\n{out[-3000:]}"
    if status != 0:
        errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) <= 1, proc.stderr
