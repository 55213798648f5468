"""ManagedProcess: bounded readiness, explained failures, clean stop (with tiny Python children)."""

from __future__ import annotations

import sys
import textwrap
import time
from pathlib import Path

import pytest

from local_stack.processes import (
    ManagedProcess,
    ServerStartError,
    free_port,
    llama_server_environment,
)

HEALTH_SERVER = textwrap.dedent(
    """
    import http.server, sys, time
    time.sleep(float(sys.argv[2]))
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if self.path == "/health" else 404)
            self.end_headers()
        def log_message(self, *args):
            pass
    print("serving", flush=True)
    http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
    """
)


def _child(tmp_path: Path, code: str, *args: str) -> ManagedProcess:
    port = free_port()
    return ManagedProcess(
        name="child",
        command=[sys.executable, "-c", code, str(port), *args],
        ready_url=f"http://127.0.0.1:{port}/health",
        log_path=tmp_path / "child.log",
    )


def test_ready_then_stopped(tmp_path: Path) -> None:
    child = _child(tmp_path, HEALTH_SERVER, "0.3")
    child.start()
    try:
        took = child.wait_ready(20)
        assert 0.3 <= took < 20
        assert child.running()
    finally:
        child.stop()
    assert not child.running()
    assert "serving" in child.log_tail()


def test_a_child_that_exits_is_reported_with_its_log(tmp_path: Path) -> None:
    child = _child(tmp_path, "import sys; print('model file not found'); sys.exit(3)")
    child.start()
    with pytest.raises(ServerStartError, match="exited with status 3") as info:
        child.wait_ready(20)
    assert "model file not found" in str(info.value)


def test_readiness_is_bounded(tmp_path: Path) -> None:
    child = _child(tmp_path, "import time; print('loading', flush=True); time.sleep(60)")
    child.start()
    start = time.monotonic()
    try:
        with pytest.raises(ServerStartError, match=r"not ready within 0\.5 s") as info:
            child.wait_ready(0.5)
    finally:
        child.stop(timeout_s=5)
    assert time.monotonic() - start < 10
    assert "loading" in str(info.value)
    assert not child.running()


def test_a_cancelled_wait_stops_early(tmp_path: Path) -> None:
    child = _child(tmp_path, "import time; time.sleep(60)")
    child.start()
    try:
        with pytest.raises(ServerStartError, match="interrupted"):
            child.wait_ready(30, cancelled=lambda: True)
    finally:
        child.stop(timeout_s=5)


def test_llama_servers_wait_passively() -> None:
    assert llama_server_environment({})["OMP_WAIT_POLICY"] == "passive"
    assert llama_server_environment({"OMP_WAIT_POLICY": "active"})["OMP_WAIT_POLICY"] == "active"
