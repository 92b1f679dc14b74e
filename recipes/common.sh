# Shared launcher of the best-of-N recipes; sourced by recipes/<name>/run_*.sh after they set
# their own environment (RECIPE, DATA_DIR; NNODES and RAY_ADDRESS for multi-node). Not executable
# on its own.
# shellcheck shell=bash

# The budget every recipe shares (one place, so that GRPO, TEA and Prefix-TEA runs of different
# recipes stay comparable); each can be overridden from the environment.
#
# PRESET=<name> selects one of recipes/config/preset/ (the paper's setups, sized; recipes/README.md).
# With a preset, the models, M, N, VAL_N, batch size, lengths and tensor-parallel size come from it,
# and only the variables below that you set yourself override it.
METHOD="${METHOD:-tea}"
PRESET="${PRESET:-}"
if [ -z "$PRESET" ]; then
  POLICY_PATH="${POLICY_PATH:-Qwen/Qwen2.5-1.5B-Instruct}"
  RM_PATH="${RM_PATH:-Skywork/Skywork-Reward-V2-Qwen3-1.7B}"
  M="${M:-8}"                                 # rollouts per prompt in training (rollout.n)
  N="${N:-64}"                                # deployment best-of-N (algorithm.tea.N)
  VAL_N="${VAL_N:-64}"                        # samples per core250 prompt at validation
  TRAIN_BATCH_SIZE="${TRAIN_BATCH_SIZE:-128}" # prompts per step
  MAX_PROMPT_LENGTH="${MAX_PROMPT_LENGTH:-1024}"
  MAX_RESPONSE_LENGTH="${MAX_RESPONSE_LENGTH:-1024}"
  ROLLOUT_TP="${ROLLOUT_TP:-1}"               # vLLM tensor parallel size of the policy
fi
TOTAL_STEPS="${TOTAL_STEPS:-200}"
NNODES="${NNODES:-1}"
GPUS_PER_NODE="${GPUS_PER_NODE:-8}"
OUT_DIR="${OUT_DIR:-outputs}"
LOGGER="${LOGGER:-[console]}"
DRY_RUN="${DRY_RUN:-0}"

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CONFIG_DIR="$REPO_ROOT/recipes/config"
# the clone's .venv (scripts/setup.sh) when there is one, so that the scripts work without activating it
if [ -z "${PYTHON:-}" ]; then
  if [ -x "$REPO_ROOT/.venv/bin/python" ]; then PYTHON="$REPO_ROOT/.venv/bin/python"; else PYTHON=python; fi
fi

case "$METHOD" in
  grpo | tea | prefix_tea | tea_gev | prefix_tea_gev) ;;
  *) echo "METHOD must be grpo, tea, prefix_tea, tea_gev or prefix_tea_gev (got '$METHOD')" >&2; exit 2 ;;
esac
if [ -n "$PRESET" ] && { [[ "$PRESET" == _* ]] || [ ! -f "$CONFIG_DIR/preset/$PRESET.yaml" ]; }; then
  presets=$(find "$CONFIG_DIR/preset" -name '[!_]*.yaml' -exec basename {} .yaml \; | sort | tr '\n' ' ')
  echo "PRESET=$PRESET is not a preset; choose one of: $presets(recipes/README.md)" >&2
  exit 2
fi
if [ -n "$PRESET" ]; then RUN_NAME="${RECIPE}_${METHOD}_${PRESET}"; else RUN_NAME="${RECIPE}_${METHOD}_m${M}_N${N}"; fi

# Hydra overrides from the environment: everything else comes from recipes/config/bon_recipe.yaml
# and the preset
OVERRIDES=(
  "data.train_files=$DATA_DIR/train.parquet"
  "data.val_files=$DATA_DIR/core250.parquet"
  "trainer.nnodes=$NNODES"
  "trainer.n_gpus_per_node=$GPUS_PER_NODE"
  "trainer.total_training_steps=$TOTAL_STEPS"
  "trainer.project_name=tea_verl_recipes"
  "trainer.experiment_name=$RUN_NAME"
  "trainer.validation_data_dir=$OUT_DIR/$RUN_NAME/validation"
  "trainer.default_local_dir=$OUT_DIR/$RUN_NAME/checkpoints"
  "trainer.logger=$LOGGER"
)
if [ -n "$PRESET" ]; then OVERRIDES+=("preset=$PRESET"); fi
set_if_given() {  # set_if_given VAR key: the override key=$VAR when VAR is set (always without a preset)
  if [ -n "${!1:-}" ]; then OVERRIDES+=("$2=${!1}"); fi
}
set_if_given MAX_PROMPT_LENGTH data.max_prompt_length
set_if_given MAX_RESPONSE_LENGTH data.max_response_length
set_if_given TRAIN_BATCH_SIZE data.train_batch_size
set_if_given POLICY_PATH actor_rollout_ref.model.path
set_if_given M actor_rollout_ref.rollout.n
set_if_given ROLLOUT_TP actor_rollout_ref.rollout.tensor_model_parallel_size
set_if_given VAL_N actor_rollout_ref.rollout.val_kwargs.n
set_if_given N algorithm.tea.N
set_if_given RM_PATH reward.reward_model.model_path

