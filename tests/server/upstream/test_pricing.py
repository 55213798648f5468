"""What a call costs: the serving deployment's prices, cached prompt tokens at the model's
``cached_input_per_1m`` when it declares one (the usage's ``prompt_tokens_details``)."""

from __future__ import annotations

import httpx
import orjson
import pytest

from router_model.registry import Pricing
from server.upstream import UpstreamPool
from tests.server.upstream.helpers import FAST, completion, deployed_registry, json_response

USAGE = {
    "prompt_tokens": 1000,
    "completion_tokens": 100,
    "prompt_tokens_details": {"cached_tokens": 800},
}
CACHED = Pricing(input_per_1m=1.0, output_per_1m=2.0, cached_input_per_1m=0.1)
EXPECTED = (200 * 1.0 + 800 * 0.1 + 100 * 2.0) / 1e6


async def test_cached_prompt_tokens_are_billed_at_the_cached_price() -> None:
    transport = httpx.MockTransport(lambda r: json_response(200, completion("x", USAGE)))
    registry = deployed_registry(("a", "http://a.test/v1"), pricing=(CACHED,))
    model = registry.models[0]
    async with UpstreamPool(lambda: registry, FAST, transport=transport) as pool:
        reply = await pool.route_call(model, "q", max_tokens=4)
        result = await pool.chat(model, {"messages": []})
    assert reply.cost_usd == pytest.approx(EXPECTED)
    assert result.cost_usd == pytest.approx(EXPECTED)
    assert result.usage is not None
    assert result.usage.cached_tokens == 800


async def test_without_a_cached_price_cached_tokens_are_input_tokens() -> None:
    transport = httpx.MockTransport(lambda r: json_response(200, completion("x", USAGE)))
    plain = Pricing(input_per_1m=1.0, output_per_1m=2.0)
    registry = deployed_registry(("a", "http://a.test/v1"), pricing=(plain,))
    async with UpstreamPool(lambda: registry, FAST, transport=transport) as pool:
        reply = await pool.route_call(registry.models[0], "q", max_tokens=4)
    assert reply.cost_usd == pytest.approx((1000 * 1.0 + 100 * 2.0) / 1e6)


async def test_a_streams_usage_chunk_bills_cached_tokens_too() -> None:
    chunk = {"choices": [], "usage": USAGE}
    wire = (
        b'data: {"choices":[{"delta":{"content":"a"},"finish_reason":"stop"}]}\n\n'
        b"data: " + orjson.dumps(chunk) + b"\n\ndata: [DONE]\n\n"
    )
    transport = httpx.MockTransport(
        lambda r: httpx.Response(200, headers={"content-type": "text/event-stream"}, content=wire)
    )
    registry = deployed_registry(("a", "http://a.test/v1"), pricing=(CACHED,))
    async with UpstreamPool(lambda: registry, FAST, transport=transport) as pool:
        stream = await pool.chat_stream(registry.models[0], {"messages": [], "stream": True})
        async with stream:
            async for _ in stream:
                pass
    assert (stream.deployment, stream.usage_estimated) == ("a", False)
    assert stream.cost_usd == pytest.approx(EXPECTED)
