"""The llama-server command line the local stack and the tests start."""

from __future__ import annotations

from pathlib import Path

import pytest

from local_stack.llama_server_binary import BINARY_ENV, LlamaServerNotBuilt
from local_stack.llama_server_process import (
    LlamaServerOptions,
    llama_server_args,
    managed_llama_server,
)

BINARY = Path("/opt/llama-server")


def _flag(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


def test_command_line_has_the_recommended_flags() -> None:
    options = LlamaServerOptions(
        "policy", Path("/m/q.gguf"), 8091, alias="router", parallel=4, ctx_per_slot=4096
    )
    args = llama_server_args(options, BINARY)
    assert args[0] == str(BINARY)
    assert _flag(args, "--model") == "/m/q.gguf"
    assert _flag(args, "--alias") == "router"
    assert (_flag(args, "--host"), _flag(args, "--port")) == ("127.0.0.1", "8091")
    assert _flag(args, "--parallel") == "4"
    assert _flag(args, "--ctx-size") == str(4 * 4096)  # split evenly over the slots
    assert _flag(args, "--cache-ram") == "256"
    assert (_flag(args, "--threads"), _flag(args, "--threads-batch")) == ("2", "2")
    for flag in ("--jinja", "--offline", "--no-webui", "--metrics"):
        assert flag in args
    assert options.base_url == "http://127.0.0.1:8091/v1"
    assert options.ready_url == "http://127.0.0.1:8091/health"


def test_metrics_off_and_extra_args_last() -> None:
    options = LlamaServerOptions(
        "chat", Path("m.gguf"), 1, metrics=False, extra_args=("--seed", "1")
    )
    args = llama_server_args(options, BINARY)
    assert "--metrics" not in args
    assert args[-2:] == ["--seed", "1"]


@pytest.mark.parametrize(
    "bad",
    [{"parallel": 0}, {"ctx_per_slot": 0}, {"threads": 0}, {"cache_ram_mib": -1}],
)
def test_invalid_options_are_refused(bad: dict[str, int]) -> None:
    with pytest.raises(ValueError, match="must be"):
        LlamaServerOptions("x", Path("m.gguf"), 1, **bad)  # type: ignore[arg-type]


def test_managed_process_sleeps_openmp_threads(tmp_path: Path) -> None:
    process = managed_llama_server(LlamaServerOptions("p", Path("m"), 1), tmp_path, BINARY)
    assert process.env is not None
    assert process.env["OMP_WAIT_POLICY"] == "passive"
    assert process.log_path == tmp_path / "p.log"
    assert process.ready_url == "http://127.0.0.1:1/health"


def test_without_a_built_binary_the_error_says_how_to_build(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("ROUTER_R1_CACHE", str(tmp_path))
    monkeypatch.delenv(BINARY_ENV, raising=False)
    with pytest.raises(LlamaServerNotBuilt, match=r"setup_llama_server\.sh"):
        managed_llama_server(LlamaServerOptions("p", Path("m"), 1), tmp_path)
