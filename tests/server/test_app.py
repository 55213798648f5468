"""The app factory's own wiring: the policy engine's default client."""

from __future__ import annotations

import httpx

from router_model.registry import Registry
from server.app import create_app
from server.settings import Settings
from tests.fakes.registry import REGISTRY_FILE
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
