#!/usr/bin/env bash
# Anthropic HH-RLHF helpful prompts with a reward model: GRPO, TEA or Prefix-TEA under identical budgets (Ray cluster via ray job submit).
#
#   METHOD=tea bash recipes/hh_rlhf/run_multi_node.sh                # METHOD: grpo | tea | prefix_tea
#   DRY_RUN=1 METHOD=grpo bash recipes/hh_rlhf/run_multi_node.sh     # print the composed config and the preflight verdict only
#   METHOD=tea bash recipes/hh_rlhf/run_multi_node.sh trainer.logger='[console,wandb]'   # extra Hydra overrides
#
# Prepare the data first: python recipes/data/prepare_hh_rlhf.py --out "$DATA_DIR" --tokenizer "$POLICY_PATH"
# Every setting can be overridden from the environment: the recipe's own below, the shared budget
# (M, N, VAL_N, models, lengths, steps, ...) in recipes/common.sh.
set -euo pipefail

DATA_DIR="${DATA_DIR:-$HOME/data/tea_verl/hh_rlhf}"
NNODES="${NNODES:-2}"
RAY_ADDRESS="${RAY_ADDRESS:-http://127.0.0.1:8265}"   # the cluster's Ray dashboard (job API)
RECIPE=hh_rlhf

# shellcheck source=recipes/common.sh
source "$(dirname "$0")/../common.sh"
run_multi_node "$@"
