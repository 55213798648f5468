"""How ``POST /v1/chat/completions`` is reached: the ASGI fast path in front of FastAPI."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from server.api.chat_completions import router as chat_router
from server.api.chat_completions.router import PATH, ChatCompletionsFastPath
from server.errors import APIError
from tests.server.api.conftest import GatewayFactory

MESSAGES = [{"role": "user", "content": "Say hi"}]


class _Inner:
    """The app behind the fast path (FastAPI in the gateway): records what reached it."""

    def __init__(self) -> None:
        self.paths: list[tuple[str, str]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.paths.append((scope["method"], scope["path"]))
        await JSONResponse({"served_by": "inner"})(scope, receive, send)


@pytest.fixture
def handled(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Replaces the serving function: the paths the fast path served itself."""
    seen: list[str] = []

    async def serve(request: Request) -> Response:
        seen.append(request.url.path)
        if request.headers.get("x-fail"):
            raise APIError(429, "slow down", code="rate_limit_exceeded")
        return JSONResponse({"served_by": "fast path"})

    monkeypatch.setattr(chat_router, "create_chat_completion", serve)
    return seen


async def _post(app: Any, path: str, root_path: str = "", **kwargs: Any) -> httpx.Response:
    transport = httpx.ASGITransport(app=app, root_path=root_path)
    async with httpx.AsyncClient(transport=transport, base_url="http://gw.test") as http:
        return await http.request(kwargs.pop("method", "POST"), path, json={}, **kwargs)


async def test_post_to_the_route_is_served_without_the_app_behind(handled: list[str]) -> None:
    inner = _Inner()
    response = await _post(ChatCompletionsFastPath(inner), PATH)
    assert response.json() == {"served_by": "fast path"}
    assert handled == [PATH]
    assert inner.paths == []


async def test_under_a_root_path_too(handled: list[str]) -> None:
    inner = _Inner()
    response = await _post(ChatCompletionsFastPath(inner), "/api" + PATH, root_path="/api")
    assert response.json() == {"served_by": "fast path"}
    assert inner.paths == []


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", PATH), ("PUT", PATH), ("POST", PATH + "/"), ("POST", "/v1/completions")],
)
async def test_anything_else_goes_on_to_the_app(handled: list[str], method: str, path: str) -> None:
    inner = _Inner()
    response = await _post(ChatCompletionsFastPath(inner), path, method=method)
    assert response.json() == {"served_by": "inner"}
    assert handled == []
    assert inner.paths == [(method, path)]


async def test_a_failure_is_the_openai_envelope(handled: list[str]) -> None:
    response = await _post(ChatCompletionsFastPath(_Inner()), PATH, headers={"x-fail": "1"})
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "rate_limit_exceeded"


async def test_the_gateway_serves_it_under_a_root_path(gateway: GatewayFactory) -> None:
    async with gateway() as gw:
        transport = httpx.ASGITransport(app=gw.app, root_path="/gateway")
        async with httpx.AsyncClient(transport=transport, base_url="http://gw.test") as http:
            response = await http.post(
                "/gateway" + PATH, json={"model": "Gemma-2-27B-Instruct", "messages": MESSAGES}
            )
    assert response.status_code == 200
    assert response.json()["object"] == "chat.completion"
    assert len(response.headers["x-request-id"]) == 32  # the request-id middleware ran first


async def test_the_schema_still_documents_the_route(gateway: GatewayFactory) -> None:
    async with gateway() as gw:
        schema = (await gw.http.get("/openapi.json")).json()
    assert "post" in schema["paths"][PATH]
