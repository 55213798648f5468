"""Every error in the OpenAI envelope, with the right status; the SDK raises its typed errors."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest

from server.app import create_app
from server.settings import Settings
from tests.fakes.registry import default_registry
from tests.server.api.conftest import GatewayFactory

QUESTION = [{"role": "user", "content": "Who wrote War and Peace?"}]


def _envelope(body: Any) -> dict[str, Any]:
    assert set(body) == {"error"}
    error: dict[str, Any] = body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] is None or isinstance(error["code"], str)
    return error


async def test_unknown_model_is_404(gateway: GatewayFactory) -> None:
    async with gateway() as gw:
        with pytest.raises(openai.NotFoundError) as info:
            await gw.client.chat.completions.create(model="gpt-17", messages=QUESTION)
    assert info.value.code == "model_not_found"
    assert "gpt-17" in info.value.message


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"tools": [{"type": "function", "function": {"name": "f"}}]}, "tools"),
        ({"n": 2}, "n"),
        ({"response_format": {"type": "json_object"}}, "response_format"),
        ({"logprobs": True}, "logprobs"),
    ],
)
async def test_profile_refuses_what_it_cannot_honour(
    gateway: GatewayFactory, extra: dict[str, Any], param: str
) -> None:
    async with gateway() as gw:
        with pytest.raises(openai.BadRequestError) as info:
            await gw.client.chat.completions.create(model="router-r1", messages=QUESTION, **extra)
    assert info.value.param == param
    assert param in info.value.message


async def test_image_content_is_refused_for_a_profile(gateway: GatewayFactory) -> None:
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
    async with gateway() as gw:
        with pytest.raises(openai.BadRequestError) as info:
            await gw.client.chat.completions.create(
                model="router-r1",
                messages=[{"role": "user", "content": [image]}],  # type: ignore[misc]
            )
    assert "image_url" in info.value.message


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"model": "router-r1"}, "messages"),
        ({"model": "router-r1", "messages": []}, "messages"),
        ({"model": "router-r1", "messages": QUESTION, "temperature": 9}, "temperature"),
        ({"messages": QUESTION}, "model"),
        ({"model": "router-r1", "messages": [{"role": "system", "content": "x"}]}, "user message"),
        ({"model": "Gemma-2-27B-Instruct", "messages": "hi"}, "messages"),
    ],
)
async def test_validation_errors_are_400_not_422(
    gateway: GatewayFactory, body: dict[str, Any], fragment: str
) -> None:
    async with gateway() as gw:
        response = await gw.http.post("/v1/chat/completions", json=body)
    assert response.status_code == 400
    error = _envelope(response.json())
    assert error["type"] == "invalid_request_error"
    assert fragment in error["message"]


async def test_invalid_json_is_400(gateway: GatewayFactory) -> None:
    async with gateway() as gw:
        response = await gw.http.post(
            "/v1/chat/completions", content=b"{nope", headers={"content-type": "application/json"}
        )
    assert response.status_code == 400
    assert "JSON" in _envelope(response.json())["message"]


async def test_too_large_is_413(gateway: GatewayFactory) -> None:
    async with gateway(max_request_bytes=1000) as gw:
        with pytest.raises(openai.APIStatusError) as info:
            await gw.client.chat.completions.create(
                model="router-r1", messages=[{"role": "user", "content": "x" * 5000}]
            )
    assert info.value.status_code == 413


async def test_unknown_path_and_method(gateway: GatewayFactory) -> None:
    async with gateway() as gw:
        missing = await gw.http.get("/v1/nothing")
        wrong = await gw.http.get("/v1/chat/completions")
    assert missing.status_code == 404
    _envelope(missing.json())
    assert wrong.status_code == 405
    _envelope(wrong.json())


async def test_request_id_is_echoed_or_made(gateway: GatewayFactory) -> None:
    async with gateway() as gw:
        given = await gw.http.get("/health", headers={"x-request-id": "abc-123"})
        made = await gw.http.get("/health")
    assert given.headers["x-request-id"] == "abc-123"
    assert len(made.headers["x-request-id"]) == 32


async def test_engine_unreachable_is_503_and_not_ready() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    app = create_app(
        Settings(),
        registry=default_registry(),
        engine_transport=httpx.MockTransport(refuse),
        upstream_transport=httpx.MockTransport(refuse),
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw.test") as http:
            chat = await http.post(
                "/v1/chat/completions", json={"model": "router-r1", "messages": QUESTION}
            )
            ready = await http.get("/ready")
            health = await http.get("/health")
    assert chat.status_code == 503
    assert _envelope(chat.json())["code"] == "policy_engine_unavailable"
    assert ready.status_code == 503
    assert "router-r1" in _envelope(ready.json())["message"]
    assert health.status_code == 200