dry_run() {
  local saved="$OUT_DIR/$RUN_NAME/composed_config.yaml"
  echo "# dry run: $RECIPE, METHOD=$METHOD (no training is started)"
  "$PYTHON" -m tea_verl.cli preflight --save-config "$saved" --config-path "$CONFIG_DIR" --config-name "$METHOD" \
    "${OVERRIDES[@]}" "$@"
}

run_single_node() {
  # verl before 0.9.1 reads no entry points: name the plugin so every `import verl` registers it
  # (on 0.9.1 the entry point loads it too; registering twice is harmless)
  case ",${VERL_USE_EXTERNAL_MODULES:-}," in *,tea_verl.plugin,*) ;; *)
    export VERL_USE_EXTERNAL_MODULES="${VERL_USE_EXTERNAL_MODULES:+$VERL_USE_EXTERNAL_MODULES,}tea_verl.plugin" ;; esac
  if [ "$DRY_RUN" = "1" ]; then
    dry_run "$@"
    return
  fi
  "$PYTHON" -m tea_verl.main_ppo --config-path "$CONFIG_DIR" --config-name "$METHOD" "${OVERRIDES[@]}" "$@"
}

# What a job on other nodes needs from this shell: tokens for gated models and loggers, the HF
# cache, NCCL/InfiniBand settings (only those set here are passed)
PASS_THROUGH_PREFIXES=(HF_TOKEN HUGGING_FACE_HUB_TOKEN HF_HOME HF_HUB_CACHE TRANSFORMERS_CACHE WANDB_API_KEY WANDB_ENTITY WANDB_PROJECT WANDB_BASE_URL NCCL_ NVSHMEM_ UCX_ GLOO_SOCKET_IFNAME TP_SOCKET_IFNAME)

require_absolute() {  # require_absolute NAME: a job's working directory is Ray's per-node copy
  case "${!1}" in
    /*) ;;
    *) echo "$1=${!1} is relative: under ray job submit the job runs in Ray's unpacked copy of the repository on each node, so relative paths land in per-node temporary directories. Set $1 to an absolute path on a filesystem every node shares." >&2
       exit 2 ;;
  esac
}

runtime_env_json() {  # the job's runtime env: the plugin on every worker, and the pass-through variables
  REPO_ROOT="$REPO_ROOT" "$PYTHON" - "${PASS_THROUGH_PREFIXES[@]}" <<'PY'
import json, os, sys
prefixes = sys.argv[1:]
env = {"VERL_USE_EXTERNAL_MODULES": "tea_verl.plugin", "TOKENIZERS_PARALLELISM": "true"}
env.update({k: v for k, v in os.environ.items() if any(k == p or (p.endswith("_") and k.startswith(p)) for p in prefixes)})
print(json.dumps({"working_dir": os.environ["REPO_ROOT"], "excludes": [".venv", ".git", "data", "outputs", "checkpoints", "demo_out"],
                  "env_vars": env}))
PY
}

run_multi_node() {
  # The job's runtime env carries the plugin registration to every worker: the repository is the
  # working_dir (on every worker's PYTHONPATH) and VERL_USE_EXTERNAL_MODULES makes each
  # `import verl` import tea_verl.plugin, even where tea-verl is not pip-installed.
  require_absolute OUT_DIR
  require_absolute DATA_DIR
  local runtime_env
  runtime_env=$(runtime_env_json)
  local cmd=(ray job submit --address "$RAY_ADDRESS" --runtime-env-json "$runtime_env" --
    python -m tea_verl.main_ppo --config-path recipes/config --config-name "$METHOD" "${OVERRIDES[@]}" "$@")
  if [ "$DRY_RUN" = "1" ]; then
    dry_run "$@"
    echo "# would submit (the values of passed-through secrets are in the runtime env, not printed here):"
    local shown=("${cmd[@]}")
    shown[6]="<runtime env: the plugin and the pass-through variables below>"
    printf '%q ' "${shown[@]}"
    echo
    echo "# runtime env passes: $(echo "$runtime_env" | "$PYTHON" -c 'import json,sys; print(" ".join(sorted(json.load(sys.stdin)["env_vars"])))')"
    return
  fi
  "${cmd[@]}"
}
