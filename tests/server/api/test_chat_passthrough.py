"""Registry-model requests: forwarded to the upstream untouched, with cost accounting added."""

from __future__ import annotations

import json

import openai
import pytest

from tests.fakes.upstream_server import FakeUpstream, UpstreamScript
from tests.server.api.conftest import GatewayFactory

GEMMA = "google/gemma-2-27b-it"
MESSAGES = [{"role": "user", "content": "Say hi"}]


async def test_passthrough_forwards_the_body_and_adds_cost(gateway: GatewayFactory) -> None:
    upstream = FakeUpstream({GEMMA: UpstreamScript(reply="hi there", completion_tokens=1000)})
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    async with gateway(upstream=upstream) as gw:
        raw = await gw.client.chat.completions.with_raw_response.create(
            model="Gemma-2-27B-Instruct",
            messages=MESSAGES,
            tools=tools,
            tool_choice="auto",
            response_format={"type": "json_object"},
            temperature=0.7,
        )
    completion = raw.parse()
    (call,) = upstream.calls
    assert call.body["model"] == GEMMA
    assert call.body["tools"] == tools
    assert call.body["tool_choice"] == "auto"
    assert call.body["response_format"] == {"type": "json_object"}
    assert call.body["temperature"] == 0.7
    assert completion.choices[0].message.content == "hi there"
    assert completion.usage is not None
    prompt = completion.usage.prompt_tokens
    expected = (prompt * 0.8 + 1000 * 0.8) / 1e6
    assert completion.usage.model_extra["cost"] == pytest.approx(expected)
    assert float(raw.headers["x-router-cost-usd"]) == pytest.approx(expected, abs=1e-8)
    assert raw.headers["x-router-models"] == "Gemma-2-27B-Instruct"
    assert raw.headers["x-router-routes"] == "0"


async def test_passthrough_stream_is_verbatim_and_ends_with_accounting(
    gateway: GatewayFactory,
) -> None:
    upstream = FakeUpstream({GEMMA: UpstreamScript(reply="one two three", completion_tokens=3)})
    async with gateway(upstream=upstream) as gw:
        response = await gw.http.post(
            "/v1/chat/completions",
            json={"model": "Gemma-2-27B-Instruct", "messages": MESSAGES, "stream": True},
        )
    events = [e for e in response.text.split("\n\n") if e]
    assert events[-1] == "data: [DONE]"
    assert response.headers["x-accel-buffering"] == "no"
    # no usage chunk (the client did not ask); the router object rides on the finish chunk
    final = json.loads(events[-2].removeprefix("data: "))
    assert final["choices"][0]["finish_reason"] == "stop"
    assert final["router"]["mode"] == "passthrough"
    assert final["router"]["totals"]["models"] == ["Gemma-2-27B-Instruct"]
    assert final["router"]["totals"]["upstream_completion_tokens"] == 3
    assert final["router"]["totals"]["cost_usd"] > 0
    relayed = [json.loads(e.removeprefix("data: ")) for e in events[:-1]]
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in relayed) == "one two three "
    assert all("usage" not in c for c in relayed)  # the client did not ask for usage chunks
    assert len({c["id"] for c in relayed}) == 1  # the stream's own id throughout
    assert upstream.calls[0].body["stream_options"] == {"include_usage": True}


async def test_passthrough_stream_with_usage_merges_cost_into_the_upstreams_chunk(
    gateway: GatewayFactory,
) -> None:
    upstream = FakeUpstream({GEMMA: UpstreamScript(reply="one two", completion_tokens=2)})
    async with gateway(upstream=upstream) as gw:
        response = await gw.http.post(
            "/v1/chat/completions",
            json={
                "model": "Gemma-2-27B-Instruct",
                "messages": MESSAGES,
                "stream": True,
                "stream_options": {"include_usage": True},
            },
        )
    events = [json.loads(e.removeprefix("data: ")) for e in response.text.split("\n\n")[:-2]]
    usage_chunks = [e for e in events if e.get("usage")]
    assert usage_chunks == [events[-1]]  # one usage chunk, the last one
    final = events[-1]
    assert final["choices"] == []
    assert final["usage"]["completion_tokens"] == 2
    assert final["usage"]["cost"] == final["router"]["totals"]["cost_usd"] > 0
    assert final["id"] == events[0]["id"]


async def test_passthrough_stream_through_the_sdk(gateway: GatewayFactory) -> None:
    upstream = FakeUpstream({GEMMA: UpstreamScript(reply="a b", completion_tokens=2)})
    async with gateway(upstream=upstream) as gw:
        stream = await gw.client.chat.completions.create(
            model="Gemma-2-27B-Instruct",
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [c async for c in stream]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "a b "
    usages = [c.usage for c in chunks if c.usage is not None]
    assert usages[-1].model_extra["cost"] == pytest.approx(
        (usages[-1].prompt_tokens + 2) * 0.8 / 1e6
    )


async def test_passthrough_stream_without_upstream_usage_is_estimated(
    gateway: GatewayFactory,
) -> None:
    upstream = FakeUpstream({GEMMA: UpstreamScript(reply="a b c", send_usage=False)})
    async with gateway(upstream=upstream) as gw:
        response = await gw.http.post(
            "/v1/chat/completions",
            json={"model": "Gemma-2-27B-Instruct", "messages": MESSAGES, "stream": True},
        )
    final = json.loads([e for e in response.text.split("\n\n") if e][-2].removeprefix("data: "))
    (step,) = final["router"]["steps"]
    assert step["usage_estimated"] is True
    assert step["cost_usd"] > 0


@pytest.mark.parametrize(
    ("script", "error", "status"),
    [
        (UpstreamScript(status=500), openai.InternalServerError, 502),
        (UpstreamScript(status=400), openai.BadRequestError, 400),
        (UpstreamScript(status=429), openai.RateLimitError, 429),
        (UpstreamScript(garbage=True), openai.InternalServerError, 502),
        (UpstreamScript(delay_s=5), openai.InternalServerError, 504),
    ],
)
async def test_passthrough_upstream_errors(
    gateway: GatewayFactory, script: UpstreamScript, error: type[openai.APIStatusError], status: int
) -> None:
    upstream = FakeUpstream({GEMMA: script})
    async with gateway(upstream=upstream, upstream_passthrough_timeout_s=0.3) as gw:
        with pytest.raises(error) as info:
            await gw.client.chat.completions.create(model="Gemma-2-27B-Instruct", messages=MESSAGES)
    assert info.value.status_code == status
    body = info.value.body
    assert isinstance(body, dict)
    assert set(body) == {"message", "type", "param", "code"}


async def test_passthrough_stream_upstream_error_before_first_byte(gateway: GatewayFactory) -> None:
    upstream = FakeUpstream({GEMMA: UpstreamScript(status=503)})
    async with gateway(upstream=upstream) as gw:
        with pytest.raises(openai.InternalServerError) as info:
            await gw.client.chat.completions.create(
                model="Gemma-2-27B-Instruct", messages=MESSAGES, stream=True
            )
    assert info.value.status_code == 502
