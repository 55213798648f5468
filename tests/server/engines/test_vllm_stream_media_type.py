"""A completion stream answered with something other than an event stream (a proxy's HTML
error page, a JSON body) is a malformed reply (502), not a stream cut short (503)."""

from __future__ import annotations

import httpx
import pytest

from server.engines import EngineError, EngineUnavailable, GenerationParams, VLLMEngine
from tests.fakes.vllm_server import DEFAULT_BASE_URL


def engine_answering(content_type: str, body: bytes) -> VLLMEngine:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body, headers={"content-type": content_type})

    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return VLLMEngine(client, base_url=DEFAULT_BASE_URL, model="m")


@pytest.mark.parametrize(
    ("content_type", "body"),
    [("text/html", b"<html>502 Bad Gateway</html>"), ("application/json", b'{"ok": true}')],
)
async def test_a_body_that_is_not_an_event_stream_is_malformed(
    content_type: str, body: bytes
) -> None:
    engine = engine_answering(content_type, body)
    with pytest.raises(EngineError, match=f"malformed reply \\({content_type}") as raised:
        async for _ in engine.stream_generate([1], GenerationParams(max_tokens=5)):
            pass
    assert not isinstance(raised.value, EngineUnavailable)


async def test_an_event_stream_with_a_charset_is_read() -> None:
    event = b'data: {"choices": [{"index": 0, "text": "x", "finish_reason": "stop"}]}\n\n'
    engine = engine_answering("text/event-stream; charset=utf-8", event + b"data: [DONE]\n\n")
    chunks = [c async for c in engine.stream_generate([1], GenerationParams(max_tokens=5))]
    assert chunks[-1].finish_reason == "stop"
