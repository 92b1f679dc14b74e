"""Cluster readiness: the presets compose and pass preflight against the installed verl, preflight
computes vLLM's start-up memory from real model configs, and the launch scripts refuse what breaks
on a cluster. No GPU and no model download: shapes come from config.json files built here or from
the presets' table (tea_verl.integrations.verl.memory.KNOWN_MODELS)."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys

import pytest
from omegaconf import OmegaConf

import verl  # noqa: F401 - the plugin registers the estimators and the best_of_n manager
from tea_verl.integrations.verl import memory
from tea_verl.integrations.verl.preflight import advice, check

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RECIPE_CONFIG = os.path.join(ROOT, "recipes", "config")
FIXTURES = os.path.join(ROOT, "tests", "fixtures")
PRESETS = sorted(os.path.basename(p)[:-5] for p in glob.glob(os.path.join(RECIPE_CONFIG, "preset", "[!_]*.yaml")))
PAPER = {"llama1b_m16": (16, 128), "llama1b_m32": (32, 256), "llama1b_m64": (64, 512), "qwen3_4b": (16, 128), "llama8b_lora": (16, 128)}


def compose_recipe(method, overrides=()):
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=RECIPE_CONFIG, version_base=None):
        return compose(method, overrides=list(overrides))


@pytest.fixture(scope="module")
def data_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("data")
    for name in ("train.parquet", "core250.parquet"):
        shutil.copy(os.path.join(FIXTURES, "ultrafeedback_binarized", "test_prefs.parquet"), d / name)
    return [f"data.train_files={d / 'train.parquet'}", f"data.val_files={d / 'core250.parquet'}"]


@pytest.fixture(autouse=True)
def gpu_80(monkeypatch):
    monkeypatch.setenv("TEA_GPU_MEMORY_GIB", "80")


def test_the_paper_setups_are_presets():
    assert set(PAPER) <= set(PRESETS)


@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_composes_and_passes_preflight(preset, data_files):
    cfg = compose_recipe("prefix_tea", [*data_files, f"preset={preset}"])
    assert check(cfg) == []
    # every server's length is explicit: none falls back to the model's max_position_embeddings
    assert OmegaConf.select(cfg, "actor_rollout_ref.rollout.max_model_len") is not None
    assert OmegaConf.select(cfg, "reward.reward_model.rollout.max_model_len") is not None
    text = open(os.path.join(RECIPE_CONFIG, "preset", f"{preset}.yaml")).read()
    if preset in PAPER:
        m, n = PAPER[preset]
        assert (cfg.actor_rollout_ref.rollout.n, cfg.algorithm.tea.N, cfg.actor_rollout_ref.rollout.val_kwargs.n) == (m, n, n)
        assert "Paper's:" in text and "Ours:" in text  # which values are whose
        assert cfg.reward.reward_model.model_path.startswith("Skywork/Skywork-Reward-V2-")
    else:
        assert "not the paper's" in text


def test_the_presets_pick_the_papers_models():
    pick = {p: OmegaConf.select(compose_recipe("tea", [f"preset={p}"]), "actor_rollout_ref.model") for p in PAPER}
    assert all(pick[p].path == "meta-llama/Llama-3.2-1B-Instruct" for p in PAPER if p.startswith("llama1b"))
    assert pick["qwen3_4b"].path == "Qwen/Qwen3-4B"
    lora = pick["llama8b_lora"]
    assert lora.path.startswith("meta-llama/Llama-3.1-8B") and lora.lora_rank == 64 and lora.target_modules == "all-linear"
    cfg = compose_recipe("tea", ["preset=llama8b_lora"])
    assert cfg.actor_rollout_ref.rollout.load_format == "safetensors" and cfg.actor_rollout_ref.rollout.layered_summon
    assert cfg.actor_rollout_ref.actor.optim.lr == pytest.approx(10 * compose_recipe("tea", ["preset=llama1b_m16"]).actor_rollout_ref.actor.optim.lr)
    assert compose_recipe("tea", ["preset=qwen3_4b"]).data.apply_chat_template_kwargs.enable_thinking is False


def test_preflight_refuses_the_8b_reward_model_without_max_model_len(data_files):
    cfg = compose_recipe("tea", [*data_files, "reward.reward_model.model_path=Skywork/Skywork-Reward-V2-Llama-3.1-8B"])
    problems = check(cfg)
    assert [p.key for p in problems] == ["reward.reward_model.rollout.max_model_len"], [str(p) for p in problems]
    msg = problems[0].message
    # 32 layers x 8 KV heads x 128 x 2 (K, V) x 2 bytes = 128 KiB per token: 16 GiB for 131072 tokens
    assert "max_model_len = 131072" in msg and "16.0 GiB of KV cache" in msg and "vLLM would refuse to start" in msg
    assert "gives 24.0 GiB" in msg and "at most 65536 fits" in msg
    # the value it names fits
    fixed = compose_recipe("tea", [*data_files, "reward.reward_model.model_path=Skywork/Skywork-Reward-V2-Llama-3.1-8B",
                                   "reward.reward_model.rollout.max_model_len=65536"])
    assert check(fixed) == []
    too_long = compose_recipe("tea", [*data_files, "reward.reward_model.model_path=Skywork/Skywork-Reward-V2-Llama-3.1-8B",
                                      "reward.reward_model.rollout.max_model_len=66560"])
    assert [p.key for p in check(too_long)] == ["reward.reward_model.rollout.max_model_len"]


def test_too_little_memory_for_the_weights_names_the_utilisation(data_files):
    cfg = compose_recipe("tea", [*data_files, "preset=llama8b_lora", "reward.reward_model.rollout.gpu_memory_utilization=0.1"])
    problems = [p for p in check(cfg)]
    assert [p.key for p in problems] == ["reward.reward_model.rollout.gpu_memory_utilization"], [str(p) for p in problems]
    assert "too little even for the weights" in problems[0].message and "tensor_model_parallel_size" in problems[0].message


def test_a_bad_gpu_size_is_a_clear_problem(data_files, monkeypatch):
    monkeypatch.setenv("TEA_GPU_MEMORY_GIB", "eighty")
    problems = check(compose_recipe("tea", data_files))
    assert any(p.key == "TEA_GPU_MEMORY_GIB" and "not a positive number" in p.message for p in problems)


def test_a_smaller_gpu_changes_the_verdict(data_files, monkeypatch):
    cfg = compose_recipe("tea", [*data_files, "preset=llama1b_m16"])
    assert check(cfg) == []
    monkeypatch.setenv("TEA_GPU_MEMORY_GIB", "24")  # 0.3 x 24 GiB cannot hold an 8B reward model's 14 GiB
    assert [p.key for p in check(cfg)] == ["reward.reward_model.rollout.gpu_memory_utilization"]


def test_validation_load_is_a_note_not_a_problem(data_files):
    cfg = compose_recipe("tea", [*data_files, "preset=qwen3_4b", "actor_rollout_ref.rollout.gpu_memory_utilization=0.2"])
    assert check(cfg) == []
    notes = [a for a in advice(cfg) if a.startswith("validation:")]
    assert len(notes) == 1 and "val_kwargs.n = 128" in notes[0] and "waves" in notes[0]


def test_the_cpu_rollout_is_not_checked():
    cfg = OmegaConf.create({"actor_rollout_ref": {"rollout": {"name": "hf_cpu"}, "model": {"path": "x"}}})
    assert memory.servers(cfg) == [] and memory.check_memory(cfg) == ([], [])


def test_an_unknown_model_is_a_note(tmp_path):
    cfg = OmegaConf.create({"actor_rollout_ref": {"rollout": {"name": "vllm"}, "model": {"path": str(tmp_path / "none")}}})
    problems, notes = memory.check_memory(cfg)
    assert problems == [] and "its start-up memory was not checked" in notes[0]


@pytest.mark.parametrize("arch", ["llama_tied", "llama", "qwen3", "reward"])
def test_the_shape_read_from_config_json_counts_the_real_parameters(arch, tmp_path):
    """A config-built model's parameter count and KV size against the module's arithmetic."""
    import torch
    import transformers

    if arch == "qwen3":
        cfg = transformers.Qwen3Config(vocab_size=320, hidden_size=64, intermediate_size=96, num_hidden_layers=3,
                                       num_attention_heads=4, num_key_value_heads=2, head_dim=32, tie_word_embeddings=False,
                                       max_position_embeddings=4096)
        model = transformers.Qwen3ForCausalLM(cfg)
    else:
        cfg = transformers.LlamaConfig(vocab_size=320, hidden_size=64, intermediate_size=96, num_hidden_layers=3,
                                       num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=arch == "llama_tied",
                                       max_position_embeddings=2048, num_labels=1)
        model = (transformers.LlamaForSequenceClassification if arch == "reward" else transformers.LlamaForCausalLM)(cfg)
    model.save_pretrained(tmp_path)
    shape, where = memory.model_shape(str(tmp_path))
    assert where == str(tmp_path / "config.json")
    n = sum(p.numel() for p in model.parameters())
    qk_norms = 2 * cfg.num_hidden_layers * 32 if arch == "qwen3" else 0  # Qwen3's per-head q/k norms: not counted (0.01 %)
    assert shape.params(reward_head=arch == "reward") == n - qk_norms
    assert shape.max_position_embeddings == cfg.max_position_embeddings
    # KV bytes per token: K and V of every layer's KV heads, split over tensor-parallel ranks
    with torch.no_grad():
        out = model(torch.zeros(1, 5, dtype=torch.long), use_cache=True) if arch != "reward" else None
    if out is not None:
        kv = out.past_key_values
        per_token = sum(t.numel() for layer in range(cfg.num_hidden_layers) for t in (kv.layers[layer].keys, kv.layers[layer].values)) // 5
        assert shape.kv_bytes_per_token(1, dtype_bytes=2) == per_token * 2
        assert shape.kv_bytes_per_token(2, dtype_bytes=2) == per_token  # 2 KV heads over 2 ranks
        assert shape.kv_bytes_per_token(4, dtype_bytes=2) == per_token  # fewer heads than ranks: replicated


def test_the_table_matches_the_published_sizes():
    """The presets' models, against their published parameter counts (billions)."""
    published = {"meta-llama/Llama-3.2-1B-Instruct": 1.24, "meta-llama/Llama-3.1-8B": 8.03, "Qwen/Qwen3-4B": 4.02,
                 "Qwen/Qwen2.5-1.5B-Instruct": 1.54}
    for name, b in published.items():
        assert memory.KNOWN_MODELS[name].params() / 1e9 == pytest.approx(b, abs=0.01)
    assert memory.KNOWN_MODELS["meta-llama/Llama-3.1-8B"].kv_bytes_per_token(1) == 128 * 1024


