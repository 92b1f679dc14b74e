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
import verl  # noqa: F401 - the plugin registers the estimators and the best_of_n manager
from omegaconf import OmegaConf

from tea_verl.integrations.verl import memory
from tea_verl.integrations.verl.preflight import advice, check

pytestmark = pytest.mark.slow  # starts Ray, trains or runs subprocesses: pytest -m 'not slow' leaves it out

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


# ------------------------------------------------------------------------------------------------
# Slurm: recipes/slurm/tea_verl.sbatch under test shims for sbatch, srun, scontrol and hostname
# (tests/fixtures/slurm_shims: there is no Slurm here). Every "node" is this machine: a real Ray
# head and a real Ray worker, two `ray start` processes on loopback, and verl's real trainer on the
# CPU backend with the smoke run's tiny model, one FSDP rank on each node.
# ------------------------------------------------------------------------------------------------
SHIMS = os.path.join(FIXTURES, "slurm_shims")
SBATCH = os.path.join(ROOT, "recipes", "slurm", "tea_verl.sbatch")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _processes_under(path: str) -> list[str]:
    import psutil

    out = []
    for p in psutil.process_iter(["pid", "cmdline"]):
        try:
            cmd = " ".join(p.info["cmdline"] or [])
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if path in cmd:
            out.append(f"{p.info['pid']}: {cmd[:160]}")
    return out


def _shim_env(tmp_path, ray_tmp: str, **extra) -> dict[str, str]:
    from tea_verl.launch.common import cpu_env

    settings = dict(
        PATH=SHIMS + os.pathsep + os.environ["PATH"],
        PYTHON=sys.executable,
        RAY_TMPDIR=ray_tmp,
        RAY_PORT=str(_free_port()),
        RAY_DASHBOARD_PORT=str(_free_port()),
        RAY_WAIT_S="180",
        RAY_START_ARGS="--object-store-memory=200000000",
        SHIM_SRUN_LOG=str(tmp_path / "srun.log"),
        TEA_GPU_MEMORY_GIB="80",
        # Ray refuses a second node on a loopback head unless told that this is deliberate
        RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="1",
    )
    return cpu_env(**{**settings, **extra})


