#!/usr/bin/env bash
# Builds llama.cpp's own HTTP server, `llama-server`, from source, once, and caches the binary:
#   - the source is the llama.cpp vendored in the llama-cpp-python sdist (pinned version; the
#     same llama.cpp the in-process engine uses), downloaded once into ~/.cache/router-r1/sdist/;
#   - only the `llama-server` target is built (cmake, Release, -DGGML_NATIVE=ON, static libs so
#     the binary needs no libllama/libggml beside it, no tests/examples/web UI, no HTTPS, no
#     downloads at build time);
#   - the binary lands in ~/.cache/router-r1/llama-server/<key>/bin/llama-server, where <key>
#     hashes the sdist version, the CPU's flags (a native build runs only on this kind of CPU)
#     and the cmake arguments. A prebuilt binary is never downloaded.
# Idempotent: when the binary is there, a run is an instant check. Prints the binary's path
# last. local_stack/llama_server_binary.py finds the same path from Python.
set -euo pipefail
cd "$(dirname "$0")/.."

LLAMA_CPP_PYTHON_VERSION=0.3.36  # = LLAMA_CPP_PYTHON_VERSION in llama_server_binary.py
# Keep in sync with local_stack/llama_server_binary.py (CMAKE_ARGS): both compute the key.
LLAMA_SERVER_CMAKE_ARGS=(
  -DCMAKE_BUILD_TYPE=Release
  -DGGML_NATIVE=ON
  -DBUILD_SHARED_LIBS=OFF
  -DLLAMA_BUILD_TESTS=OFF
  -DLLAMA_BUILD_EXAMPLES=OFF
  -DLLAMA_BUILD_TOOLS=ON
  -DLLAMA_BUILD_SERVER=ON
  -DLLAMA_BUILD_APP=OFF
  -DLLAMA_BUILD_UI=OFF
  -DLLAMA_USE_PREBUILT_UI=OFF
  -DLLAMA_OPENSSL=OFF
)
# x86-64: no AMX code (= NO_AMX_ARGS in llama_server_binary.py, which says why: in VMs that
# list AMX in CPUID without giving guests the tile state, the first AMX instruction faults and
# llama-server dies with SIGSEGV on any model). Explicit -mno-* flags win over -march=native.
if [ "$(uname -m)" = x86_64 ]; then
  LLAMA_SERVER_CMAKE_ARGS+=(
    "-DCMAKE_C_FLAGS=-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
    "-DCMAKE_CXX_FLAGS=-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
  )
fi

CACHE="${ROUTER_R1_CACHE:-$HOME/.cache/router-r1}"
PY=python3
[ -x .venv/bin/python ] && PY=.venv/bin/python

# The binary is built with -march=native: key it by the CPU so a cache copied to another kind
# of machine is never used there. local_stack/llama_server_binary.py computes the same key.
cpu_flags="$(grep -m1 -E '^(flags|Features)' /proc/cpuinfo 2>/dev/null || uname -m)"
key="$(printf '%s|%s|%s|%s' "$LLAMA_CPP_PYTHON_VERSION" "$(uname -m)" "$cpu_flags" \
  "${LLAMA_SERVER_CMAKE_ARGS[*]}" | sha256sum | cut -c1-16)"
dest="$CACHE/llama-server/$LLAMA_CPP_PYTHON_VERSION-$key"
binary="$dest/bin/llama-server"
if [ "${1:-}" = "--print-path" ]; then  # where the binary is (or will be); builds nothing
  echo "$binary"
  exit 0
fi
# One build at a time: a second run (another terminal, a helper, CI steps) waits for the
# first and then finds the binary.
mkdir -p "$CACHE"
exec 9>"$CACHE/.llama-server.lock"
flock 9
if [ -x "$binary" ]; then
  echo "==> llama-server is built: $binary"
  exit 0
fi

missing=()
command -v c++ >/dev/null && command -v cc >/dev/null || missing+=(build-essential)
command -v cmake >/dev/null || missing+=(cmake)
command -v ninja >/dev/null || missing+=(ninja-build)
if ((${#missing[@]})); then
  echo "==> installing build tools: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
fi

sdist_dir="$CACHE/sdist"
sdist="$sdist_dir/llama_cpp_python-$LLAMA_CPP_PYTHON_VERSION.tar.gz"
if [ ! -f "$sdist" ]; then
  echo "==> downloading the llama-cpp-python $LLAMA_CPP_PYTHON_VERSION sdist (77 MB, once)"
  mkdir -p "$sdist_dir"
  # --no-binary for this package only: its build dependencies (pip reads its metadata) may
  # come as wheels, which is much faster than building them too.
  "$PY" -m pip download -q --no-deps --no-binary llama-cpp-python -d "$sdist_dir" \
    "llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION" 2>&1 | grep -v "is ignored" || true
  [ -f "$sdist" ] || { echo "error: the sdist did not download to $sdist" >&2; exit 1; }
fi

mkdir -p "$dest"
work="$(mktemp -d "$dest/work.XXXXXX")"
trap 'rm -rf "$work"' EXIT
log="$dest/build.log"
echo "==> extracting llama.cpp from $(basename "$sdist")"
tar -xzf "$sdist" -C "$work" "llama_cpp_python-$LLAMA_CPP_PYTHON_VERSION/vendor/llama.cpp"
src="$work/llama_cpp_python-$LLAMA_CPP_PYTHON_VERSION/vendor/llama.cpp"
jobs="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}"
echo "==> building llama-server (once; about 10 min on 2 cores; log: $log)"
start=$(date +%s)
set +e
{
  cmake -S "$src" -B "$work/build" -G Ninja "${LLAMA_SERVER_CMAKE_ARGS[@]}" &&
    cmake --build "$work/build" --target llama-server -j "$jobs"
} >"$log" 2>&1 &
build_pid=$!
# ninja prints "[N/M] ..." per step: show one line in ten as progress (a read loop, not awk:
# mawk reads a pipe in blocks, so its progress would come in bursts).
steps=0
while IFS= read -r line; do
  case "$line" in
    "["[0-9]*/*"]"*)
      steps=$((steps + 1))
      if ((steps % 10 == 1)); then echo "    build step ${line%%]*}]"; fi
      ;;
  esac
done < <(tail -n +1 -F --pid="$build_pid" "$log" 2>/dev/null)
wait "$build_pid"
status=$?
set -e
if [ "$status" -ne 0 ] || [ ! -x "$work/build/bin/llama-server" ]; then
  echo "error: building llama-server failed (exit $status); last lines of $log:" >&2
  tail -n 30 "$log" >&2
  exit 1
fi
seconds=$(($(date +%s) - start))
mkdir -p "$dest/bin"
cp "$work/build/bin/llama-server" "$dest/bin/llama-server.partial"
mv "$dest/bin/llama-server.partial" "$binary"  # atomic: a half-copied binary is never found
echo "==> built llama-server in ${seconds} s ($(du -h "$binary" | cut -f1)): $binary"
"$binary" --version 2>&1 | sed 's/^/    /' | head -n 4 || true
