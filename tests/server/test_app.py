"""The app factory's own wiring: the policy engine's default client, the trace viewer and
the open-mode warning."""

from __future__ import annotations

import logging

import httpx
import pytest

from router_model.registry import Registry
from server.app import create_app
from server.auth import hash_key
from server.settings import Settings
from tests.fakes.registry import REGISTRY_FILE
from tests.server.api.conftest import running_gateway
from tests.server.upstream.helpers import closed_port


async def test_default_engine_client_reports_a_down_engine_as_503() -> None:
    """Through the real (aiohttp) engine transport: refused is unavailable, not a timeout."""
    registry = Registry.from_file(
        REGISTRY_FILE, environ={"ROUTER_R1_POLICY_URL": f"http://127.0.0.1:{closed_port()}/v1"}
    )
    app = create_app(
        Settings(),
        registry=registry,
        upstream_transport=httpx.MockTransport(lambda request: httpx.Response(500)),
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw.test") as http:
            chat = await http.post(
                "/v1/chat/completions",
                json={"model": "router-r1", "messages": [{"role": "user", "content": "Hi?"}]},
            )
    assert chat.status_code == 503
    error = chat.json()["error"]
    assert error["code"] == "policy_engine_unavailable"
    assert "unreachable" in error["message"]


async def test_the_viewer_is_mounted_and_open_mode_warns_that_traces_are_readable(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="router_r1")
    async with running_gateway() as gw:
        page = await gw.http.get("/ui/")
    assert page.status_code == 200
    assert "<html" in page.text.lower()
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("open mode" in w and "/ui/" in w and "trace" in w for w in warnings), warnings


async def test_a_keyed_gateway_does_not_warn_about_open_mode(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="router_r1")
    keys = f'[{{"id": "a", "sha256": "{hash_key("rr1-a")}"}}]'
    async with running_gateway(api_keys=keys):
        pass
    assert not any("open mode" in r.getMessage() for r in caplog.records)
