#!/usr/bin/env bash
# Anthropic HH-RLHF helpful prompts with a reward model: GRPO, TEA or Prefix-TEA under identical budgets (one node).
#
#   METHOD=tea bash recipes/hh_rlhf/run_single_node.sh                # METHOD: grpo | tea | prefix_tea
#   DRY_RUN=1 METHOD=grpo bash recipes/hh_rlhf/run_single_node.sh     # print the composed config and the preflight verdict only
#   METHOD=tea bash recipes/hh_rlhf/run_single_node.sh trainer.logger='[console,wandb]'   # extra Hydra overrides
#
# Prepare the data first: python recipes/data/prepare_hh_rlhf.py --out "$DATA_DIR" --tokenizer "$POLICY_PATH"
# Every setting below can be overridden from the environment.
set -euo pipefail

METHOD="${METHOD:-tea}"
DATA_DIR="${DATA_DIR:-$HOME/data/tea_verl/hh_rlhf}"
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
RECIPE=hh_rlhf

# shellcheck source=recipes/common.sh
source "$(dirname "$0")/../common.sh"
run_single_node "$@"
