"""The final stream chunk carries ``usage.prompt_tokens_details.cached_tokens`` when the
server reports it (vLLM with ``--enable-prompt-tokens-details``, the llama.cpp server)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from server.engines import GenerationChunk, GenerationParams, VLLMEngine
from tests.fakes.vllm_server import DEFAULT_BASE_URL


def _stream(usage: dict[str, Any]) -> bytes:
    events = [
        {"choices": [{"index": 0, "text": "<answer> x </answer>", "finish_reason": None}]},
        {"choices": [{"index": 0, "text": "", "finish_reason": "stop"}]},
        {"choices": [], "usage": usage},
    ]
    return b"".join(f"data: {json.dumps(e)}\n\n".encode() for e in events) + b"data: [DONE]\n\n"


async def _final(usage: dict[str, Any]) -> GenerationChunk:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=_stream(usage))

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        engine = VLLMEngine(client, base_url=DEFAULT_BASE_URL, model="m")
        chunks = [c async for c in engine.stream_generate([1, 2, 3], GenerationParams(8))]
    return chunks[-1]


@pytest.mark.parametrize(
    ("details", "expected"),
    [
        ({"prompt_tokens_details": {"cached_tokens": 2}}, 2),
        ({"prompt_tokens_details": {"cached_tokens": 0}}, 0),
        ({"prompt_tokens_details": None}, None),
        ({"prompt_tokens_details": {"cached_tokens": "2"}}, None),
        ({}, None),
    ],
)
async def test_cached_tokens_come_from_the_usage_details(
    details: dict[str, Any], expected: int | None
) -> None:
    final = await _final({"prompt_tokens": 3, "completion_tokens": 4, **details})
    assert final.is_final
    assert (final.prompt_tokens, final.completion_tokens) == (3, 4)
    assert final.cached_tokens == expected
