#!/usr/bin/env bash
# Installs the CPU training stack (TRL + PyTorch CPU) in its own virtual environment, used by the
# TRL smoke-training test and by `router-r1 train` with a `backend: trl` config.
#
#   venv: ${ROUTER_R1_TRL_VENV:-~/.cache/router-r1/trl-venv}
#
# Why a separate venv: torch (CPU, 2.13.0 from the wheel on local disk), transformers, TRL and
# accelerate are ~1 GB; the main .venv (gateway, lint, tests) stays light and the project's code
# reaches this venv through PYTHONPATH (the repository root), never an install. The versions
# match pyproject's `train-trl` extra. Idempotent: a stamp keyed by the versions skips the work.
set -euo pipefail
cd "$(dirname "$0")/.."

TORCH_VERSION="2.13.0"
TRL_VERSION="1.16.0"
VENV="${ROUTER_R1_TRL_VENV:-$HOME/.cache/router-r1/trl-venv}"
KEY="torch-${TORCH_VERSION}_trl-${TRL_VERSION}"
STAMP="$VENV/.installed-$KEY"

source scripts/lib/cached_venv.sh

if [ ! -f "$STAMP" ]; then
  t0=$(date +%s)
  echo "==> TRL (CPU): creating $VENV (torch==$TORCH_VERSION from local disk, trl==$TRL_VERSION)"
  fresh_torch_venv "$VENV" "$TORCH_VERSION"
  # The project's runtime dependencies (the rollout core imports server.episode), then TRL.
  "$VENV/bin/python" -m pip install "torch==$TORCH_VERSION" "trl==$TRL_VERSION" \
    "pydantic>=2.7,<3" "pydantic-settings>=2.3,<3" "pyyaml>=6.0,<7" "httpx>=0.27,<0.29" \
    "httpx-aiohttp>=0.1.8,<0.3" "aiohttp>=3.10,<4" "orjson>=3.10,<4" "typer>=0.12,<1" \
    "fastapi>=0.115,<1" "prometheus-client>=0.20,<1" "redis>=5.0,<9" 2>&1 | pip_progress
  "$VENV/bin/python" -c "import torch, trl, transformers; print('    torch', torch.__version__, 'trl', trl.__version__, 'transformers', transformers.__version__)"
  mark_installed "$VENV" "$STAMP"
  echo "==> TRL (CPU): venv ready in $(elapsed "$t0")"
fi
