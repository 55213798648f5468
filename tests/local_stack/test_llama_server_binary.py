"""Finding the llama-server binary: the key the setup script uses, the errors."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from local_stack.llama_server_binary import (
    BINARY_ENV,
    CMAKE_ARGS,
    NO_AMX_ARGS,
    LlamaServerNotBuilt,
    build_cmake_args,
    build_key,
    cpu_flags,
    expected_binary_path,
    llama_server_binary,
)

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "setup_llama_server.sh"


def test_path_is_the_one_the_setup_script_builds(tmp_path: Path) -> None:
    env = {**os.environ, "ROUTER_R1_CACHE": str(tmp_path)}
    printed = subprocess.run(
        ["bash", str(SCRIPT), "--print-path"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.strip()
    assert Path(printed) == expected_binary_path(env)
    assert Path(printed).is_relative_to(tmp_path / "llama-server")
    assert list(tmp_path.iterdir()) == []  # --print-path builds nothing


def test_key_changes_with_what_the_build_depends_on() -> None:
    base = build_key("0.3.36", machine="x86_64", flags="flags : avx2")
    assert len(base) == 16
    assert build_key("0.3.36", machine="x86_64", flags="flags : avx2") == base
    assert build_key("0.3.37", machine="x86_64", flags="flags : avx2") != base
    assert build_key("0.3.36", machine="x86_64", flags="flags : avx512f") != base
    assert build_key("0.3.36", machine="aarch64", flags="flags : avx2") != base
    args = ("-DGGML_NATIVE=OFF",)
    assert build_key("0.3.36", machine="x86_64", flags="flags : avx2", cmake_args=args) != base


def test_x86_builds_leave_amx_out() -> None:
    """-march=native would compile AMX code that faults in VMs listing AMX without granting
    it (every llama-server start crashed on the CI machines)."""
    assert build_cmake_args("x86_64") == CMAKE_ARGS + NO_AMX_ARGS
    assert build_cmake_args("aarch64") == CMAKE_ARGS  # -mno-amx-* is x86-only
    for arg in NO_AMX_ARGS:
        assert "-mno-amx-tile -mno-amx-int8 -mno-amx-bf16" in arg


def test_cpu_flags_line(tmp_path: Path) -> None:
    intel = tmp_path / "intel"
    intel.write_text("processor\t: 0\nflags\t\t: fpu avx2\nflags\t\t: other\n")
    arm = tmp_path / "arm"
    arm.write_text("processor\t: 0\nFeatures\t: fp asimd\n")
    assert cpu_flags(intel) == "flags\t\t: fpu avx2"
    assert cpu_flags(arm) == "Features\t: fp asimd"
    assert cpu_flags(tmp_path / "absent") == os.uname().machine


def test_missing_binary_says_how_to_build_it(tmp_path: Path) -> None:
    with pytest.raises(LlamaServerNotBuilt, match=r"setup_llama_server\.sh"):
        llama_server_binary({"ROUTER_R1_CACHE": str(tmp_path)})


def test_the_built_binary_is_found(tmp_path: Path) -> None:
    env = {"ROUTER_R1_CACHE": str(tmp_path)}
    path = expected_binary_path(env)
    path.parent.mkdir(parents=True)
    path.write_text("#!/bin/sh\n")
    with pytest.raises(LlamaServerNotBuilt):  # not executable yet
        llama_server_binary(env)
    path.chmod(0o755)
    assert llama_server_binary(env) == path


def test_an_explicit_binary_wins(tmp_path: Path) -> None:
    binary = tmp_path / "my-llama-server"
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    assert llama_server_binary({BINARY_ENV: str(binary)}) == binary
    with pytest.raises(LlamaServerNotBuilt, match=BINARY_ENV):
        llama_server_binary({BINARY_ENV: str(tmp_path / "absent")})
