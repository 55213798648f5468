#!/usr/bin/env bash
# Installs veRL 0.9.1 (with PyTorch CPU) in its own virtual environment, so the tests can check
# the Router-R1 agent loop, reward function and configs against veRL's REAL classes and Hydra
# configs on a machine without a GPU (GPU training machines install `.[train-verl]` with their
# CUDA torch instead).
#
#   venv: ${ROUTER_R1_VERL_VENV:-~/.cache/router-r1/verl-venv}
#
# veRL's base requirements miss a few modules its agent loop imports (they sit in its
# `verl-core` extra, which also pulls GPU-only packages): installed by name below.
# Idempotent: a stamp keyed by the versions skips the work.
set -euo pipefail
cd "$(dirname "$0")/.."

TORCH_VERSION="2.13.0"
VERL_VERSION="0.9.1"
VENV="${ROUTER_R1_VERL_VENV:-$HOME/.cache/router-r1/verl-venv}"
KEY="torch-${TORCH_VERSION}_verl-${VERL_VERSION}"
STAMP="$VENV/.installed-$KEY"

source scripts/lib/cached_venv.sh

if [ ! -f "$STAMP" ]; then
  t0=$(date +%s)
  echo "==> veRL (CPU check venv): creating $VENV (torch==$TORCH_VERSION from local disk, verl==$VERL_VERSION)"
  fresh_torch_venv "$VENV" "$TORCH_VERSION"
  "$VENV/bin/python" -m pip install "torch==$TORCH_VERSION" "verl==$VERL_VERSION" \
    cachetools uvicorn fastapi msgspec pyzmq \
    "pydantic-settings>=2.3,<3" "httpx>=0.27,<0.29" "httpx-aiohttp>=0.1.8,<0.3" "orjson>=3.10,<4" \
    "typer>=0.12,<1" "redis>=5.0,<9" 2>&1 | pip_progress
  "$VENV/bin/python" -c "import verl.experimental.agent_loop, torch; print('    verl imports; torch', torch.__version__)"
  mark_installed "$VENV" "$STAMP"
  echo "==> veRL (CPU check venv): ready in $(elapsed "$t0")"
fi
