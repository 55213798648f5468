"""LlamaCppEngine's requests and reply handling, against mock transports (the real server is
exercised in tests/integration/)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from server.engines import EngineError, GenerationParams, LlamaCppEngine, build_policy_engine
from tests.fakes.registry import default_registry, router_profile

BASE = "http://llama.test:8101/v1"
Handler = Callable[[httpx.Request], httpx.Response]


def _engine(handler: Handler, **kwargs: Any) -> LlamaCppEngine:
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return LlamaCppEngine(client, base_url=BASE, model="policy", **kwargs)


def _body(request: httpx.Request) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(request.content)
    return body


async def test_tokenize_endpoints_and_payloads() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path == "/extras/detokenize":
            return httpx.Response(200, json={"text": "hello"})
        return httpx.Response(200, json={"tokens": [5, 6]})

    engine = _engine(handler)
    assert await engine.chat_prompt_ids("Q?") == [5, 6]
    assert await engine.tokenize("piece") == [5, 6]
    assert await engine.detokenize([5, 6]) == "hello"
    assert await engine.tokenize("") == []
    assert await engine.detokenize([]) == ""
    chat, piece, detok = seen
    assert str(chat.url) == "http://llama.test:8101/extras/tokenize/chat"
    assert _body(chat) == {
        "model": "policy",
        "messages": [{"role": "user", "content": "Q?"}],
        "add_generation_prompt": True,
    }
    assert str(piece.url) == "http://llama.test:8101/extras/tokenize"
    assert _body(piece) == {"model": "policy", "input": "piece", "add_special": False}
    assert _body(detok) == {"model": "policy", "tokens": [5, 6]}


async def test_completion_payload_is_token_ids_with_neutral_sampling_and_grammar() -> None:
    seen: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(_body(request))
        reply = {
            "choices": [{"text": "<answer> x </answer>", "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 7},
        }
        return httpx.Response(200, json=reply)

    params = GenerationParams(max_tokens=50, temperature=0.7, top_p=0.9, seed=3, grammar="g")
    generation = await _engine(handler).generate([1, 2, 3], params)
    assert generation.text == "<answer> x </answer>"
    assert (generation.prompt_tokens, generation.completion_tokens) == (3, 7)
    (body,) = seen
    assert body["prompt"] == [1, 2, 3]
    assert body["grammar"] == "g"
    assert "structured_outputs" not in body
    assert body["include_stop_str_in_output"] is True
    assert body["stop"] == ["</search>", "</answer>"]
    assert (body["temperature"], body["top_p"], body["seed"], body["max_tokens"]) == (
        0.7,
        0.9,
        3,
        50,
    )
    # llama-cpp-python's own defaults would add top-k, min-p and a repetition penalty
    assert (body["top_k"], body["min_p"], body["repeat_penalty"]) == (0, 0.0, 1.0)


async def test_stream_reads_the_final_usage() -> None:
    events = [
        {"choices": [{"text": "<answer>", "finish_reason": None}]},
        {"choices": [{"text": " y </answer>", "finish_reason": None}]},
        {
            "choices": [{"text": "", "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 4, "completion_tokens": 5},
        },
    ]
    sse = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"

    def handler(request: httpx.Request) -> httpx.Response:
        assert _body(request)["stream"] is True
        return httpx.Response(200, text=sse, headers={"content-type": "text/event-stream"})

    chunks = [c async for c in _engine(handler).stream_generate([1], GenerationParams(8))]
    assert "".join(c.text for c in chunks) == "<answer> y </answer>"
    assert chunks[-1].is_final
    assert chunks[-1].completion_tokens == 5


async def test_a_stock_server_is_explained() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404, json={"detail": "Not Found"})

    with pytest.raises(EngineError, match=r"local_stack\.llamacpp_server"):
        await _engine(handler).chat_prompt_ids("Q?")


async def test_requests_are_sent_one_at_a_time() -> None:
    active = peak = 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        await asyncio.sleep(0.01)
        active -= 1
        return httpx.Response(200, json={"tokens": [1]})

    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    engine = LlamaCppEngine(client, base_url=BASE, model="policy")
    await asyncio.gather(*(engine.tokenize(f"t{i}") for i in range(5)))
    assert peak == 1
    wide = LlamaCppEngine(client, base_url=BASE, model="policy", max_in_flight=3)
    peak = 0
    await asyncio.gather(*(wide.tokenize(f"t{i}") for i in range(5)))
    assert peak == 3


async def test_factory_builds_llamacpp_engine() -> None:
    registry = default_registry()
    profile = router_profile(registry)
    llama = profile.model_copy(
        update={"policy": profile.policy.model_copy(update={"engine": "llamacpp"})}
    )
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"tokens": [9]})

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        engine = build_policy_engine(registry, llama, client, environ={})
        assert isinstance(engine, LlamaCppEngine)
        assert await engine.tokenize("x") == [9]
    assert seen[0].url.path == "/extras/tokenize"
