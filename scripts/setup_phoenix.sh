#!/usr/bin/env bash
# Installs Arize Phoenix (an OpenTelemetry trace backend with an HTTP API) in its own virtual
# environment: the OTLP integration tests start `phoenix serve` from it and read the gateway's
# spans back through its REST API (tests/servers/phoenix_server.py).
#
#   venv: ${ROUTER_R1_PHOENIX_VENV:-$ROUTER_R1_CACHE/phoenix-venv}   (ROUTER_R1_CACHE: ~/.cache/router-r1)
#
# Why a separate venv: Phoenix brings its own pins (SQLAlchemy, strawberry-graphql, grpcio,
# pandas, ...) that have nothing to do with the gateway. Idempotent: a stamp keyed by the pinned
# version skips the work.
set -euo pipefail
cd "$(dirname "$0")/.."

PHOENIX_VERSION="20.26.1"
VENV="${ROUTER_R1_PHOENIX_VENV:-${ROUTER_R1_CACHE:-$HOME/.cache/router-r1}/phoenix-venv}"
KEY="arize-phoenix-${PHOENIX_VERSION}"
STAMP="$VENV/.installed-$KEY"

source scripts/lib/cached_venv.sh
PIP_PROGRESS="^ *(Collecting|Installing|Successfully|ERROR)"  # a long install: show it

if [ ! -f "$STAMP" ]; then
  t0=$(date +%s)
  echo "==> Phoenix: creating $VENV (arize-phoenix==$PHOENIX_VERSION)"
  rm -rf "$VENV"
  mkdir -p "$(dirname "$VENV")"
  "${PYTHON:-python3}" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip 2>&1 | pip_progress
  "$VENV/bin/python" -m pip install "arize-phoenix==$PHOENIX_VERSION" 2>&1 | pip_progress
  echo "    checking that Phoenix imports"
  "$VENV/bin/python" -c "import phoenix; print('    phoenix', phoenix.__version__)"
  [ -x "$VENV/bin/phoenix" ] || { echo "no phoenix command in $VENV/bin" >&2; exit 1; }
  mark_installed "$VENV" "$STAMP"
  echo "==> Phoenix: venv ready in $(elapsed "$t0") ($(du -sh "$VENV" | cut -f1))"
fi