def test_the_sbatch_script_runs_a_cpu_job_on_a_ray_head_and_a_worker_and_stops_them(tmp_path):
    import tempfile

    from tea_verl.launch.common import hydra_value, read_jsonl
    from tea_verl.launch.smoke import DEFAULT_REWARD, build_assets, smoke_overrides

    assets, data, out = tmp_path / "assets", tmp_path / "data", tmp_path / "outputs"
    build_assets(str(assets))
    data.mkdir()
    shutil.copy(assets / "train.parquet", data / "train.parquet")
    shutil.copy(assets / "val.parquet", data / "core250.parquet")
    # the smoke run's CPU keys, less those the script sets itself (nodes, GPUs, data, outputs, steps,
    # logger) and Ray's start-up keys (the driver joins the cluster the script started)
    theirs = ("trainer.nnodes", "trainer.n_gpus_per_node", "trainer.total_training_steps", "trainer.logger",
              "trainer.validation_data_dir", "trainer.default_local_dir", "data.train_files", "data.val_files")
    keys = {k: v for k, v in smoke_overrides(str(tmp_path / "run"), str(assets), DEFAULT_REWARD, 1, 2, "", 4, 8).items()
            if k not in theirs and not k.startswith("ray_kwargs.")}
    ray_tmp = tempfile.mkdtemp(prefix="tea-slurm-")  # short: Ray's socket paths must stay under 108 bytes
    metrics = tmp_path / "metrics.jsonl"
    env = _shim_env(tmp_path, ray_tmp, RECIPE="ultrafeedback", METHOD="tea", DATA_DIR=str(data), OUT_DIR=str(out),
                    TOTAL_STEPS="1", LOGGER="[console,file]", VERL_FILE_LOGGER_PATH=str(metrics),
                    HF_TOKEN="hf_secret_value_do_not_print", NCCL_DEBUG="WARN")
    try:
        run = subprocess.run(["sbatch", "--nodes=2", SBATCH, *(f"++{k}={hydra_value(v)}" for k, v in keys.items())],
                             cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
        log = run.stdout + run.stderr
        assert run.returncode == 0, log[-6000:]
        # Ray's head on the first node, a worker on the second, the driver on the head
        steps = (tmp_path / "srun.log").read_text().splitlines()
        assert any(s.startswith("node-a: ") and " start --head --node-ip-address=127.0.0.1 " in s for s in steps), steps
        assert any(s.startswith("node-b: ") and " start --address=127.0.0.1:" in s for s in steps), steps
        assert any(s.startswith("node-a: ") and " -m tea_verl.main_ppo " in s for s in steps), steps
        assert "[slurm] Ray: 2/2 nodes up" in log
        # the pass-through variables are named, their values never printed
        assert "HF_TOKEN" in log and "NCCL_DEBUG" in log and "hf_secret_value_do_not_print" not in log
        # a finished step with the best-of-N validation, written under the absolute OUT_DIR
        rows = {int(r["step"]): r["data"] for r in read_jsonl(str(metrics))}
        assert 1 in rows, log[-4000:]
        assert any("/exact_best@" in k for k in rows[1]), sorted(rows[1])
        assert rows[1]["critic/advantages/max"] > rows[1]["critic/advantages/min"]
        assert glob.glob(str(out / "ultrafeedback_tea_m8_N64" / "validation" / "*.jsonl")), os.listdir(out)
        assert "[slurm] Ray stopped on every node" in log
    finally:
        import time

        deadline = time.time() + 30  # the raylets reap their workers within seconds of the SIGTERM
        while _processes_under(ray_tmp) and time.time() < deadline:
            time.sleep(1)
        left = _processes_under(ray_tmp)
        for line in left:  # never leave a stray Ray behind, even when the test fails
            import psutil

            psutil.Process(int(line.split(":")[0])).kill()
        shutil.rmtree(ray_tmp, ignore_errors=True)
    assert left == [], left


def test_a_node_whose_ray_start_fails_fails_the_job_at_once(tmp_path):
    import tempfile
    import time

    ray_tmp = tempfile.mkdtemp(prefix="tea-slurm-")
    # Ray's own refusal of a second node on a loopback head stands in for a node that cannot join
    env = _shim_env(tmp_path, ray_tmp, DATA_DIR=str(tmp_path), OUT_DIR=str(tmp_path), RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0", RAY_WAIT_S="600")
    started = time.time()
    try:
        run = subprocess.run(["sbatch", SBATCH], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    finally:
        deadline = time.time() + 30
        while _processes_under(ray_tmp) and time.time() < deadline:
            time.sleep(1)
        left = _processes_under(ray_tmp)
        shutil.rmtree(ray_tmp, ignore_errors=True)
    assert run.returncode != 0
    assert "`ray start` on node-b exited before every node joined" in run.stderr, run.stderr[-3000:]
    assert time.time() - started < 300  # not the 600 s of RAY_WAIT_S
    assert "-m tea_verl.main_ppo" not in (tmp_path / "srun.log").read_text()  # no driver
    assert left == [], left


def test_the_sbatch_dry_run_of_the_papers_1b_setup_passes_preflight(tmp_path, data_files):
    data = os.path.dirname(data_files[0].split("=", 1)[1])
    env = _shim_env(tmp_path, str(tmp_path), DRY_RUN="1", RECIPE="hh_rlhf", PRESET="llama1b_m16", METHOD="prefix_tea",
                    DATA_DIR=data, OUT_DIR=str(tmp_path / "out"))
    run = subprocess.run(["bash", SBATCH], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "preflight: OK (prefix_tea, rollout.n = 16, N = 128, val_kwargs.n = 128)" in run.stdout
    saved = OmegaConf.load(tmp_path / "out" / "hh_rlhf_prefix_tea_llama1b_m16" / "composed_config.yaml")
    assert saved.actor_rollout_ref.model.path == "meta-llama/Llama-3.2-1B-Instruct"
    assert not (tmp_path / "srun.log").exists()  # a dry run starts nothing


def test_the_sbatch_script_refuses_relative_paths_and_a_missing_clone(tmp_path):
    env = _shim_env(tmp_path, str(tmp_path), DATA_DIR="data/uf", OUT_DIR=str(tmp_path))
    run = subprocess.run(["sbatch", SBATCH], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and "DATA_DIR=data/uf is relative" in run.stderr
    env.update(DATA_DIR=str(tmp_path), HF_HOME="hf")
    run = subprocess.run(["sbatch", SBATCH], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and "HF_HOME=hf is relative" in run.stderr
    run = subprocess.run(["sbatch", SBATCH], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and "is not a tea-verl clone" in run.stderr
    assert not (tmp_path / "srun.log").exists()  # nothing started


def test_the_presets_benchmark_prints_the_tables_the_recipe_readme_quotes():
    run = subprocess.run([sys.executable, "-m", "benchmarks.presets"], cwd=ROOT, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "TEA_GPU_MEMORY_GIB": "80"})
    assert run.returncode == 0, run.stderr[-3000:]
    rows = [line for line in run.stdout.splitlines() if line.startswith(("llama", "qwen"))]
    assert len(rows) == 3 * len(PRESETS)  # two servers and one work row per preset
    assert any(line.startswith("llama1b_m64") and line.endswith("128,000") for line in rows)  # 250 x 512
    # every row of the README's tables is a row the script prints today
    readme = open(os.path.join(ROOT, "recipes", "README.md")).read()
    quoted = [line for line in readme.splitlines() if line.startswith(("llama", "qwen"))]
    assert len(quoted) >= 10 and set(quoted) <= set(rows), sorted(set(quoted) - set(rows))
