# Shared launcher of the best-of-N recipes; sourced by recipes/<name>/run_*.sh after they set
# their own environment (RECIPE, DATA_DIR; NNODES and RAY_ADDRESS for multi-node). Not executable
# on its own.
# shellcheck shell=bash

# The budget every recipe shares (one place, so that GRPO, TEA and Prefix-TEA runs of different
# recipes stay comparable); each can be overridden from the environment.
METHOD="${METHOD:-tea}"
POLICY_PATH="${POLICY_PATH:-Qwen/Qwen2.5-1.5B-Instruct}"
RM_PATH="${RM_PATH:-Skywork/Skywork-Reward-V2-Qwen3-1.7B}"
M="${M:-8}"                                 # rollouts per prompt in training (rollout.n)
N="${N:-64}"                                # deployment best-of-N (algorithm.tea.N)
VAL_N="${VAL_N:-64}"                        # samples per core250 prompt at validation
TRAIN_BATCH_SIZE="${TRAIN_BATCH_SIZE:-128}" # prompts per step
MAX_PROMPT_LENGTH="${MAX_PROMPT_LENGTH:-1024}"
MAX_RESPONSE_LENGTH="${MAX_RESPONSE_LENGTH:-1024}"
TOTAL_STEPS="${TOTAL_STEPS:-200}"
ROLLOUT_TP="${ROLLOUT_TP:-1}"               # vLLM tensor parallel size of the policy
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

# Hydra overrides from the environment: everything else comes from recipes/config/bon_recipe.yaml
OVERRIDES=(
  "data.train_files=$DATA_DIR/train.parquet"
  "data.val_files=$DATA_DIR/core250.parquet"
  "data.train_batch_size=$TRAIN_BATCH_SIZE"
  "data.max_prompt_length=$MAX_PROMPT_LENGTH"
  "data.max_response_length=$MAX_RESPONSE_LENGTH"
  "actor_rollout_ref.model.path=$POLICY_PATH"
  "actor_rollout_ref.rollout.n=$M"
  "actor_rollout_ref.rollout.tensor_model_parallel_size=$ROLLOUT_TP"
  "actor_rollout_ref.rollout.val_kwargs.n=$VAL_N"
  "algorithm.tea.N=$N"
  "reward.reward_model.model_path=$RM_PATH"
  "trainer.nnodes=$NNODES"
  "trainer.n_gpus_per_node=$GPUS_PER_NODE"
  "trainer.total_training_steps=$TOTAL_STEPS"
  "trainer.project_name=tea_verl_recipes"
  "trainer.experiment_name=${RECIPE}_${METHOD}_m${M}_N${N}"
  "trainer.validation_data_dir=$OUT_DIR/${RECIPE}_${METHOD}_m${M}_N${N}/validation"
  "trainer.default_local_dir=$OUT_DIR/${RECIPE}_${METHOD}_m${M}_N${N}/checkpoints"
  "trainer.logger=$LOGGER"
)

dry_run() {
  local saved="$OUT_DIR/${RECIPE}_${METHOD}_m${M}_N${N}/composed_config.yaml"
  echo "# dry run: $RECIPE, METHOD=$METHOD (no training is started)"
  "$PYTHON" -m tea_verl.cli preflight --save-config "$saved" --config-path "$CONFIG_DIR" --config-name "$METHOD" \
    "${OVERRIDES[@]}" "$@"
}

run_single_node() {
  if [ "$DRY_RUN" = "1" ]; then
    dry_run "$@"
    return
  fi
  "$PYTHON" -m tea_verl.main_ppo --config-path "$CONFIG_DIR" --config-name "$METHOD" "${OVERRIDES[@]}" "$@"
}

run_multi_node() {
  # The job's runtime env carries the plugin registration to every worker: the repository is the
  # working_dir (on every worker's PYTHONPATH) and VERL_USE_EXTERNAL_MODULES makes each
  # `import verl` import tea_verl.plugin, even where tea-verl is not pip-installed.
  local runtime_env
  runtime_env=$(printf '{"working_dir": "%s", "excludes": [".venv", ".git", "data", "outputs", "checkpoints", "demo_out"], "env_vars": {"VERL_USE_EXTERNAL_MODULES": "tea_verl.plugin", "TOKENIZERS_PARALLELISM": "true"}}' "$REPO_ROOT")
  local cmd=(ray job submit --address "$RAY_ADDRESS" --runtime-env-json "$runtime_env" --
    python -m tea_verl.main_ppo --config-path recipes/config --config-name "$METHOD" "${OVERRIDES[@]}" "$@")
  if [ "$DRY_RUN" = "1" ]; then
    dry_run "$@"
    echo "# would submit:"
    printf '%q ' "${cmd[@]}"
    echo
    return
  fi
  "${cmd[@]}"
}