def test_the_lora_preset_says_what_could_not_be_checked_without_vllm(data_files):
    import importlib.util

    cfg = compose_recipe("tea", [*data_files, "preset=llama8b_lora"])
    assert check(cfg) == []
    if importlib.util.find_spec("vllm") is None:
        assert any("verl's own check of the LoRA rank" in a for a in advice(cfg))
    bad = compose_recipe("tea", [*data_files, "preset=llama8b_lora", "actor_rollout_ref.model.lora_rank=1024"])
    assert any(p.key == "actor_rollout_ref.model.lora_rank" for p in check(bad))


# ------------------------------------------------------------------------------------------------
# launch scripts
# ------------------------------------------------------------------------------------------------
def _script_env(tmp_path, **extra):
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    for name in ("train.parquet", "core250.parquet"):
        shutil.copy(os.path.join(FIXTURES, "ultrafeedback_binarized", "test_prefs.parquet"), data / name)
    return {**os.environ, "DRY_RUN": "1", "DATA_DIR": str(data), "PYTHON": sys.executable, "OUT_DIR": str(tmp_path / "out"),
            "TEA_GPU_MEMORY_GIB": "80", **extra}


def _run(script, env):
    return subprocess.run(["bash", os.path.join(ROOT, "recipes", script)], capture_output=True, text=True, timeout=300, env=env, cwd=ROOT)


