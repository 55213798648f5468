"""``router-r1 eval run`` / ``report`` over real HTTP: the gateway (fake engine and upstreams)
served by uvicorn on a free loopback port."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from typer.testing import CliRunner

from router_model.eval import SMOKE_FILE, load_questions
from router_r1.cli import app
from server.app import create_app
from server.settings import Settings
from tests.fakes.registry import default_registry
from tests.fakes.upstream_server import FakeUpstream, UpstreamScript
from tests.router_model.eval.test_eval_e2e import _policy


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def proxy_url() -> Iterator[str]:
    items = load_questions(SMOKE_FILE)
    engine = _policy(items)
    upstream = FakeUpstream(
        {
            "qwen/qwen2.5-7b-instruct": UpstreamScript(reply="Paris is the answer."),
            "meta/llama-3.1-70b-instruct": UpstreamScript(reply="Paris"),
        }
    )
    gateway = create_app(
        Settings.from_flat(dict(upstream_backoff_base_s=0.001, upstream_total_timeout_s=5.0)),
        registry=default_registry(),
        engine_transport=httpx.ASGITransport(app=engine.app),
        upstream_transport=httpx.ASGITransport(app=upstream.app),
    )
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(gateway, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("the gateway did not start within 20 s")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)


@pytest.mark.slow
def test_eval_run_and_report_over_http(proxy_url: str, tmp_path: Path) -> None:
    runner = CliRunner()
    router_dir, model_dir = tmp_path / "router", tmp_path / "largest"
    result = runner.invoke(
        app,
        [
            "eval",
            "run",
            "--target",
            "router-r1",
            "--base-url",
            proxy_url,
            "--out",
            str(router_dir),
            "--no-progress",
            "--concurrency",
            "4",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "smoke20: EM 0.750" in result.output
    assert (router_dir / "report" / "table.md").exists()
    largest = runner.invoke(
        app,
        [
            "eval",
            "run",
            "--target",
            "LLaMA-3.1-70B-Instruct",
            "--base-url",
            proxy_url,
            "--out",
            str(model_dir),
            "--no-progress",
            "--limit",
            "5",
        ],
    )
    assert largest.exit_code == 0, largest.output
    assert "smoke20: EM 0.200" in largest.output  # "Paris" is right once in the first five
    merged = runner.invoke(
        app, ["eval", "report", str(router_dir), str(model_dir), "--out", str(tmp_path / "both")]
    )
    assert merged.exit_code == 0, merged.output
    assert "| router-r1 | 0.750 | 0.750 |" in merged.output
    assert "| LLaMA-3.1-70B-Instruct | 0.200 | 0.200 |" in merged.output
    assert (tmp_path / "both" / "cost_vs_em.png").stat().st_size > 1000
    unknown = runner.invoke(
        app,
        ["eval", "run", "--target", "nope", "--base-url", proxy_url, "--out", str(tmp_path / "x")],
    )
    assert unknown.exit_code == 1
    assert "not served" in unknown.output
