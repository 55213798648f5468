"""The vLLM-on-CPU launcher's pure parts and its process-group stop (no vLLM needed)."""

from __future__ import annotations

import os
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from local_stack.processes import ManagedProcess
from local_stack.vllm_cpu import (
    VLLM_CPU_VERSION,
    VLLMServerConfig,
    parse_metrics,
    stop_vllm_server,
    vllm_installed,
    vllm_server,
    vllm_venv_dir,
)

METRICS = textwrap.dedent(
    """
    # HELP vllm:prefix_cache_hits_total Prefix cache hits, in terms of number of cached tokens.
    # TYPE vllm:prefix_cache_hits_total counter
    vllm:prefix_cache_hits_total{engine="0",model_name="m"} 288.0
    vllm:prefix_cache_hits_created{engine="0",model_name="m"} 1.79e+09
    vllm:prompt_tokens_by_source_total{source="local_compute"} 64.0
    vllm:prompt_tokens_by_source_total{source="local_cache_hit"} 36.0
    vllm:num_requests_running{engine="0",model_name="m"} 2.0
    vllm:weird{x="1"} NaN
    """
)


def _config(tmp_path: Path, **changes: Any) -> VLLMServerConfig:
    python = tmp_path / "bin" / "python"
    return VLLMServerConfig(model_dir=tmp_path / "model", port=8123, python=python, **changes)


def test_command_runs_the_api_server_module_with_the_cpu_settings(tmp_path: Path) -> None:
    command = _config(tmp_path, served_model_name="policy").command()
    assert command[:3] == [
        str(tmp_path / "bin" / "python"),
        "-m",
        "vllm.entrypoints.openai.api_server",
    ]
    joined = " ".join(command)
    for flag in (
        f"--model {tmp_path / 'model'}",
        "--served-model-name policy",
        "--host 127.0.0.1",
        "--port 8123",
        "--dtype float32",
        "--enforce-eager",
        "--block-size 32",
        "--enable-prefix-caching",
        "--enable-prompt-tokens-details",
    ):
        assert flag in joined
    no_cache = _config(tmp_path, enable_prefix_caching=False).command()
    assert "--no-enable-prefix-caching" in no_cache
    assert "--enable-prefix-caching" not in no_cache


def test_environment_is_offline_and_sizes_the_kv_cache(tmp_path: Path) -> None:
    env = _config(tmp_path, kv_cache_gib=3).environment({"PATH": "/bin", "HF_HUB_OFFLINE": "0"})
    assert env["PATH"] == "/bin"
    assert env["HF_HUB_OFFLINE"] == "1"
    assert env["VLLM_CPU_KVCACHE_SPACE"] == "3"


def test_urls(tmp_path: Path) -> None:
    config = _config(tmp_path)
    assert config.base_url == "http://127.0.0.1:8123/v1"
    assert config.root_url == "http://127.0.0.1:8123"


def test_parse_metrics_sums_over_labels_and_skips_comments() -> None:
    values = parse_metrics(METRICS)
    assert values["vllm:prefix_cache_hits_total"] == 288.0
    assert values["vllm:prompt_tokens_by_source_total"] == 100.0
    assert values["vllm:num_requests_running"] == 2.0
    assert "# HELP" not in " ".join(values)


def test_venv_location_and_install_stamp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ROUTER_R1_VLLM_VENV", raising=False)
    monkeypatch.setenv("ROUTER_R1_CACHE", str(tmp_path))
    venv = vllm_venv_dir()
    assert venv == tmp_path / "vllm-venv"
    assert not vllm_installed()
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").write_text("")
    assert not vllm_installed()  # no stamp: the install did not finish
    (venv / f".installed-vllm-cpu-{VLLM_CPU_VERSION}_torch-x").touch()
    assert vllm_installed()
    monkeypatch.setenv("ROUTER_R1_VLLM_VENV", str(tmp_path / "elsewhere"))
    assert vllm_venv_dir() == tmp_path / "elsewhere"


def test_a_missing_venv_is_explained(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"scripts/setup_vllm\.sh"):
        vllm_server(_config(tmp_path), tmp_path)


# A parent that ignores SIGINT (as a stuck server would) with a child in its process group,
# like vLLM's API server and its engine-core process.
PARENT_WITH_CHILD = textwrap.dedent(
    """
    import signal, subprocess, sys, time
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    open(sys.argv[1], "w").write(str(child.pid))
    time.sleep(600)
    """
)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:  # a zombie is not alive
        return stat.read().split()[2] != "Z"


def test_stop_ends_the_whole_process_group(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    server = ManagedProcess(
        name="fake vllm",
        command=[sys.executable, "-c", PARENT_WITH_CHILD, str(pid_file)],
        ready_url="http://127.0.0.1:1/health",
        log_path=tmp_path / "fake.log",
    )
    server.start()
    deadline = time.monotonic() + 20
    while not pid_file.exists() or not pid_file.read_text():
        assert time.monotonic() < deadline, server.log_tail()
        time.sleep(0.05)
    child = int(pid_file.read_text())
    assert _alive(child)
    stop_vllm_server(server, timeout_s=1.0)
    assert server.process is not None
    assert server.process.poll() is not None
    deadline = time.monotonic() + 10
    while _alive(child):
        assert time.monotonic() < deadline, "the child in the server's group survived"
        time.sleep(0.05)
