#!/usr/bin/env bash
# UltraFeedback prompts (HuggingFaceH4/ultrafeedback_binarized) with a reward model: GRPO, TEA or Prefix-TEA under identical budgets (one node).
#
#   METHOD=tea bash recipes/ultrafeedback/run_single_node.sh                # METHOD: grpo | tea | prefix_tea
#   DRY_RUN=1 METHOD=grpo bash recipes/ultrafeedback/run_single_node.sh     # print the composed config and the preflight verdict only
#   METHOD=tea bash recipes/ultrafeedback/run_single_node.sh trainer.logger='[console,wandb]'   # extra Hydra overrides
#
# Prepare the data first: python recipes/data/prepare_ultrafeedback.py --out "$DATA_DIR" --tokenizer "$POLICY_PATH"
# Every setting can be overridden from the environment: the recipe's own below, the shared budget
# (M, N, VAL_N, models, lengths, steps, ...) in recipes/common.sh.
set -euo pipefail

DATA_DIR="${DATA_DIR:-$HOME/data/tea_verl/ultrafeedback}"
RECIPE=ultrafeedback

# shellcheck source=recipes/common.sh
source "$(dirname "$0")/../common.sh"
run_single_node "$@"
