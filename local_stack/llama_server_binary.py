"""Where llama.cpp's own ``llama-server`` binary is on this machine.

``scripts/setup_llama_server.sh`` builds it from the llama.cpp vendored in the pinned
llama-cpp-python sdist and caches it as
``$ROUTER_R1_CACHE/llama-server/<version>-<key>/bin/llama-server``. The build is native
(``-DGGML_NATIVE=ON``), so ``<key>`` hashes the version, the machine, the CPU's flags and the
cmake arguments: a cache copied to another kind of CPU is never used there. This module
computes the same key (a test checks it against the script's ``--print-path``) and only
finds the file; nothing here builds. ``ROUTER_R1_LLAMA_SERVER_BIN`` names another binary
(a llama-server installed some other way) instead.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from pathlib import Path

__all__ = [
    "BINARY_ENV",
    "CMAKE_ARGS",
    "LLAMA_CPP_PYTHON_VERSION",
    "NO_AMX_ARGS",
    "SETUP_HINT",
    "LlamaServerNotBuilt",
    "build_cmake_args",
    "build_key",
    "cpu_flags",
    "expected_binary_path",
    "llama_server_binary",
]

LLAMA_CPP_PYTHON_VERSION = "0.3.36"
# The same list, in the same order, as LLAMA_SERVER_CMAKE_ARGS in the setup script.
CMAKE_ARGS: tuple[str, ...] = (
    "-DCMAKE_BUILD_TYPE=Release",
    "-DGGML_NATIVE=ON",
    "-DBUILD_SHARED_LIBS=OFF",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DLLAMA_BUILD_TOOLS=ON",
    "-DLLAMA_BUILD_SERVER=ON",
    "-DLLAMA_BUILD_APP=OFF",
    "-DLLAMA_BUILD_UI=OFF",
    "-DLLAMA_USE_PREBUILT_UI=OFF",
    "-DLLAMA_OPENSSL=OFF",
)
# x86-64 only (the same list as in the setup script): no AMX code. -march=native turns it on
# where CPUID lists AMX, but in VMs that list it without giving the tile state to guests
# (Firecracker here: the CI machines), the first AMX instruction (``ldtilecfg``, in
# ``ggml_backend_amx_mul_mat`` during warm-up) is a general protection fault: llama-server
# dies with SIGSEGV on any model, although ``ARCH_REQ_XCOMP_PERM`` succeeded. Explicit
# ``-mno-*`` ISA flags win over ``-march=native`` in GCC whatever their order. AVX-512 and
# the CPU weight repacking stay on (``--no-repack`` also avoids the crash, but gives those up).
NO_AMX_ARGS: tuple[str, ...] = (
    "-DCMAKE_C_FLAGS=-mno-amx-tile -mno-amx-int8 -mno-amx-bf16",
    "-DCMAKE_CXX_FLAGS=-mno-amx-tile -mno-amx-int8 -mno-amx-bf16",
)
BINARY_ENV = "ROUTER_R1_LLAMA_SERVER_BIN"
SETUP_HINT = "run scripts/setup_llama_server.sh (it builds llama-server once, ~10-20 min)"
_CPU_FLAGS_LINE = re.compile(r"^(flags|Features)")


class LlamaServerNotBuilt(FileNotFoundError):
    """The llama-server binary is not where the setup script puts it."""


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The first ``flags``/``Features`` line of ``cpuinfo`` (else the machine name), as
    ``grep -m1 -E '^(flags|Features)' /proc/cpuinfo || uname -m`` prints it."""
    try:
        lines = cpuinfo.read_text(errors="replace").splitlines()
    except OSError:
        lines = []
    return next((line for line in lines if _CPU_FLAGS_LINE.match(line)), os.uname().machine)


def build_cmake_args(machine: str | None = None) -> tuple[str, ...]:
    """The cmake arguments of the build on ``machine`` (default: this one)."""
    machine = machine or os.uname().machine
    return CMAKE_ARGS + NO_AMX_ARGS if machine == "x86_64" else CMAKE_ARGS


def build_key(
    version: str = LLAMA_CPP_PYTHON_VERSION,
    *,
    machine: str | None = None,
    flags: str | None = None,
    cmake_args: tuple[str, ...] | None = None,
) -> str:
    """16 hex digits naming one build: ``sha256("version|machine|flags|args")``."""
    machine = machine or os.uname().machine
    args = build_cmake_args(machine) if cmake_args is None else cmake_args
    fields = (version, machine, cpu_flags() if flags is None else flags, " ".join(args))
    return hashlib.sha256("|".join(fields).encode()).hexdigest()[:16]


def _cache_root(environ: Mapping[str, str]) -> Path:
    root = environ.get("ROUTER_R1_CACHE") or str(Path.home() / ".cache" / "router-r1")
    return Path(root)


def expected_binary_path(environ: Mapping[str, str] | None = None) -> Path:
    """Where the setup script puts (or has put) the binary for this machine."""
    env = os.environ if environ is None else environ
    key = build_key()
    return (
        _cache_root(env)
        / "llama-server"
        / f"{LLAMA_CPP_PYTHON_VERSION}-{key}"
        / "bin"
        / "llama-server"
    )


def llama_server_binary(environ: Mapping[str, str] | None = None) -> Path:
    """The llama-server executable; :class:`LlamaServerNotBuilt` saying how to build it."""
    env = os.environ if environ is None else environ
    override = env.get(BINARY_ENV)
    path = Path(override) if override else expected_binary_path(env)
    if not (path.is_file() and os.access(path, os.X_OK)):
        source = f"{BINARY_ENV}={override}" if override else SETUP_HINT
        raise LlamaServerNotBuilt(f"no llama-server executable at {path}: {source}")
    return path