def test_a_preset_dry_run_uses_the_preset_and_only_the_variables_given(tmp_path):
    out = _run("hh_rlhf/run_single_node.sh", _script_env(tmp_path, PRESET="llama1b_m32", METHOD="prefix_tea", TOTAL_STEPS="7"))
    assert out.returncode == 0, out.stderr[-3000:]
    assert "preflight: OK (prefix_tea, rollout.n = 32, N = 256, val_kwargs.n = 256)" in out.stdout
    saved = OmegaConf.load(tmp_path / "out" / "hh_rlhf_prefix_tea_llama1b_m32" / "composed_config.yaml")
    assert saved.actor_rollout_ref.model.path == "meta-llama/Llama-3.2-1B-Instruct" and saved.trainer.total_training_steps == 7
    over = _run("hh_rlhf/run_single_node.sh", _script_env(tmp_path, PRESET="llama1b_m32", M="24", METHOD="tea"))
    assert over.returncode == 0 and "rollout.n = 24, N = 256" in over.stdout  # a variable given overrides the preset


def test_an_unknown_preset_lists_the_presets(tmp_path):
    out = _run("ultrafeedback/run_single_node.sh", _script_env(tmp_path, PRESET="llama70b"))
    assert out.returncode == 2 and "PRESET=llama70b is not a preset" in out.stderr
    assert all(p in out.stderr for p in PRESETS) and "_llama1b" not in out.stderr


@pytest.mark.parametrize("var", ["OUT_DIR", "DATA_DIR"])
def test_multi_node_refuses_relative_paths(tmp_path, var):
    out = _run("ultrafeedback/run_multi_node.sh", _script_env(tmp_path, **{var: "relative/dir"}))
    assert out.returncode == 2 and f"{var}=relative/dir is relative" in out.stderr and "absolute path" in out.stderr


def test_multi_node_passes_tokens_and_nccl_settings_without_printing_them(tmp_path):
    env = _script_env(tmp_path, PRESET="llama1b_m16", HF_TOKEN="hf_secret_value", WANDB_API_KEY="wandb_secret", NCCL_IB_HCA="mlx5_0",
                      NCCL_SOCKET_IFNAME="eth0", UNRELATED_VAR="x")
    out = _run("ultrafeedback/run_multi_node.sh", env)
    assert out.returncode == 0, out.stderr[-3000:]
    passes = next(line for line in out.stdout.splitlines() if line.startswith("# runtime env passes:")).split(":", 1)[1].split()
    assert {"HF_TOKEN", "WANDB_API_KEY", "NCCL_IB_HCA", "NCCL_SOCKET_IFNAME", "VERL_USE_EXTERNAL_MODULES"} <= set(passes)
    assert "UNRELATED_VAR" not in passes
    assert "hf_secret_value" not in out.stdout + out.stderr and "wandb_secret" not in out.stdout + out.stderr
